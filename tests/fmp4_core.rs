//! The fMP4 packager end to end on streams made with ffmpeg: a tiny
//! MPEG-TS demuxer here (no libav) hands whole PES packets to
//! `Fmp4Packager` the way the segmenter would (a video PES is an access
//! unit, an audio PES several ADTS frames), cuts every ~2 s on keyframes,
//! and ffmpeg, ffprobe and mp4-atom read back what it wrote.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cmaf::{read_segment, TrackFragment};
use live_upload::codec::keyframe::{is_keyframe, Codec};
use live_upload::package::fmp4::packager::MIN_START;
use live_upload::package::fmp4::{Cut, Fmp4Packager, Output, Packet, SegmentOut, StreamKind};
use live_upload::timeline::{Unwrapper, PTS_MODULUS, TICKS_PER_SECOND};
use live_upload::ts::{self, SectionCollector, PACKET_SIZE};
use mp4_atom::{Any, Codec as Entry, Decode, Moov, TrunSamples};

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Video and a tone, `seconds` long, keyframes every second, to MPEG-TS.
fn make(path: &Path, seconds: u32, video: Option<(&str, &str)>, extra: &[&str]) {
    let mut args: Vec<String> = Vec::new();
    let mut add = |more: &[&str]| args.extend(more.iter().map(|a| a.to_string()));
    if let Some((_, size)) = video {
        add(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ]);
    }
    add(&["-f", "lavfi", "-i", "sine=f=440:sample_rate=48000"]);
    add(&["-t", &seconds.to_string()]);
    match video.map(|v| v.0) {
        Some("h264") => add(&["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"]),
        Some("hevc") => add(&[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=30:min-keyint=30:log-level=error",
        ]),
        _ => {}
    }
    add(&["-c:a", "aac", "-b:a", "64k"]);
    add(extra);
    add(&["-f", "mpegts", path.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&args);
}

/// One whole PES packet.
struct Pes {
    stream: usize,
    pts: Option<i64>,
    dts: Option<i64>,
    data: Vec<u8>,
}

fn read_ts_time(b: &[u8]) -> i64 {
    (i64::from(b[0] & 0x0e) << 29)
        | (i64::from(b[1]) << 22)
        | (i64::from(b[2] & 0xfe) << 14)
        | (i64::from(b[3]) << 7)
        | (i64::from(b[4]) >> 1)
}

/// Demuxes the first program: its elementary streams' PMT stream types,
/// and their PES packets in the order they complete.
fn demux(input: &[u8]) -> (Vec<u8>, Vec<Pes>) {
    let mut pat = SectionCollector::default();
    let mut pmt = SectionCollector::default();
    let mut pmt_pid = None;
    let mut streams: Vec<(u8, u16)> = Vec::new();
    let mut open: HashMap<u16, (Pes, Option<usize>)> = HashMap::new();
    let mut out = Vec::new();
    let finish = |pes: Pes, out: &mut Vec<Pes>| {
        if !pes.data.is_empty() {
            out.push(pes);
        }
    };
    for chunk in input.chunks_exact(PACKET_SIZE) {
        let pkt: &[u8; PACKET_SIZE] = chunk.try_into().unwrap();
        let Some(h) = ts::parse_header(pkt) else {
            continue;
        };
        if h.pid == ts::PAT_PID {
            if let Some((section, _)) = pat.push(pkt, &h) {
                pmt_pid = ts::parse_pat(&section).and_then(|p| p.first().map(|e| e.pmt_pid));
            }
            continue;
        }
        if Some(h.pid) == pmt_pid {
            if let Some((section, _)) = pmt.push(pkt, &h) {
                if streams.is_empty() {
                    streams = ts::parse_pmt(&section).unwrap().streams;
                }
            }
            continue;
        }
        let Some(stream) = streams.iter().position(|s| s.1 == h.pid) else {
            continue;
        };
        let Some(start) = h.payload_start else {
            continue;
        };
        let payload = &pkt[start..];
        if h.pusi {
            if let Some((pes, _)) = open.remove(&h.pid) {
                finish(pes, &mut out);
            }
            assert_eq!(&payload[..3], [0, 0, 1], "PES start code");
            let length = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
            let flags = payload[7];
            let header = 9 + usize::from(payload[8]);
            let pts = (flags & 0x80 != 0).then(|| read_ts_time(&payload[9..14]));
            let dts = (flags & 0x40 != 0).then(|| read_ts_time(&payload[14..19]));
            let expected = (length > 0).then(|| length + 6 - header);
            let pes = Pes {
                stream,
                pts,
                dts,
                data: payload[header..].to_vec(),
            };
            open.insert(h.pid, (pes, expected));
        } else if let Some((pes, _)) = open.get_mut(&h.pid) {
            pes.data.extend_from_slice(payload);
        }
        if let Some((pes, Some(expected))) = open.get(&h.pid) {
            if pes.data.len() >= *expected {
                let (mut pes, expected) = open.remove(&h.pid).unwrap();
                pes.data.truncate(expected.unwrap());
                finish(pes, &mut out);
            }
        }
    }
    let mut rest: Vec<_> = open.into_values().collect();
    rest.sort_by_key(|(p, _)| p.stream);
    for (pes, _) in rest {
        finish(pes, &mut out);
    }
    (streams.iter().map(|s| s.0).collect(), out)
}

