// Opens live_upload serve's player page in headless Chromium (Debian's, never
// a downloaded browser) and watches the video play.
//
//   node tests/browser/play.cjs URL [LIMIT_SECONDS]
//
// Prints one JSON summary and exits 0 when the video's currentTime advanced
// by at least 10 s after playback began, with no waiting or stalled event
// after that and no player error (a video error, an hls.js ERROR event of any
// kind, or a script error on the page); 1 otherwise; 2 when it cannot run.
// playwright-core is looked up in LIVE_UPLOAD_NPM (default: target/npm, where
// scripts/setup.sh --test installs it); the browser is CHROMIUM or
// /usr/bin/chromium.
"use strict";
const path = require("path");

const url = process.argv[2];
const limit = Number(process.argv[3] || 45) * 1000;
const needed = 10;
if (!url) {
  console.error("usage: node play.cjs URL [LIMIT_SECONDS]");
  process.exit(2);
}
const npm = process.env.LIVE_UPLOAD_NPM || path.join(__dirname, "..", "..", "target", "npm");
let chromium;
try {
  ({ chromium } = require(path.join(npm, "node_modules", "playwright-core")));
} catch (e) {
  console.error(`playwright-core not found under ${npm}: run scripts/setup.sh --test (${e.message})`);
  process.exit(2);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
  });
  const summary = { url: url.replace(/token=[^&]*/, "token=***"), ok: false };
  const pageErrors = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push("console: " + m.text());
    });
    await page.goto(url);
    const started = Date.now();
    const samples = [];
    let playingAt = null;
    while (Date.now() - started < limit) {
      await page.waitForTimeout(500);
      const s = await page.evaluate(() => {
        const v = document.getElementById("video");
        return {
          t: v.currentTime,
          paused: v.paused,
          readyState: v.readyState,
          events: window.playerEvents || [],
        };
      });
      samples.push({ at: Date.now() - started, t: Number(s.t.toFixed(3)) });
      summary.events = s.events.map((e) => `${e.kind}${e.detail ? " " + e.detail : ""} @${e.currentTime.toFixed(2)}`);
      const firstPlaying = s.events.findIndex((e) => e.kind === "playing");
      const after = firstPlaying < 0 ? [] : s.events.slice(firstPlaying + 1);
      summary.stalls = after.filter((e) => e.kind === "waiting" || e.kind === "stalled").length;
      summary.errors = s.events
        .filter((e) => e.kind === "error" || e.kind === "hls-warning")
        .map((e) => e.kind + " " + e.detail)
        .concat(pageErrors);
      if (firstPlaying >= 0 && playingAt === null) playingAt = samples.length - 1;
      summary.startTime = playingAt === null ? null : samples[playingAt].t;
      summary.currentTime = s.t;
      summary.advanced = playingAt === null ? 0 : Number((s.t - samples[playingAt].t).toFixed(3));
      summary.playbackBeganAfterMs = playingAt === null ? null : samples[playingAt].at;
      if (summary.errors.length || summary.stalls) break;
      if (summary.advanced >= needed) break;
    }
    summary.wallMs = Date.now() - started;
    summary.samples = samples;
    summary.ok = summary.advanced >= needed && summary.stalls === 0 && summary.errors.length === 0;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(summary));
  process.exit(summary.ok ? 0 : 1);
}

main().catch((e) => {
  console.error(`cannot run the browser: ${e && e.stack ? e.stack : e}`);
  process.exit(2);
});
