//! `--ladder` through the binary into a local directory: the master and
//! every variant playlist follow RFC 8216 (BANDWIDTH at least the peak
//! segment bit rate, RESOLUTION and CODECS as ffprobe reads the segments,
//! every rendition listing the same numbers with the same EXTINF), the
//! master is stored only after every variant playlist; `streams` keeps each
//! input stream's packets unchanged; bad ladders end with one line and
//! exit 2.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use live_upload::master;

/// A 720p30 test pattern with a tone, a keyframe every 2 s.
fn make_720p(path: &Path, seconds: u32) {
    make_av_sized(path, "1280x720", seconds, 60, &[]);
}

/// (profile_idc, level_idc) from an `avc1.PPCCLL` codec string.
fn avc_profile_level(codecs: &[String]) -> (u32, u32) {
    let avc = codecs
        .iter()
        .find(|c| c.starts_with("avc1."))
        .expect("an avc1 codec");
    let hex = &avc[5..];
    (
        u32::from_str_radix(&hex[0..2], 16).unwrap(),
        u32::from_str_radix(&hex[4..6], 16).unwrap(),
    )
}

fn profile_idc(name: &str) -> u32 {
    match name {
        "Baseline" | "Constrained Baseline" => 66,
        "Main" => 77,
        "High" => 100,
        other => panic!("unexpected profile {other}"),
    }
}

/// The segments (uri, EXTINF) a final media playlist lists, by number.
fn listed(text: &str) -> BTreeMap<u64, (String, f64)> {
    let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
    pl.segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                pl.media_sequence + i as u64,
                (s.uri.clone(), f64::from(s.duration)),
            )
        })
        .collect()
}

fn ladder_follows_the_rules(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_720p(&input, 10);
    let run = run_file(
        &input,
        "2",
        &[
            "--format",
            format,
            "--ladder",
            "source,480p@1200k,360p@600k",
        ],
    );
    assert_eq!(run.code(), Some(0), "{format}: stderr:\n{}", run.stderr());
    let journal = run.journal();
    // one lease for the whole ladder, beside its master, given back at the end
    let lease: Vec<_> = journal.iter().filter(|r| r.event() == "lease").collect();
    let states: Vec<_> = lease.iter().map(|r| r.str("state")).collect();
    assert_eq!(states, ["taken", "released"], "{format}");
    assert!(lease.iter().all(|r| r.str("key") == "ev/master.m3u8.lease"));
    let events = events(&journal);
    let mut folders = vec!["source", "480p-1200k", "360p-600k"];
    if format == "fmp4" {
        folders.push("audio");
    }
    // every rendition's playlist versions follow RFC 8216; same numbers and EXTINF
    let mut finals = Vec::new();
    for f in &folders {
        let (_, text) = check_playlists(&events, &format!("ev/{f}/index.m3u8"), &format!("ev/{f}"));
        finals.push(listed(&text));
    }
    let numbers: Vec<(u64, f64)> = finals[0].iter().map(|(n, (_, d))| (*n, *d)).collect();
    assert!(numbers.len() >= 4, "{format}: segments {numbers:?}");
    for (f, fin) in folders.iter().zip(&finals) {
        let theirs: Vec<(u64, f64)> = fin.iter().map(|(n, (_, d))| (*n, *d)).collect();
        assert_eq!(
            theirs, numbers,
            "{format}: {f} lists the same numbers and EXTINF"
        );
    }
    // the master comes after every variant's first playlist version
    let first = |key: &str| {
        events
            .iter()
            .position(|e| matches!(e, Event::Published { key: k, .. } if k == key))
    };
    let master_at = first("ev/master.m3u8").expect("a master was published");
    for f in &folders {
        let at = first(&format!("ev/{f}/index.m3u8")).unwrap();
        assert!(
            at < master_at,
            "{format}: {f}'s playlist is stored before the master"
        );
    }
    let text = std::fs::read_to_string(run.object("ev/master.m3u8")).unwrap();
    let parsed = master::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(parsed.variants.len(), 3, "{text}");
    assert!(text.contains("#EXT-X-INDEPENDENT-SEGMENTS"));
    let audio_peak = if format == "fmp4" {
        assert_eq!(parsed.audio.len(), 1, "{text}");
        peak(&run, "audio", &finals[3]).0
    } else {
        0.0
    };
    for (v, f) in parsed.variants.iter().zip(&folders) {
        assert_eq!(v.uri, format!("{f}/index.m3u8"));
        let fin = &finals[folders.iter().position(|x| x == f).unwrap()];
        let (peak, first_file) = peak(&run, f, fin);
        assert!(
            v.bandwidth as f64 >= peak + audio_peak,
            "{format}: {f}: BANDWIDTH {} below the peak {peak} (+ audio {audio_peak})",
            v.bandwidth
        );
        let avg = v.average_bandwidth.expect("AVERAGE-BANDWIDTH");
        assert!(avg > 0 && avg <= v.bandwidth, "{f}: {avg}");
        // what ffprobe reads in the segment (with its init segment for fMP4)
        let probe = ffprobe(
            &first_file,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,profile,level",
                "-of",
                "csv=p=0",
            ],
        );
        let fields: Vec<&str> = probe.trim().lines().next().unwrap().split(',').collect();
        let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        assert_eq!(v.resolution, Some((w, h)), "{format}: {f}: {probe}");
        let (p, l) = avc_profile_level(&v.codecs);
        assert_eq!(
            (p, l),
            (profile_idc(fields[0]), fields[3].parse().unwrap()),
            "{format}: {f}: CODECS {:?} against ffprobe {probe}",
            v.codecs
        );
        assert!(v.codecs.iter().any(|c| c == "mp4a.40.2"), "{:?}", v.codecs);
        assert_eq!(v.frame_rate, Some(30.0));
    }
    // every rendition's segments start at the same time, within a frame
    if format == "ts" {
        for n in finals[0].keys() {
            let starts: Vec<f64> = folders
                .iter()
                .zip(&finals)
                .map(|(f, fin)| {
                    let p = run.object(&format!("ev/{f}/{}", fin[n].0));
                    first_pts(&p).0.expect("video")
                })
                .collect();
            for s in &starts {
                // a segment may open with B-frames displayed just before its keyframe
                assert!(
                    (s - starts[0]).abs() <= 1.0 / 30.0 + 1e-6,
                    "segment {n}: {starts:?}"
                );
            }
        }
    }
}

