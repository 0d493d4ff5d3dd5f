//! The pipeline: demux the input with libav, let the [`cutter`] decide
//! where segments start (once, for every packager), hand each packet to the
//! packager ([`crate::package`]: the input's own TS bytes, or fMP4), and
//! announce each finished file to the publisher over the channel.
//!
//! libav (through ffmpeg-next) demuxes the input for its timestamps,
//! keyframe flags, packet positions and elementary stream bytes; its
//! parsers are off (see [`crate::codec::keyframe`]).

pub mod cutter;
pub mod ladder;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::media::Type as Media;

use crate::channel::Outbox;
use crate::codec::keyframe;
use crate::input::{avio, lock, source, InputBuffer};
use crate::journal;
pub use crate::media::SegmentReady;
use crate::media::{self, Event, MediaDuration, Packaging, RawPts};
use crate::package::fmp4::StreamKind;
use crate::package::ts::router::{self, ClosedSegment, Router};
use crate::package::{Demuxed, Finished, Fmp4Files, Packager, TsPackager};
use crate::spool;
use crate::timeline::TICKS_PER_SECOND;
use crate::ts;
use cutter::{Clock, Cutter, CutterConfig, PacketInfo};

pub struct SegmenterConfig {
    /// `-`, a file, or a URL.
    pub input: String,
    /// Target segment duration.
    pub target: MediaDuration,
    /// A segment is cut without a keyframe once it reaches this length
    /// and keyframes have stopped (see [`CutterConfig::max_segment`]).
    pub max_segment: MediaDuration,
    pub spool: PathBuf,
    pub segment_prefix: String,
    pub first_sequence: u64,
    pub first_discontinuity: bool,
    /// MPEG-TS program number to take; default the first.
    pub program: Option<u16>,
    pub input_timeout: Option<Duration>,
    /// The input, already opened (a standby's, with what it kept while
    /// waiting); `None`: open `input`.
    pub opened: Option<Box<dyn std::io::Read + Send>>,
    /// TS passthrough or fMP4/CMAF.
    pub packaging: Packaging,
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmenterError {
    #[error("cannot open input {input}: {reason}")]
    Open { input: String, reason: String },
    #[error("input is empty: no data arrived before the end of input")]
    Empty,
    #[error("input is not an MPEG-TS stream (libav found {0})")]
    NotTransportStream(String),
    #[error("input is not a recognizable media stream ({0})")]
    Unrecognized(String),
    #[error("input has no program {0} (programs: {1})")]
    NoSuchProgram(u16, String),
    #[error("input has no audio or video stream")]
    NoStreams,
    #[error("--format fmp4: {0}")]
    Unpackageable(String),
    #[error("--ladder: {0}")]
    Ladder(String),
    #[error("error reading input: {0}")]
    Read(String),
    #[error("cannot write segment to the spool directory: {0}")]
    Spool(#[from] std::io::Error),
    #[error("the uploader stopped")]
    UploaderGone,
}

/// What a finished run did.
#[derive(Debug, Default, Clone)]
pub struct SegmenterSummary {
    pub segments: u64,
    pub bytes_in: u64,
    /// The duration of the segments announced.
    pub media: MediaDuration,
    pub router: router::RouterStats,
}

struct StreamMeta {
    medium: Media,
    codec: keyframe::Codec,
    /// AAC's sample rate: its packets' durations are counted from their
    /// ADTS frames.
    aac_rate: Option<i64>,
    /// time_base as (num, den)
    time_base: (i64, i64),
    selected: bool,
    /// libav's codec name (`h264`, `aac`, `mp2`...).
    codec_name: String,
}

/// Segments the input until it ends, a stop is requested, or an error.
/// Segments finished before an error are still sent; the result says how the
/// run ended.
pub fn run(
    mut cfg: SegmenterConfig,
    tx: &Outbox,
    stop: Arc<AtomicBool>,
) -> Result<SegmenterSummary, (SegmenterError, SegmenterSummary)> {
    match open_input(&mut cfg, &stop) {
        Ok(source) => run_reader(source, cfg, tx, stop),
        Err(err) => Err((err, SegmenterSummary::default())),
    }
}

/// The input `cfg` names, or the one it was given already open.
pub(crate) fn open_input(
    cfg: &mut SegmenterConfig,
    stop: &Arc<AtomicBool>,
) -> Result<Box<dyn std::io::Read + Send>, SegmenterError> {
    if let Some(source) = cfg.opened.take() {
        return Ok(source);
    }
    source::open(&cfg.input, stop.clone(), cfg.input_timeout).map_err(|e| SegmenterError::Open {
        input: cfg.input.clone(),
        reason: e.to_string(),
    })
}

/// Like [`run`], reading from `source` (`cfg.input` only names it).
pub fn run_reader(
    source: Box<dyn std::io::Read + Send>,
    cfg: SegmenterConfig,
    tx: &Outbox,
    stop: Arc<AtomicBool>,
) -> Result<SegmenterSummary, (SegmenterError, SegmenterSummary)> {
    let mut run = Run {
        summary: SegmenterSummary::default(),
        announcer: Announcer {
            prefix: cfg.segment_prefix.clone(),
            packaging: cfg.packaging,
            skipped: 0,
        },
        tx,
    };
    let input = InputBuffer::shared();
    let mut opened = match avio::open(source, input.clone(), stop.clone()) {
        Ok(opened) => opened,
        Err(e) => return run.fail(open_error(e, &input, &cfg.input)),
    };
    let ictx = opened.input();
    let plan = match StreamPlan::of(ictx, cfg.program) {
        Ok(plan) => plan,
        Err(e) => return run.fail(e),
    };
    let mut packager = match packager(&cfg, &plan, input.clone()) {
        Ok(p) => p,
        Err(e) => return run.fail(e),
    };
    let mut cutter = Cutter::new(CutterConfig {
        target: cfg.target,
        anchor: plan.anchor,
        anchor_is_video: plan.anchor_is_video,
        streams: plan.streams.len(),
        max_segment: cfg.max_segment,
        first_sequence: cfg.first_sequence,
        first_discontinuity: cfg.first_discontinuity,
        clock: cfg.clock,
    });
    let ended_by = match run.demux(ictx, &plan, &input, &stop, &mut cutter, packager.as_mut()) {
        Ok(ended_by) => ended_by,
        Err(e) => {
            packager.abandon();
            return run.fail(e);
        }
    };
    run.summary.bytes_in = lock(&input).total;
    let last = match packager.finish(cutter.finish()) {
        Ok(last) => last,
        Err(e) => {
            packager.abandon();
            return run.fail(SegmenterError::Spool(e));
        }
    };
    run.summary.router = packager.stats();
    if let Err(e) = run.send(last) {
        return run.fail(e);
    }
    warn_about_skipped_input(run.summary.router, stop.load(Ordering::Relaxed));
    match ended_by {
        Some(e) => Err((e, run.summary)),
        None => Ok(run.summary),
    }
}

/// The program's streams as the segmenter takes them.
struct StreamPlan {
    program: Option<u16>,
    streams: Vec<StreamMeta>,
    /// The stream whose packets decide the cuts: the first video stream,
    /// else the first audio stream.
    anchor: usize,
    anchor_is_video: bool,
}

impl StreamPlan {
    fn of(ictx: &Input, program: Option<u16>) -> Result<StreamPlan, SegmenterError> {
        let format = ictx.format().name().to_string();
        if format != "mpegts" {
            return Err(SegmenterError::NotTransportStream(format));
        }
        let (program, streams) = select_program(ictx, program)?;
        let first = |medium| {
            streams
                .iter()
                .position(|s| s.selected && s.medium == medium)
        };
        let anchor = first(Media::Video)
            .or_else(|| first(Media::Audio))
            .ok_or(SegmenterError::NoStreams)?;
        let anchor_is_video = streams[anchor].medium == Media::Video;
        log::info!(
            "input: MPEG-TS program {}, {} stream(s), cutting on {} stream {}",
            program.map_or("(none)".to_string(), |p| p.to_string()),
            streams.iter().filter(|s| s.selected).count(),
            if anchor_is_video { "video" } else { "audio" },
            anchor
        );
        Ok(StreamPlan {
            program,
            streams,
            anchor,
            anchor_is_video,
        })
    }
}

/// The packager for `cfg.packaging`; fMP4 refuses, here at the start, a
/// selected audio or video stream whose codec it cannot carry.
fn packager(
    cfg: &SegmenterConfig,
    plan: &StreamPlan,
    input: Arc<Mutex<InputBuffer>>,
) -> Result<Box<dyn Packager>, SegmenterError> {
    let prefix = cfg.segment_prefix.clone();
    let packaging = cfg.packaging;
    let name = Box::new(move |n| media::segment::segment_name(&prefix, n, packaging));
    match cfg.packaging {
        Packaging::Ts => Ok(Box::new(TsPackager::new(Router::new(
            &cfg.spool,
            name,
            plan.program,
            input,
        )))),
        Packaging::Fmp4 => {
            let kinds = fmp4_kinds(plan);
            let packager = crate::package::fmp4::Fmp4Packager::new(&kinds)
                .map_err(|e| SegmenterError::Unpackageable(e.to_string()))?;
            Ok(Box::new(Fmp4Files::new(
                packager,
                input,
                &cfg.spool,
                &cfg.segment_prefix,
                name,
                !plan.anchor_is_video,
            )))
        }
    }
}

/// What each input stream is to the fMP4 packager: the cut-deciding video
/// stream and every selected audio stream are packaged; other video, data
/// and subtitle streams are left out, with a warning.
fn fmp4_kinds(plan: &StreamPlan) -> Vec<StreamKind> {
    plan.streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let packaged = s.selected
                && match s.medium {
                    Media::Video => i == plan.anchor,
                    Media::Audio => true,
                    _ => false,
                };
            if !packaged {
                if s.selected {
                    log::warn!(
                        "--format fmp4: stream {i} ({} {}) is left out",
                        medium_name(s.medium),
                        s.codec_name
                    );
                }
                return StreamKind::Ignore;
            }
            StreamKind::from_codec_name(&s.codec_name)
        })
        .collect()
}

