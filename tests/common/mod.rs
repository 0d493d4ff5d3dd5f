//! Helpers shared by the integration tests: test streams made with ffmpeg,
//! runs of the binary, and the RFC 8216 checks applied to every playlist
//! version a run published.

#![allow(dead_code)]

pub mod cmaf;
pub mod garage;
pub mod http;
pub mod journal;
pub mod proxy;
pub mod server;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_live_upload");

/// Runs ffmpeg with `args` (after `-hide_banner -loglevel error -y`) and
/// panics with its stderr when it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 320x240 test pattern with a tone, encoded to MPEG-TS at `path`.
/// `extra` go before the output file (codec options, offsets).
pub fn make_av(path: &Path, seconds: u32, gop: u32, extra: &[&str]) {
    make_av_sized(path, "320x240", seconds, gop, extra);
}

/// Like [`make_av`], with pictures of `size` (`WxH`).
pub fn make_av_sized(path: &Path, size: &str, seconds: u32, gop: u32, extra: &[&str]) {
    let t = seconds.to_string();
    let g = gop.to_string();
    let pattern = format!("testsrc2=size={size}:rate=30");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &pattern,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &t,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        &g,
        "-keyint_min",
        &g,
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "mpegts", path.to_str().unwrap()]);
    ffmpeg(&args);
}

/// Runs ffprobe quietly with `args` on `path`; returns its standard output.
pub fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/setup.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The duration libav reports for a file or playlist, in seconds.
pub fn probe_duration(path: &Path) -> f64 {
    let out = ffprobe(
        path,
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {}", path.display()))
}

/// The span of a stream's packets in seconds: from the earliest PTS to the
/// latest PTS plus duration, over every packet of every stream. (ffprobe's
/// format duration stops at the last PES's PTS, short of the audio frames
/// packed after it.) Not meaningful across a timestamp wrap or reset.
pub fn packet_span(path: &Path) -> f64 {
    let out = ffprobe(
        path,
        &["-show_entries", "packet=pts,duration", "-of", "csv=p=0"],
    );
    let (mut first, mut end) = (i64::MAX, i64::MIN);
    for line in out.lines() {
        let mut fields = line.split(',').map(str::parse::<i64>);
        let (Some(Ok(pts)), Some(Ok(dur))) = (fields.next(), fields.next()) else {
            continue;
        };
        first = first.min(pts);
        end = end.max(pts + dur);
    }
    assert!(first < end, "no packets in {}", path.display());
    (end - first) as f64 / 90_000.0
}

/// codec_type of every stream of a file, in index order.
pub fn probe_streams(path: &Path) -> Vec<String> {
    let out = ffprobe(
        path,
        &["-show_entries", "stream=index,codec_type", "-of", "csv=p=0"],
    );
    // ffprobe lists streams once per program and once globally
    let mut streams: Vec<(u32, String)> = out
        .lines()
        .filter_map(|l| {
            let (index, kind) = l.trim().trim_end_matches(',').split_once(',')?;
            Some((index.parse().ok()?, kind.to_string()))
        })
        .collect();
    streams.sort();
    streams.dedup();
    streams.into_iter().map(|(_, kind)| kind).collect()
}

/// The PTS in seconds of the first packet of each AAC audio stream and of
/// the first video stream of a file: `(video, [audio...])`.
pub fn first_pts(path: &Path) -> (Option<f64>, Vec<f64>) {
    let streams = ffprobe(
        path,
        &[
            "-show_entries",
            "stream=index,codec_type,codec_name",
            "-of",
            "csv=p=0",
        ],
    );
    let kinds: std::collections::BTreeMap<String, String> = streams
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().trim_end_matches(',').split(',');
            let (index, name, kind) = (f.next()?, f.next()?, f.next()?);
            Some((index.to_string(), format!("{kind}/{name}")))
        })
        .collect();
    let packets = ffprobe(
        path,
        &[
            "-show_entries",
            "packet=stream_index,pts_time",
            "-of",
            "csv=p=0",
        ],
    );
    let mut firsts: std::collections::BTreeMap<String, f64> = Default::default();
    for line in packets.lines() {
        let Some((index, pts)) = line.trim().trim_end_matches(',').split_once(',') else {
            continue;
        };
        if let Ok(t) = pts.parse() {
            firsts.entry(index.to_string()).or_insert(t);
        }
    }
    let of = |want: &str| -> Vec<f64> {
        firsts
            .iter()
            .filter(|(i, _)| kinds.get(*i).is_some_and(|k| k.starts_with(want)))
            .map(|(_, &t)| t)
            .collect()
    };
    (of("video/").first().copied(), of("audio/aac"))
}

