//! TS and fMP4 on the same generated inputs (H.264 + AAC with B-frames,
//! HEVC + AAC, audio only, a long GOP, the 33-bit PTS wrap, a timestamp
//! reset), through the binary into a local directory: every playlist
//! version follows RFC 8216 (common::check_published), the segments played
//! in order decode with every video packet of the input, each segment
//! (with its init segment) decodes alone and starts on a keyframe, and for
//! fMP4 the base media decode times continue from segment to segment.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::cmaf::{is_sync, read_segment};
use common::*;

/// One frame at 30 fps, in seconds.
const FRAME: f64 = 1.0 / 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ts,
    Fmp4,
}

impl Format {
    fn arg(self) -> &'static str {
        match self {
            Format::Ts => "ts",
            Format::Fmp4 => "fmp4",
        }
    }
}

const FORMATS: [Format; 2] = [Format::Ts, Format::Fmp4];

/// Packets of the first stream of `kind` (`v` or `a`) that ffprobe counts.
fn packets(path: &Path, kind: &str) -> u64 {
    let out = ffprobe(
        path,
        &[
            "-count_packets",
            "-select_streams",
            &format!("{kind}:0"),
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ],
    );
    out.lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no packet count for {}: {out}", path.display()))
}

/// What a run published, read back from the destination.
struct Published {
    listed: Vec<Listed>,
    /// Each listed segment's file and, for fMP4, its init segment's.
    files: Vec<(PathBuf, Option<PathBuf>)>,
    final_text: String,
}

fn published(run: &Run, format: Format) -> Published {
    assert_eq!(
        run.code(),
        Some(0),
        "{format:?}: exit code; stderr:\n{}",
        run.stderr()
    );
    let journal = run.journal();
    let (listed, final_text) = check_published(&journal, "ev/index.m3u8", "ev");
    assert!(
        listed.len() >= 3,
        "{format:?}: several segments: {listed:?}"
    );
    // the final playlist names each segment's init segment (EXT-X-MAP)
    let pl = m3u8_rs::parse_media_playlist_res(final_text.as_bytes()).unwrap();
    let mut map = None;
    let mut maps = HashMap::new();
    for seg in &pl.segments {
        if let Some(m) = &seg.map {
            map = Some(m.uri.clone());
        }
        maps.insert(seg.uri.clone(), map.clone());
    }
    match format {
        Format::Ts => assert!(map.is_none(), "TS has no EXT-X-MAP"),
        Format::Fmp4 => {
            assert!(final_text.contains("#EXT-X-INDEPENDENT-SEGMENTS\n"));
            assert!(map.is_some(), "fMP4 names its init:\n{final_text}");
        }
    }
    // the journal announces each init segment, with its codecs, before the
    // first segment that needs it; TS segments need none
    let mut inits = HashMap::new();
    for r in &journal {
        match r.event() {
            "init" => {
                assert!(!r.str("codecs").is_empty(), "{}", r.line);
                inits.insert(r.str("name").to_string(), r.bool("audio_only"));
            }
            "segment" => match (format, r.opt_str("init")) {
                (Format::Ts, init) => assert_eq!(init, None, "{}", r.line),
                (Format::Fmp4, Some(init)) => {
                    assert!(inits.contains_key(init), "{init} announced: {}", r.line)
                }
                (Format::Fmp4, None) => panic!("an fMP4 segment without init: {}", r.line),
            },
            _ => {}
        }
    }
    assert_eq!(inits.is_empty(), format == Format::Ts, "{inits:?}");
    for m in maps.values().flatten() {
        assert!(inits.contains_key(m), "{m} in the journal");
    }
    let files = listed
        .iter()
        .map(|l| {
            let seg = run.object(&format!("ev/{}", l.uri));
            // segments that left the window keep the init of the last one
            // the final playlist lists
            let init = maps
                .get(&l.uri)
                .cloned()
                .unwrap_or(map.clone())
                .map(|m| run.object(&format!("ev/{m}")));
            (seg, init)
        })
        .collect();
    Published {
        listed,
        files,
        final_text,
    }
}

/// The segments `range` (each after its init segment when that changes) in
/// one file.
fn concatenate(p: &Published, range: std::ops::Range<usize>, to: &Path) {
    let mut bytes = Vec::new();
    let mut last_init = None;
    for (seg, init) in &p.files[range] {
        if init.is_some() && init != &last_init {
            bytes.extend(std::fs::read(init.as_ref().unwrap()).unwrap());
            last_init = init.clone();
        }
        bytes.extend(std::fs::read(seg).unwrap());
    }
    std::fs::write(to, bytes).unwrap();
}