/// What one packaging run wrote.
struct Packaged {
    dir: tempfile::TempDir,
    /// Init id to its file.
    inits: HashMap<u64, PathBuf>,
    segments: Vec<(SegmentOut, PathBuf)>,
    /// Audio frames the packager dropped.
    dropped: u64,
    packets: usize,
    elapsed: Duration,
}

/// Demuxes `ts`, feeds the packager with a cut at the first anchor
/// keyframe (any audio packet without video) at least 2 s after the
/// previous cut, and at the first after a timestamp reset.
fn package(ts_path: &Path) -> Packaged {
    let input = std::fs::read(ts_path).unwrap();
    let (types, packets) = demux(&input);
    let kinds: Vec<StreamKind> = types
        .iter()
        .map(|t| match *t {
            0x1b => StreamKind::H264,
            0x24 => StreamKind::Hevc,
            0x0f => StreamKind::Aac,
            _ => StreamKind::Ignore,
        })
        .collect();
    let anchor = kinds
        .iter()
        .position(|k| matches!(k, StreamKind::H264 | StreamKind::Hevc))
        .unwrap_or(0);
    let codec = match kinds[anchor] {
        StreamKind::H264 => Some(Codec::H264),
        StreamKind::Hevc => Some(Codec::Hevc),
        _ => None,
    };
    let started = Instant::now();
    let mut p = Fmp4Packager::new(&kinds).unwrap();
    let mut unwrap: Vec<Unwrapper> = kinds
        .iter()
        .map(|_| Unwrapper::new(TICKS_PER_SECOND / 2, 10 * TICKS_PER_SECOND))
        .collect();
    let mut last_cut: Option<i64> = None;
    let mut reset = false;
    let mut sequence = 0;
    let mut outputs = Vec::new();
    for pes in &packets {
        let raw_pts = pes.pts.expect("every PES here has a PTS");
        let raw_dts = pes.dts.unwrap_or(raw_pts);
        let u = unwrap[pes.stream].unwrap(raw_dts);
        let dts = u.ticks;
        let pts = dts + live_upload::timeline::pts_diff(raw_pts, raw_dts);
        let key = match codec {
            Some(c) if pes.stream == anchor => is_keyframe(c, &pes.data).unwrap_or(false),
            _ => true,
        };
        if pes.stream == anchor {
            reset |= u.reset;
            let due = last_cut.is_none_or(|c| pts - c >= 2 * TICKS_PER_SECOND);
            if key && (due || reset) {
                sequence += 1;
                p.on_cut(Cut {
                    pts,
                    sequence,
                    discontinuity: reset,
                })
                .unwrap();
                last_cut = Some(pts);
                reset = false;
            }
        }
        p.on_packet(Packet {
            stream: pes.stream,
            dts,
            pts,
            key,
            data: &pes.data,
        })
        .unwrap();
        outputs.extend(p.take_ready());
    }
    p.finish().unwrap();
    outputs.extend(p.take_ready());
    let elapsed = started.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let mut inits = HashMap::new();
    let mut segments = Vec::new();
    for o in outputs {
        match o {
            Output::Init(init) => {
                assert!(!inits.contains_key(&init.id), "an init id is never reused");
                let path = dir.path().join(format!("init-{}.mp4", init.id));
                std::fs::write(&path, &init.bytes).unwrap();
                let codecs = dir.path().join(format!("init-{}.codecs", init.id));
                std::fs::write(&codecs, &init.codecs).unwrap();
                inits.insert(init.id, path);
            }
            Output::Segment(s) => {
                assert!(inits.contains_key(&s.init_id), "init before its segment");
                let path = dir.path().join(format!("seg-{}.m4s", s.sequence));
                std::fs::write(&path, &s.bytes).unwrap();
                segments.push((s, path));
            }
            Output::Empty { sequence } => panic!("segment {sequence} got no sample"),
        }
    }
    // FMP4_CORE_KEEP=/some/dir keeps each run's init and segments there
    if let Ok(keep) = std::env::var("FMP4_CORE_KEEP") {
        let test = std::thread::current().name().unwrap_or("run").to_string();
        let into = Path::new(&keep).join(test);
        std::fs::create_dir_all(&into).unwrap();
        for path in inits.values().chain(segments.iter().map(|(_, p)| p)) {
            std::fs::copy(path, into.join(path.file_name().unwrap())).unwrap();
        }
        for id in inits.keys() {
            let codecs = format!("init-{id}.codecs");
            std::fs::copy(dir.path().join(&codecs), into.join(codecs)).unwrap();
        }
        eprintln!("kept in {}", into.display());
    }
    Packaged {
        dir,
        inits,
        segments,
        dropped: p.dropped_frames(),
        packets: packets.len(),
        elapsed,
    }
}