/// The flags of the first video packet of a file (e.g. `K__`), if it has video.
pub fn first_video_flags(path: &Path) -> Option<String> {
    let args = [
        "-select_streams",
        "v:0",
        "-read_intervals",
        "%+#1",
        "-show_entries",
        "packet=flags",
        "-of",
        "csv=p=0",
    ];
    ffprobe(path, &args).lines().next().map(str::to_string)
}

/// Asserts that two durations in seconds differ by at most `tolerance`.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} s is not within {tolerance} s of {expected} s"
    );
}

/// Decodes a file or playlist completely; returns ffmpeg's error output
/// (empty when clean) and whether it succeeded.
pub fn decode(path: &Path) -> (bool, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct Run {
    pub dir: tempfile::TempDir,
    pub out: PathBuf,
    pub spool: PathBuf,
    /// The run's event journal (`--events`).
    pub events: PathBuf,
    pub output: Output,
}

impl Run {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// What the run did, from its event journal.
    pub fn journal(&self) -> Vec<Record> {
        journal::read(&self.events)
    }
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn object(&self, key: &str) -> PathBuf {
        self.out.join(key)
    }
}

/// Pipes `input` into the binary with a `file://` destination, an event
/// journal and debug logging (shown when a test fails). `args` are the
/// options after the eight positionals; the positionals use segment prefix
/// `live`, index `index.m3u8`, key prefix `ev`.
pub fn run_file(input: &Path, seconds: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spool = dir.path().join("spool");
    let events = dir.path().join("events.jsonl");
    let dest = format!("file://{}", out.display());
    let output = Command::new(BIN)
        .args(["-", seconds])
        .arg(&spool)
        .args(["live", "index.m3u8", "", &dest, "ev"])
        .arg("--events")
        .arg(&events)
        .args(args)
        .env("RUST_LOG", "live_upload=debug")
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Run {
        dir,
        out,
        spool,
        events,
        output,
    }
}

pub use journal::Record;

/// What the publisher did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Stored(String),
    Published { key: String, text: String },
}

/// The `stored` and `published` events of a journal.
pub fn events(journal: &[Record]) -> Vec<Event> {
    journal
        .iter()
        .filter_map(|r| match r.event() {
            "stored" => Some(Event::Stored(r.str("key").to_string())),
            "published" => Some(Event::Published {
                key: r.str("key").to_string(),
                text: r.str("text").to_string(),
            }),
            _ => None,
        })
        .collect()
}

/// The warnings of `kind` in a journal.
pub fn warnings<'a>(journal: &'a [Record], kind: &str) -> Vec<&'a Record> {
    journal
        .iter()
        .filter(|r| r.warning() == Some(kind))
        .collect()
}

/// The journal's last line, the `end` event.
pub fn end(journal: &[Record]) -> &Record {
    let last = journal.last().expect("an event journal with lines");
    assert_eq!(last.event(), "end", "the last event: {}", last.line);
    last
}

/// Ticks of the 90 kHz clock as seconds.
pub fn secs(ticks: i64) -> f64 {
    ticks as f64 / 90_000.0
}

/// A duration in seconds as EXTINF gives it: ticks rounded to the
/// millisecond, halves up.
pub fn extinf(duration: f64) -> f64 {
    let ticks = (duration * 90_000.0).round() as i64;
    (ticks * 1000 + 45_000).div_euclid(90_000) as f64 / 1000.0
}

/// One segment as seen in the playlists.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub sequence: u64,
    pub uri: String,
    pub duration: f64,
    pub discontinuity: bool,
}

/// Every segment the segmenter cut, in order, from the journal's `segment`
/// events; durations in seconds, unrounded.
pub fn cut_segments(journal: &[Record]) -> Vec<Listed> {
    journal
        .iter()
        .filter(|r| r.event() == "segment")
        .map(|r| Listed {
            sequence: r.u64("sequence"),
            uri: r.str("name").to_string(),
            duration: secs(r.i64("duration")),
            discontinuity: r.bool("discontinuity"),
        })
        .collect()
}

