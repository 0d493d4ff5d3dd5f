//! Bad and difficult input: each case ends without a panic, with a clear
//! one-line message and its documented exit code, and what arrived before
//! the problem is stored and listed.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// No panic, and at most one ERROR line, which names `error` when given.
fn check_messages(run: &Run, code: i32, error: Option<&str>) {
    let stderr = run.stderr();
    assert_eq!(run.code(), Some(code), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ")).collect();
    match error {
        Some(text) => {
            assert_eq!(errors.len(), 1, "one error line: {stderr}");
            assert!(errors[0].contains(text), "{}", errors[0]);
        }
        None => assert!(errors.is_empty(), "{stderr}"),
    }
}

/// The final playlist's segments, checked for order and rules.
fn published(run: &Run) -> Vec<Listed> {
    check_published(&run.journal(), "ev/index.m3u8", "ev").0
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_file(&write(dir.path(), "empty.ts", b""), "2", &[]);
    check_messages(&run, 3, Some("input is empty"));
    assert!(!run.object("ev/index.m3u8").exists());
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let run = run_file(&write(dir.path(), "noise.ts", &noise), "2", &[]);
    check_messages(&run, 3, Some("not a recognizable media stream"));
}

#[test]
fn a_container_that_is_not_mpeg_ts() {
    let dir = tempfile::tempdir().unwrap();
    let mkv = dir.path().join("clip.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=30",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-f",
        "matroska",
        mkv.to_str().unwrap(),
    ]);
    let run = run_file(&mkv, "2", &[]);
    check_messages(&run, 3, Some("not an MPEG-TS stream (libav found matroska"));
}

#[test]
fn a_stream_cut_off_mid_packet() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 12, 30, &[]);
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.truncate(bytes.len() * 2 / 3 + 77);
    let tail = (bytes.len() % 188) as u64;
    assert!(tail > 0);
    let cut = write(dir.path(), "cut.ts", &bytes);
    let run = run_file(&cut, "2", &["--window", "10"]);
    check_messages(&run, 0, None);
    let journal = run.journal();
    let truncated = warnings(&journal, "truncated_packet");
    assert_eq!(truncated.len(), 1, "{journal:?}");
    assert_eq!(truncated[0].u64("bytes"), tail, "{}", truncated[0].line);
    let listed = published(&run);
    assert!(listed.len() >= 4, "{listed:?}");
    let (ok, err) = decode(&run.object("ev/index.m3u8"));
    assert!(ok, "{err}");
}

#[test]
fn corrupted_packets_in_the_middle_do_not_end_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 16, 30, &[]);
    let mut bytes = std::fs::read(&input).unwrap();
    let mid = bytes.len() / 2;
    let mut x = 7u32;
    for b in &mut bytes[mid..mid + 60_000] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (x >> 16) as u8;
    }
    // and a few packets flagged with the transport error indicator
    let flagged = mid / 2 / 188 * 188;
    for k in 0..3 {
        bytes[flagged + k * 188 + 1] |= 0x80;
    }
    let damaged = write(dir.path(), "damaged.ts", &bytes);
    let run = run_file(&damaged, "2", &["--window", "10"]);
    check_messages(&run, 0, None);
    let journal = run.journal();
    let damaged = warnings(&journal, "damaged_input");
    assert_eq!(damaged.len(), 1, "{journal:?}");
    assert!(damaged[0].u64("unsynced_bytes") > 0, "{}", damaged[0].line);
    assert_eq!(damaged[0].u64("error_packets"), 3, "{}", damaged[0].line);
    let listed = published(&run);
    // 16 s of 2 s segments: at most the one or two around the damage merge
    assert!(
        listed.len() >= 6,
        "the run went on past the damage: {listed:?}"
    );
    let total: f64 = listed.iter().map(|l| l.duration).sum();
    assert_close(total, packet_span(&input), 0.1);
}