fn medium_name(m: Media) -> &'static str {
    match m {
        Media::Video => "video",
        Media::Audio => "audio",
        Media::Subtitle => "subtitle",
        Media::Data => "data",
        _ => "other",
    }
}

fn warn_about_skipped_input(stats: router::RouterStats, stopped: bool) {
    if stats.truncated_bytes > 0 && !stopped {
        log::warn!(
            "the input ended in the middle of a TS packet ({} bytes left over)",
            stats.truncated_bytes
        );
        journal::warning::truncated_packet(stats.truncated_bytes);
    }
    if stats.unsynced_bytes + stats.error_packets > 0 {
        log::warn!(
            "skipped {} byte(s) out of packet sync and {} packet(s) flagged as errors",
            stats.unsynced_bytes,
            stats.error_packets
        );
        journal::warning::damaged_input(stats.unsynced_bytes, stats.error_packets);
    }
}

/// One run's progress: what it announced, and where it announces it.
struct Run<'a> {
    summary: SegmenterSummary,
    announcer: Announcer,
    tx: &'a Outbox,
}

impl Run<'_> {
    fn fail(
        self,
        e: SegmenterError,
    ) -> Result<SegmenterSummary, (SegmenterError, SegmenterSummary)> {
        Err((e, self.summary))
    }

    /// Finalizes finished files in the spool and announces them.
    fn send(&mut self, finished: Vec<Finished>) -> Result<(), SegmenterError> {
        for f in finished {
            let event = match f {
                Finished::Init { part, init } => {
                    log::debug!("init segment {} ready: {}", init.name, init.codecs);
                    spool::finalize_init(&part, &init)?;
                    journal::init(&init);
                    Event::Init(init)
                }
                Finished::Segment(c) => {
                    let Some(ev) = self.announcer.ready(c)? else {
                        continue;
                    };
                    self.summary.segments += 1;
                    self.summary.media += ev.duration;
                    Event::Segment(ev)
                }
            };
            if self.tx.send(event).is_err() {
                return Err(SegmenterError::UploaderGone);
            }
        }
        Ok(())
    }

    /// Reads packets until the input ends; each goes to the cutter, then to
    /// the packager. Returns the read error that ended the input, if one did.
    fn demux(
        &mut self,
        ictx: &mut Input,
        plan: &StreamPlan,
        input: &Mutex<InputBuffer>,
        stop: &AtomicBool,
        cutter: &mut Cutter,
        packager: &mut dyn Packager,
    ) -> Result<Option<SegmenterError>, SegmenterError> {
        loop {
            let packet = match read_packet(ictx, input, stop) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(None),
                Err(e) => return Ok(Some(e)),
            };
            let index = packet.stream();
            let Some(meta) = plan.streams.get(index).filter(|s| s.selected) else {
                continue;
            };
            let info = packet_info(&packet, index, meta, input);
            if let Some(cut) = cutter.observe(&info) {
                packager.on_cut(cut)?;
            }
            packager.on_packet(&Demuxed {
                info: &info,
                times: cutter.times(),
                data: packet.data().unwrap_or_default(),
                anchor: index == plan.anchor,
                hold: cutter.hold(),
            })?;
            let finished = packager.take_finished()?;
            self.send(finished)?;
        }
    }
}