/// Checks a run's playlists (see [`check_playlists`]) against what the
/// segmenter cut: every listed segment was cut, with the same duration
/// (rounded as EXTINF) and discontinuity, and the final version ends with
/// the last segment cut. Returns every segment cut and the final playlist.
pub fn check_published(
    journal: &[Record],
    index_key: &str,
    key_prefix: &str,
) -> (Vec<Listed>, String) {
    let (listed, final_text) = check_playlists(&events(journal), index_key, key_prefix);
    let cut = cut_segments(journal);
    for l in &listed {
        let c = cut
            .iter()
            .find(|c| c.uri == l.uri)
            .unwrap_or_else(|| panic!("{} listed but not cut", l.uri));
        assert_eq!(
            (extinf(c.duration), c.discontinuity),
            (l.duration, l.discontinuity),
            "{}",
            l.uri
        );
    }
    let last = cut.last().expect("segments were cut");
    assert!(
        final_text.contains(&format!("\n{}\n", last.uri)),
        "the final version lists {}",
        last.uri
    );
    (cut, final_text)
}

/// Checks every published version of the playlist at `index_key` against
/// RFC 8216 and the ordering guarantee; returns every segment ever listed,
/// in order, and the last version's text.
pub fn check_playlists(
    events: &[Event],
    index_key: &str,
    key_prefix: &str,
) -> (Vec<Listed>, String) {
    let mut stored = HashSet::new();
    let mut all: Vec<Listed> = Vec::new();
    let mut last_target = 0u64;
    let mut last_seq = 0u64;
    let mut last_disc_seq = 0u64;
    let mut last_text = String::new();
    let mut versions = 0;
    for ev in events {
        let (key, text) = match ev {
            Event::Stored(k) => {
                stored.insert(k.clone());
                continue;
            }
            Event::Published { key, text } => (key, text),
        };
        if key != index_key {
            continue;
        }
        versions += 1;
        assert!(
            !last_text.contains("#EXT-X-ENDLIST"),
            "a version after ENDLIST:\n{text}"
        );
        let pl = match m3u8_rs::parse_media_playlist_res(text.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("version {versions} does not parse ({e:?}):\n{text}"),
        };
        // fMP4 playlists name their init segments with EXT-X-MAP, which
        // needs version 6; TS playlists need 3 (decimal EXTINF)
        let mapped = text.contains("#EXT-X-MAP:");
        let version = if mapped { 6 } else { 3 };
        assert!(
            text.starts_with(&format!("#EXTM3U\n#EXT-X-VERSION:{version}\n")),
            "{text}"
        );
        if mapped {
            assert!(
                text.find("#EXT-X-MAP:") < text.find("#EXTINF:"),
                "EXT-X-MAP comes before the first segment:\n{text}"
            );
        }
        assert!(
            pl.playlist_type.is_none(),
            "a live playlist has no PLAYLIST-TYPE"
        );
        assert!(
            pl.target_duration >= last_target,
            "TARGETDURATION decreased:\n{text}"
        );
        last_target = pl.target_duration;
        assert!(
            pl.media_sequence >= last_seq,
            "MEDIA-SEQUENCE went backwards:\n{text}"
        );
        assert!(pl.discontinuity_sequence >= last_disc_seq);
        // segments that left the window raise the sequences accordingly; a
        // version may slide past segments no published version listed (a
        // catch-up after an outage), whose tags are then unknown
        let slid = pl.media_sequence - last_seq;
        let removed: Vec<&Listed> = all
            .iter()
            .filter(|l| l.sequence >= last_seq && l.sequence < pl.media_sequence)
            .collect();
        let unseen = if versions > 1 {
            slid - removed.len() as u64
        } else {
            0
        };
        let removed_disc = removed.iter().filter(|l| l.discontinuity).count() as u64;
        assert!(
            pl.discontinuity_sequence >= last_disc_seq + removed_disc
                && pl.discontinuity_sequence <= last_disc_seq + removed_disc + unseen,
            "DISCONTINUITY-SEQUENCE counts the removed discontinuities:\n{text}"
        );
        if unseen == 0 && versions > 1 {
            assert_eq!(
                pl.discontinuity_sequence,
                last_disc_seq + removed_disc,
                "{text}"
            );
        }
        last_disc_seq = pl.discontinuity_sequence;
        last_seq = pl.media_sequence;
        let min_total = 3.0 * pl.target_duration as f64;
        let total: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
        if pl.media_sequence > all.first().map_or(pl.media_sequence, |f| f.sequence) {
            assert!(
                total >= min_total - 0.001,
                "window below three target durations:\n{text}"
            );
        }
        let extinf: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXTINF:")).collect();
        assert_eq!(extinf.len(), pl.segments.len());
        for line in &extinf {
            let value = &line["#EXTINF:".len()..line.len() - 1];
            let decimals = value.split('.').nth(1).map_or(0, str::len);
            assert_eq!(decimals, 3, "EXTINF with three decimals: {line}");
        }
        let dated = pl
            .segments
            .iter()
            .filter(|s| s.program_date_time.is_some())
            .count();
        assert!(
            dated == 0 || dated == pl.segments.len(),
            "PROGRAM-DATE-TIME on all segments or none"
        );
        for (i, pair) in pl.segments.windows(2).enumerate() {
            let (Some(a), Some(b)) = (pair[0].program_date_time, pair[1].program_date_time) else {
                continue;
            };
            let step = (b - a).num_milliseconds() as f64 / 1000.0;
            let extinf: f64 = extinf[i]["#EXTINF:".len()..extinf[i].len() - 1]
                .parse()
                .unwrap();
            if !pair[1].discontinuity {
                assert!(
                    (step - extinf).abs() <= 0.002,
                    "PROGRAM-DATE-TIME advances by EXTINF:\n{text}"
                );
            } else {
                assert!(
                    step >= extinf - 0.002,
                    "PROGRAM-DATE-TIME never goes back:\n{text}"
                );
            }
        }
        for (i, seg) in pl.segments.iter().enumerate() {
            let secs: f64 = extinf[i]["#EXTINF:".len()..extinf[i].len() - 1]
                .parse()
                .unwrap();
            assert!(
                (secs + 0.5).floor() as u64 <= pl.target_duration,
                "EXTINF {secs} rounds above TARGETDURATION {}:\n{text}",
                pl.target_duration
            );
            let key = if key_prefix.is_empty() {
                seg.uri.clone()
            } else {
                format!("{key_prefix}/{}", seg.uri)
            };
            assert!(
                stored.contains(&key),
                "{key} listed before it was stored:\n{text}"
            );
            if let Some(map) = &seg.map {
                let key = if key_prefix.is_empty() {
                    map.uri.clone()
                } else {
                    format!("{key_prefix}/{}", map.uri)
                };
                assert!(
                    stored.contains(&key),
                    "init segment {key} named before it was stored:\n{text}"
                );
            }
            let sequence = pl.media_sequence + i as u64;
            let listed = Listed {
                sequence,
                uri: seg.uri.clone(),
                duration: secs,
                discontinuity: seg.discontinuity,
            };
            match all.iter().find(|l| l.sequence == sequence) {
                Some(prev) => assert_eq!(prev, &listed, "a listed segment changed"),
                None => {
                    if let Some(last) = all.last() {
                        assert!(last.sequence < sequence, "segments are listed in order");
                    }
                    all.push(listed);
                }
            }
        }
        last_text = text.clone();
    }
    assert!(versions > 0, "no playlist version was published");
    assert!(
        last_text.ends_with("#EXT-X-ENDLIST\n"),
        "final version has ENDLIST:\n{last_text}"
    );
    (all, last_text)
}

/// A live encode at real speed on stdout: 320x240 test pattern and tone,
/// a keyframe every second.
pub fn live_source(seconds: u32, pattern: &str) -> std::process::Child {
    live_source_sized(seconds, pattern, "320x240")
}

/// [`live_source`] of another picture size (`640x360`).
pub fn live_source_sized(seconds: u32, pattern: &str, size: &str) -> std::process::Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("{pattern}=size={size}:rate=30"))
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
        ])
        .arg(seconds.to_string())
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "mpegts",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Closes a connection with a TCP reset (SO_LINGER 0), as a failing network does.
pub fn reset(conn: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a correctly sized value.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
}
