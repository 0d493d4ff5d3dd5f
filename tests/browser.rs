//! The player page in a real browser: headless Chromium from Debian's
//! packages, driven by playwright-core (both installed by
//! `scripts/setup.sh --test`), plays a stream while live_upload publishes
//! it at real speed, through `live_upload serve` with a token, once as TS
//! and once as fMP4. The video's currentTime must advance by at least 10 s
//! with no stall and no player error (tests/browser/play.cjs decides; these
//! tests run it, one at a time).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use common::{live_source, BIN};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn segments_listed(playlist: &Path) -> usize {
    std::fs::read_to_string(playlist)
        .map(|t| t.lines().filter(|l| l.starts_with("#EXTINF:")).count())
        .unwrap_or(0)
}

/// One browser and one real-time encode at a time: two at once on two
/// cores would measure the machine, not the player.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_player_page_plays_a_live_stream_in_chromium() {
    plays_live_in_chromium("ts");
}

#[test]
fn the_player_page_plays_a_live_fmp4_stream_in_chromium() {
    plays_live_in_chromium("fmp4");
}

/// The repository, target/npm and hls.js, all checked to be there.
fn browser_parts() -> (&'static Path, std::path::PathBuf, std::path::PathBuf) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let npm = repo.join("target/npm");
    let hls_js = npm.join("node_modules/hls.js/dist/hls.min.js");
    for needed in [
        Path::new("/usr/bin/chromium"),
        &hls_js,
        &npm.join("node_modules/playwright-core"),
    ] {
        assert!(
            needed.exists(),
            "{} is missing: run scripts/setup.sh --test",
            needed.display()
        );
    }
    (repo, npm, hls_js)
}

/// Waits until `playlist` lists `n` segments.
fn wait_listed(playlist: &Path, n: usize, limit: Duration) {
    let start = Instant::now();
    while segments_listed(playlist) < n {
        assert!(
            start.elapsed() < limit,
            "{} does not list {n} segments after {limit:?}",
            playlist.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn plays_live_in_chromium(format: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (repo, npm, hls_js) = browser_parts();
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    // 40 s of a test pattern at real speed, 2 s segments
    let mut source = live_source(40, "testsrc2");
    let input = source.stdout.take().unwrap();
    let _source = Kill(source);
    let publisher = Command::new(BIN)
        .args(["-", "2"])
        .arg(tmp.path().join("spool"))
        .args(["live", "index.m3u8", ""])
        .arg(format!("file://{}", www.display()))
        .args(["live", "-q", "--format", format])
        .stdin(input)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _publisher = Kill(publisher);

    // the player starts three target durations behind the live edge: with
    // five segments listed it joins in the middle of the stream, where the
    // segment it starts with must have its audio and video start together
    // (a hole there made hls.js seek over it, with a warning)
    wait_listed(&www.join("live/index.m3u8"), 5, Duration::from_secs(25));

    let token = "browser-test-token";
    let server = Server::start(
        &format!("file://{}", www.display()),
        &[
            "--index",
            "live/index.m3u8",
            "--token",
            token,
            "--hls-js",
            hls_js.to_str().unwrap(),
        ],
    );
    let out = Command::new("node")
        .arg(repo.join("tests/browser/play.cjs"))
        .arg(format!("http://{}/?token={token}", server.addr))
        .arg("40")
        .env("LIVE_UPLOAD_NPM", &npm)
        .output()
        .expect("node is installed (scripts/setup.sh --test)");
    let summary = String::from_utf8_lossy(&out.stdout);
    println!("{summary}");
    assert!(
        out.status.success(),
        "{format}: the player did not play 10 s cleanly (exit {:?}): {summary}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_player_page_plays_a_live_ladder_and_switches_down_when_throttled() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (repo, npm, hls_js) = browser_parts();
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    // 70 s of a 360p test pattern at real speed, published as three rungs
    let mut source = common::live_source_sized(70, "testsrc2", "640x360");
    let input = source.stdout.take().unwrap();
    let _source = Kill(source);
    let publisher = Command::new(BIN)
        .args(["-", "2"])
        .arg(tmp.path().join("spool"))
        .args(["live", "index.m3u8", ""])
        .arg(format!("file://{}", www.display()))
        .args(["live", "-q", "--ladder", "source,240p@400k,144p@150k"])
        .stdin(input)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _publisher = Kill(publisher);
    wait_listed(
        &www.join("live/144p-150k/index.m3u8"),
        4,
        Duration::from_secs(30),
    );
    let master = std::fs::read_to_string(www.join("live/master.m3u8")).unwrap();
    let parsed = live_upload::master::parse(&master).unwrap();
    assert_eq!(parsed.variants.len(), 3, "{master}");
    // a download rate the lowest rung fits in twice over, and the top one not
    let lowest = parsed.variants.iter().map(|v| v.bandwidth).min().unwrap();
    let highest = parsed.variants.iter().map(|v| v.bandwidth).max().unwrap();
    let throttle_kbps = lowest * 2 / 1000;
    assert!(throttle_kbps * 1000 < highest, "{master}");

    // the page is given the live folder's index: it finds the master beside it
    let server = Server::start(
        &format!("file://{}", www.display()),
        &[
            "--index",
            "live/index.m3u8",
            "--hls-js",
            hls_js.to_str().unwrap(),
        ],
    );
    let out = Command::new("node")
        .arg(repo.join("tests/browser/abr.cjs"))
        .arg(format!("http://{}/", server.addr))
        .arg("3")
        .arg(throttle_kbps.to_string())
        .arg("50")
        .env("LIVE_UPLOAD_NPM", &npm)
        .output()
        .expect("node is installed (scripts/setup.sh --test)");
    let summary = String::from_utf8_lossy(&out.stdout);
    println!("{summary}");
    assert!(
        out.status.success(),
        "hls.js did not play the ladder and switch down (exit {:?}): {summary}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}