/// The next packet of the input; `None` at its end (or once a stop was
/// asked for), the read error that ended it otherwise.
fn read_packet(
    ictx: &mut Input,
    input: &Mutex<InputBuffer>,
    stop: &AtomicBool,
) -> Result<Option<ffmpeg::Packet>, SegmenterError> {
    // a fresh packet each time: av_read_frame does not release what a
    // reused packet still holds, and dropping a packet unreferences it
    let mut packet = ffmpeg::Packet::empty();
    match packet.read(ictx) {
        Ok(()) => Ok(Some(packet)),
        Err(ffmpeg::Error::Eof) => Ok(None),
        Err(_) if stop.load(Ordering::Relaxed) => Ok(None),
        Err(e) => {
            let read_err = lock(input).error.take();
            Err(SegmenterError::Read(match read_err {
                Some(io) => io.to_string(),
                None => e.to_string(),
            }))
        }
    }
}

/// What the cutter needs of a demuxed packet: its position, its timestamps
/// in ticks, its duration and whether it is a keyframe.
fn packet_info(
    packet: &ffmpeg::Packet,
    index: usize,
    meta: &StreamMeta,
    input: &Mutex<InputBuffer>,
) -> PacketInfo {
    let pos = u64::try_from(packet.position()).ok();
    PacketInfo {
        stream: index,
        pos,
        pts: packet
            .pts()
            .map(|t| RawPts::new(to_ticks(t, meta.time_base))),
        dts: packet
            .dts()
            .map(|t| RawPts::new(to_ticks(t, meta.time_base))),
        // libav, without parsers, takes a PES packet of AAC for one frame
        duration: MediaDuration(
            match (meta.aac_rate, packet.data()) {
                (Some(rate), Some(data)) => keyframe::adts_frames(data)
                    .map(|n| i64::from(n) * 1024 * TICKS_PER_SECOND / rate),
                _ => None,
            }
            .unwrap_or_else(|| to_ticks(packet.duration(), meta.time_base)),
        ),
        key: match (meta.medium, packet.data()) {
            (Media::Video, Some(data)) => {
                keyframe::is_keyframe(meta.codec, data)
                    // other codecs: the flag the encoder's muxer set on the
                    // transport packet, or libav's
                    .or_else(|| lock(input).random_access_at(pos?))
                    .unwrap_or(false)
                    || packet.is_key()
            }
            _ => packet.is_key(),
        },
    }
}

