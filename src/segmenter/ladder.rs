//! `--ladder`: several renditions cut in step. The cutter decides once, on
//! the input's first video stream; every rendition follows its cuts:
//!
//! - `source`: the input as it is, through the same packagers as without a
//!   ladder (TS passthrough, or fMP4 of the video alone);
//! - an encoded rung: the [`Transcoder`] decodes the source once and
//!   encodes each rung with an IDR forced at every cut's time; its
//!   pictures, which come out of the encoder late, are put into segments by
//!   time ([`TimedSegments`]);
//! - `streams`: each video stream of the input, its own bytes, likewise by
//!   time: a stream whose keyframe at a cut is further than half a frame
//!   from it is left out, never published misaligned;
//! - with fMP4, audio is one rendition of its own that every variant
//!   shares (EXT-X-MEDIA), cut at the same times.
//!
//! The [`Gate`] hands a segment number to the publishers only once every
//! rendition has finished it, each file in its rendition's spool folder, so
//! that a restart finds every rendition at the same number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};

use ffmpeg_next::format::context::Input;
use ffmpeg_next::media::Type as Media;

use super::cutter::{Cutter, CutterConfig};
use super::{
    medium_name, open_error, packet_info, read_packet, Announcer, SegmenterConfig, SegmenterError,
    SegmenterSummary, StreamMeta, StreamPlan,
};
use crate::channel::Outbox;
use crate::codec::keyframe;
use crate::input::{avio, lock, InputBuffer};
use crate::journal;
use crate::master::{self, VideoKind};
use crate::media::cut::{Cut, PacketInfo, SegmentTiming};
use crate::media::{
    self, Event, LadderEvent, LadderSpec, MediaTime, Packaging, RenditionLayout, Rung,
};
use crate::package::fmp4::{Fmp4Packager, StreamKind};
use crate::package::mux::{Ready, Sample, TimedCut, TimedSegments, TsMuxer};
use crate::package::ts::router::{ClosedSegment, Router};
use crate::package::{Demuxed, Finished, Fmp4Files, Packager, TsPackager};
use crate::spool;
use crate::timeline::TICKS_PER_SECOND;
use crate::transcode::{
    segment_peak_bps, Encoded, RungSpec, TranscodeError, TranscodeSettings, Transcoder,
};

/// What the segmenter needs to run a ladder besides its configuration.
pub struct LadderRun {
    pub spec: LadderSpec,
    pub preset: String,
    /// The layout goes to the publisher once the input is known...
    pub layout: mpsc::Sender<Vec<RenditionLayout>>,
    /// ...which answers with where each rendition's segments go and where
    /// numbering starts (or drops the sender: nothing is published).
    pub start: mpsc::Receiver<Start>,
    /// Codecs, segment sizes and dropped renditions, for the master.
    pub events: tokio::sync::mpsc::UnboundedSender<LadderEvent>,
}

/// The publisher's answer to the layout.
pub struct Start {
    pub first_sequence: u64,
    pub first_discontinuity: bool,
    /// One per rendition of the layout, in its order.
    pub outboxes: Vec<Outbox>,
}

/// An audio stream as the timed renditions carry it.
#[derive(Debug, Clone)]
struct AudioTrack {
    stream: usize,
    /// ADTS AAC's sample rate (its packets are split into timed frames).
    aac_rate: Option<u32>,
    /// The PMT stream type our TS muxer writes for it.
    stream_type: u8,
    codec_name: String,
}

/// How a rendition is made.
enum Maker {
    /// Follows the cutter's byte positions, like a run without a ladder.
    Direct(Box<dyn Packager>),
    /// Fed samples, cut by time.
    Timed(Box<Timed>),
}

/// What a timed rendition writes its segments as.
enum Sink {
    Ts(TsMuxer),
    /// An [`Fmp4Files`] fed segment by segment.
    Fmp4(Box<Fmp4Files>),
}

struct Timed {
    segments: TimedSegments,
    sink: Sink,
    spool: PathBuf,
    name: Box<dyn Fn(u64) -> String + Send>,
    tolerance: i64,
}

/// What feeds a rendition's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoFrom {
    /// The input's cut-deciding stream, as it is.
    Source,
    /// The transcoder's rung.
    Rung(usize),
    /// The input's stream of this index.
    Stream(usize),
    /// No video: the fMP4 audio rendition.
    None,
}

struct Rendition {
    layout: RenditionLayout,
    maker: Maker,
    video: VideoFrom,
    video_kind: Option<VideoKind>,
    /// The audio tracks it carries (indexes into the run's audio tracks).
    audio: Vec<usize>,
    codecs: Codecs,
}

