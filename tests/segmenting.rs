//! End-to-end runs of the binary on streams made with ffmpeg, into a
//! `file://` destination.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One frame at 30 fps, the tolerance for summed durations.
const FRAME: f64 = 1.0 / 30.0;

/// An AAC frame at 48 kHz, the tolerance for where a segment's audio starts.
const AAC_FRAME: f64 = 1024.0 / 48_000.0;

/// The checks every run must pass: exit 0, playlists valid in every version,
/// segments decodable, starting on keyframes and carrying every stream, with
/// AAC audio starting within a frame of the video after the first, the final
/// playlist playable to its end. Returns every segment cut.
fn check_run(run: &Run, input: &Path, video: bool) -> Vec<Listed> {
    assert_eq!(run.code(), Some(0), "exit code; stderr:\n{}", run.stderr());
    let (listed, final_text) = check_published(&run.journal(), "ev/index.m3u8", "ev");
    assert!(listed.len() >= 3, "several segments: {listed:?}");
    let index = run.object("ev/index.m3u8");
    assert_eq!(std::fs::read_to_string(&index).unwrap(), final_text);
    assert_eq!(
        final_text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
        final_text.matches("#EXTINF:").count()
    );
    let input_streams = probe_streams(input);
    for seg in &listed {
        let path = run.object(&format!("ev/{}", seg.uri));
        let (ok, errors) = decode(&path);
        assert!(
            ok && errors.is_empty(),
            "{} decodes cleanly: {errors}",
            seg.uri
        );
        assert_eq!(
            probe_streams(&path),
            input_streams,
            "{} carries every stream",
            seg.uri
        );
        if video {
            let flags = first_video_flags(&path).unwrap();
            assert!(
                flags.starts_with('K'),
                "{} starts with a keyframe: {flags}",
                seg.uri
            );
        }
        // a player joining at this segment finds no hole at its start
        if let (true, (Some(v), audio)) = (seg.uri != listed[0].uri, first_pts(&path)) {
            for a in audio {
                assert!(
                    (a - v).abs() <= AAC_FRAME,
                    "{}: audio starts at {a} s, video at {v} s",
                    seg.uri
                );
            }
        }
    }
    let (ok, errors) = decode(&index);
    assert!(ok, "ffmpeg reads the final playlist to its end: {errors}");
    let spooled: Vec<_> = std::fs::read_dir(&run.spool).unwrap().collect();
    assert!(spooled.is_empty(), "spool emptied after upload");
    listed
}

fn total(listed: &[Listed]) -> f64 {
    listed.iter().map(|l| l.duration).sum()
}

/// Every packet of every stream, with its checksum, as ffmpeg reads it:
/// the lines of each stream in order (streams are interleaved differently
/// once audio PES packets are divided at cuts), without side data (the
/// MPEG-TS stream id marks where each PES packet starts, which moves too).
fn framemd5(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let packet = l.split(", S=").next().unwrap_or(l);
            let stream = packet.split(',').next().unwrap_or("").to_string();
            (stream, packet.to_string())
        })
        .collect();
    // stable: each stream's packets keep their order
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    lines.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn video_two_audio_tracks_and_data_arrive_packet_for_packet() {
    let dir = tempfile::tempdir().unwrap();
    let av = dir.path().join("av.ts");
    // keyframe every second, a second audio track
    let mapping = [
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "1:a",
        "-metadata:s:a:1",
        "language=fra",
    ];
    make_av(&av, 21, 30, &mapping);
    // and a data stream
    let blob = dir.path().join("blob.bin");
    let data: Vec<u8> = (0..60_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&blob, data).unwrap();
    let input = dir.path().join("in.ts");
    let paths = [&av, &blob, &input].map(|p| p.to_str().unwrap().to_string());
    ffmpeg(&[
        "-i", &paths[0], "-f", "data", "-i", &paths[1], "-map", "0", "-map", "1", "-c", "copy",
        "-f", "mpegts", &paths[2],
    ]);
    assert_eq!(
        probe_streams(&input),
        vec!["video", "audio", "audio", "data"]
    );

    let run = run_file(&input, "4", &[]);
    let listed = check_run(&run, &input, true);
    // the segments, concatenated, are the input packet for packet
    let joined = dir.path().join("joined.ts");
    let mut bytes = Vec::new();
    for seg in &listed {
        bytes.extend(std::fs::read(run.object(&format!("ev/{}", seg.uri))).unwrap());
    }
    std::fs::write(&joined, bytes).unwrap();
    let (want, got) = (framemd5(&input), framemd5(&joined));
    assert!(want.len() > 1000);
    assert_eq!(
        got, want,
        "every packet of every stream, unchanged and in order within its stream"
    );
    let expected = packet_span(&input);
    assert_close(total(&listed), expected, FRAME);
    assert!(listed.iter().all(|l| !l.discontinuity));
    assert_eq!(listed[0].uri, "live-00001.ts");
    // 4 s segments, 5 in the window: the final playlist is a window of 5
    let last = std::fs::read_to_string(run.object("ev/index.m3u8")).unwrap();
    assert_eq!(last.matches("#EXTINF").count(), 5);
    assert!(last.contains("#EXT-X-TARGETDURATION:4\n"));
}