/// The peak bit rate of a rendition's listed segments, and a file ffprobe
/// can read the first of them from (an init segment and the segment, for
/// fMP4).
fn peak(run: &Run, folder: &str, fin: &BTreeMap<u64, (String, f64)>) -> (f64, std::path::PathBuf) {
    let mut peak = 0f64;
    for (uri, d) in fin.values() {
        let bytes = std::fs::metadata(run.object(&format!("ev/{folder}/{uri}")))
            .unwrap()
            .len();
        peak = peak.max(bytes as f64 * 8.0 / d);
    }
    let (uri, _) = fin.values().next().unwrap();
    let seg = run.object(&format!("ev/{folder}/{uri}"));
    if !uri.ends_with(".m4s") {
        return (peak, seg);
    }
    let dir = run.object(&format!("ev/{folder}"));
    let init = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "mp4"))
        .expect("an init segment");
    let joined = run.dir.path().join(format!("{folder}-first.mp4"));
    let mut bytes = std::fs::read(init).unwrap();
    bytes.extend(std::fs::read(seg).unwrap());
    std::fs::write(&joined, bytes).unwrap();
    (peak, joined)
}

#[test]
fn a_ts_ladder_follows_the_rules() {
    ladder_follows_the_rules("ts");
}

#[test]
fn an_fmp4_ladder_follows_the_rules() {
    ladder_follows_the_rules("fmp4");
}

/// (pts, MD5 of the data) of every packet of video stream `v`.
fn packet_hashes(path: &Path, v: usize) -> Vec<(i64, String)> {
    let out = ffprobe(
        path,
        &[
            "-select_streams",
            &format!("v:{v}"),
            "-show_data_hash",
            "md5",
            "-show_entries",
            "packet=pts,data_hash",
            "-of",
            "csv=p=0",
        ],
    );
    out.lines()
        .filter_map(|l| {
            let (pts, hash) = l.trim().split_once(',')?;
            Some((pts.parse().ok()?, hash.to_string()))
        })
        .collect()
}

