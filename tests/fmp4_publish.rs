//! fMP4 through the rest of the house: published to Garage with its
//! archive and a clip, read back over plain HTTP as a player would; and a
//! run restarted on the same destination, which continues the playlist
//! after a discontinuity with the same init segment or a new one.

mod common;

use std::collections::BTreeSet;

use common::garage::garage;
use common::journal;
use common::*;

/// The distinct EXT-X-MAP URIs of a playlist, in order of appearance.
fn maps(text: &str) -> Vec<String> {
    let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
    let mut seen = Vec::new();
    for seg in &pl.segments {
        if let Some(m) = &seg.map {
            if seen.last() != Some(&m.uri) {
                seen.push(m.uri.clone());
            }
        }
    }
    seen
}

#[test]
fn fmp4_in_garage_with_its_archive_and_a_clip_plays_over_http() {
    let g = garage();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 16, 30, &["-bf", "2"]);
    let prefix = format!("fmp4-{}", std::process::id());
    let events_path = dir.path().join("events.jsonl");
    let out = g
        .command(BIN)
        .args(["-", "2"])
        .arg(dir.path().join("spool"))
        .args(["live", "index.m3u8", "", "live", &prefix])
        .args(["--endpoint-url", g.s3_url(), "--path-style"])
        .args(["--format", "fmp4"])
        .args(["--archive", "archive.m3u8", "--archive-every", "4"])
        .arg("--events")
        .arg(&events_path)
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let index = format!("{prefix}/index.m3u8");
    let (cut, final_text) = check_published(&journal::read(&events_path), &index, &prefix);
    let init = maps(&final_text);
    assert_eq!(init.len(), 1, "one init segment: {final_text}");

    // what a player reads from the web endpoint: content types, the
    // playlist it was told about, and every segment played to the end
    let (status, headers, _) = g.web_get(&format!("{prefix}/{}", init[0]));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "video/mp4");
    let (status, headers, _) = g.web_get(&format!("{prefix}/{}", cut[0].uri));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "video/mp4");
    assert!(cut[0].uri.ends_with(".m4s"), "{}", cut[0].uri);
    let (status, _, body) = g.web_get(&index);
    assert_eq!(
        (status, String::from_utf8_lossy(&body)),
        (200, final_text.clone().into())
    );
    let (ok, err) = g.play(&index, &[]);
    assert!(ok, "the rolling playlist plays: {err}");

    // the archive lists every segment under its map, and plays
    let archive_key = format!("{prefix}/archive.m3u8");
    let (status, _, body) = g.web_get(&archive_key);
    assert_eq!(status, 200);
    let archive = String::from_utf8_lossy(&body).into_owned();
    assert!(
        archive.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n"),
        "{archive}"
    );
    assert_eq!(maps(&archive), init, "{archive}");
    assert_eq!(archive.matches("#EXTINF:").count(), cut.len(), "{archive}");
    let (ok, err) = g.play(&archive_key, &[]);
    assert!(ok, "the archive plays: {err}");

    // a clip of the archive names the same init and plays
    let out = g
        .command(BIN)
        .args(["clip", &format!("s3://live/{prefix}")])
        .args(["--from", "3", "--to", "9", "--name", "clip.m3u8"])
        .args(["--endpoint-url", g.s3_url(), "--path-style"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clip_key = format!("{prefix}/clip.m3u8");
    let (status, _, body) = g.web_get(&clip_key);
    assert_eq!(status, 200);
    let clip = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(maps(&clip), init, "{clip}");
    assert!(clip.contains("#EXT-X-ENDLIST"), "{clip}");
    let (ok, err) = g.play(&clip_key, &[]);
    assert!(ok, "the clip plays: {err}");
}

#[test]
fn a_restarted_fmp4_run_continues_with_the_same_init_or_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.ts");
    let same = dir.path().join("b.ts");
    let wider = dir.path().join("c.ts");
    make_av(&first, 6, 30, &[]);
    make_av(&same, 6, 30, &[]);
    make_av(&wider, 6, 30, &["-s", "480x360"]);
    let out = dir.path().join("out");
    let dest = format!("file://{}", out.display());
    let run = |input: &std::path::Path| {
        let output = std::process::Command::new(BIN)
            .args(["-", "2"])
            .arg(dir.path().join("spool"))
            .args(["live", "index.m3u8", "", &dest, "ev"])
            .args(["--format", "fmp4", "--window", "10"])
            .stdin(std::fs::File::open(input).unwrap())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read_to_string(out.join("ev/index.m3u8")).unwrap()
    };
    let one = run(&first);
    let two = run(&same);
    let three = run(&wider);
    let listed = |t: &str| t.matches("#EXTINF:").count();
    assert_eq!(listed(&one), 3, "{one}");
    assert_eq!(listed(&two), 6, "{two}");
    assert_eq!(listed(&three), 9, "{three}");
    // the second run made the same init bytes: one name; the third a new one
    assert_eq!(maps(&two).len(), 1, "{two}");
    let three_maps = maps(&three);
    assert_eq!(three_maps.len(), 2, "{three}");
    assert_eq!(three_maps[0], maps(&one)[0]);
    assert_eq!(
        three.matches("#EXT-X-DISCONTINUITY\n").count(),
        2,
        "{three}"
    );
    // numbering continued and every listed object is there, inits included
    let pl = m3u8_rs::parse_media_playlist_res(three.as_bytes()).unwrap();
    let uris: BTreeSet<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris.len(), 9);
    assert!(uris.contains("live-00009.m4s"), "{three}");
    for name in uris
        .iter()
        .copied()
        .chain(three_maps.iter().map(String::as_str))
    {
        assert!(out.join("ev").join(name).is_file(), "{name} is stored");
    }
    // and a TS run may not continue it
    let output = std::process::Command::new(BIN)
        .args(["-", "2"])
        .arg(dir.path().join("spool"))
        .args(["live", "index.m3u8", "", &dest, "ev"])
        .args(["--window", "10"])
        .stdin(std::fs::File::open(&first).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--fresh"), "{stderr}");
}