/// Writes init + segments to one file.
fn concat(run: &Packaged, name: &str, parts: &[&Path]) -> PathBuf {
    let mut all = Vec::new();
    for part in parts {
        all.extend(std::fs::read(part).unwrap());
    }
    let path = run.dir.path().join(name);
    std::fs::write(&path, all).unwrap();
    path
}

/// ffmpeg's complaints when decoding `path` (empty when there are none).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// ffprobe's count of decoded frames of the first stream of a type.
fn count_frames(path: &Path, kind: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams"])
        .arg(format!("{kind}:0"))
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    // MPEG-TS inputs list the stream under their program too
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no frame count for {}: {text}", path.display()))
}

/// The first decoded video frame of `path` is a keyframe.
fn first_frame_is_key(path: &Path) -> bool {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
        ])
        .args(["-show_entries", "frame=key_frame", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    // (csv may end the line with an empty side data column)
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().trim_end_matches(',')) == Some("1")
}

/// Smallest packet DTS ffprobe reads from `path`, in its time base units.
fn min_dts(path: &Path) -> i64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=dts",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<i64>().ok())
        .min()
        .unwrap()
}

/// tfdt of each segment is the previous one's plus its durations, per
/// track; returns the tfdt values of track 1.
fn check_continuity(run: &Packaged) -> Vec<u64> {
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut first_track = Vec::new();
    for (s, _) in &run.segments {
        for TrackFragment {
            track,
            decode_time: tfdt,
            duration,
            first_flags: flags,
        } in read_segment(&s.bytes)
        {
            if let Some(expected) = next.get(&track) {
                assert_eq!(
                    tfdt, *expected,
                    "tfdt of track {track}, segment {}",
                    s.sequence
                );
            }
            next.insert(track, tfdt + duration);
            if track == 1 {
                first_track.push(tfdt);
                // sync: sample_depends_on 2, not non-sync
                assert_eq!(
                    flags.unwrap() & 0x0301_0000,
                    0x0200_0000,
                    "starts with a sync sample"
                );
            }
        }
        assert!(s.starts_with_keyframe);
    }
    first_track
}