#[test]
fn a_ladder_of_streams_keeps_each_streams_packets() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("three.ts");
    // one encoder making three aligned video streams, and a fourth whose
    // keyframes fall elsewhere
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "8",
        "-map",
        "0:v",
        "-map",
        "0:v",
        "-map",
        "0:v",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "60",
        "-sc_threshold",
        "0",
        "-s:v:1",
        "426x240",
        "-s:v:2",
        "320x180",
        "-g:v:3",
        "45",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "mpegts",
        input.to_str().unwrap(),
    ]);
    let run = run_file(&input, "2", &["--ladder", "streams"]);
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr());
    assert!(
        run.stderr().contains("stream 3 is left out of the ladder"),
        "the misaligned stream is named:\n{}",
        run.stderr()
    );
    let text = std::fs::read_to_string(run.object("ev/master.m3u8")).unwrap();
    let parsed = master::parse(&text).unwrap();
    assert_eq!(parsed.variants.len(), 3, "{text}");
    let events = events(&run.journal());
    for v in 0..3 {
        let folder = format!("stream{v}");
        let (_, final_text) = check_playlists(
            &events,
            &format!("ev/{folder}/index.m3u8"),
            &format!("ev/{folder}"),
        );
        let mut joined = Vec::new();
        for (uri, _) in listed(&final_text).values() {
            joined.extend(std::fs::read(run.object(&format!("ev/{folder}/{uri}"))).unwrap());
        }
        let path = run.dir.path().join(format!("{folder}.ts"));
        std::fs::write(&path, joined).unwrap();
        let ours = packet_hashes(&path, 0);
        let theirs = packet_hashes(&input, v);
        assert!(!ours.is_empty());
        assert_eq!(
            ours.len(),
            theirs.len(),
            "stream {v}: every packet is published"
        );
        assert_eq!(ours, theirs, "stream {v}: the packets are unchanged");
    }
}

#[test]
fn bad_ladders_get_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("small.ts");
    make_av(&input, 2, 30, &[]);
    for (ladder, says) in [
        (
            "source,480p",
            "--ladder \"source,480p\": rung \"480p\": expected",
        ),
        ("source,source", "rung source is given twice"),
        (
            "source,480p@1200k",
            "rung 480p@1200k is taller than the input's 240 lines",
        ),
        (
            "streams",
            "--ladder streams needs an input with two or more video streams; it has 1",
        ),
    ] {
        let run = run_file(&input, "2", &["--ladder", ladder]);
        assert_eq!(run.code(), Some(2), "{ladder}: {}", run.stderr());
        let stderr = run.stderr();
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.to_lowercase().contains("error"))
            .collect();
        assert_eq!(errors.len(), 1, "{ladder}: one line: {errors:?}");
        assert!(errors[0].contains(says), "{ladder}: {}", errors[0]);
        assert!(
            !run.object("ev/master.m3u8").exists(),
            "{ladder}: nothing published"
        );
    }
}

/// The binary reading `source`'s stdout into `out` (a local directory)
/// with a two-rung ladder and an archive.
fn live_ladder(source: &mut Child, out: &Path, spool: &Path, events: &Path) -> Child {
    Command::new(BIN)
        .args(["-", "2"])
        .arg(spool)
        .args(["live", "index.m3u8", ""])
        .arg(format!("file://{}", out.display()))
        .arg("ev")
        .arg("--events")
        .arg(events)
        .args(["--ladder", "source,180p@300k", "--archive", "archive.m3u8"])
        .args(["--window", "40"])
        .env("RUST_LOG", "live_upload=debug")
        .stdin(source.stdout.take().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads a child's stderr in the background.
fn stderr_of(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    })
}

/// The media sequence numbers of a media playlist's segments that follow
/// a discontinuity.
fn discontinuities(text: &str) -> Vec<u64> {
    let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
    (pl.segments.iter().enumerate())
        .filter(|(_, s)| s.discontinuity)
        .map(|(i, _)| pl.media_sequence + i as u64)
        .collect()
}

