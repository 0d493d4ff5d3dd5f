//! Publishing to a real S3 server: Garage 2.5.0 on 127.0.0.1, started by
//! scripts/garage.sh. Players' views are checked through Garage's anonymous
//! web endpoint with plain HTTP.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::garage::{garage, Garage};
use common::proxy::Proxy;
use common::*;

/// A key prefix no other test uses.
fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A run of live_upload: the process, and the directory that holds its
/// spool and its event journal.
struct Started {
    child: Child,
    dir: tempfile::TempDir,
}

impl Started {
    fn journal(&self) -> Vec<Record> {
        journal::read(&self.dir.path().join("events.jsonl"))
    }
}

/// Starts live_upload reading stdin, publishing to Garage's bucket `live`
/// under `prefix`, with an event journal and debug logging on stderr.
fn start(
    g: &Garage,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    seconds: &str,
    extra: &[&str],
) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let child = g
        .command(BIN)
        .args(["-", seconds])
        .arg(dir.path().join("spool"))
        .args([
            "live",
            "index.m3u8",
            "",
            bucket,
            prefix,
            "--endpoint-url",
            endpoint,
            "--path-style",
            "--events",
        ])
        .arg(dir.path().join("events.jsonl"))
        .args(extra)
        .env("RUST_LOG", "live_upload=debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Started { child, dir }
}

/// Writes `data` to the child's stdin: the first `paced` part at the rate of
/// `media_seconds` for the whole, the rest at once. Returns (exit code, stderr).
fn feed(
    started: &mut Started,
    data: &[u8],
    media_seconds: f64,
    paced: f64,
) -> (Option<i32>, String) {
    let child = &mut started.child;
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let paced_bytes = (data.len() as f64 * paced) as usize;
    let rate = data.len() as f64 / media_seconds;
    const CHUNK: usize = 188 * 100;
    for (i, chunk) in data[..paced_bytes].chunks(CHUNK).enumerate() {
        stdin.write_all(chunk).unwrap();
        let sent = i * CHUNK + chunk.len();
        let due = Duration::from_secs_f64(sent as f64 / rate);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    stdin.write_all(&data[paced_bytes..]).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    (status.code(), reader.join().unwrap())
}

/// Every object under `prefix`: key → (content type, cache control).
fn objects(g: &Garage, prefix: &str) -> HashMap<String, (String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = g.s3_client();
        let listed = client
            .list_objects_v2()
            .bucket("live")
            .prefix(format!("{prefix}/"))
            .send()
            .await
            .unwrap();
        let mut out = HashMap::new();
        for obj in listed.contents() {
            let key = obj.key().unwrap().to_string();
            let head = client
                .head_object()
                .bucket("live")
                .key(&key)
                .send()
                .await
                .unwrap();
            out.insert(
                key,
                (
                    head.content_type().unwrap_or("").to_string(),
                    head.cache_control().unwrap_or("").to_string(),
                ),
            );
        }
        out
    })
}

#[test]
fn a_live_stream_plays_from_garage_while_published_and_to_the_end() {
    let g = garage();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 24, 30, &[]);
    let data = std::fs::read(&input).unwrap();
    let prefix = unique("e2e");
    let mut run = start(g, g.s3_url(), "live", &prefix, "2", &[]);

    // a player joins while the stream is live
    let playlist_key = format!("{prefix}/index.m3u8");
    let watcher = {
        let key = playlist_key.clone();
        std::thread::spawn(move || {
            let g = garage();
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                let (status, _, body) = g.web_get(&key);
                let text = String::from_utf8_lossy(&body).into_owned();
                if status == 200 && text.matches("#EXTINF").count() >= 3 {
                    assert!(!text.contains("#EXT-X-ENDLIST"), "still live");
                    return (text, g.play(&key, &[]));
                }
                assert!(
                    Instant::now() < deadline,
                    "no live playlist with three segments"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    // 60% of the stream at real speed, the rest as fast as it comes
    let (code, stderr) = feed(&mut run, &data, 24.0, 0.6);
    let (live_text, (live_ok, live_err)) = watcher.join().unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        live_ok,
        "ffmpeg read the live playlist:\n{live_text}\n{live_err}"
    );

    let (listed, final_text) = check_published(&run.journal(), &playlist_key, &prefix);
    assert_eq!(listed.len(), 12);
    let total: f64 = listed.iter().map(|l| l.duration).sum();
    assert_close(total, packet_span(&input), 1.0 / 30.0);

    // through the S3 API: every object with its content type and cache control
    let objects = objects(g, &prefix);
    assert_eq!(objects.len(), listed.len() + 1, "{objects:?}");
    assert_eq!(
        objects[&playlist_key],
        (
            "application/vnd.apple.mpegurl".to_string(),
            "max-age=1".to_string()
        )
    );
    for seg in &listed {
        let key = format!("{prefix}/{}", seg.uri);
        assert_eq!(
            objects[&key],
            (
                "video/mp2t".to_string(),
                "public, max-age=86400".to_string()
            ),
            "{key}"
        );
    }
    // a player's view: the final playlist over plain HTTP, played to its end
    let (status, headers, body) = g.web_get(&playlist_key);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), final_text);
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    let (ok, err) = g.play(&playlist_key, &[]);
    assert!(
        ok && err.is_empty(),
        "the final playlist plays to its end: {err}"
    );
}