#[test]
fn audio_only_cuts_at_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("radio.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=220:sample_rate=44100",
        "-t",
        "15",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "mpegts",
        input.to_str().unwrap(),
    ]);
    let run = run_file(&input, "3", &["--window", "3"]);
    let listed = check_run(&run, &input, false);
    assert!(listed.len() >= 4);
    for seg in &listed[..listed.len() - 1] {
        assert!(seg.duration >= 3.0 && seg.duration < 3.2, "{seg:?}");
    }
    let expected = packet_span(&input);
    assert_close(total(&listed), expected, 0.001);
}

#[test]
fn keyframes_further_apart_than_the_target_raise_the_target_duration() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gop5.ts");
    make_av(&input, 20, 150, &[]); // a keyframe every 5 s
    let run = run_file(&input, "2", &["--window", "4"]);
    let listed = check_run(&run, &input, true);
    for seg in &listed[..listed.len() - 1] {
        assert_close(seg.duration, 5.0, 0.05);
    }
    let journal = run.journal();
    let raised = warnings(&journal, "keyframes_far_apart");
    assert_eq!(raised.len(), 1, "one warning: {raised:?}");
    let w = raised[0];
    assert_eq!((w.u64("from"), w.u64("to")), (2, 5), "{}", w.line);
    // it names the spacing
    assert_close(secs(w.i64("duration")), 5.0, 0.05);
    assert_close(total(&listed), packet_span(&input), FRAME);
}

#[test]
fn keyframes_further_apart_than_four_targets_still_start_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gop10.ts");
    // a keyframe every 10 s at 30 fps: more than the 8 s of four 2 s targets
    make_av(&input, 40, 300, &[]);
    let run = run_file(&input, "2", &[]);
    // every segment starts with a keyframe and decodes on its own
    let listed = check_run(&run, &input, true);
    for seg in &listed {
        let path = run.object(&format!("ev/{}", seg.uri));
        let counted = ffprobe(
            &path,
            &[
                "-select_streams",
                "v:0",
                "-count_frames",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ],
        );
        let frames: u32 = counted
            .lines()
            .find_map(|l| l.trim_end_matches(',').parse().ok())
            .unwrap_or(0);
        assert!(frames > 0, "{} decodes to frames: {counted}", seg.uri);
    }
    assert_eq!(listed.len(), 4, "{listed:?}");
    for seg in &listed {
        assert_close(seg.duration, 10.0, 0.05);
    }
    let journal = run.journal();
    for kind in ["no_keyframe", "no_keyframe_at_start"] {
        assert!(warnings(&journal, kind).is_empty(), "{kind}: {journal:?}");
    }
    assert!(
        journal
            .iter()
            .filter(|r| r.event() == "segment")
            .all(|r| !r.bool("forced")),
        "every segment starts on a keyframe: {journal:?}"
    );
    let raised = warnings(&journal, "keyframes_far_apart");
    assert_eq!(raised.len(), 1, "raised once: {raised:?}");
    assert_eq!(
        (raised[0].u64("from"), raised[0].u64("to")),
        (2, 10),
        "{}",
        raised[0].line
    );
    assert_close(total(&listed), packet_span(&input), FRAME);
}

#[test]
fn the_33_bit_pts_wrap_keeps_durations_and_adds_no_discontinuity() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wrap.ts");
    // 2^33 / 90000 = 95443.717 s: the timestamps wrap about 5 s in
    make_av(&input, 16, 30, &["-output_ts_offset", "95437"]);
    let run = run_file(&input, "2", &[]);
    let listed = check_run(&run, &input, true);
    assert!(listed.iter().all(|l| !l.discontinuity), "{listed:?}");
    for seg in &listed[..listed.len() - 1] {
        assert_close(seg.duration, 2.0, 0.05);
    }
    // ffprobe cannot measure a file whose timestamps wrap: sum the parts
    let expected = 16.0;
    assert_close(total(&listed), expected, 2.0 * FRAME);
}