/// Names, logs and finalizes each finished segment in the spool.
struct Announcer {
    prefix: String,
    packaging: Packaging,
    /// Segments not published so far.
    skipped: u64,
}

impl Announcer {
    /// The segment to announce for `c`, finalized in the spool; `None` for
    /// one that is not published.
    fn ready(&mut self, c: ClosedSegment) -> std::io::Result<Option<SegmentReady>> {
        let Some(t) = c.timing else {
            log::warn!(
                "segment {} has no timing; not published (the next segment takes its number)",
                c.sequence
            );
            std::fs::remove_file(&c.part)?;
            self.skipped += 1;
            return Ok(None);
        };
        // the router named the file after its own number; it is renamed below
        let sequence = c.sequence - self.skipped;
        let name = media::segment::segment_name(&self.prefix, sequence, self.packaging);
        let ev = SegmentReady {
            sequence,
            path: c.path.with_file_name(&name),
            name,
            bytes: c.bytes,
            start: t.start,
            duration: t.duration,
            discontinuity: t.discontinuity,
            program_date_time: t.program_date_time,
            packaging: self.packaging,
            init: c.init,
        };
        log::debug!(
            "segment {} ready: {} s, {} bytes{}{}",
            ev.name,
            ev.duration,
            ev.bytes,
            if t.discontinuity {
                ", after a discontinuity"
            } else {
                ""
            },
            if t.forced {
                ", no keyframe at its start"
            } else {
                ""
            }
        );
        spool::finalize(&c.part, &ev)?;
        journal::segment(&ev, t.forced);
        Ok(Some(ev))
    }
}

