//! The in-process ladder encoder on a real H.264 stream with B-frames, made
//! with the ffmpeg CLI and demuxed with libav: every source picture comes
//! out once per rung, IDRs exactly where forced, pictures of the sizes
//! announced.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ffmpeg_next as ffmpeg;
use live_upload::package::fmp4::avc;
use live_upload::transcode::{Encoded, RungSpec, TranscodeError, TranscodeSettings, Transcoder};

const TICKS: i64 = 90_000;

/// 4 s of 640x360 at 30 fps, H.264 with 2 B-frames, a keyframe a second.
fn make_input(dir: &Path) -> PathBuf {
    let path = dir.join("in.ts");
    let out = Command::new("/usr/bin/ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-t",
            "4",
        ])
        .args(["-c:v", "libx264", "-g", "30", "-bf", "2"])
        .args(["-f", "mpegts"])
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// 180 lines are scaled from the 360-line rung's picture (twice as tall),
/// not from the source.
const CASCADE: [RungSpec; 2] = [
    RungSpec {
        height: 180,
        kbps: 200,
    },
    RungSpec {
        height: 360,
        kbps: 800,
    },
];

/// A transcoder for `rungs`, or the test fails.
fn open(
    params: ffmpeg::codec::Parameters,
    rungs: &[RungSpec],
    settings: &TranscodeSettings,
) -> Transcoder {
    match Transcoder::new(params, rungs, settings) {
        Ok(tc) => tc,
        Err(e) => panic!("the transcoder opens: {e}"),
    }
}

/// A packet as the segmenter has it: timestamps in 90 kHz ticks.
struct Packet {
    pts: Option<i64>,
    dts: Option<i64>,
    data: Vec<u8>,
}

struct Demuxed {
    params: ffmpeg::codec::Parameters,
    frame_rate: (i32, i32),
    packets: Vec<Packet>,
}

fn demux(path: &Path) -> Demuxed {
    // libx264's statistics at close are noise here
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let mut input = ffmpeg::format::input(path).expect("the test stream opens");
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .expect("a video stream");
    let index = stream.index();
    let params = stream.parameters();
    let tb = stream.time_base();
    let rate = stream.avg_frame_rate();
    let (num, den) = (i64::from(tb.numerator()), i64::from(tb.denominator()));
    let ticks = |t: i64| t * num * TICKS / den;
    let mut packets = Vec::new();
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        packets.push(Packet {
            pts: packet.pts().map(ticks),
            dts: packet.dts().map(ticks),
            data: packet.data().unwrap_or_default().to_vec(),
        });
    }
    Demuxed {
        params,
        frame_rate: (rate.numerator(), rate.denominator()),
        packets,
    }
}

/// The NAL units of an Annex B access unit (start codes removed).
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
            // a 4-byte start code's leading zero belongs to no NAL unit
            while end > s && data[end - 1] == 0 {
                end -= 1;
            }
            &data[s..end]
        })
        .collect()
}

fn has_idr(e: &Encoded) -> bool {
    nal_units(&e.data)
        .iter()
        .any(|n| avc::nal_type(n) == avc::NAL_IDR)
}

const RUNGS: [RungSpec; 2] = [
    RungSpec {
        height: 240,
        kbps: 400,
    },
    RungSpec {
        height: 180,
        kbps: 200,
    },
];