#[test]
fn b_frames_and_streams_straddling_the_33_bit_wrap_keep_durations() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wrap.ts");
    // 2^33 / 90000 = 95443.7176 s: with B-frames, the first video frame is
    // decoded before the wrap and shown after it, and the audio starts after it
    make_av(
        &input,
        12,
        30,
        &["-bf", "2", "-output_ts_offset", "95442.35"],
    );
    // libav shows the timestamps before the wrap as negative (2^33 less)
    let packets = ffprobe(
        &input,
        &[
            "-show_entries",
            "packet=stream_index,pts,dts",
            "-of",
            "csv=p=0",
        ],
    );
    let packets: Vec<(u32, i64, i64)> = packets
        .lines()
        .filter_map(|l| {
            let mut f = l.trim_end_matches(',').split(',').map(str::parse::<i64>);
            let (Some(Ok(s)), Some(Ok(pts)), Some(Ok(dts))) = (f.next(), f.next(), f.next()) else {
                return None;
            };
            Some((s as u32, pts, dts))
        })
        .collect();
    let video: Vec<(i64, i64)> = packets
        .iter()
        .filter(|p| p.0 == 0)
        .map(|p| (p.1, p.2))
        .collect();
    assert!(
        video.iter().any(|&(pts, dts)| dts < 0 && pts >= 0),
        "a frame decoded before the wrap is shown after it: {:?}",
        &video[..5]
    );
    assert!(video[0].1 < 0, "the video starts before the wrap");
    let first_audio = packets.iter().find(|p| p.0 == 1).unwrap();
    assert!(first_audio.2 >= 0, "the audio starts after the wrap");

    let run = run_file(&input, "2", &["--window", "10"]);
    let listed = check_run(&run, &input, true);
    assert!(listed.iter().all(|l| !l.discontinuity), "{listed:?}");
    for seg in &listed[..listed.len() - 1] {
        assert_close(seg.duration, 2.0, 0.05);
    }
    assert_close(total(&listed), packet_span(&input), FRAME);
}

#[test]
fn a_timestamp_reset_starts_a_discontinuity() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.ts");
    let second = dir.path().join("b.ts");
    make_av(&first, 9, 30, &[]);
    make_av(&second, 7, 30, &[]);
    let joined = dir.path().join("joined.ts");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes.extend(std::fs::read(&second).unwrap());
    std::fs::write(&joined, bytes).unwrap();
    let run = run_file(&joined, "2", &[]);
    let listed = check_run(&run, &first, true);
    let marked: Vec<&Listed> = listed.iter().filter(|l| l.discontinuity).collect();
    assert_eq!(marked.len(), 1, "{listed:?}");
    let split = listed.iter().position(|l| l.discontinuity).unwrap();
    let before: f64 = listed[..split].iter().map(|l| l.duration).sum();
    let after: f64 = listed[split..].iter().map(|l| l.duration).sum();
    assert_close(before, packet_span(&first), FRAME);
    assert_close(after, packet_span(&second), FRAME);
    // the segment after the jump starts the second encode's timeline
    let path = run.object(&format!("ev/{}", listed[split].uri));
    assert!(probe_duration(&path) <= 2.5);
    // the warning says where the timeline jumped: from the end of the
    // segment before to the start of the one after, on a keyframe
    let journal = run.journal();
    let jumps = warnings(&journal, "timestamp_jump");
    assert_eq!(jumps.len(), 1, "{journal:?}");
    let segments: Vec<&Record> = journal.iter().filter(|r| r.event() == "segment").collect();
    let (before, after) = (segments[split - 1], segments[split]);
    assert_eq!(
        jumps[0].i64("from"),
        before.i64("start") + before.i64("duration")
    );
    assert_eq!(jumps[0].i64("to"), after.i64("start"));
    assert!(jumps[0].bool("keyframe") && after.bool("discontinuity"));
}

