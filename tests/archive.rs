//! The event archive (`--archive`) and clips (`live_upload clip`), against
//! Garage (played through its anonymous web endpoint) and a local directory.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::garage::garage;
use common::*;

/// Checks every published version of the archive at `key`: EVENT while
/// live and VOD with ENDLIST at the end, every segment dated and stored
/// before it is listed, each version the previous one plus new segments.
/// `before` holds the events of an earlier run on the same destination.
/// Returns the final version.
fn check_archive(
    before: &[Event],
    events: &[Event],
    key: &str,
    key_prefix: &str,
) -> m3u8_rs::MediaPlaylist {
    let mut stored: std::collections::HashSet<String> = before
        .iter()
        .filter_map(|e| match e {
            Event::Stored(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    let mut previous: Vec<String> = Vec::new();
    let mut versions = Vec::new();
    for ev in events {
        match ev {
            Event::Stored(k) => {
                stored.insert(k.clone());
            }
            Event::Published { key: k, text } if k == key => {
                let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes())
                    .unwrap_or_else(|e| panic!("{e:?}:\n{text}"));
                let uris: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
                assert!(
                    uris.starts_with(&previous) && (uris.len() > previous.len() || pl.end_list),
                    "a version only appends:\n{text}"
                );
                for uri in &uris {
                    assert!(
                        stored.contains(&format!("{key_prefix}/{uri}")),
                        "{uri} listed before it was stored:\n{text}"
                    );
                }
                assert!(pl.segments.iter().all(|s| s.program_date_time.is_some()));
                assert_eq!(pl.media_sequence, 1);
                previous = uris;
                versions.push(pl);
            }
            Event::Published { .. } => {}
        }
    }
    let (last, earlier) = versions.split_last().expect("the archive was published");
    for pl in earlier {
        assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Event));
        assert!(!pl.end_list);
    }
    assert_eq!(last.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    assert!(last.end_list);
    last.clone()
}

fn total(pl: &m3u8_rs::MediaPlaylist) -> f64 {
    pl.segments.iter().map(|s| f64::from(s.duration)).sum()
}

/// Where each segment of `archive` starts, from the start of the archive.
fn offsets(archive: &m3u8_rs::MediaPlaylist) -> Vec<(String, f64, f64)> {
    let mut at = 0.0;
    archive
        .segments
        .iter()
        .map(|s| {
            let d = f64::from(s.duration);
            at += d;
            (s.uri.clone(), at - d, d)
        })
        .collect()
}

/// Checks that `clip` covers [from, to) of `archive` (offsets in seconds)
/// and overshoots by less than one segment at each end.
fn check_covers(
    archive: &m3u8_rs::MediaPlaylist,
    clip: &m3u8_rs::MediaPlaylist,
    from: f64,
    to: f64,
) {
    let placed = offsets(archive);
    let find = |uri: &str| placed.iter().find(|p| p.0 == uri).unwrap().clone();
    let first = find(&clip.segments.first().unwrap().uri);
    let last = find(&clip.segments.last().unwrap().uri);
    let (start, end) = (first.1, last.1 + last.2);
    assert!(
        start <= from + 0.001 && from - start < first.2,
        "clip starts at {start} for {from}"
    );
    assert!(
        end >= to - 0.001 && end - to < last.2,
        "clip ends at {end} for {to}"
    );
    assert!((total(clip) - (end - start)).abs() < 0.01);
    assert_eq!(clip.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    assert!(clip.end_list);
}

fn clip_command(location: &str, from: &str, to: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["clip", location, "--from", from, "--to", to])
        .args(extra)
        .stdin(Stdio::null());
    c
}

#[test]
fn an_archive_in_garage_plays_to_the_end_and_clips_cut_from_it_play() {
    let g = garage();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 30, 30, &[]);
    let prefix = format!("archive-{}", std::process::id());
    let events_path = dir.path().join("events.jsonl");
    let out = g
        .command(BIN)
        .args(["-", "2"])
        .arg(dir.path().join("spool"))
        .args(["live", "index.m3u8", "", "live", &prefix])
        .args(["--endpoint-url", g.s3_url(), "--path-style"])
        .args(["--archive", "archive.m3u8", "--archive-every", "6"])
        .arg("--events")
        .arg(&events_path)
        .env("RUST_LOG", "live_upload=debug")
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let journal = journal::read(&events_path);
    let (cut, _) = check_published(&journal, &format!("{prefix}/index.m3u8"), &prefix);
    let archive_key = format!("{prefix}/archive.m3u8");
    let events = events(&journal);
    let versions = events
        .iter()
        .filter(|e| matches!(e, Event::Published { key, .. } if key == &archive_key))
        .count();
    assert!(versions >= 3, "a version every 6 s of 30: {versions}");
    let archive = check_archive(&[], &events, &archive_key, &prefix);
    let uris: Vec<&str> = archive.segments.iter().map(|s| s.uri.as_str()).collect();
    let cut_uris: Vec<&str> = cut.iter().map(|c| c.uri.as_str()).collect();
    assert_eq!(uris, cut_uris, "every segment, in order");
    assert_close(total(&archive), packet_span(&input), 1.0 / 30.0);

    // what a player gets over plain HTTP: the final archive, played to its end
    let (status, headers, body) = g.web_get(&archive_key);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(
        m3u8_rs::parse_media_playlist_res(&body).unwrap(),
        archive,
        "the published archive is the last version in the journal"
    );
    let (ok, err) = g.play(&archive_key, &[]);
    assert!(ok, "the archive plays: {err}");

    // clips by offset and by wall-clock time
    let location = format!("s3://live/{prefix}");
    let web_prefix = format!("http://cdn.test/{prefix}/");
    let pdt = |i: usize| archive.segments[i].program_date_time.unwrap();
    let at = |i: usize, plus_ms: i64| {
        (pdt(i) + chrono::Duration::milliseconds(plus_ms))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let placed = offsets(&archive);
    let end = total(&archive);
    let wall_from = placed[3].1 + 0.5;
    let wall_to = placed[8].1 + 1.0;
    let cases: Vec<(String, String, f64, f64)> = vec![
        ("0".into(), "5".into(), 0.0, 5.0),
        ("7.5".into(), "0:15.2".into(), 7.5, 15.2),
        (at(3, 500), at(8, 1000), wall_from, wall_to),
        ("0".into(), format!("{end:.3}"), 0.0, end),
    ];
    for (from, to, from_s, to_s) in cases {
        let out = g
            .command(BIN)
            .args(["clip", &location, "--from", &from, "--to", &to])
            .args(["--endpoint-url", g.s3_url(), "--path-style"])
            .args(["--http-prefix", &web_prefix])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{from}..{to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        let key = lines[0];
        assert!(key.starts_with(&format!("{prefix}/clip-")), "{stdout}");
        assert_eq!(
            lines[1],
            format!("{web_prefix}{}", key.rsplit('/').next().unwrap())
        );
        let (status, _, body) = g.web_get(key);
        assert_eq!(status, 200);
        let clip = m3u8_rs::parse_media_playlist_res(&body).unwrap();
        check_covers(&archive, &clip, from_s, to_s);
        let (ok, err) = g.play(key, &[]);
        assert!(ok, "clip {from}..{to} plays: {err}");
    }

    // bad ranges: one line each, exit 2, nothing written
    for (from, to, says) in [
        ("9", "4", "reversed"),
        ("4", "4", "empty"),
        ("10", "99", "after the end of the event"),
        ("2026-11-22T00:00:00Z", "8", "same way"),
        (
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:05Z",
            "before the archive",
        ),
        ("banana", "8", "--from"),
    ] {
        let out = g
            .command(BIN)
            .args(["clip", &location, "--from", from, "--to", to])
            .args([
                "--endpoint-url",
                g.s3_url(),
                "--path-style",
                "--name",
                "bad.m3u8",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{from}..{to}: {err}");
        assert!(err.contains(says), "{from}..{to}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(g.web_get(&format!("{prefix}/bad.m3u8")).0, 404);
    // a missing archive
    let out = g
        .command(BIN)
        .args([
            "clip",
            &format!("s3://live/{prefix}-none"),
            "--from",
            "0",
            "--to",
            "4",
        ])
        .args(["--endpoint-url", g.s3_url(), "--path-style"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no archive"));
}

fn segment_numbers(pl: &m3u8_rs::MediaPlaylist) -> Vec<u64> {
    pl.segments
        .iter()
        .map(|s| s.uri["live-".len()..s.uri.len() - 3].parse().unwrap())
        .collect()
}

fn read_playlist(path: &Path) -> Option<m3u8_rs::MediaPlaylist> {
    m3u8_rs::parse_media_playlist_res(&std::fs::read(path).ok()?).ok()
}

#[test]
fn a_killed_run_restarts_and_the_archive_continues_after_a_discontinuity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spool = dir.path().join("spool");
    let dest = format!("file://{}", out.display());
    let base = |c: &mut Command, events: &Path| {
        c.args(["-", "2"])
            .arg(&spool)
            .args(["live", "index.m3u8", "", &dest, "ev"])
            .arg("--events")
            .arg(events)
            // the archive lags the rolling playlist by up to 5 segments, more
            // than its window of 3: a restart needs the spool to fill it in
            .args([
                "--window",
                "3",
                "--archive",
                "archive.m3u8",
                "--archive-every",
                "10",
            ])
            .env("RUST_LOG", "live_upload=debug");
    };
    let (events1, events2) = (dir.path().join("run1.jsonl"), dir.path().join("run2.jsonl"));

    // run 1: a live encode, killed while the archive is behind
    let mut source = live_source(60, "testsrc2");
    let mut first = Command::new(BIN);
    base(&mut first, &events1);
    let mut first = first
        .stdin(source.stdout.take().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let archive_path = out.join("ev/archive.m3u8");
    let index_path = out.join("ev/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let archived = read_playlist(&archive_path).map(|p| segment_numbers(&p));
        let rolling = read_playlist(&index_path).map(|p| segment_numbers(&p));
        if let (Some(a), Some(r)) = (archived, rolling) {
            let (a_last, r_last) = (*a.last().unwrap(), *r.last().unwrap());
            if a.len() >= 2 && r_last >= a_last + 4 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the archive fell behind the rolling playlist"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    first.wait().unwrap();
    let _ = source.kill();
    let _ = source.wait();
    let run1 = journal::read(&events1);
    let archive1 = read_playlist(&archive_path).unwrap();
    assert!(!archive1.end_list);
    let cut1 = cut_segments(&run1);

    // while the event is not over, a range past its archived part is refused
    let live_end = total(&archive1);
    let clip = clip_command(
        &format!("file://{}/ev", out.display()),
        "0",
        &format!("{:.3}", live_end + 10.0),
        &[],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&clip.stderr);
    assert_eq!(clip.status.code(), Some(2), "{err}");
    assert!(err.contains("is not archived yet"), "{err}");

    // run 2: a new encode into the same destination and spool
    let input = dir.path().join("second.ts");
    make_av(&input, 10, 30, &[]);
    let mut second = Command::new(BIN);
    base(&mut second, &events2);
    let run2 = second
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let log2 = String::from_utf8_lossy(&run2.stderr);
    assert_eq!(run2.status.code(), Some(0), "{log2}");
    let run2 = journal::read(&events2);
    // the archive continues, first with what run 1 stored but did not list
    let resumed = run2
        .iter()
        .find(|r| r.event() == "resumed" && r.str("key") == "ev/archive.m3u8")
        .unwrap_or_else(|| panic!("the archive was continued: {run2:?}"));
    assert_eq!(
        resumed.u64("listed"),
        archive1.segments.len() as u64,
        "{}",
        resumed.line
    );
    assert!(!resumed.bool("ended"), "{}", resumed.line);
    assert!(resumed.u64("backfill") > 0, "{}", resumed.line);

    let archive = check_archive(&events(&run1), &events(&run2), "ev/archive.m3u8", "ev");
    let numbers = segment_numbers(&archive);
    // everything run 1 cut (stored before the kill or from its spool), then run 2's
    let mut on_disk: Vec<u64> = std::fs::read_dir(out.join("ev"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("live-")?
                .strip_suffix(".ts")?
                .parse()
                .ok()
        })
        .collect();
    on_disk.sort();
    assert_eq!(
        numbers, on_disk,
        "the archive lists every stored segment once, in order"
    );
    assert!(numbers.len() as u64 >= cut1.len() as u64 + 5);
    assert!(numbers.starts_with(&segment_numbers(&archive1)));
    let restart = numbers.iter().position(|&n| n > cut1.len() as u64).unwrap();
    assert!(
        archive.segments[restart].discontinuity,
        "the restart is a discontinuity"
    );
    assert!(
        archive.segments[..restart].iter().all(|s| !s.discontinuity),
        "run 1's part has no break"
    );
    // the finished archive plays across the restart
    let (played, errors) = decode(&archive_path);
    assert!(played, "{errors}");

    // a clip across the restart, by offsets, from the local directory
    let placed = offsets(&archive);
    let from = placed[restart - 2].1 + 0.25;
    let to = placed[restart + 1].1 + 0.5;
    let clip = clip_command(
        &format!("file://{}/ev", out.display()),
        &format!("{from:.3}"),
        &format!("{to:.3}"),
        &["--name", "across.m3u8"],
    )
    .output()
    .unwrap();
    assert_eq!(
        clip.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clip.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&clip.stdout).trim(), "across.m3u8");
    let clip_pl = read_playlist(&out.join("ev/across.m3u8")).unwrap();
    check_covers(&archive, &clip_pl, from, to);
    assert_eq!(
        clip_pl.segments.iter().filter(|s| s.discontinuity).count(),
        1
    );
}
