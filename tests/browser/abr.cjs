// Opens live_upload serve's player page on a live ABR ladder in headless
// Chromium (Debian's) and checks how hls.js uses it:
//
//   node tests/browser/abr.cjs URL LEVELS THROTTLE_KBPS [LIMIT_SECONDS]
//
// 1. the page plays the master playlist and hls.js sees LEVELS levels;
// 2. once it plays on the top level, the page's download rate is limited to
//    THROTTLE_KBPS with Chrome DevTools Protocol network emulation;
// 3. hls.js must then switch to a lower level and keep playing: currentTime
//    advances by at least 4 s after the switch, with no fatal player error.
// Prints one JSON summary and exits 0 when all of that happened, 1 when not,
// 2 when it cannot run. playwright-core is looked up in LIVE_UPLOAD_NPM
// (default: target/npm); the browser is CHROMIUM or /usr/bin/chromium.
"use strict";
const path = require("path");

const [url, levelsArg, throttleArg, limitArg] = process.argv.slice(2);
const wantLevels = Number(levelsArg);
const throttleKbps = Number(throttleArg);
const limit = Number(limitArg || 60) * 1000;
if (!url || !(wantLevels > 0) || !(throttleKbps > 0)) {
  console.error("usage: node abr.cjs URL LEVELS THROTTLE_KBPS [LIMIT_SECONDS]");
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
  const summary = { url: url.replace(/token=[^&]*/, "token=***"), ok: false, throttledAtMs: null };
  const pageErrors = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    await page.goto(url);
    const started = Date.now();
    let switchedAt = null;
    while (Date.now() - started < limit) {
      await page.waitForTimeout(500);
      const s = await page.evaluate(() => {
        const hls = window.hls;
        const v = document.getElementById("video");
        return {
          playlist: window.playerPlaylist || null,
          levels: hls ? hls.levels.map((l) => ({ height: l.height, bitrate: l.bitrate })) : [],
          current: hls ? hls.currentLevel : -1,
          t: v.currentTime,
          events: (window.playerEvents || []).map((e) => ({ kind: e.kind, detail: e.detail })),
        };
      });
      summary.playlist = s.playlist;
      summary.levels = s.levels;
      summary.currentTime = s.t;
      summary.switches = s.events.filter((e) => e.kind === "level").map((e) => e.detail);
      summary.fatal = s.events.filter((e) => e.kind === "error").map((e) => e.detail).concat(pageErrors);
      if (summary.fatal.length) break;
      if (s.levels.length === 0 || s.current < 0) continue;
      const top = s.levels.reduce((best, l, i) => (l.bitrate > s.levels[best].bitrate ? i : best), 0);
      if (summary.throttledAtMs === null) {
        if (s.current === top && s.t > 1) {
          // playing the top level: limit the download rate
          await cdp.send("Network.emulateNetworkConditions", {
            offline: false,
            latency: 20,
            downloadThroughput: (throttleKbps * 1000) / 8,
            uploadThroughput: (throttleKbps * 1000) / 8,
          });
          summary.throttledAtMs = Date.now() - started;
          summary.topLevel = top;
        }
        continue;
      }
      if (switchedAt === null && s.levels[s.current].bitrate < s.levels[top].bitrate) {
        switchedAt = { at: Date.now() - started, t: s.t, level: s.current };
        summary.switchedDown = switchedAt;
      }
      if (switchedAt !== null && s.t - switchedAt.t >= 4) {
        summary.advancedAfterSwitch = Number((s.t - switchedAt.t).toFixed(3));
        break;
      }
    }
    summary.wallMs = Date.now() - started;
    summary.ok =
      summary.fatal.length === 0 &&
      /master/.test(summary.playlist || "") &&
      summary.levels.length === wantLevels &&
      summary.throttledAtMs !== null &&
      switchedAt !== null &&
      summary.advancedAfterSwitch >= 4;
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
