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

fn plays_live_in_chromium(format: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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
    let playlist = www.join("live/index.m3u8");
    let start = Instant::now();
    while segments_listed(&playlist) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "no playlist with five segments after 25 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

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