#[test]
fn a_killed_ladder_restarts_every_rendition_at_one_number_and_clips_by_its_archive_master() {
    let dir = tempfile::tempdir().unwrap();
    let (out, spool) = (dir.path().join("out"), dir.path().join("spool"));
    let (ev1, ev2) = (dir.path().join("run1.jsonl"), dir.path().join("run2.jsonl"));
    let folders = ["source", "180p-300k"];
    let read = |key: &str| std::fs::read_to_string(out.join(key)).unwrap_or_default();

    // run 1: live, killed without warning once every rendition lists a few segments
    let mut source = live_source(60, "testsrc2");
    let mut first = live_ladder(&mut source, &out, &spool, &ev1);
    let first_err = stderr_of(&mut first);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !folders.iter().all(|f| {
        read(&format!("ev/{f}/index.m3u8"))
            .matches("#EXTINF")
            .count()
            >= 3
    }) || read("ev/master.m3u8").is_empty()
    {
        assert!(Instant::now() < deadline, "run 1 published too little");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    first.wait().unwrap();
    let _ = source.kill();
    let _ = source.wait();
    let first_err = first_err.join().unwrap();
    let before: Vec<BTreeMap<u64, (String, f64)>> = folders
        .iter()
        .map(|f| listed(&read(&format!("ev/{f}/index.m3u8"))))
        .collect();

    let master_before = master::parse(&read("ev/master.m3u8")).unwrap();

    // run 2 on the same destination and spool: a new encode, new timestamps
    let mut source = live_source(8, "smptebars");
    let mut second = live_ladder(&mut source, &out, &spool, &ev2);
    let second_err = stderr_of(&mut second);
    let status = second.wait().unwrap();
    let _ = source.wait();
    let second_err = second_err.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "run 2:\n{second_err}\nrun 1:\n{first_err}"
    );

    // every rendition continues after one discontinuity at the same number,
    // lists what it listed before, and lists the same numbers and EXTINF
    let finals: Vec<String> = folders
        .iter()
        .map(|f| read(&format!("ev/{f}/index.m3u8")))
        .collect();
    let breaks: Vec<Vec<u64>> = finals.iter().map(|t| discontinuities(t)).collect();
    assert_eq!(breaks[0].len(), 1, "one discontinuity:\n{}", finals[0]);
    assert_eq!(breaks[0], breaks[1], "at the same number:\n{finals:?}");
    let lists: Vec<BTreeMap<u64, (String, f64)>> = finals.iter().map(|t| listed(t)).collect();
    for (((f, fin), was), text) in folders.iter().zip(&lists).zip(&before).zip(&finals) {
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{f}: {text}");
        for (n, entry) in was {
            assert_eq!(fin.get(n), Some(entry), "{f}: {n} stays listed");
        }
        // nothing listed is missing
        for (uri, _) in fin.values() {
            assert!(
                out.join(format!("ev/{f}/{uri}")).is_file(),
                "{f}: {uri} is listed and stored"
            );
        }
        assert!(
            fin.keys().any(|n| *n >= breaks[0][0] + 2),
            "{f}: run 2 published: {fin:?}"
        );
    }
    let shape = |l: &BTreeMap<u64, (String, f64)>| -> Vec<(u64, String)> {
        l.iter()
            .map(|(n, (_, d))| (*n, format!("{d:.3}")))
            .collect()
    };
    assert_eq!(shape(&lists[0]), shape(&lists[1]));
    let master = master::parse(&read("ev/master.m3u8")).unwrap();
    assert_eq!(master.variants.len(), 2);
    // run 1's segments stay listed: BANDWIDTH stays at least what run 1
    // declared for them
    for v in &master.variants {
        let was = master_before
            .variants
            .iter()
            .find(|b| b.uri == v.uri)
            .expect("the same variants");
        assert!(
            v.bandwidth >= was.bandwidth,
            "{}: {} after the restart, {} before",
            v.uri,
            v.bandwidth,
            was.bandwidth
        );
    }

    // the archive master names every rendition's archive; a clip of it is a
    // clip master with a clip beside each archive, all of the same segments
    let archive = master::parse(&read("ev/archive.m3u8")).unwrap();
    let mut uris: Vec<&str> = archive.variants.iter().map(|v| v.uri.as_str()).collect();
    uris.sort();
    assert_eq!(uris, ["180p-300k/archive.m3u8", "source/archive.m3u8"]);
    let clip = Command::new(BIN)
        .arg("clip")
        .arg(format!("file://{}/ev", out.display()))
        .args(["--from", "3", "--to", "9", "--name", "moment.m3u8"])
        .output()
        .unwrap();
    assert!(
        clip.status.success(),
        "{}",
        String::from_utf8_lossy(&clip.stderr)
    );
    let clip_master = master::parse(&read("ev/moment.m3u8")).unwrap();
    let mut uris: Vec<&str> = clip_master
        .variants
        .iter()
        .map(|v| v.uri.as_str())
        .collect();
    uris.sort();
    assert_eq!(uris, ["180p-300k/moment.m3u8", "source/moment.m3u8"]);
    let clips: Vec<String> = folders
        .iter()
        .map(|f| read(&format!("ev/{f}/moment.m3u8")))
        .collect();
    let clipped: Vec<BTreeMap<u64, (String, f64)>> = clips.iter().map(|t| listed(t)).collect();
    assert_eq!(shape(&clipped[0]), shape(&clipped[1]), "{clips:?}");
    let span: f64 = clipped[0].values().map(|(_, d)| d).sum();
    assert!(
        (6.0..10.5).contains(&span),
        "the clip covers 3 s to 9 s: {span}"
    );
    let (ok, err) = decode(&out.join("ev/moment.m3u8"));
    assert!(ok, "the clip master plays: {err}");
}