#[test]
fn no_program_date_time_and_keep_spool() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 8, 30, &[]);
    let run = run_file(&input, "2", &["--no-program-date-time", "--keep-spool"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let (listed, final_text) = check_published(&run.journal(), "ev/index.m3u8", "ev");
    assert!(!final_text.contains("PROGRAM-DATE-TIME"), "{final_text}");
    for seg in &listed {
        let kept = std::fs::read(run.spool.join(&seg.uri)).unwrap();
        assert_eq!(
            kept,
            std::fs::read(run.object(&format!("ev/{}", seg.uri))).unwrap()
        );
    }
    let names: Vec<String> = std::fs::read_dir(&run.spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let segments = names.iter().filter(|n| n.ends_with(".ts")).count();
    let metadata = names.iter().filter(|n| n.ends_with(".ts.meta")).count();
    assert_eq!(
        (segments, metadata),
        (listed.len(), listed.len()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with(".part")),
        "no partial files: {names:?}"
    );
}

#[test]
fn sigterm_ends_the_stream_cleanly_with_endlist() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let events = dir.path().join("events.jsonl");
    let mut source = live_source(60, "testsrc2");
    let mut child = Command::new(BIN)
        .arg("-")
        .arg("1")
        .arg(dir.path().join("spool"))
        .args(["live", "index.m3u8", ""])
        .arg(format!("file://{}", out.display()))
        .arg("")
        .arg("--events")
        .arg(&events)
        .stdin(source.stdout.take().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let playlist = out.join("index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&playlist).is_ok_and(|t| t.matches("#EXTINF").count() >= 3) {
        assert!(
            Instant::now() < deadline,
            "no playlist with three segments in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let live = std::fs::read_to_string(&playlist).unwrap();
    assert!(
        !live.contains("#EXT-X-ENDLIST"),
        "a live playlist has no ENDLIST yet"
    );
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let _ = source.kill();
    let _ = source.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        took < Duration::from_secs(5),
        "ended within a few seconds: {took:?}"
    );
    let last = std::fs::read_to_string(&playlist).unwrap();
    assert!(last.ends_with("#EXT-X-ENDLIST\n"), "{last}");
    assert!(decode(&playlist).0);
    // the journal ends as the run did, after the final version
    let journal = journal::read(&events);
    let ended = end(&journal);
    assert_eq!(ended.u64("code"), 0, "{}", ended.line);
    assert!(ended.is_null("error"));
    let published = journal.iter().rfind(|r| r.event() == "published").unwrap();
    assert_eq!(published.str("text"), last);
    assert_eq!(
        ended.u64("playlist_versions"),
        published.u64("version"),
        "{}",
        ended.line
    );
}

#[test]
fn the_event_journal_tells_the_run_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 8, 30, &[]);
    let out = dir.path().join("out");
    let events = dir.path().join("events.jsonl");
    // a segment prefix that JSON must escape: a quote, a backslash, and not ASCII
    let prefix = "q\"b\\\u{fc}";
    let output = Command::new(BIN)
        .args(["-", "2"])
        .arg(dir.path().join("spool"))
        .args([prefix, "index.m3u8", ""])
        .arg(format!("file://{}", out.display()))
        .args(["ev", "--events"])
        .arg(&events)
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let journal = journal::read(&events);

    // every line has its time, in RFC 3339 with microseconds, in order
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = journal
        .iter()
        .map(|r| {
            let t = r.str("t");
            assert_eq!(t.len(), "2026-01-02T03:04:05.000006Z".len(), "{t}");
            chrono::DateTime::parse_from_rfc3339(t).unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{journal:?}");

    // the segments: named with the prefix, numbered, each starting where the
    // one before ended, each stored with its bytes
    let segments: Vec<&Record> = journal.iter().filter(|r| r.event() == "segment").collect();
    assert_eq!(segments.len(), 4, "{journal:?}");
    for (i, seg) in segments.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(seg.str("name"), format!("{prefix}-{n:05}.ts"));
        assert_eq!(seg.u64("sequence"), n);
        assert!(!seg.bool("discontinuity") && !seg.bool("forced"));
        assert!(seg.opt_str("init").is_none());
        let file = out.join("ev").join(seg.str("name"));
        assert_eq!(std::fs::metadata(&file).unwrap().len(), seg.u64("bytes"));
        if i > 0 {
            let before = segments[i - 1];
            assert_eq!(
                seg.i64("start"),
                before.i64("start") + before.i64("duration")
            );
        }
        let key = format!("ev/{}", seg.str("name"));
        let stored = journal
            .iter()
            .find(|r| r.event() == "stored" && r.str("key") == key)
            .unwrap_or_else(|| panic!("{key} stored"));
        assert_eq!(stored.u64("bytes"), seg.u64("bytes"));
    }
    // each version was stored before one lists it (check_published), and
    // the last one's text, escapes and all, is the file's
    let (listed, final_text) = check_published(&journal, "ev/index.m3u8", "ev");
    assert_eq!(listed.len(), 4);
    assert_eq!(
        std::fs::read_to_string(out.join("ev/index.m3u8")).unwrap(),
        final_text
    );
    assert!(final_text.contains(&format!("\n{prefix}-00004.ts\n")));

    // the end, last, with the run's totals
    let ended = end(&journal);
    let versions = journal.iter().filter(|r| r.event() == "published").count() as u64;
    let sum = |key: &str| segments.iter().map(|s| s.i64(key)).sum::<i64>();
    assert_eq!(ended.u64("code"), 0);
    assert!(ended.is_null("error"));
    assert_eq!(ended.u64("segments_cut"), 4);
    assert_eq!(ended.u64("segments"), 4);
    assert_eq!(ended.u64("bytes"), sum("bytes") as u64);
    assert_eq!(ended.i64("media"), sum("duration"));
    assert_eq!(ended.u64("playlist_versions"), versions);
    assert_eq!(ended.u64("inits"), 0);
    assert_eq!(ended.u64("archive_versions"), 0);
    assert_eq!(
        ended.u64("bytes_in"),
        std::fs::metadata(&input).unwrap().len()
    );
}

#[test]
fn bad_command_lines_exit_2_with_one_line() {
    let cases: [&[&str]; 4] = [
        &["-", "0", "/tmp/s", "p", "i.m3u8", "", "file:///tmp/o", "k"],
        &["-", "10", "/tmp/s", "p", "i.m3u8", "", "file://rel", "k"],
        &[
            "-",
            "10",
            "/tmp/s",
            "p",
            "i.m3u8",
            "",
            "file:///tmp/o",
            "k/../x",
        ],
        &[
            "-",
            "10",
            "/tmp/s",
            "p",
            "i.m3u8",
            "",
            "file:///tmp/o",
            "k",
            "--window",
            "2",
        ],
    ];
    for args in cases {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("live_upload: error: "), "{stderr}");
    }
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for word in [
        "<INPUT>",
        "<SEGMENT_SECONDS>",
        "<KEY_PREFIX>",
        "--window",
        "--keep-spool",
        "ffmpeg",
    ] {
        assert!(text.contains(word), "--help mentions {word}");
    }
}

#[test]
fn a_read_error_publishes_what_arrived_and_exits_3() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    make_av(&input, 12, 30, &[]);
    let data = std::fs::read(&input).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/in.ts", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request).unwrap();
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            data.len()
        )
        .unwrap();
        conn.write_all(&data[..data.len() * 2 / 3]).unwrap();
        conn.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        // close with a reset, as a dying encoder or network does
        reset(&conn);
    });
    let out_dir = dir.path().join("out");
    let output = Command::new(BIN)
        .arg(&url)
        .arg("2")
        .arg(dir.path().join("spool"))
        .args(["live", "index.m3u8", ""])
        .arg(format!("file://{}", out_dir.display()))
        .arg("")
        .output()
        .unwrap();
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("error reading input"), "{}", errors[0]);
    let playlist = std::fs::read_to_string(out_dir.join("index.m3u8")).unwrap();
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    // two thirds of 12 s arrived: several 2 s segments before the reset
    assert!(playlist.matches("#EXTINF").count() >= 3, "{playlist}");
    assert!(decode(&out_dir.join("index.m3u8")).0);
}