/// The checks every stream with video gets: the whole run decodes without
/// complaint and with every frame, each segment decodes alone after its
/// init and starts with a keyframe, tfdt continues.
fn check_video_run(run: &Packaged, ts_path: &Path) {
    assert!(run.segments.len() >= 2);
    check_continuity(run);
    let init = &run.inits[&run.segments[0].0.init_id];
    let mut parts: Vec<&Path> = vec![init];
    parts.extend(run.segments.iter().map(|(_, p)| p.as_path()));
    let whole = concat(run, "whole.mp4", &parts);
    assert_eq!(decode_errors(&whole), "");
    assert_eq!(count_frames(&whole, "v"), count_frames(ts_path, "v"));
    let audio_in = count_frames(ts_path, "a");
    let audio_out = count_frames(&whole, "a");
    assert!(
        audio_out + 2 >= audio_in && audio_out <= audio_in,
        "audio frames: {audio_out} of {audio_in}"
    );
    assert!(min_dts(&whole) >= 0);
    for (s, path) in &run.segments {
        let alone = concat(run, "alone.mp4", &[init, path]);
        assert_eq!(decode_errors(&alone), "", "segment {} alone", s.sequence);
        assert!(
            first_frame_is_key(&alone),
            "segment {} starts with a keyframe",
            s.sequence
        );
    }
    eprintln!(
        "{}: {} PES packets packaged in {:?} into {} segments, {} audio frames dropped",
        ts_path.display(),
        run.packets,
        run.elapsed,
        run.segments.len(),
        run.dropped
    );
}

fn sample_entry(init: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(init).unwrap();
    let mut buf = bytes.as_slice();
    let Any::Ftyp(_) = Any::decode(&mut buf).unwrap() else {
        panic!("ftyp first")
    };
    let moov = Moov::decode(&mut buf).unwrap();
    moov.trak
        .iter()
        .map(|t| t.mdia.minf.stbl.stsd.codecs[0].clone())
        .collect()
}

#[test]
fn h264_with_b_frames_and_aac_starting_near_zero() {
    let dir = tempfile::tempdir().unwrap();
    let ts_path = dir.path().join("in.ts");
    // timestamps from 0 (no mux delay): with B-frames the first DTS lies
    // before the first PTS, and the packager shifts the run
    make(
        &ts_path,
        6,
        Some(("h264", "320x240")),
        &["-bf", "2", "-muxdelay", "0", "-muxpreload", "0"],
    );
    let run = package(&ts_path);
    check_video_run(&run, &ts_path);
    assert_eq!(run.inits.len(), 1);
    let entries = sample_entry(&run.inits[&1]);
    let Entry::Avc1(avc1) = &entries[0] else {
        panic!("avc1 first")
    };
    assert_eq!((avc1.visual.width, avc1.visual.height), (320, 240));
    assert!(matches!(entries[1], Entry::Mp4a(_)));
    assert_eq!(run.segments.len(), 3);
    // the first keyframe is presented at its cut, shifted to MIN_START, and
    // decoded before that: B-frames, composition offsets
    let first = &run.segments[0].0;
    assert!(first.start_pts < MIN_START);
    assert!(first.decode_time < MIN_START);
    let mut buf = first.bytes.as_slice();
    let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
        panic!("moof")
    };
    let TrunSamples::Explicit(e) = &moof.traf[0].trun[0].samples else {
        panic!("explicit samples")
    };
    let presented = first.decode_time + e[0].cts.unwrap();
    assert_eq!(
        presented, MIN_START,
        "the first keyframe is presented at MIN_START"
    );
    assert!(
        e.iter().any(|s| s.cts.unwrap() < e[0].cts.unwrap()),
        "B-frames"
    );
}

#[test]
fn hevc_and_aac() {
    let dir = tempfile::tempdir().unwrap();
    let ts_path = dir.path().join("in.ts");
    make(&ts_path, 5, Some(("hevc", "320x240")), &[]);
    let run = package(&ts_path);
    check_video_run(&run, &ts_path);
    let entries = sample_entry(&run.inits[&1]);
    let Entry::Hvc1(hvc1) = &entries[0] else {
        panic!("hvc1 first")
    };
    assert_eq!((hvc1.visual.width, hvc1.visual.height), (320, 240));
    let types: Vec<u8> = hvc1.hvcc.arrays.iter().map(|a| a.nal_unit_type).collect();
    assert_eq!(types, [32, 33, 34]);
}