#[test]
fn every_picture_comes_out_once_per_rung_with_idrs_only_where_forced() {
    let dir = tempfile::tempdir().unwrap();
    let input = demux(&make_input(dir.path()));
    assert_eq!(input.frame_rate, (30, 1));
    let source: BTreeSet<i64> = input.packets.iter().filter_map(|p| p.pts).collect();
    assert_eq!(source.len(), 120, "4 s at 30 fps");
    let in_order: Vec<i64> = source.iter().copied().collect();
    // the 1st and the 61st picture in presentation order
    let forced: BTreeSet<i64> = [in_order[0], in_order[60]].into_iter().collect();

    let settings = TranscodeSettings::new(input.frame_rate);
    let mut tc = open(input.params, &RUNGS, &settings);
    assert_eq!(tc.sizes(), vec![(426, 240), (320, 180)]);
    let mut out = Vec::new();
    for p in &input.packets {
        // the cut is decided as its packet arrives, before it is fed
        if let Some(pts) = p.pts.filter(|t| forced.contains(t)) {
            tc.force_keyframe_at(pts);
        }
        tc.send(p.pts, p.dts, &p.data).expect("the packet is taken");
        out.extend(tc.receive());
    }
    out.extend(tc.finish().expect("the encoders drain"));
    assert!(tc.finish().expect("a second finish is harmless").is_empty());
    assert!(matches!(
        tc.send(Some(0), Some(0), &[0, 0, 1, 9, 0xf0]),
        Err(TranscodeError::Finished)
    ));

    let stats = tc.stats();
    assert_eq!(stats.refused_packets, 0);
    assert_eq!(stats.untimed_frames, 0);
    assert_eq!(stats.missed_keyframes, 0);
    assert_eq!(stats.frames_encoded, vec![120, 120]);

    for (rung, &size) in tc.sizes().iter().enumerate() {
        let mine: Vec<&Encoded> = out.iter().filter(|e| e.rung == rung).collect();
        let pts: Vec<i64> = {
            let mut p: Vec<i64> = mine.iter().map(|e| e.pts).collect();
            p.sort_unstable();
            p
        };
        assert_eq!(pts, in_order, "rung {rung}: every source picture, once");

        let idrs: BTreeSet<i64> = mine.iter().filter(|e| has_idr(e)).map(|e| e.pts).collect();
        assert_eq!(idrs, forced, "rung {rung}: IDRs exactly where forced");
        let keys: BTreeSet<i64> = mine.iter().filter(|e| e.key).map(|e| e.pts).collect();
        assert_eq!(keys, forced, "rung {rung}: key flags on the IDRs");

        assert!(
            mine.windows(2).all(|w| w[0].dts <= w[1].dts),
            "rung {rung}: dts non-decreasing"
        );
        assert!(
            mine.iter().all(|e| e.dts <= e.pts),
            "rung {rung}: dts <= pts"
        );

        let first = mine.first().expect("packets");
        assert!(first.key && first.pts == in_order[0]);
        let sps = nal_units(&first.data)
            .into_iter()
            .find(|n| avc::nal_type(n) == avc::NAL_SPS)
            .expect("an SPS before the first IDR");
        let sps = avc::parse_sps(sps).expect("the SPS parses");
        assert_eq!((sps.width, sps.height), size, "rung {rung}: SPS size");
        // every IDR repeats the SPS and PPS in band
        for e in mine.iter().filter(|e| e.key) {
            let types: Vec<u8> = nal_units(&e.data)
                .iter()
                .map(|n| avc::nal_type(n))
                .collect();
            assert!(
                types.contains(&avc::NAL_SPS) && types.contains(&avc::NAL_PPS),
                "rung {rung} at {}: {types:?}",
                e.pts
            );
        }
    }
}

#[test]
fn a_rung_taller_than_the_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = demux(&make_input(dir.path()));
    let rungs = [
        RUNGS[0],
        RungSpec {
            height: 480,
            kbps: 1000,
        },
    ];
    let err = Transcoder::new(input.params, &rungs, &TranscodeSettings::new((30, 1)))
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(matches!(err, TranscodeError::Upscale { .. }), "{msg}");
    assert!(msg.contains("480p@1000k") && msg.contains("360"), "{msg}");
}

#[test]
fn an_unknown_preset_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = demux(&make_input(dir.path()));
    let settings = TranscodeSettings {
        preset: "no-such-preset".to_string(),
        frame_rate: (30, 1),
    };
    let err = Transcoder::new(input.params, &RUNGS, &settings)
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-preset") && msg.contains("240p@400k"),
        "{msg}"
    );
}

#[test]
fn damaged_packets_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let input = demux(&make_input(dir.path()));
    let mut tc = open(input.params, &RUNGS[1..], &TranscodeSettings::new((30, 1)));
    let mut out = Vec::new();
    for (i, p) in input.packets.iter().enumerate() {
        if i == 45 {
            // a slice cut short, bytes that are no H.264, an empty packet:
            // none is fatal, and the empty one does not end the input
            let part = &p.data[..p.data.len() / 3];
            tc.send(p.pts, p.dts, part).expect("not fatal");
            tc.send(None, None, &[0xff; 188]).expect("not fatal");
            tc.send(None, None, &[]).expect("not fatal");
            continue;
        }
        tc.send(p.pts, p.dts, &p.data).expect("not fatal");
        out.extend(tc.receive());
    }
    out.extend(tc.finish().expect("the encoder drains"));
    let stats = tc.stats();
    // libav conceals the short picture (or refuses it): either way every
    // other picture, to the end, is encoded
    assert!(
        out.len() == 120 || (out.len() == 119 && stats.refused_packets > 0),
        "{} packets, {stats:?}",
        out.len()
    );
    assert_eq!(stats.frames_encoded, vec![out.len() as u64]);
    assert!(out.windows(2).all(|w| w[0].dts <= w[1].dts));
}