#[test]
fn playlists_land_in_order_and_only_after_their_segments() {
    let g = garage();
    let proxy = Proxy::start(g.s3_url().trim_start_matches("http://"));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 30, 15, &[]); // 30 segments of 1 s, as fast as possible
    let prefix = unique("order");
    let mut run = start(
        g,
        &proxy.url(),
        "live",
        &prefix,
        "1",
        &["--concurrency", "6"],
    );
    let (code, stderr) = feed(&mut run, &std::fs::read(&input).unwrap(), 30.0, 0.0);
    assert_eq!(code, Some(0), "{stderr}");

    let log = proxy.exchanges();
    let key_of = |path: &str| {
        path.trim_start_matches("/live/")
            .split('?')
            .next()
            .unwrap()
            .to_string()
    };
    let segment_puts: Vec<_> = log
        .iter()
        .filter(|e| e.method == "PUT" && key_of(&e.path).ends_with(".ts"))
        .collect();
    let playlist_puts: Vec<_> = log
        .iter()
        .filter(|e| e.method == "PUT" && key_of(&e.path).ends_with(".m3u8"))
        .collect();
    assert_eq!(segment_puts.len(), 30);
    assert!(playlist_puts.len() >= 2);
    let overlapping = segment_puts
        .iter()
        .filter(|a| {
            segment_puts
                .iter()
                .any(|b| a.sent < b.sent && b.sent < a.answered)
        })
        .count();
    assert!(overlapping > 0, "segment uploads ran concurrently");
    let mut previous: Option<&common::proxy::Exchange> = None;
    let mut last_listed = 0usize;
    for p in &playlist_puts {
        assert_eq!(p.status, 200);
        let text = String::from_utf8(p.body.clone()).unwrap();
        for uri in text.lines().filter(|l| !l.starts_with('#')) {
            let key = format!("{prefix}/{uri}");
            let stored = segment_puts
                .iter()
                .any(|s| key_of(&s.path) == key && s.status == 200 && s.answered < p.sent);
            assert!(
                stored,
                "{uri} was listed before the store had answered its PUT"
            );
        }
        if let Some(prev) = previous {
            assert!(
                prev.answered < p.sent,
                "one playlist PUT at a time, in order"
            );
        }
        let listed = text.lines().filter(|l| !l.starts_with('#')).count()
            + text
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .map_or(0, |n| n.parse::<usize>().unwrap());
        assert!(listed >= last_listed, "playlist versions move forward");
        last_listed = listed;
        previous = Some(p);
    }
    assert!(String::from_utf8_lossy(&playlist_puts.last().unwrap().body).contains("#EXT-X-ENDLIST"));
}