#[test]
fn audio_only() {
    let dir = tempfile::tempdir().unwrap();
    let ts_path = dir.path().join("in.ts");
    make(&ts_path, 7, None, &[]);
    let run = package(&ts_path);
    assert!(run.segments.len() >= 3);
    check_continuity(&run);
    let init = &run.inits[&1];
    let mut parts: Vec<&Path> = vec![init];
    parts.extend(run.segments.iter().map(|(_, p)| p.as_path()));
    let whole = concat(&run, "whole.mp4", &parts);
    assert_eq!(decode_errors(&whole), "");
    assert_eq!(count_frames(&whole, "a"), count_frames(&ts_path, "a"));
    for (s, path) in &run.segments {
        let alone = concat(&run, "alone.mp4", &[init, path]);
        assert_eq!(decode_errors(&alone), "", "segment {} alone", s.sequence);
    }
    let bytes = std::fs::read(init).unwrap();
    assert_eq!(&bytes[8..12], b"iso6");
    assert!(
        bytes[..32].windows(4).any(|w| w == b"cmfc"),
        "one track: CMAF"
    );
}

#[test]
fn timestamps_across_the_33_bit_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let ts_path = dir.path().join("in.ts");
    // 95440 s + 1.4 s of mux delay: the PTS wraps (2^33 ticks = 95443.7 s)
    // about 2.3 s in
    make(
        &ts_path,
        6,
        Some(("h264", "320x240")),
        &["-output_ts_offset", "95440"],
    );
    let run = package(&ts_path);
    check_video_run(&run, &ts_path);
    let tfdt = check_continuity(&run);
    assert!(tfdt[0] < PTS_MODULUS as u64, "starts before the wrap");
    assert!(
        *tfdt.last().unwrap() > PTS_MODULUS as u64,
        "goes on past it"
    );
}

#[test]
fn a_new_resolution_after_a_reset_gets_a_new_init() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ts"), dir.path().join("b.ts"));
    make(&a, 4, Some(("h264", "320x240")), &[]);
    make(&b, 4, Some(("h264", "480x270")), &[]);
    // spliced: the second encoder's timestamps start over
    let mut both = std::fs::read(&a).unwrap();
    both.extend(std::fs::read(&b).unwrap());
    let ts_path = dir.path().join("both.ts");
    std::fs::write(&ts_path, both).unwrap();
    let run = package(&ts_path);
    assert_eq!(run.inits.len(), 2);
    let ids: Vec<u64> = run.segments.iter().map(|(s, _)| s.init_id).collect();
    assert_eq!(ids, [1, 1, 2, 2]);
    assert!(run.segments[2].0.discontinuity);
    let Entry::Avc1(avc1) = &sample_entry(&run.inits[&2])[0] else {
        panic!("avc1")
    };
    assert_eq!((avc1.visual.width, avc1.visual.height), (480, 270));
    // decode times go on across the reset
    check_continuity(&run);
    let (mut frames, mut audio) = (0, 0);
    for id in [1, 2] {
        let mut parts: Vec<&Path> = vec![&run.inits[&id]];
        parts.extend(
            run.segments
                .iter()
                .filter(|(s, _)| s.init_id == id)
                .map(|(_, p)| p.as_path()),
        );
        let part = concat(&run, &format!("part-{id}.mp4"), &parts);
        assert_eq!(decode_errors(&part), "");
        frames += count_frames(&part, "v");
        audio += count_frames(&part, "a");
    }
    assert_eq!(frames, count_frames(&a, "v") + count_frames(&b, "v"));
    let audio_in = count_frames(&a, "a") + count_frames(&b, "a");
    eprintln!(
        "audio frames across the splice: {audio} of {audio_in}, {} dropped",
        run.dropped
    );
    assert!(audio + 4 >= audio_in, "audio frames: {audio} of {audio_in}");
}