#[test]
fn keyframes_that_stop_are_cut_at_four_targets_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nokey.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=30",
        "-t",
        "20",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "100000",
        "-keyint_min",
        "100000",
        "-sc_threshold",
        "0",
        "-f",
        "mpegts",
        input.to_str().unwrap(),
    ]);
    let run = run_file(&input, "2", &["--window", "10"]);
    check_messages(&run, 0, None);
    let journal = run.journal();
    let warned = warnings(&journal, "no_keyframe");
    assert_eq!(warned.len(), 1, "one warning: {journal:?}");
    assert_eq!(
        extinf(secs(warned[0].i64("after"))),
        8.0,
        "{}",
        warned[0].line
    );
    let listed = published(&run);
    assert!(
        listed.iter().all(|l| l.duration <= 8.0 + 1.0 / 30.0),
        "{listed:?}"
    );
    assert_eq!(listed.len(), 3, "8 + 8 + 4 s: {listed:?}");
    // the first starts on the only keyframe, the others without one
    let forced: Vec<bool> = journal
        .iter()
        .filter(|r| r.event() == "segment")
        .map(|r| r.bool("forced"))
        .collect();
    assert_eq!(forced, [false, true, true]);
}

#[test]
fn a_stalled_input_ends_cleanly_after_input_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 8, 30, &[]);
    let out = dir.path().join("out");
    let events = dir.path().join("events.jsonl");
    let mut child = Command::new(BIN)
        .arg("-")
        .arg("2")
        .arg(dir.path().join("spool"))
        .args(["live", "index.m3u8", ""])
        .arg(format!("file://{}", out.display()))
        .args(["ev", "--input-timeout", "2", "--events"])
        .arg(&events)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // send the stream, then keep the pipe open without data
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&input).unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not end by itself");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let journal = journal::read(&events);
    let timeouts = warnings(&journal, "input_timeout");
    assert_eq!(timeouts.len(), 1, "{journal:?}");
    assert_eq!(timeouts[0].f64("seconds"), 2.0);
    assert_eq!(end(&journal).u64("code"), 0);
    let playlist = std::fs::read_to_string(out.join("ev/index.m3u8")).unwrap();
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    assert_eq!(playlist.matches("#EXTINF").count(), 4, "{playlist}");
}

/// Whether something listens on UDP `port` (any local address).
fn udp_bound(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(&suffix))
            })
        })
    })
}