fn open_error(e: ffmpeg::Error, buffer: &Mutex<InputBuffer>, input: &str) -> SegmenterError {
    let mut state = lock(buffer);
    if let Some(io) = state.error.take() {
        return SegmenterError::Open {
            input: input.to_string(),
            reason: io.to_string(),
        };
    }
    if state.total == 0 {
        return SegmenterError::Empty;
    }
    let total = state.total;
    let reason = match e {
        ffmpeg::Error::InvalidData => format!("no known format in its first {total} bytes"),
        other => format!("{other} after {total} bytes"),
    };
    SegmenterError::Unrecognized(reason)
}

fn to_ticks(t: i64, (num, den): (i64, i64)) -> i64 {
    if num == 1 && den == TICKS_PER_SECOND {
        return t;
    }
    (i128::from(t) * i128::from(num) * i128::from(TICKS_PER_SECOND) / i128::from(den.max(1))) as i64
}

/// Picks the program (the first, or the one asked for) and describes every
/// stream, marking those of that program.
fn select_program(
    ictx: &Input,
    wanted: Option<u16>,
) -> Result<(Option<u16>, Vec<StreamMeta>), SegmenterError> {
    let programs = programs(ictx);
    let chosen = match wanted {
        Some(w) => Some(programs.iter().find(|p| p.0 == w).ok_or_else(|| {
            let list: Vec<String> = programs.iter().map(|p| p.0.to_string()).collect();
            SegmenterError::NoSuchProgram(w, list.join(", "))
        })?),
        None => programs.first(),
    };
    if programs.len() > 1 {
        log::info!(
            "input has {} programs; taking program {} (choose with --program)",
            programs.len(),
            chosen.map_or(0, |p| p.0)
        );
    }
    let streams = ictx
        .streams()
        .map(|s| {
            let tb = s.time_base();
            let params = s.parameters();
            let codec = match params.id() {
                ffmpeg::codec::Id::H264 => keyframe::Codec::H264,
                ffmpeg::codec::Id::HEVC => keyframe::Codec::Hevc,
                ffmpeg::codec::Id::MPEG2VIDEO => keyframe::Codec::Mpeg2,
                _ => keyframe::Codec::Other,
            };
            // SAFETY: the parameters belong to a stream of the open input.
            let rate = i64::from(unsafe { (*params.as_ptr()).sample_rate });
            let aac_rate = (params.id() == ffmpeg::codec::Id::AAC && rate > 0).then_some(rate);
            StreamMeta {
                medium: params.medium(),
                codec,
                aac_rate,
                time_base: (i64::from(tb.numerator()), i64::from(tb.denominator())),
                selected: chosen.is_none_or(|p| p.1.contains(&s.index())),
                codec_name: params.id().name().to_string(),
            }
        })
        .collect();
    Ok((chosen.map(|p| p.0), streams))
}