/// The listed segments split at each discontinuity: a player resets its
/// decoder there, and ffmpeg reading them as one file would not.
fn continuous_runs(listed: &[Listed]) -> Vec<std::ops::Range<usize>> {
    let mut starts: Vec<usize> = (1..listed.len())
        .filter(|&i| listed[i].discontinuity)
        .collect();
    starts.insert(0, 0);
    starts.push(listed.len());
    starts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// The checks of every run: segments decode alone and start with a
/// keyframe (with video), the whole decodes with every video packet, fMP4
/// decode times continue; returns what was published.
fn check_format(run: &Run, input: &Path, format: Format, video: bool) -> Published {
    let p = published(run, format);
    let dir = run.dir.path();
    for (i, (seg, init)) in p.files.iter().enumerate() {
        let alone = match init {
            Some(init) => {
                let joined = dir.join(format!("alone-{i}.mp4"));
                let mut bytes = std::fs::read(init).unwrap();
                bytes.extend(std::fs::read(seg).unwrap());
                std::fs::write(&joined, bytes).unwrap();
                joined
            }
            None => seg.clone(),
        };
        let (ok, errors) = decode(&alone);
        assert!(
            ok && errors.is_empty(),
            "{format:?} {} decodes alone: {errors}",
            p.listed[i].uri
        );
        if video {
            let flags = first_video_flags(&alone).unwrap_or_default();
            assert!(
                flags.starts_with('K'),
                "{format:?} {} starts with a keyframe: {flags:?}",
                p.listed[i].uri
            );
        }
    }
    let mut video_packets = 0;
    for (i, range) in continuous_runs(&p.listed).into_iter().enumerate() {
        let whole = dir.join(match format {
            Format::Ts => format!("whole-{i}.ts"),
            Format::Fmp4 => format!("whole-{i}.mp4"),
        });
        concatenate(&p, range, &whole);
        let (ok, errors) = decode(&whole);
        assert!(
            ok && errors.is_empty(),
            "{format:?}: run {i} decodes: {errors}"
        );
        if video {
            video_packets += packets(&whole, "v");
        }
    }
    if video {
        assert_eq!(
            video_packets,
            packets(input, "v"),
            "{format:?}: every video packet of the input"
        );
    }
    if format == Format::Fmp4 {
        check_decode_times(&p);
    }
    p
}

/// Each segment's tfdt is the previous one's plus its sample durations, per
/// track, and every track starts with a sync sample.
fn check_decode_times(p: &Published) {
    let mut next: HashMap<u32, u64> = HashMap::new();
    for (i, (seg, _)) in p.files.iter().enumerate() {
        let bytes = std::fs::read(seg).unwrap();
        for t in read_segment(&bytes) {
            if let Some(expected) = next.get(&t.track) {
                assert_eq!(
                    t.decode_time, *expected,
                    "tfdt of track {} in {}",
                    t.track, p.listed[i].uri
                );
            }
            next.insert(t.track, t.decode_time + t.duration);
            if t.track == 1 {
                assert!(is_sync(t.first_flags), "{} starts synced", p.listed[i].uri);
            }
        }
    }
}

fn total(listed: &[Listed]) -> f64 {
    listed.iter().map(|l| l.duration).sum()
}

fn run(input: &Path, format: Format, args: &[&str]) -> Run {
    let mut all = vec!["--format", format.arg()];
    all.extend_from_slice(args);
    run_file(input, "2", &all)
}

#[test]
fn h264_with_b_frames_and_aac() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 12, 30, &["-bf", "2"]);
    for format in FORMATS {
        let p = check_format(&run(&input, format, &[]), &input, format, true);
        assert_close(total(&p.listed), packet_span(&input), FRAME);
        match format {
            Format::Ts => assert!(p.final_text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n")),
            Format::Fmp4 => assert!(p.final_text.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n")),
        }
    }
}

#[test]
fn hevc_and_aac() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(
        &input,
        8,
        30,
        &["-c:v", "libx265", "-x265-params", "log-level=error"],
    );
    for format in FORMATS {
        let p = check_format(&run(&input, format, &[]), &input, format, true);
        assert_close(total(&p.listed), packet_span(&input), FRAME);
    }
}

#[test]
fn audio_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=220:sample_rate=48000",
        "-t",
        "12",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "mpegts",
        input.to_str().unwrap(),
    ]);
    for format in FORMATS {
        let p = check_format(&run(&input, format, &[]), &input, format, false);
        // one AAC frame at 48 kHz
        assert_close(total(&p.listed), packet_span(&input), 1024.0 / 48_000.0);
    }
}

#[test]
fn a_long_gop() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    // a keyframe every 10 s, 2 s target: segments follow the keyframes
    make_av(&input, 30, 300, &[]);
    for format in FORMATS {
        let p = check_format(&run(&input, format, &[]), &input, format, true);
        assert_eq!(p.listed.len(), 3, "{format:?}: {:?}", p.listed);
        assert_close(total(&p.listed), packet_span(&input), FRAME);
    }
}

#[test]
fn the_33_bit_pts_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    // 2^33 / 90000 = 95443.717 s: the timestamps wrap about 5 s in
    make_av(&input, 16, 30, &["-bf", "2", "-output_ts_offset", "95437"]);
    for format in FORMATS {
        let p = check_format(&run(&input, format, &[]), &input, format, true);
        assert!(p.listed.iter().all(|l| !l.discontinuity), "{:?}", p.listed);
        // ffprobe cannot measure a file whose timestamps wrap
        assert_close(total(&p.listed), 16.0, 2.0 * FRAME);
    }
}

#[test]
fn a_timestamp_reset() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.ts");
    let second = dir.path().join("b.ts");
    make_av(&first, 9, 30, &[]);
    make_av(&second, 7, 30, &[]);
    let input = dir.path().join("joined.ts");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes.extend(std::fs::read(&second).unwrap());
    std::fs::write(&input, bytes).unwrap();
    for format in FORMATS {
        let p = check_format(
            &run(&input, format, &["--window", "10"]),
            &input,
            format,
            true,
        );
        let marked: Vec<&Listed> = p.listed.iter().filter(|l| l.discontinuity).collect();
        assert_eq!(marked.len(), 1, "{format:?}: {:?}", p.listed);
        assert!(p.final_text.contains("#EXT-X-DISCONTINUITY\n"));
        let split = p.listed.iter().position(|l| l.discontinuity).unwrap();
        assert_close(total(&p.listed[..split]), packet_span(&first), FRAME);
        assert_close(total(&p.listed[split..]), packet_span(&second), FRAME);
    }
}