#[test]
fn a_rung_cascaded_from_a_larger_one_gets_every_picture() {
    let dir = tempfile::tempdir().unwrap();
    let input = demux(&make_input(dir.path()));
    let pictures = input.packets.len() as u64;
    // 180 lines are scaled from the 360-line rung's picture, not the source
    let rungs = CASCADE;
    let mut tc = open(input.params, &rungs, &TranscodeSettings::new((30, 1)));
    assert_eq!(tc.sizes(), vec![(320, 180), (640, 360)]);
    let mut out = Vec::new();
    for p in &input.packets {
        tc.send(p.pts, p.dts, &p.data).expect("taken");
        out.extend(tc.receive());
    }
    out.extend(tc.finish().expect("drained"));
    assert_eq!(tc.stats().frames_encoded, vec![pictures, pictures]);
    for rung in 0..2 {
        let mut a: Vec<i64> = out
            .iter()
            .filter(|e| e.rung == rung)
            .map(|e| e.pts)
            .collect();
        let mut b: Vec<i64> = input.packets.iter().filter_map(|p| p.pts).collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "rung {rung}");
        // nothing forced: the only IDR is the first picture
        assert_eq!(out.iter().filter(|e| e.rung == rung && e.key).count(), 1);
    }
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task lists the threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn each_rung_encodes_on_a_thread_that_ends_when_the_transcoder_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let input = demux(&make_input(dir.path()));
    // a height no other test uses, so that its thread's name is this test's
    let rungs = [RungSpec {
        height: 238,
        kbps: 300,
    }];
    let mut tc = open(input.params, &rungs, &TranscodeSettings::new((30, 1)));
    let mine = |names: Vec<String>| names.iter().filter(|n| *n == "x264 238p").count();
    // a new thread names itself once it runs: until then it has its
    // parent's name
    let started = std::time::Instant::now();
    while mine(thread_names()) == 0 && started.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(mine(thread_names()), 1, "{:?}", thread_names());
    for p in &input.packets[..input.packets.len() / 2] {
        tc.send(p.pts, p.dts, &p.data).expect("taken");
    }
    // dropped mid-stream, without finish: the thread stops and is joined
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(tc);
        let _ = done.send(());
    });
    dropped
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the transcoder is dropped within 30 s");
    assert_eq!(mine(thread_names()), 0, "{:?}", thread_names());
}

#[test]
fn a_stopped_rung_and_the_rungs_scaled_from_it_get_no_more_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let input = demux(&make_input(dir.path()));
    let pictures = input.packets.len() as u64;
    let half = input.packets.len() / 2;
    // 180 lines are scaled from the 360-line rung's picture
    let rungs = CASCADE;
    let run = |stop: usize| {
        let params = input.params.clone();
        let mut tc = open(params, &rungs, &TranscodeSettings::new((30, 1)));
        let failed = TranscodeError::Encode {
            rung: rungs[stop],
            reason: "a test".to_string(),
        };
        assert_eq!(tc.rung_of(&failed), Some(stop));
        let mut after = Vec::new();
        for (n, p) in input.packets.iter().enumerate() {
            tc.send(p.pts, p.dts, &p.data).expect("taken");
            let out = tc.receive();
            if n == half {
                let stopped = tc.stop(stop);
                assert!(tc.stop(stop).is_empty(), "a rung is stopped once");
                after.push(stopped);
            } else if n > half {
                assert!(
                    out.iter().all(|e| !after[0].contains(&e.rung)),
                    "no packet of a stopped rung after it was stopped"
                );
            }
        }
        let rest = tc.finish().expect("a stopped rung does not fail the end");
        assert!(rest.iter().all(|e| !after[0].contains(&e.rung)));
        (after.remove(0), tc.stats().frames_encoded)
    };
    // the 180-line rung alone
    let (stopped, encoded) = run(0);
    assert_eq!(stopped, vec![0]);
    assert!(encoded[0] < pictures, "{encoded:?}");
    assert_eq!(encoded[1], pictures, "the other rung keeps every picture");
    // the 360-line rung takes the 180-line one, scaled from it, along
    let (stopped, encoded) = run(1);
    assert_eq!(stopped, vec![0, 1]);
    assert!(encoded.iter().all(|&n| n < pictures), "{encoded:?}");
}