#[test]
fn hevc_mpeg2_and_open_gop_h264_are_cut_on_their_keyframes() {
    // keyframes are read from the pictures' own bytes (libav's parsers are
    // off): IDR and CRA for HEVC, I pictures for MPEG-2, recovery points for
    // H.264 with open GOPs (no IDR after the first picture)
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        (
            "hevc",
            vec!["-c:v", "libx265", "-x265-params", "log-level=error"],
        ),
        ("mpeg2", vec!["-c:v", "mpeg2video", "-b:v", "1M"]),
        ("open-gop", vec!["-x264-params", "open-gop=1"]),
    ] {
        let input = dir.path().join(format!("{name}.ts"));
        make_av(&input, 8, 30, &extra);
        let run = run_file(&input, "2", &[]);
        assert_eq!(run.code(), Some(0), "{name}: {}", run.stderr());
        let (listed, _) = check_published(&run.journal(), "ev/index.m3u8", "ev");
        assert_eq!(listed.len(), 4, "{name}: {listed:?}");
        for (i, seg) in listed.iter().enumerate() {
            let flags = first_video_flags(&run.object(&format!("ev/{}", seg.uri))).unwrap();
            assert!(
                flags.starts_with('K'),
                "{name} {} starts with {flags}",
                seg.uri
            );
            // the first also holds the audio before the first picture
            if i > 0 && i + 1 < listed.len() {
                assert_close(seg.duration, 2.0, 0.001);
            }
        }
        assert_close(total(&listed), packet_span(&input), FRAME);
    }
}