/// Runs the binary on `udp://127.0.0.1:PORT` with `--input-timeout 1`,
/// sends `input` there once it listens (none: nothing), then stays silent.
/// Fails if the run has not ended 30 s after that.
fn run_udp(input: Option<&Path>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spool = dir.path().join("spool");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("stderr.log");
    let events = dir.path().join("events.jsonl");
    let mut child = Command::new(BIN)
        .arg(format!("udp://127.0.0.1:{port}"))
        .arg("2")
        .arg(&spool)
        .args(["live", "index.m3u8", ""])
        .arg(format!("file://{}", out.display()))
        .args(["ev", "--input-timeout", "1", "--events"])
        .arg(&events)
        .env("RUST_LOG", "live_upload=debug")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // waits for `done`; past the deadline, kills the run and fails
    let wait = |child: &mut std::process::Child,
                what: &str,
                done: &mut dyn FnMut(&mut std::process::Child) -> bool| {
        while !done(child) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = std::fs::read_to_string(&log).unwrap();
                panic!("{what} within 30 s:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    if let Some(input) = input {
        wait(&mut child, "the input was not opened", &mut |_| {
            udp_bound(port)
        });
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // 7 TS packets a datagram, paced so that no buffer on the way overflows
        for chunk in std::fs::read(input).unwrap().chunks(7 * 188) {
            socket.send_to(chunk, ("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let mut status = None;
    wait(&mut child, "the run did not end by itself", &mut |c| {
        status = c.try_wait().unwrap();
        status.is_some()
    });
    let output = std::process::Output {
        status: status.unwrap(),
        stdout: Vec::new(),
        stderr: std::fs::read(&log).unwrap(),
    };
    Run {
        dir,
        out,
        spool,
        events,
        output,
    }
}

#[test]
fn a_udp_input_that_falls_silent_ends_after_input_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 6, 30, &[]);
    let run = run_udp(Some(&input));
    check_messages(&run, 0, None);
    let journal = run.journal();
    let timeouts = warnings(&journal, "input_timeout");
    assert_eq!(timeouts.len(), 1, "{journal:?}");
    assert_eq!(timeouts[0].f64("seconds"), 1.0);
    let listed = published(&run);
    assert!(listed.len() >= 2, "{listed:?}");
    let playlist = std::fs::read_to_string(run.object("ev/index.m3u8")).unwrap();
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
}

#[test]
fn a_udp_input_where_nothing_arrives_is_empty_after_input_timeout() {
    let run = run_udp(None);
    check_messages(&run, 3, Some("input is empty"));
    let journal = run.journal();
    assert_eq!(warnings(&journal, "input_timeout").len(), 1, "{journal:?}");
    assert_eq!(end(&journal).u64("code"), 3);
    assert!(!run.object("ev/index.m3u8").exists());
}

#[test]
fn two_programs_one_is_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=f=300",
        "-f",
        "lavfi",
        "-i",
        "smptebars=size=160x120:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=f=800",
        "-t",
        "8",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:v",
        "-map",
        "3:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-program",
        "program_num=1:title=One:st=0:st=1",
        "-program",
        "program_num=2:title=Two:st=2:st=3",
        "-f",
        "mpegts",
        input.to_str().unwrap(),
    ]);
    let programs = |path: &Path| -> Vec<String> {
        ffprobe(
            path,
            &["-show_entries", "program=program_id", "-of", "csv=p=0"],
        )
        .lines()
        .map(|l| l.trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect()
    };
    let rates = |path: &Path| {
        ffprobe(
            path,
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "stream=r_frame_rate",
                "-of",
                "csv=p=0",
            ],
        )
    };
    assert_eq!(programs(&input), vec!["1", "2"]);
    for (args, program, rate) in [
        (&[][..], "1", "30/1"),
        (&["--program", "2"][..], "2", "25/1"),
    ] {
        let run = run_file(&input, "2", args);
        check_messages(&run, 0, None);
        let listed = published(&run);
        assert_eq!(listed.len(), 4);
        let seg = run.object(&format!("ev/{}", listed[1].uri));
        assert_eq!(
            programs(&seg),
            vec![program.to_string()],
            "only the chosen program"
        );
        // the video stream, listed under its program and again globally
        assert_eq!(rates(&seg).lines().next(), Some(rate));
        assert_eq!(probe_streams(&seg), vec!["video", "audio"]);
    }
    let run = run_file(&input, "2", &["--program", "7"]);
    check_messages(&run, 3, Some("no program 7 (programs: 1, 2)"));
}

#[test]
fn a_second_run_on_a_spool_directory_in_use_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let run = |source: &mut std::process::Child, out: &str| {
        Command::new(BIN)
            .args(["-", "2"])
            .arg(&spool)
            .args(["live", "index.m3u8", ""])
            .arg(format!("file://{}", dir.path().join(out).display()))
            .arg("ev")
            .stdin(source.stdout.take().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut source = live_source(30, "testsrc2");
    let mut first = run(&mut source, "one");
    let playlist = dir.path().join("one/ev/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !playlist.exists() {
        assert!(Instant::now() < deadline, "the first run published nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    // another destination, the same spool directory
    let mut other = live_source(30, "smptebars");
    let started = Instant::now();
    let second = run(&mut other, "two").wait_with_output().unwrap();
    let took = started.elapsed();
    let _ = other.kill();
    let _ = other.wait();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(6), "{stderr}");
    assert!(took < Duration::from_secs(5), "refused at once: {took:?}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!(
            "the spool directory {} is in use by another run (pid {})",
            spool.display(),
            first.id()
        )),
        "{}",
        errors[0]
    );
    assert!(!dir.path().join("two/ev").exists(), "it published nothing");
    // the first run is untouched and ends normally
    let _ = source.kill();
    let status = first.wait().unwrap();
    let _ = source.wait();
    assert!(status.code().is_some(), "the first run exited by itself");
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
}