/// A timestamp reset in the input: the encoded rung goes on (its encoder's
/// timeline keeps increasing) and every rendition lists every segment, with
/// one discontinuity at the same number; the rung plays across it, and (TS)
/// its first segment after the reset starts with a keyframe on the new
/// timeline.
#[test]
fn a_timestamp_reset_goes_through_an_encoded_rung() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ts"), dir.path().join("b.ts"));
    make_av_sized(&a, "640x360", 6, 30, &[]);
    make_av_sized(&b, "640x360", 6, 30, &[]);
    let input = dir.path().join("reset.ts");
    let mut joined = std::fs::read(&a).unwrap();
    joined.extend(std::fs::read(&b).unwrap());
    std::fs::write(&input, joined).unwrap();
    for (format, folders) in [
        ("ts", &["source", "180p-300k"][..]),
        ("fmp4", &["source", "180p-300k", "audio"][..]),
    ] {
        let run = run_file(
            &input,
            "2",
            &[
                "--format",
                format,
                "--ladder",
                "source,180p@300k",
                "--window",
                "20",
            ],
        );
        assert_eq!(run.code(), Some(0), "{format}: stderr:\n{}", run.stderr());
        let cut: std::collections::BTreeSet<u64> = cut_segments(&run.journal())
            .iter()
            .map(|s| s.sequence)
            .collect();
        let cut: Vec<u64> = cut.into_iter().collect();
        assert_eq!(
            cut.len(),
            6,
            "{format}: two 6 s inputs in 2 s segments: {cut:?}"
        );
        let mut breaks = Vec::new();
        for f in folders {
            let text = std::fs::read_to_string(run.object(&format!("ev/{f}/index.m3u8"))).unwrap();
            let numbers: Vec<u64> = listed(&text).keys().copied().collect();
            assert_eq!(
                numbers, cut,
                "{format}: {f} lists every segment cut:\n{text}"
            );
            assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
            let before_break = text.split("#EXT-X-DISCONTINUITY\n").next().unwrap();
            breaks.push(before_break.matches("#EXTINF").count());
        }
        assert!(
            breaks.iter().all(|b| *b == breaks[0]),
            "{format}: the break is at the same number: {breaks:?}"
        );
        let rung = run.object("ev/180p-300k/index.m3u8");
        let (ok, errors) = decode(&rung);
        assert!(ok, "{format}: {errors}");
        if format == "ts" {
            let text = std::fs::read_to_string(&rung).unwrap();
            let after = listed(&text).values().nth(breaks[0]).unwrap().0.clone();
            let path = run.object(&format!("ev/180p-300k/{after}"));
            let flags = first_video_flags(&path).unwrap_or_default();
            assert!(flags.starts_with('K'), "{after}: {flags}");
            let (first, _) = first_pts(&path);
            assert!(first.unwrap() < 3.0, "{after} starts at {first:?}");
        }
    }
}