fn run_with(g: &Garage, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 3, 30, &[]);
    let mut cmd = g.command(BIN);
    cmd.arg(&input)
        .arg("1")
        .arg(dir.path().join("spool"))
        .args(["live", "index.m3u8", ""]);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_credentials_a_missing_bucket_and_a_dead_endpoint_exit_4_without_secrets() {
    let g = garage();
    let secret = g.var("AWS_SECRET_ACCESS_KEY").to_string();
    let wrong = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let endpoint = ["--endpoint-url", g.s3_url(), "--path-style"];
    struct Case<'a> {
        name: &'a str,
        args: Vec<&'a str>,
        env: Vec<(&'a str, &'a str)>,
        expect: &'a str,
    }
    let live = |extra: &[&'static str]| [&["live", "x"][..], extra].concat();
    let cases = [
        Case {
            name: "wrong secret",
            args: live(&endpoint),
            env: vec![("AWS_SECRET_ACCESS_KEY", wrong)],
            expect: "403",
        },
        Case {
            name: "unknown key",
            args: live(&endpoint),
            env: vec![("AWS_ACCESS_KEY_ID", "GK0123456789abcdef01234567")],
            expect: "403",
        },
        Case {
            name: "missing bucket",
            args: [&["no-such-bucket", "x"][..], &endpoint[..]].concat(),
            env: vec![],
            expect: "NoSuchBucket",
        },
        Case {
            name: "dead endpoint",
            args: live(&["--endpoint-url", "http://127.0.0.1:9", "--path-style"]),
            env: vec![],
            expect: "cannot reach the store",
        },
    ];
    for Case {
        name,
        args,
        env,
        expect,
    } in cases
    {
        let started = Instant::now();
        let (code, stderr) = run_with(g, &args, &env);
        assert_eq!(code, Some(4), "{name}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{name}: one error line: {stderr}");
        assert!(errors[0].contains(expect), "{name}: {}", errors[0]);
        assert!(
            !stderr.contains(&secret) && !stderr.contains(wrong),
            "{name}: a secret in the output"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{name} fails fast"
        );
    }
}

#[test]
fn the_most_verbose_output_carries_no_secret() {
    let g = garage();
    let prefix = unique("verbose");
    // the endpoint from AWS_ENDPOINT_URL this time, not --endpoint-url
    let (code, stderr) = run_with(
        g,
        &["live", &prefix, "--path-style", "-vv"],
        &[("RUST_LOG", "trace"), ("AWS_ENDPOINT_URL", g.s3_url())],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("published"), "trace output was produced");
    assert!(
        stderr.contains(g.s3_url()),
        "the endpoint came from AWS_ENDPOINT_URL"
    );
    assert!(!stderr.contains(g.var("AWS_SECRET_ACCESS_KEY")));
    let objects = objects(g, &prefix);
    assert!(
        objects.contains_key(&format!("{prefix}/index.m3u8")),
        "{objects:?}"
    );
}

#[test]
fn delete_old_removes_segments_once_players_are_done_with_them() {
    let g = garage();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 16, 30, &[]);
    let prefix = unique("delete");
    // 1 s segments, window 3: a segment leaves after 3 more and must stay
    // for its 1 s plus the 3 s of the playlist that last listed it
    let mut run = start(
        g,
        g.s3_url(),
        "live",
        &prefix,
        "1",
        &["--window", "3", "--delete-old"],
    );
    let (code, stderr) = feed(&mut run, &std::fs::read(&input).unwrap(), 16.0, 1.0);
    assert_eq!(code, Some(0), "{stderr}");
    let keys: HashSet<String> = objects(g, &prefix).into_keys().collect();
    let deleted: Vec<String> = (1..=16)
        .map(|n| format!("{prefix}/live-{n:05}.ts"))
        .filter(|k| !keys.contains(k))
        .collect();
    // segment n leaves the window about n + 3 s in and may go 4 s later:
    // segments 1..=7 are due at least a second before the stream ends
    for n in 1..=7 {
        assert!(
            deleted.contains(&format!("{prefix}/live-{n:05}.ts")),
            "segment {n} deleted: {keys:?}"
        );
    }
    // the final window is never deleted
    let last = String::from_utf8(g.web_get(&format!("{prefix}/index.m3u8")).2).unwrap();
    for uri in last.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            keys.contains(&format!("{prefix}/{uri}")),
            "{uri} is listed and present"
        );
    }
    // nothing was deleted while a published playlist could still send players to it
    let journal = run.journal();
    let (listed, _) = check_published(&journal, &format!("{prefix}/index.m3u8"), &prefix);
    assert_eq!(listed.len(), 16);
    // the journal names exactly the segments that are gone
    let mut journaled: Vec<String> = journal
        .iter()
        .filter(|r| r.event() == "deleted")
        .map(|r| r.str("key").to_string())
        .collect();
    journaled.sort();
    assert!(journaled.len() >= 7, "{journaled:?}");
    assert_eq!(journaled, deleted);
    assert_eq!(end(&journal).u64("deleted"), deleted.len() as u64);
    assert!(Path::new(&input).exists());
}