/// A rendition's codecs, read from the first samples.
#[derive(Default)]
struct Codecs {
    video: Option<String>,
    audio: Option<String>,
    sent: bool,
}

/// Segments a ladder: like [`super::run`], for several renditions.
pub fn run_ladder(
    cfg: SegmenterConfig,
    ladder: LadderRun,
    stop: Arc<AtomicBool>,
) -> Result<SegmenterSummary, (SegmenterError, SegmenterSummary)> {
    let mut summary = SegmenterSummary::default();
    match segment_ladder(cfg, ladder, &mut summary, stop) {
        Ok(()) => Ok(summary),
        Err(e) => Err((e, summary)),
    }
}

fn segment_ladder(
    mut cfg: SegmenterConfig,
    ladder: LadderRun,
    tx_summary: &mut SegmenterSummary,
    stop: Arc<AtomicBool>,
) -> Result<(), SegmenterError> {
    let source = super::open_input(&mut cfg, &stop)?;
    let input = InputBuffer::shared();
    let mut opened = avio::open(source, input.clone(), stop.clone())
        .map_err(|e| open_error(e, &input, &cfg.input))?;
    let ictx = opened.input();
    let plan = StreamPlan::of(ictx, cfg.program)?;
    if !plan.anchor_is_video {
        return Err(SegmenterError::Ladder(
            "the input has no video stream to make a ladder of".into(),
        ));
    }
    let tracks = audio_tracks(&plan, cfg.packaging);
    let mut transcoder = None;
    let renditions = layout(&cfg, &ladder, ictx, &plan, &tracks, &input, &mut transcoder)?;
    if ladder
        .layout
        .send(renditions.iter().map(|r| r.layout.clone()).collect())
        .is_err()
    {
        return Err(SegmenterError::UploaderGone);
    }
    let Ok(start) = ladder.start.recv() else {
        return Err(SegmenterError::UploaderGone);
    };
    let mut run = LadderLoop {
        gate: Gate::new(&cfg, &renditions, start.outboxes, ladder.events.clone()),
        renditions,
        transcoder,
        tracks,
        plan_anchor: plan.anchor,
        events: ladder.events,
        releases_input: true,
    };
    run.releases_input = !run
        .renditions
        .iter()
        .any(|r| r.video == VideoFrom::Source && cfg.packaging == Packaging::Ts);
    let mut cutter = Cutter::new(CutterConfig {
        target: cfg.target,
        anchor: plan.anchor,
        anchor_is_video: true,
        streams: plan.streams.len(),
        max_segment: cfg.max_segment,
        first_sequence: start.first_sequence,
        first_discontinuity: start.first_discontinuity,
        clock: cfg.clock,
    });
    let ended = run.demux(ictx, &plan, &input, &stop, &mut cutter);
    tx_summary.bytes_in = lock(&input).total;
    let ended_by = match ended {
        Ok(e) => e,
        Err(e) => {
            run.abandon();
            *tx_summary = run.gate.summary.clone();
            return Err(e);
        }
    };
    let finished = run.finish(cutter.finish());
    let bytes_in = tx_summary.bytes_in;
    *tx_summary = run.gate.summary.clone();
    tx_summary.bytes_in = bytes_in;
    finished?;
    match ended_by {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The selected audio streams a ladder carries: every one with TS (as the
/// input has them), the first AAC one with fMP4 (its audio rendition).
fn audio_tracks(plan: &StreamPlan, packaging: Packaging) -> Vec<AudioTrack> {
    let mut out = Vec::new();
    for (i, s) in plan.streams.iter().enumerate() {
        if !s.selected || s.medium != Media::Audio {
            continue;
        }
        let stream_type = match s.codec_name.as_str() {
            "aac" => 0x0f,
            "mp2" | "mp1" | "mp3" => 0x03,
            "ac3" => 0x81,
            "eac3" => 0x87,
            _ => 0,
        };
        let usable = match packaging {
            Packaging::Ts => stream_type != 0,
            Packaging::Fmp4 => s.codec_name == "aac" && out.is_empty(),
        };
        if !usable {
            log::warn!("--ladder: audio stream {i} ({}) is left out", s.codec_name);
            continue;
        }
        out.push(AudioTrack {
            stream: i,
            aac_rate: s.aac_rate.and_then(|r| u32::try_from(r).ok()),
            stream_type,
            codec_name: s.codec_name.clone(),
        });
    }
    out
}

/// The input stream's picture size and frame rate, as libav reads them.
fn video_facts(ictx: &Input, index: usize) -> (Option<(u32, u32)>, Option<f64>) {
    let Some(stream) = ictx.stream(index) else {
        return (None, None);
    };
    // SAFETY: the parameters belong to a stream of the open input.
    let (w, h) = unsafe {
        let p = stream.parameters().as_ptr();
        ((*p).width, (*p).height)
    };
    let rate = stream.avg_frame_rate();
    let fps = (rate.denominator() > 0 && rate.numerator() > 0)
        .then(|| f64::from(rate.numerator()) / f64::from(rate.denominator()));
    let size = (w > 0 && h > 0).then_some((w as u32, h as u32));
    (size, fps)
}

/// The renditions the spec asks for, refused here at the start when the
/// input cannot give them (a rung above its height, `streams` with one
/// video stream).
fn layout(
    cfg: &SegmenterConfig,
    ladder: &LadderRun,
    ictx: &Input,
    plan: &StreamPlan,
    tracks: &[AudioTrack],
    input: &Arc<Mutex<InputBuffer>>,
    transcoder: &mut Option<Transcoder>,
) -> Result<Vec<Rendition>, SegmenterError> {
    let all_audio: Vec<usize> = match cfg.packaging {
        Packaging::Ts => (0..tracks.len()).collect(),
        Packaging::Fmp4 => Vec::new(),
    };
    let frame = |fps: Option<f64>| {
        fps.map_or(TICKS_PER_SECOND / 60, |f| {
            (TICKS_PER_SECOND as f64 / f) as i64
        })
    };
    let mut out = Vec::new();
    match &ladder.spec {
        LadderSpec::Rungs(rungs) => {
            let (size, fps) = video_facts(ictx, plan.anchor);
            let source_kind = video_kind(&plan.streams[plan.anchor]);
            let mut specs = Vec::new();
            for rung in rungs {
                if let Rung::Encoded { height, kbps } = *rung {
                    let source_height = size.map_or(0, |s| s.1);
                    if height > source_height {
                        return Err(SegmenterError::Ladder(format!(
                            "rung {rung} is taller than the input's {source_height} lines \
                             (no upscaling)"
                        )));
                    }
                    specs.push(RungSpec { height, kbps });
                }
            }
            if !specs.is_empty() {
                let params = ictx
                    .stream(plan.anchor)
                    .map(|s| s.parameters())
                    .ok_or(SegmenterError::NoStreams)?;
                let settings = TranscodeSettings {
                    preset: ladder.preset.clone(),
                    frame_rate: ictx
                        .stream(plan.anchor)
                        .map(|s| {
                            let r = s.avg_frame_rate();
                            (r.numerator(), r.denominator())
                        })
                        .unwrap_or((30, 1)),
                };
                *transcoder = Some(
                    Transcoder::new(params, &specs, &settings)
                        .map_err(|e| SegmenterError::Ladder(e.to_string()))?,
                );
            }
            let sizes = transcoder
                .as_ref()
                .map(Transcoder::sizes)
                .unwrap_or_default();
            let mut encoded = 0;
            for rung in rungs {
                let folder = rung.folder();
                let spool = cfg.spool.join(&folder);
                let (resolution, video, floor_bps, kind) = match *rung {
                    Rung::Source => (size, VideoFrom::Source, 0, source_kind),
                    Rung::Encoded { kbps, .. } => {
                        let r = encoded;
                        encoded += 1;
                        (
                            sizes.get(r).copied(),
                            VideoFrom::Rung(r),
                            segment_peak_bps(kbps, cfg.target).unwrap_or(0),
                            Some(VideoKind::H264),
                        )
                    }
                };
                let maker = match (video, cfg.packaging) {
                    (VideoFrom::Source, Packaging::Ts) => {
                        let name = namer(cfg, Packaging::Ts);
                        Maker::Direct(Box::new(TsPackager::new(Router::new(
                            &spool,
                            name,
                            plan.program,
                            input.clone(),
                        ))))
                    }
                    (VideoFrom::Source, Packaging::Fmp4) => {
                        let kinds: Vec<StreamKind> = plan
                            .streams
                            .iter()
                            .enumerate()
                            .map(|(i, s)| {
                                if i == plan.anchor {
                                    StreamKind::from_codec_name(&s.codec_name)
                                } else {
                                    StreamKind::Ignore
                                }
                            })
                            .collect();
                        let packager = Fmp4Packager::new(&kinds)
                            .map_err(|e| SegmenterError::Unpackageable(e.to_string()))?;
                        Maker::Direct(Box::new(Fmp4Files::new(
                            packager,
                            input.clone(),
                            &spool,
                            &cfg.segment_prefix,
                            namer(cfg, Packaging::Fmp4),
                            false,
                        )))
                    }
                    _ => timed(cfg, &spool, kind, tracks, &all_audio, frame(fps), input)?,
                };
                out.push(Rendition {
                    layout: RenditionLayout {
                        folder,
                        label: rung.to_string(),
                        audio_only: false,
                        resolution,
                        frame_rate: fps,
                        floor_bps,
                    },
                    maker,
                    video,
                    video_kind: kind,
                    audio: all_audio.clone(),
                    codecs: Codecs::default(),
                });
            }
        }
        LadderSpec::Streams => {
            let videos: Vec<usize> = plan
                .streams
                .iter()
                .enumerate()
                .filter(|(_, s)| s.selected && s.medium == Media::Video)
                .map(|(i, _)| i)
                .collect();
            if videos.len() < 2 {
                return Err(SegmenterError::Ladder(format!(
                    "--ladder streams needs an input with two or more video streams; it has {}",
                    videos.len()
                )));
            }
            for (n, &i) in videos.iter().enumerate() {
                let meta = &plan.streams[i];
                let kind = video_kind(meta).ok_or_else(|| {
                    SegmenterError::Ladder(format!(
                        "--ladder streams: stream {i} is {} {}; only H.264 and HEVC streams \
                         can be renditions",
                        medium_name(meta.medium),
                        meta.codec_name
                    ))
                })?;
                let (size, fps) = video_facts(ictx, i);
                let folder = format!("stream{n}");
                let spool = cfg.spool.join(&folder);
                let maker = timed(
                    cfg,
                    &spool,
                    Some(kind),
                    tracks,
                    &all_audio,
                    frame(fps),
                    input,
                )?;
                out.push(Rendition {
                    layout: RenditionLayout {
                        folder,
                        label: format!("stream {i}"),
                        audio_only: false,
                        resolution: size,
                        frame_rate: fps,
                        floor_bps: 0,
                    },
                    maker,
                    video: VideoFrom::Stream(i),
                    video_kind: Some(kind),
                    audio: all_audio.clone(),
                    codecs: Codecs::default(),
                });
            }
        }
    }
    if cfg.packaging == Packaging::Fmp4 && !tracks.is_empty() {
        let folder = "audio".to_string();
        let spool = cfg.spool.join(&folder);
        let maker = timed(cfg, &spool, None, tracks, &[0], 0, input)?;
        out.push(Rendition {
            layout: RenditionLayout {
                folder,
                label: "audio".into(),
                audio_only: true,
                resolution: None,
                frame_rate: None,
                floor_bps: 0,
            },
            maker,
            video: VideoFrom::None,
            video_kind: None,
            audio: vec![0],
            codecs: Codecs::default(),
        });
    }
    for r in &out {
        std::fs::create_dir_all(cfg.spool.join(&r.layout.folder))?;
    }
    log::info!(
        "ladder: {}",
        out.iter()
            .map(|r| match r.layout.resolution {
                Some((w, h)) => format!("{} ({w}x{h})", r.layout.label),
                None => r.layout.label.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(out)
}

fn video_kind(meta: &StreamMeta) -> Option<VideoKind> {
    match meta.codec {
        keyframe::Codec::H264 => Some(VideoKind::H264),
        keyframe::Codec::Hevc => Some(VideoKind::Hevc),
        _ => None,
    }
}

fn namer(cfg: &SegmenterConfig, packaging: Packaging) -> Box<dyn Fn(u64) -> String + Send> {
    let prefix = cfg.segment_prefix.clone();
    Box::new(move |n| media::segment::segment_name(&prefix, n, packaging))
}

/// A rendition cut by time: `video` its codec (none: audio alone),
/// `audio` the tracks it carries.
fn timed(
    cfg: &SegmenterConfig,
    spool: &Path,
    video: Option<VideoKind>,
    tracks: &[AudioTrack],
    audio: &[usize],
    tolerance: i64,
    input: &Arc<Mutex<InputBuffer>>,
) -> Result<Maker, SegmenterError> {
    let rates: Vec<Option<u32>> = audio.iter().map(|&a| tracks[a].aac_rate).collect();
    let sink = match cfg.packaging {
        Packaging::Ts => {
            let types: Vec<u8> = audio.iter().map(|&a| tracks[a].stream_type).collect();
            Sink::Ts(TsMuxer::new(
                video.map(|v| match v {
                    VideoKind::H264 => crate::package::mux::VideoCodec::H264,
                    VideoKind::Hevc => crate::package::mux::VideoCodec::Hevc,
                }),
                &types,
            ))
        }
        Packaging::Fmp4 => {
            let kind = match video {
                Some(VideoKind::H264) => StreamKind::H264,
                Some(VideoKind::Hevc) => StreamKind::Hevc,
                None => StreamKind::from_codec_name(&tracks[audio[0]].codec_name),
            };
            let packager = Fmp4Packager::new(&[kind])
                .map_err(|e| SegmenterError::Unpackageable(e.to_string()))?;
            Sink::Fmp4(Box::new(Fmp4Files::new(
                packager,
                input.clone(),
                spool,
                &cfg.segment_prefix,
                namer(cfg, Packaging::Fmp4),
                video.is_none(),
            )))
        }
    };
    Ok(Maker::Timed(Box::new(Timed {
        segments: TimedSegments::new(video.is_some(), &rates, tolerance),
        sink,
        spool: spool.to_path_buf(),
        name: namer(cfg, cfg.packaging),
        tolerance,
    })))
}

impl Timed {
    /// Makes files of the segments `TimedSegments` finished. A segment
    /// whose first keyframe is too far from its cut is an `Err` with how
    /// far (ticks).
    fn made(
        &mut self,
        ready: Vec<Ready>,
        timings: &BTreeMap<u64, SegmentTiming>,
        out: &mut Vec<Finished>,
    ) -> std::io::Result<Option<Misaligned>> {
        for seg in ready {
            if seg.offset.abs() > self.tolerance {
                return Ok(Some(Misaligned {
                    sequence: seg.sequence,
                    by: seg.offset,
                }));
            }
            match &mut self.sink {
                Sink::Ts(muxer) => {
                    let bytes = muxer.segment(&seg.mux_samples());
                    let name = (self.name)(seg.sequence);
                    let part = self.spool.join(format!("{name}.part"));
                    std::fs::write(&part, &bytes)?;
                    out.push(Finished::Segment(ClosedSegment {
                        sequence: seg.sequence,
                        part,
                        path: self.spool.join(&name),
                        bytes: bytes.len() as u64,
                        timing: None,
                        init: None,
                    }));
                }
                Sink::Fmp4(files) => {
                    let closed = seg
                        .sequence
                        .checked_sub(1)
                        .and_then(|n| timings.get(&n).copied());
                    files.on_cut(Cut {
                        pos: 0,
                        sequence: seg.sequence,
                        pts: None,
                        start: MediaTime(seg.start),
                        discontinuity: seg.discontinuity,
                        closed,
                    })?;
                    for (_, s) in &seg.samples {
                        let info = PacketInfo {
                            stream: 0,
                            pos: None,
                            pts: None,
                            dts: None,
                            duration: media::MediaDuration::ZERO,
                            key: s.key,
                        };
                        files.on_packet(&Demuxed {
                            info: &info,
                            times: Some((s.dts, s.pts)),
                            data: &s.data,
                            anchor: true,
                            hold: None,
                        })?;
                    }
                    out.extend(files.take_finished()?);
                }
            }
        }
        Ok(None)
    }

    fn abandon(&mut self) {
        if let Sink::Fmp4(files) = &mut self.sink {
            files.abandon();
        }
    }
}

/// A timed rendition's segment whose first keyframe is `by` ticks from
/// its cut.
#[derive(Debug)]
struct Misaligned {
    sequence: u64,
    by: i64,
}

impl Misaligned {
    /// Why its rendition is left out of the ladder.
    fn why(&self) -> String {
        format!(
            "its keyframe for segment {} is {:.3} s from the cut",
            self.sequence,
            self.by as f64 / TICKS_PER_SECOND as f64
        )
    }
}

struct LadderLoop {
    renditions: Vec<Rendition>,
    gate: Gate,
    transcoder: Option<Transcoder>,
    tracks: Vec<AudioTrack>,
    plan_anchor: usize,
    events: tokio::sync::mpsc::UnboundedSender<LadderEvent>,
    /// No rendition routes the input's bytes: release them as packets
    /// arrive.
    releases_input: bool,
}

impl LadderLoop {
    fn demux(
        &mut self,
        ictx: &mut Input,
        plan: &StreamPlan,
        input: &Mutex<InputBuffer>,
        stop: &AtomicBool,
        cutter: &mut Cutter,
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
            if self.releases_input {
                if let Some(pos) = info.pos {
                    lock(input).release_before(pos);
                }
            }
            let data = packet.data().unwrap_or_default();
            if let Some(cut) = cutter.observe(&info) {
                self.on_cut(cut, !info.key)?;
            }
            let times = cutter.times();
            self.on_packet(&info, times, data, cutter.hold())?;
            self.collect()?;
        }
    }

    fn on_cut(&mut self, cut: Cut, forced: bool) -> Result<(), SegmenterError> {
        if let Some(t) = cut.closed {
            self.gate.timed(t);
        }
        let pts = cut.start.ticks();
        if let Some(t) = &mut self.transcoder {
            if cut.discontinuity {
                t.new_timeline();
            }
            t.force_keyframe_at(pts);
        }
        for r in &mut self.renditions {
            match &mut r.maker {
                Maker::Direct(p) => p.on_cut(cut)?,
                Maker::Timed(t) => t.segments.cut(TimedCut {
                    pts,
                    sequence: cut.sequence,
                    discontinuity: cut.discontinuity,
                    forced,
                }),
            }
        }
        Ok(())
    }

    fn on_packet(
        &mut self,
        info: &PacketInfo,
        times: Option<(i64, i64)>,
        data: &[u8],
        hold: Option<u64>,
    ) -> Result<(), SegmenterError> {
        let anchor = info.stream == self.plan_anchor;
        let track = self.tracks.iter().position(|t| t.stream == info.stream);
        // read from the first track's packets until every rendition has it
        let wants_audio = || {
            self.renditions
                .iter()
                .any(|r| r.codecs.audio.is_none() && !r.audio.is_empty())
        };
        if let Some(a) = track.filter(|&a| a == 0 && wants_audio()) {
            let codec = audio_codecs(&self.tracks[a], data);
            for r in &mut self.renditions {
                if r.codecs.audio.is_none() && !r.audio.is_empty() {
                    r.codecs.audio = codec.clone();
                }
            }
        }
        for r in &mut self.renditions {
            match &mut r.maker {
                Maker::Direct(p) => p.on_packet(&Demuxed {
                    info,
                    times,
                    data,
                    anchor,
                    hold,
                })?,
                Maker::Timed(t) => {
                    let Some((dts, pts)) = times else { continue };
                    let sample = || Sample {
                        pts,
                        dts,
                        key: info.key,
                        data: data.to_vec(),
                    };
                    if r.video == VideoFrom::Stream(info.stream) {
                        t.segments.video(sample());
                    } else if let Some(a) = track {
                        if let Some(k) = r.audio.iter().position(|&x| x == a) {
                            t.segments.audio(k, sample());
                        }
                    }
                }
            }
            let sniff = match r.video {
                VideoFrom::Source => anchor,
                VideoFrom::Stream(s) => s == info.stream,
                _ => false,
            };
            if sniff && info.key && r.codecs.video.is_none() {
                r.codecs.video = r
                    .video_kind
                    .and_then(|k| master::video_codecs(k, data))
                    .map(|f| f.codecs);
            }
        }
        if anchor {
            if let (Some(t), Some((dts, pts))) = (&mut self.transcoder, times) {
                // (a packet the decoder refuses is counted, not an error)
                let failed = t.send(Some(pts), Some(dts), data).err();
                let encoded = t.receive();
                self.encoded(encoded);
                if let Some(e) = failed {
                    self.rung_failed(&e);
                }
            }
        }
        Ok(())
    }

    /// A rung's scaler or encoder failed: that rung, and any rung scaled
    /// from its picture, is left out of the ladder (and its master), so
    /// that the other renditions go on being published.
    fn rung_failed(&mut self, e: &TranscodeError) {
        let Some(t) = &mut self.transcoder else {
            return;
        };
        let Some(index) = t.rung_of(e) else {
            log::error!("--ladder: {e}");
            return;
        };
        for k in t.stop(index) {
            let found = self
                .renditions
                .iter_mut()
                .enumerate()
                .find(|(_, r)| r.video == VideoFrom::Rung(k));
            if let Some((i, r)) = found {
                self.gate.drop_rendition(i, &r.layout.label, e.to_string());
                if let Maker::Timed(timed) = &mut r.maker {
                    timed.abandon();
                }
            }
        }
    }

    fn encoded(&mut self, packets: Vec<Encoded>) {
        for p in packets {
            let Some(r) = self
                .renditions
                .iter_mut()
                .find(|r| r.video == VideoFrom::Rung(p.rung))
            else {
                continue;
            };
            if p.key && r.codecs.video.is_none() {
                r.codecs.video = master::video_codecs(VideoKind::H264, &p.data).map(|f| f.codecs);
            }
            if let Maker::Timed(t) = &mut r.maker {
                t.segments.video(Sample {
                    pts: p.pts,
                    dts: p.dts,
                    key: p.key,
                    data: p.data,
                });
            }
        }
    }

    /// Hands what every rendition finished to the gate.
    fn collect(&mut self) -> Result<(), SegmenterError> {
        for (i, r) in self.renditions.iter_mut().enumerate() {
            if !r.codecs.sent && self.gate.active[i] {
                let video_done = r.video == VideoFrom::None || r.codecs.video.is_some();
                let audio_done = r.audio.is_empty() || r.codecs.audio.is_some();
                if video_done && audio_done {
                    r.codecs.sent = true;
                    let _ = self.events.send(LadderEvent::Codecs {
                        rendition: i,
                        video: r.codecs.video.clone(),
                        audio: r.codecs.audio.clone(),
                    });
                }
            }
            let finished = match &mut r.maker {
                Maker::Direct(p) => p.take_finished()?,
                Maker::Timed(t) => {
                    let ready = t.segments.take_ready();
                    let mut out = Vec::new();
                    if let Some(m) = t.made(ready, &self.gate.timings, &mut out)? {
                        self.gate.drop_rendition(i, &r.layout.label, m.why());
                        t.abandon();
                        continue;
                    }
                    out
                }
            };
            self.gate.add(i, finished)?;
        }
        self.gate.release()
    }

    fn finish(&mut self, last: Option<SegmentTiming>) -> Result<(), SegmenterError> {
        let rest = match self.transcoder.as_mut().map(Transcoder::finish) {
            None => Vec::new(),
            Some(Ok(rest)) => rest,
            Some(Err(e)) => {
                // the failed rung is left out; the others' last packets
                // are kept
                self.rung_failed(&e);
                self.transcoder
                    .as_mut()
                    .map(Transcoder::receive)
                    .unwrap_or_default()
            }
        };
        self.encoded(rest);
        if let Some(t) = last {
            self.gate.timed(t);
        }
        self.collect()?;
        for (i, r) in self.renditions.iter_mut().enumerate() {
            let finished = match &mut r.maker {
                Maker::Direct(p) => p.finish(last)?,
                Maker::Timed(t) => {
                    let ready = t.segments.finish();
                    let mut out = Vec::new();
                    if let Some(m) = t.made(ready, &self.gate.timings, &mut out)? {
                        self.gate.drop_rendition(i, &r.layout.label, m.why());
                        t.abandon();
                        continue;
                    }
                    if let Sink::Fmp4(files) = &mut t.sink {
                        out.extend(files.finish(last)?);
                    }
                    out
                }
            };
            self.gate.add(i, finished)?;
        }
        self.gate.ended = true;
        self.gate.release()
    }

    fn abandon(&mut self) {
        for r in &mut self.renditions {
            match &mut r.maker {
                Maker::Direct(p) => p.abandon(),
                Maker::Timed(t) => t.abandon(),
            }
        }
        self.gate.abandon();
    }
}

/// The audio codec string of a track, from its first packet.
fn audio_codecs(track: &AudioTrack, data: &[u8]) -> Option<String> {
    match track.codec_name.as_str() {
        "aac" => master::adts_codecs(data),
        "mp3" => Some("mp4a.40.34".into()),
        "mp2" | "mp1" => Some("mp4a.40.33".into()),
        "ac3" => Some("ac-3".into()),
        "eac3" => Some("ec-3".into()),
        _ => None,
    }
}

/// Holds each rendition's finished segments until every rendition has
/// finished the same number, then finalizes them all in the spool and
/// announces them, each to its rendition's publisher.
struct Gate {
    announcers: Vec<Announcer>,
    outboxes: Vec<Outbox>,
    events: tokio::sync::mpsc::UnboundedSender<LadderEvent>,
    active: Vec<bool>,
    /// The cutter's timing of each segment, by number.
    timings: BTreeMap<u64, SegmentTiming>,
    /// Finished segments not yet released, by number, then rendition.
    held: BTreeMap<u64, BTreeMap<usize, ClosedSegment>>,
    /// The highest number each rendition has finished.
    last: Vec<Option<u64>>,
    ended: bool,
    summary: SegmenterSummary,
}

impl Gate {
    fn new(
        cfg: &SegmenterConfig,
        renditions: &[Rendition],
        outboxes: Vec<Outbox>,
        events: tokio::sync::mpsc::UnboundedSender<LadderEvent>,
    ) -> Gate {
        let n = renditions.len();
        Gate {
            announcers: renditions
                .iter()
                .map(|_| Announcer {
                    prefix: cfg.segment_prefix.clone(),
                    packaging: cfg.packaging,
                    skipped: 0,
                })
                .collect(),
            outboxes,
            events,
            active: vec![true; n],
            timings: BTreeMap::new(),
            held: BTreeMap::new(),
            last: vec![None; n],
            ended: false,
            summary: SegmenterSummary::default(),
        }
    }

    fn timed(&mut self, t: SegmentTiming) {
        self.timings.insert(t.sequence, t);
    }

    /// Inits go at once (before the segments that name them); segments wait.
    fn add(&mut self, r: usize, finished: Vec<Finished>) -> Result<(), SegmenterError> {
        for f in finished {
            match f {
                Finished::Init { part, init } => {
                    if !self.active[r] {
                        let _ = std::fs::remove_file(&part);
                        continue;
                    }
                    spool::finalize_init(&part, &init)?;
                    journal::init(&init);
                    if self.outboxes[r].send(Event::Init(init)).is_err() {
                        return Err(SegmenterError::UploaderGone);
                    }
                }
                Finished::Segment(c) => {
                    if !self.active[r] {
                        let _ = std::fs::remove_file(&c.part);
                        continue;
                    }
                    self.last[r] = self.last[r].max(Some(c.sequence));
                    self.held.entry(c.sequence).or_default().insert(r, c);
                }
            }
        }
        Ok(())
    }

    /// Releases every number all active renditions have finished, in
    /// order; a number some rendition skipped (it had nothing for it) is
    /// published by none, so that they stay in step.
    fn release(&mut self) -> Result<(), SegmenterError> {
        while let Some((&n, held)) = self.held.iter().next() {
            let active: Vec<usize> = (0..self.active.len()).filter(|&r| self.active[r]).collect();
            let complete = active.iter().all(|r| held.contains_key(r));
            let skipped = active
                .iter()
                .any(|&r| !held.contains_key(&r) && (self.ended || self.last[r] > Some(n)));
            let timing = self.timings.get(&n).copied();
            if !complete && !skipped {
                return Ok(());
            }
            let held = self.held.remove(&n).unwrap_or_default();
            let Some(timing) = timing.filter(|_| complete) else {
                log::warn!(
                    "segment {n} is not published: {}",
                    if complete {
                        "it has no timing"
                    } else {
                        "a rendition has nothing for it"
                    }
                );
                for (_, c) in held {
                    let _ = std::fs::remove_file(&c.part);
                }
                for a in &mut self.announcers {
                    a.skipped += 1;
                }
                continue;
            };
            let mut ready = Vec::new();
            for (r, mut c) in held {
                if !self.active[r] {
                    let _ = std::fs::remove_file(&c.part);
                    continue;
                }
                c.timing = Some(timing);
                if let Some(ev) = self.announcers[r].ready(c)? {
                    ready.push((r, ev));
                }
            }
            self.summary.segments += 1;
            self.summary.media += timing.duration;
            self.timings.retain(|&k, _| k + 1 >= n);
            for (r, ev) in ready {
                let _ = self.events.send(LadderEvent::Segment {
                    rendition: r,
                    sequence: ev.sequence,
                    bytes: ev.bytes,
                    duration: ev.duration,
                });
                if self.outboxes[r].send(Event::Segment(ev)).is_err() {
                    return Err(SegmenterError::UploaderGone);
                }
            }
        }
        Ok(())
    }

    fn drop_rendition(&mut self, r: usize, label: &str, why: String) {
        if !self.active[r] {
            return;
        }
        self.active[r] = false;
        log::warn!("--ladder: {label} is left out of the ladder: {why}");
        for held in self.held.values_mut() {
            if let Some(c) = held.remove(&r) {
                let _ = std::fs::remove_file(&c.part);
            }
        }
        let _ = self.events.send(LadderEvent::Dropped { rendition: r, why });
    }

    fn abandon(&mut self) {
        for held in std::mem::take(&mut self.held).into_values() {
            for c in held.into_values() {
                let _ = std::fs::remove_file(&c.part);
            }
        }
    }
}