/// (program number, stream indexes) of every program libav found.
fn programs(ictx: &Input) -> Vec<(u16, Vec<usize>)> {
    let mut out = Vec::new();
    // SAFETY: reads the format context's program table, which libav keeps
    // valid for the context's lifetime; nothing is retained.
    unsafe {
        let ctx = ictx.as_ptr();
        for i in 0..(*ctx).nb_programs as usize {
            let p = *(*ctx).programs.add(i);
            if p.is_null() {
                continue;
            }
            let n = (*p).nb_stream_indexes as usize;
            let indexes = if n == 0 || (*p).stream_index.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts((*p).stream_index, n)
                    .iter()
                    .map(|&i| i as usize)
                    .collect()
            };
            out.push(((*p).program_num as u16, indexes));
        }
    }
    out
}

/// Segments `data` held in memory into `spool` with 1 s targets and returns
/// the segments cut, checking what must hold for any input: every segment
/// file exists with the size announced, whole TS packets, and durations are
/// not negative. For the fuzzer and its regression tests.
pub fn segment_in_memory(
    data: &[u8],
    spool: &std::path::Path,
) -> Result<Vec<SegmentReady>, SegmenterError> {
    let (outbox, inbox) = crate::channel::bounded(1 << 16);
    let cfg = SegmenterConfig {
        input: "memory".into(),
        target: MediaDuration(TICKS_PER_SECOND),
        max_segment: MediaDuration(4 * TICKS_PER_SECOND),
        spool: spool.to_path_buf(),
        segment_prefix: "fuzz".into(),
        first_sequence: 1,
        first_discontinuity: false,
        program: None,
        input_timeout: None,
        opened: None,
        packaging: Packaging::Ts,
        clock: Box::new(chrono::Utc::now),
    };
    let source = Box::new(std::io::Cursor::new(data.to_vec()));
    let result = run_reader(source, cfg, &outbox, Arc::new(AtomicBool::new(false)));
    drop(outbox);
    let mut segments = Vec::new();
    loop {
        let seg = match inbox.try_recv() {
            crate::channel::Received::Segment(seg) => seg,
            crate::channel::Received::Init(_) => continue,
            _ => break,
        };
        let len = std::fs::metadata(&seg.path).map(|m| m.len()).ok();
        assert_eq!(
            len,
            Some(seg.bytes),
            "{} holds what was announced",
            seg.name
        );
        assert_eq!(
            seg.bytes % ts::PACKET_SIZE as u64,
            0,
            "{} is whole packets",
            seg.name
        );
        assert!(
            seg.duration >= MediaDuration::ZERO,
            "{} has a duration",
            seg.name
        );
        segments.push(seg);
    }
    result.map(|_| segments).map_err(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_segment_without_timing_leaves_no_file_and_no_gap_in_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let closed = |sequence: u64, timing: Option<cutter::SegmentTiming>| {
            let name = media::segment::segment_name("live", sequence, Packaging::Ts);
            let part = dir.path().join(format!("{name}.part"));
            std::fs::write(&part, [ts::SYNC_BYTE; ts::PACKET_SIZE]).unwrap();
            ClosedSegment {
                sequence,
                part,
                path: dir.path().join(name),
                bytes: ts::PACKET_SIZE as u64,
                timing,
                init: None,
            }
        };
        let timing = cutter::SegmentTiming {
            sequence: 8,
            start: media::MediaTime(0),
            duration: MediaDuration(2 * TICKS_PER_SECOND),
            discontinuity: false,
            program_date_time: Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap(),
            forced: false,
        };
        let mut announcer = Announcer {
            prefix: "live".into(),
            packaging: Packaging::Ts,
            skipped: 0,
        };
        assert_eq!(announcer.ready(closed(7, None)).unwrap(), None);
        let ev = announcer.ready(closed(8, Some(timing))).unwrap().unwrap();
        assert_eq!(
            (ev.sequence, ev.name.as_str(), ev.path.clone()),
            (7, "live-00007.ts", dir.path().join("live-00007.ts")),
            "the next segment takes the unused number"
        );
        let mut spooled: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        spooled.sort();
        assert_eq!(spooled, ["live-00007.ts", "live-00007.ts.meta"]);
        assert_eq!(std::fs::read(&ev.path).unwrap().len(), ts::PACKET_SIZE);
    }
}
