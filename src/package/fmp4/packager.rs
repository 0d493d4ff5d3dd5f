//! The packager: demuxed packets and cut decisions in, init segments and
//! media segments out. Pure and event-driven: no I/O, no clock, no threads.
//!
//! # Contract
//! - Timestamps are 90 kHz ticks on the unwrapped timeline (continuous
//!   across the 33-bit wrap; the caller unwraps). A packet without a DTS
//!   passes its PTS as both.
//! - [`Fmp4Packager::on_cut`] is called before the packet that starts the
//!   new segment (the cutter decides on that packet): the anchor stream's
//!   samples fed after it (the first video stream's, else the first audio
//!   stream's) go to the new segment. Audio goes by time: a frame whose
//!   middle lies before the cut belongs to the old segment, wherever it
//!   arrives (muxers write audio up to ~0.7 s after the video of its time),
//!   and frames already fed whose middle lies after the cut move over.
//! - A discontinuity cut (a timestamp reset) puts the anchor on a new
//!   timeline at once; each other audio stream moves to it when its own
//!   PTS steps back by more than [`MAX_BACK`] or forward by more than
//!   [`MAX_FORWARD`], so audio of the old timeline that arrives after the
//!   cut still goes to the old segment. (One that never steps moves over
//!   once the old timeline's segments are out; one that steps without a
//!   reset cut, after [`LAG`].)
//! - Packets before the first cut are dropped (their parameter sets are
//!   kept).
//! - A segment is ready once every track has passed the next cut (so the
//!   duration of its last sample is known from the next segment's first),
//!   or once the anchor stream has gone [`LAG`] past the next cut without
//!   some track passing it (a track that died), or at
//!   [`Fmp4Packager::finish`].
//!   Audio of an emitted segment that still arrives is dropped (counted in
//!   [`Fmp4Packager::dropped_frames`]).
//!
//! # Decode times
//! Decode times are the input's own: tfdt is the DTS (video, 90 kHz) or the
//! PTS in sample-rate units (audio), plus one offset for the run. That
//! offset is 0 unless the first cut lies less than a second after 0, when
//! the whole run is shifted so that it does (B-frames have their decode
//! time before their presentation time, and a decode time is never
//! negative). Each segment's tfdt is its predecessor's plus the sum of its
//! durations, per track: a sample lasts until the next sample's decode time.
//! Video decode times strictly increase (a DTS that does not is moved one
//! tick after the one before). Audio keeps a running count of its frames
//! (1024 samples each) and takes the PTS again only when the two drift
//! apart by more than half a frame: forward, a gap, which the last frame
//! before it spans; backward, frames that overlap what was already stored,
//! which are dropped. Each new timeline (after a reset) gets its own
//! offset, chosen at its first anchor sample so that it continues where
//! the old one ended (the anchor's last sample lasting as long as the one
//! before it): decode times stay continuous across resets too.
//!
//! # Codec configuration
//! Parameter sets (VPS/SPS/PPS) live in the init segment, the AAC
//! configuration too. A segment takes the configuration current at its
//! first sample of each track; when the configurations of a segment differ
//! from those of the last init emitted, a new init with a new id comes
//! first. Parameter sets that change inside a segment (an SPS change at a
//! keyframe that is not a cut) stay in the samples, in band, until the next
//! segment starts with an init that has them: cut there to avoid it. AAC
//! frames whose configuration differs from their segment's are dropped.

use std::collections::{BTreeMap, VecDeque};

use super::aac::{split_adts, FRAME_SAMPLES};
use super::avc::{self, AvcConfig};
use super::boxes::{self, InitTrack, SampleMeta, TrackRun};
use super::hevc::{self, HevcConfig};
use super::nal;
use super::{Error, TrackConfig};
use crate::timeline::TICKS_PER_SECOND;

/// How far (90 kHz ticks) the input may go past a cut before the segment
/// before it is emitted without waiting for a track that has not passed
/// the cut: above the 0.7 s by which ffmpeg's MPEG-TS muxer may write
/// audio late, plus the 0.4 s an audio PES packet can hold.
pub const LAG: i64 = 2 * TICKS_PER_SECOND;

/// The first cut lies at least this far (90 kHz ticks) from 0 on the decode
/// timeline; see the module docs.
pub const MIN_START: i64 = TICKS_PER_SECOND;

/// A step of an audio stream's PTS back by more than this, or forward by
/// more than [`MAX_FORWARD`], puts it on a new timeline (90 kHz ticks; the
/// segmenter's cutter calls the same steps of its anchor a reset).
pub const MAX_BACK: i64 = TICKS_PER_SECOND / 2;
pub const MAX_FORWARD: i64 = 10 * TICKS_PER_SECOND;

/// What an input stream is to the packager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamKind {
    H264,
    Hevc,
    Aac,
    /// Not packaged (data, subtitles, a stream the caller leaves out).
    Ignore,
    /// A codec that cannot be packaged, by name: `new` refuses it.
    Other(String),
}

impl StreamKind {
    /// From a libav codec name (`h264`, `hevc`, `aac`); any other name is
    /// [`StreamKind::Other`].
    pub fn from_codec_name(name: &str) -> Self {
        match name {
            "h264" => StreamKind::H264,
            "hevc" | "h265" => StreamKind::Hevc,
            "aac" => StreamKind::Aac,
            other => StreamKind::Other(other.to_string()),
        }
    }
}

/// One demuxed packet: a video access unit (Annex B) or a PES payload of
/// ADTS frames.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub stream: usize,
    /// Decode and presentation time, 90 kHz ticks, unwrapped.
    pub dts: i64,
    pub pts: i64,
    /// The access unit is a random-access point.
    pub key: bool,
    pub data: &'a [u8],
}

/// A decision to start a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// The PTS (unwrapped) of the packet that starts the segment.
    pub pts: i64,
    /// Its media sequence number, written in `mfhd` (its low 32 bits).
    pub sequence: u64,
    /// The timeline was reset before this packet.
    pub discontinuity: bool,
}

/// An init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOut {
    /// New for every init whose bytes differ from the previous one: a name
    /// made from it is never reused for other bytes.
    pub id: u64,
    pub bytes: Vec<u8>,
    /// RFC 6381 codec strings of its tracks, comma-separated
    /// (`avc1.64001f,mp4a.40.2`), for a CODECS attribute.
    pub codecs: String,
}

/// A media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOut {
    pub sequence: u64,
    /// The init segment it needs, emitted before it.
    pub init_id: u64,
    pub bytes: Vec<u8>,
    pub discontinuity: bool,
    /// Its first sample of the anchor track is a sync sample.
    pub starts_with_keyframe: bool,
    /// The cut's PTS, on the input's timeline.
    pub start_pts: i64,
    /// The anchor track's first decode time (its tfdt) in 90 kHz ticks.
    pub decode_time: i64,
    /// The sum of the anchor track's sample durations, 90 kHz ticks: the
    /// distance to the next segment's decode time.
    pub duration: i64,
}

/// What the packager hands back, in the order to store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Init(InitOut),
    Segment(SegmentOut),
    /// A cut whose segment got no sample at all (nothing to store).
    Empty {
        sequence: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    H264,
    Hevc,
    Aac,
}

#[derive(Debug, Clone)]
struct Sample {
    /// In the track's timescale.
    decode: i64,
    /// Input timeline, 90 kHz: where audio goes.
    pts: i64,
    size: u32,
    flags: u32,
    composition_offset: i32,
}

/// One track's samples in one segment.
#[derive(Debug, Clone, Default)]
struct Run {
    config: Option<TrackConfig>,
    samples: Vec<Sample>,
    data: Vec<u8>,
    /// No more samples will come.
    closed: bool,
    /// Decode time of the track's next sample, in a later segment.
    end: Option<i64>,
}

impl Run {
    /// Splits off the samples from index `at` on, with their bytes.
    fn split_off(&mut self, at: usize) -> Run {
        let byte_at: usize = self.samples[..at].iter().map(|s| s.size as usize).sum();
        Run {
            config: self.config.clone(),
            samples: self.samples.split_off(at),
            data: self.data.split_off(byte_at),
            closed: false,
            end: None,
        }
    }
}

#[derive(Debug)]
struct Pending {
    sequence: u64,
    discontinuity: bool,
    cut_pts: i64,
    /// Resets before it.
    epoch: usize,
    /// One per track.
    runs: Vec<Run>,
}

#[derive(Debug)]
struct Track {
    id: u32,
    codec: Codec,
    /// Video parameter sets by (VPS 0 / SPS 1 / PPS 2, id).
    params: BTreeMap<(u8, u32), Vec<u8>>,
    params_changed: bool,
    /// The latest configuration.
    config: Option<TrackConfig>,
    /// The last stored sample's decode time, and the step to it.
    last_decode: Option<i64>,
    last_duration: Option<i64>,
    /// Audio: decode time of the next frame by the running count.
    next_audio: Option<i64>,
    /// A segment was emitted before this track's next sample came (a reset,
    /// a track that lagged): its next sample takes the running count, so
    /// that its tfdt continues that segment's exactly, and a gap is spanned
    /// by that sample instead.
    resume_exactly: bool,
    /// Audio: the timeline its frames are on (resets seen in its own
    /// timestamps), the last frame's PTS, and where the anchor was when it
    /// last stepped onto a timeline that no cut has started yet.
    epoch: usize,
    last_pts: Option<i64>,
    jumped_at: Option<i64>,
}

impl Track {
    fn timescale(&self) -> i64 {
        self.config
            .as_ref()
            .map_or(90_000, |c| i64::from(c.timescale()))
    }

    /// Takes in the parameter sets of an access unit; rebuilds the
    /// configuration when one changed.
    fn take_parameter_set(&mut self, nal: &[u8]) -> Result<bool, Error> {
        let key = match self.codec {
            Codec::H264 => match avc::nal_type(nal) {
                avc::NAL_SPS => (1, avc::parse_sps(nal)?.id),
                avc::NAL_PPS => (2, avc::pps_id(nal)?),
                _ => return Ok(false),
            },
            Codec::Hevc => match hevc::nal_type(nal) {
                hevc::NAL_VPS => (0, hevc::vps_id(nal)?),
                hevc::NAL_SPS => (1, hevc::parse_sps(nal)?.id),
                hevc::NAL_PPS => (2, hevc::pps_id(nal)?),
                _ => return Ok(false),
            },
            Codec::Aac => return Ok(false),
        };
        if self.params.get(&key).map(Vec::as_slice) != Some(nal) {
            self.params.insert(key, nal.to_vec());
            self.params_changed = true;
        }
        Ok(true)
    }

    fn rebuild_video_config(&mut self) -> Result<(), Error> {
        if !self.params_changed {
            return Ok(());
        }
        let of = |rank: u8| -> Vec<Vec<u8>> {
            self.params
                .iter()
                .filter(|((r, _), _)| *r == rank)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let built = match self.codec {
            Codec::H264 => AvcConfig::new(of(1), of(2)).map(TrackConfig::Avc),
            Codec::Hevc => HevcConfig::new(of(0), of(1), of(2)).map(TrackConfig::Hevc),
            Codec::Aac => return Ok(()),
        };
        match built {
            Ok(c) => {
                self.config = Some(c);
                self.params_changed = false;
                Ok(())
            }
            // a set still missing (a PPS after its SPS): keep what was there
            Err(Error::Malformed { why, .. }) if why.starts_with("no ") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether `nal` is one of the parameter sets of `config`.
fn in_config(config: &TrackConfig, nal: &[u8]) -> bool {
    match config {
        TrackConfig::Avc(c) => c.sps.iter().chain(&c.pps).any(|p| p == nal),
        TrackConfig::Hevc(c) => c.vps.iter().chain(&c.sps).chain(&c.pps).any(|p| p == nal),
        TrackConfig::Aac(_) => false,
    }
}

/// Packages demuxed packets into fMP4 init and media segments; see the
/// module documentation for the contract.
#[derive(Debug)]
pub struct Fmp4Packager {
    tracks: Vec<Track>,
    /// Input stream index to track index.
    by_stream: Vec<Option<usize>>,
    /// The track whose samples follow the cuts.
    anchor: usize,
    pending: VecDeque<Pending>,
    /// Added to input timestamps (90 kHz) to give decode times, one per
    /// timeline (the first set at the first cut, each other at the anchor's
    /// first sample after the reset that began it).
    shifts: Vec<i64>,
    /// The current timeline: resets so far.
    epoch: usize,
    /// After a reset: the anchor's decode time (90 kHz) at which the new
    /// timeline is to continue, taken at its first sample.
    rebase: Option<i64>,
    /// The anchor's latest DTS since the last reset, 90 kHz: how far the
    /// input has got (another stream's clock could be off, or still on the
    /// timeline before a reset).
    latest: Option<i64>,
    /// The configurations of the last init emitted, per track, and its id.
    last_init: Option<(Vec<Option<TrackConfig>>, u64)>,
    next_init_id: u64,
    ready: Vec<Output>,
    dropped_frames: u64,
}

impl Fmp4Packager {
    /// Sets up one track per packaged stream, with track ids 1, 2... in
    /// stream order. Refuses a stream of [`StreamKind::Other`], a second
    /// video stream, and inputs with nothing to package.
    pub fn new(streams: &[StreamKind]) -> Result<Self, Error> {
        let mut tracks = Vec::new();
        let mut by_stream = Vec::with_capacity(streams.len());
        let mut video = None;
        for (stream, kind) in streams.iter().enumerate() {
            let codec = match kind {
                StreamKind::H264 => Codec::H264,
                StreamKind::Hevc => Codec::Hevc,
                StreamKind::Aac => Codec::Aac,
                StreamKind::Ignore => {
                    by_stream.push(None);
                    continue;
                }
                StreamKind::Other(name) => {
                    return Err(Error::UnsupportedCodec {
                        stream,
                        codec: name.clone(),
                    })
                }
            };
            if codec != Codec::Aac {
                if video.is_some() {
                    return Err(Error::SecondVideo { stream });
                }
                video = Some(tracks.len());
            }
            by_stream.push(Some(tracks.len()));
            tracks.push(Track {
                id: tracks.len() as u32 + 1,
                codec,
                params: BTreeMap::new(),
                params_changed: false,
                config: None,
                last_decode: None,
                last_duration: None,
                next_audio: None,
                resume_exactly: false,
                epoch: 0,
                last_pts: None,
                jumped_at: None,
            });
        }
        if tracks.is_empty() {
            return Err(Error::NoStreams);
        }
        Ok(Fmp4Packager {
            anchor: video.unwrap_or(0),
            tracks,
            by_stream,
            pending: VecDeque::new(),
            shifts: Vec::new(),
            epoch: 0,
            rebase: None,
            latest: None,
            last_init: None,
            next_init_id: 1,
            ready: Vec::new(),
            dropped_frames: 0,
        })
    }

    /// Init ids start from `id` instead of 1 (a run that continues an
    /// earlier one's names).
    pub fn with_first_init_id(mut self, id: u64) -> Self {
        self.next_init_id = id;
        self
    }

    /// The input stream index of the anchor: the first video stream, else
    /// the first audio stream. The cuts must follow its packets.
    pub fn anchor_stream(&self) -> usize {
        self.by_stream
            .iter()
            .position(|t| *t == Some(self.anchor))
            .unwrap_or(0)
    }

    /// Audio frames dropped so far: late for a segment already emitted,
    /// overlapping earlier frames, or of another configuration than their
    /// segment's.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// What became ready since the last call, in order: each init before
    /// the first segment that needs it, segments in sequence order.
    pub fn take_ready(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.ready)
    }

    /// Starts a new segment at `cut` (call it before the packet that
    /// starts it).
    pub fn on_cut(&mut self, cut: Cut) -> Result<(), Error> {
        if self.shifts.is_empty() {
            self.shifts.push((MIN_START - cut.pts).max(0));
        } else if cut.discontinuity {
            self.latest = None;
            // a timeline whose anchor never came keeps the one before's offset
            let last = *self.shifts.last().unwrap_or(&0);
            self.shifts.resize(self.epoch + 1, last);
            self.epoch += 1;
            let a = &mut self.tracks[self.anchor];
            // by the contract the anchor's next packet is on the new timeline
            a.epoch = self.epoch;
            self.rebase = a.last_decode.map(|last| {
                let end = match a.codec {
                    Codec::Aac => a.next_audio.unwrap_or(last + i64::from(FRAME_SAMPLES)),
                    _ => last + a.last_duration.unwrap_or(3000),
                };
                end * TICKS_PER_SECOND / a.timescale()
            });
            if self.rebase.is_none() {
                self.shifts.push(last);
            }
        }
        // room for about what the segment before took, so that a run's
        // bytes are not copied from one doubling buffer to the next
        let runs = (0..self.tracks.len())
            .map(|t| Run {
                data: Vec::with_capacity(
                    self.pending
                        .back()
                        .map_or(0, |p| p.runs[t].data.len() * 5 / 4),
                ),
                ..Run::default()
            })
            .collect();
        let mut next = Pending {
            sequence: cut.sequence,
            discontinuity: cut.discontinuity,
            cut_pts: cut.pts,
            epoch: self.epoch,
            runs,
        };
        if let (false, Some(prev)) = (cut.discontinuity, self.pending.back_mut()) {
            // audio frames already fed whose middle lies after the cut
            for (t, track) in self.tracks.iter().enumerate() {
                if track.codec != Codec::Aac {
                    continue;
                }
                let half = half_frame_ticks(track);
                let run = &mut prev.runs[t];
                if let Some(at) = run.samples.iter().position(|s| s.pts + half >= cut.pts) {
                    let moved = run.split_off(at);
                    run.end = Some(moved.samples[0].decode);
                    run.closed = true;
                    next.runs[t] = moved;
                }
            }
        }
        self.pending.push_back(next);
        self.emit_ready(false)
    }

    /// Feeds one packet. On an error the packet is dropped and the packager
    /// stays usable.
    pub fn on_packet(&mut self, pkt: Packet<'_>) -> Result<(), Error> {
        let t = match self.by_stream.get(pkt.stream) {
            Some(Some(t)) => *t,
            Some(None) => return Ok(()),
            None => return Err(Error::UnknownStream(pkt.stream)),
        };
        if t == self.anchor {
            self.latest = Some(self.latest.map_or(pkt.dts, |l| l.max(pkt.dts)));
        }
        let result = match self.tracks[t].codec {
            Codec::H264 | Codec::Hevc => self.video_packet(t, &pkt),
            Codec::Aac => self.audio_packet(t, &pkt),
        };
        self.emit_ready(false)?;
        result
    }

    /// Ends the run: every segment still open is emitted.
    pub fn finish(&mut self) -> Result<(), Error> {
        for p in &mut self.pending {
            for run in &mut p.runs {
                run.closed = true;
            }
        }
        self.emit_ready(true)
    }

    fn video_packet(&mut self, t: usize, pkt: &Packet) -> Result<(), Error> {
        let track = &mut self.tracks[t];
        // one scan for start codes: it is most of the cost of a picture
        let units: Vec<&[u8]> = nal::units(pkt.data).collect();
        for unit in &units {
            track.take_parameter_set(unit)?;
        }
        if units.is_empty() {
            return Err(Error::malformed("video access unit", "no NAL unit"));
        }
        track.rebuild_video_config()?;
        let Some(segment) = self.pending.back_mut() else {
            // before the first cut: only the parameter sets are kept
            return Ok(());
        };
        let run = &mut segment.runs[t];
        if run.config.is_none() {
            run.config = track.config.clone();
        }
        let Some(config) = &run.config else {
            return Err(Error::NoParameterSets { stream: pkt.stream });
        };
        let start = run.data.len();
        let mut flags = if pkt.key {
            boxes::SYNC
        } else {
            boxes::NON_SYNC
        };
        let mut first_picture = true;
        for &unit in &units {
            let keep = match track.codec {
                Codec::H264 => {
                    let kind = avc::nal_type(unit);
                    if (avc::NAL_SLICE..=avc::NAL_IDR).contains(&kind) && first_picture {
                        first_picture = false;
                        flags |= if unit[0] & 0x60 == 0 {
                            boxes::NOT_DEPENDED_ON
                        } else {
                            boxes::DEPENDED_ON
                        };
                    }
                    match kind {
                        avc::NAL_AUD | avc::NAL_FILLER => false,
                        avc::NAL_SPS | avc::NAL_PPS => !in_config(config, unit),
                        _ => true,
                    }
                }
                Codec::Hevc | Codec::Aac => {
                    let kind = hevc::nal_type(unit);
                    if kind < 32 && first_picture {
                        first_picture = false;
                        flags |= hevc_picture_flags(kind, config);
                    }
                    match kind {
                        hevc::NAL_AUD | hevc::NAL_FILLER => false,
                        hevc::NAL_VPS | hevc::NAL_SPS | hevc::NAL_PPS => !in_config(config, unit),
                        _ => true,
                    }
                }
            };
            if keep {
                nal::push_prefixed(&mut run.data, unit);
            }
        }
        let size = run.data.len() - start;
        if size == 0 {
            return Err(Error::malformed("video access unit", "no picture"));
        }
        if let Some(target) = self.rebase.take() {
            // the first picture after a reset: its timeline continues the last
            self.shifts.push(target - pkt.dts);
        }
        let shift = self.shifts.last().copied().unwrap_or(0);
        let mut decode = (pkt.dts + shift).max(0);
        if let Some(last) = track.last_decode {
            decode = decode.max(last + 1);
            track.last_duration = Some(decode - last);
        }
        track.last_decode = Some(decode);
        let composition_offset = (pkt.pts + shift - decode).clamp(i32::MIN.into(), i32::MAX.into());
        run.samples.push(Sample {
            decode,
            pts: pkt.pts,
            size: size as u32,
            flags,
            composition_offset: composition_offset as i32,
        });
        let last = self.pending.len() - 1;
        close_before(&mut self.pending, last, t, decode);
        Ok(())
    }

    fn audio_packet(&mut self, t: usize, pkt: &Packet) -> Result<(), Error> {
        let frames = split_adts(pkt.data)?;
        let mut samples_before = 0i64;
        for frame in frames {
            let config = TrackConfig::Aac(frame.config);
            let track = &mut self.tracks[t];
            if track.config.as_ref() != Some(&config) {
                if track.config.as_ref().map(TrackConfig::timescale) != Some(config.timescale()) {
                    // another sample rate: decode times start again from the
                    // PTS, and what is open of this track ends where it is
                    track.next_audio = None;
                    track.last_decode = None;
                    for p in &mut self.pending {
                        let run = &mut p.runs[t];
                        if run.config.as_ref().is_some_and(|c| *c != config) {
                            run.closed = true;
                        }
                    }
                }
                track.config = Some(config.clone());
            }
            let rate = i64::from(frame.config.sample_rate);
            let pts = pkt.pts + div_round(samples_before * TICKS_PER_SECOND, rate);
            samples_before += i64::from(FRAME_SAMPLES);
            if t != self.anchor {
                let step = track.last_pts.map_or(0, |last| pts - last);
                if !(-MAX_BACK..=MAX_FORWARD).contains(&step) {
                    track.epoch += 1;
                    track.jumped_at = self.latest;
                }
                let newest = self.pending.back().map_or(self.epoch, |p| p.epoch);
                if track.epoch < newest && !self.pending.iter().any(|p| p.epoch == track.epoch) {
                    // its old timeline is gone: it did not reset with the anchor
                    track.epoch = newest;
                }
                if track.epoch > newest {
                    let since = *track.jumped_at.get_or_insert(self.latest.unwrap_or(0));
                    if self.latest.is_some_and(|l| l - since > LAG) {
                        // a step the cutter did not take for a reset
                        track.epoch = newest;
                    }
                }
            }
            track.last_pts = Some(pts);
            let epoch = track.epoch;
            let middle = pts + half_frame_ticks(track);
            let Some(index) = self.segment_for(epoch, middle) else {
                if !self.pending.is_empty() {
                    self.dropped_frames += 1;
                }
                continue;
            };
            if self.shifts.len() <= epoch {
                if t != self.anchor || self.rebase.is_none() {
                    // by the contract the anchor's packet comes first
                    self.dropped_frames += 1;
                    continue;
                }
                let target = self.rebase.take().unwrap_or(0);
                self.shifts.push(target - pts);
            }
            let shift = self.shifts[epoch];
            let track = &mut self.tracks[t];
            let run = &mut self.pending[index].runs[t];
            if run.closed || run.config.as_ref().is_some_and(|c| *c != config) {
                self.dropped_frames += 1;
                continue;
            }
            let actual = div_round((pts + shift) * rate, TICKS_PER_SECOND).max(0);
            let half = i64::from(FRAME_SAMPLES / 2);
            let decode = match track.next_audio {
                Some(expected) if track.resume_exactly => expected,
                Some(expected) if expected - actual > half => {
                    self.dropped_frames += 1;
                    continue;
                }
                Some(expected) if actual - expected <= half => expected,
                _ => actual,
            };
            run.config.get_or_insert(config);
            run.data.extend_from_slice(frame.raw);
            run.samples.push(Sample {
                decode,
                pts,
                size: frame.raw.len() as u32,
                flags: boxes::SYNC,
                composition_offset: 0,
            });
            if let Some(last) = track.last_decode {
                track.last_duration = Some(decode - last);
            }
            track.last_decode = Some(decode);
            track.next_audio = Some(decode + i64::from(FRAME_SAMPLES));
            track.resume_exactly = false;
            close_before(&mut self.pending, index, t, decode);
        }
        Ok(())
    }

    /// The pending segment an audio frame on timeline `epoch` whose middle
    /// is at `middle` belongs to: the last of that timeline whose cut is not
    /// after it.
    fn segment_for(&self, epoch: usize, middle: i64) -> Option<usize> {
        for (i, p) in self.pending.iter().enumerate().rev() {
            if p.epoch < epoch {
                return None;
            }
            if p.epoch == epoch && p.cut_pts <= middle {
                return Some(i);
            }
        }
        None
    }

    fn emit_ready(&mut self, finishing: bool) -> Result<(), Error> {
        while !self.pending.is_empty() {
            let next_cut = self.pending.get(1).map(|p| p.cut_pts);
            if let (Some(cut), Some(latest)) = (next_cut, self.latest) {
                if latest - cut > LAG {
                    // a track that has not passed the cut by now is not coming
                    for run in &mut self.pending[0].runs {
                        run.closed = true;
                    }
                }
            }
            let done = self.pending[0].runs.iter().all(|r| r.closed);
            if !done || !(finishing || next_cut.is_some()) {
                break;
            }
            let p = self.pending.pop_front().expect("not empty");
            self.emit(p)?;
        }
        Ok(())
    }

    fn emit(&mut self, p: Pending) -> Result<(), Error> {
        if p.runs.iter().all(|r| r.samples.is_empty()) {
            self.ready.push(Output::Empty {
                sequence: p.sequence,
            });
            return Ok(());
        }
        // the configuration of each track: this segment's, or the last init's
        let previous = self.last_init.as_ref().map(|(c, _)| c.clone());
        let configs: Vec<Option<TrackConfig>> = p
            .runs
            .iter()
            .enumerate()
            .map(|(t, r)| {
                r.config
                    .clone()
                    .or_else(|| previous.as_ref().and_then(|c| c[t].clone()))
            })
            .collect();
        let init_id = match &self.last_init {
            Some((c, id)) if *c == configs => *id,
            _ => {
                let id = self.next_init_id;
                self.next_init_id += 1;
                let tracks: Vec<InitTrack> = configs
                    .iter()
                    .enumerate()
                    .filter_map(|(t, c)| {
                        c.as_ref().map(|config| InitTrack {
                            id: self.tracks[t].id,
                            config,
                        })
                    })
                    .collect();
                let bytes = boxes::init_segment(&tracks)?;
                let codecs = tracks
                    .iter()
                    .map(|t| t.config.codec_string())
                    .collect::<Vec<_>>()
                    .join(",");
                self.ready.push(Output::Init(InitOut { id, bytes, codecs }));
                self.last_init = Some((configs, id));
                id
            }
        };
        for (track, run) in self.tracks.iter_mut().zip(&p.runs) {
            if !run.samples.is_empty() && run.end.is_none() {
                track.resume_exactly = true;
            }
        }
        let metas: Vec<Vec<SampleMeta>> = p
            .runs
            .iter()
            .enumerate()
            .map(|(t, r)| durations(&self.tracks[t], r))
            .collect();
        let runs: Vec<TrackRun> = p
            .runs
            .iter()
            .zip(&metas)
            .enumerate()
            .map(|(t, (r, m))| TrackRun {
                track_id: self.tracks[t].id,
                base_decode_time: r.samples.first().map_or(0, |s| s.decode.max(0) as u64),
                samples: m,
                data: &r.data,
                video: self.tracks[t].codec != Codec::Aac,
            })
            .collect();
        let bytes = boxes::media_segment(p.sequence as u32, &runs)?;
        let anchor = &p.runs[self.anchor];
        let scale = self.tracks[self.anchor].timescale();
        let to_90k = |v: i64| v * TICKS_PER_SECOND / scale;
        let duration: i64 = metas[self.anchor]
            .iter()
            .map(|m| i64::from(m.duration))
            .sum();
        self.ready.push(Output::Segment(SegmentOut {
            sequence: p.sequence,
            init_id,
            bytes,
            discontinuity: p.discontinuity,
            starts_with_keyframe: anchor
                .samples
                .first()
                .is_some_and(|s| s.flags & boxes::NON_SYNC == 0),
            start_pts: p.cut_pts,
            decode_time: anchor.samples.first().map_or(0, |s| to_90k(s.decode)),
            duration: to_90k(duration),
        }));
        Ok(())
    }
}

/// The sample records of a run: each sample lasts until the next one's
/// decode time; the last until the track's next sample in a later segment,
/// or, when there is none, as long as the one before it (audio: one frame).
fn durations(track: &Track, run: &Run) -> Vec<SampleMeta> {
    let n = run.samples.len();
    let fallback = if track.codec == Codec::Aac {
        i64::from(FRAME_SAMPLES)
    } else if n >= 2 {
        run.samples[n - 1].decode - run.samples[n - 2].decode
    } else {
        track.last_duration.unwrap_or(3000)
    };
    run.samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let next = match run.samples.get(i + 1) {
                Some(n) => Some(n.decode),
                None => run.end,
            };
            let duration = next.map_or(fallback, |n| n - s.decode);
            let duration = if duration > 0 {
                duration
            } else {
                fallback.max(1)
            };
            SampleMeta {
                duration: duration.min(i64::from(u32::MAX)) as u32,
                size: s.size,
                flags: s.flags,
                composition_offset: s.composition_offset,
            }
        })
        .collect()
}

/// Closes track `t`'s runs in the segments before `index`: its next sample
/// has come, at `decode`.
fn close_before(pending: &mut VecDeque<Pending>, index: usize, t: usize, decode: i64) {
    for p in pending.iter_mut().take(index) {
        let run = &mut p.runs[t];
        if !run.closed {
            run.closed = true;
            run.end = Some(decode);
        }
    }
}

/// Half an AAC frame in 90 kHz ticks, at the track's current rate.
fn half_frame_ticks(track: &Track) -> i64 {
    let rate = match &track.config {
        Some(TrackConfig::Aac(c)) => i64::from(c.sample_rate),
        _ => 48_000,
    };
    div_round(i64::from(FRAME_SAMPLES / 2) * TICKS_PER_SECOND, rate)
}

/// Sample flags of an HEVC picture from its NAL unit type: RASL and RADL
/// pictures are leading, sub-layer non-reference pictures of a stream with
/// one temporal layer are referred to by nothing.
fn hevc_picture_flags(kind: u8, config: &TrackConfig) -> u32 {
    let mut flags = match kind {
        hevc::NAL_RASL_N | hevc::NAL_RASL_R => boxes::LEADING_UNDECODABLE,
        hevc::NAL_RADL_N | hevc::NAL_RADL_R => boxes::LEADING_DECODABLE,
        _ => 0,
    };
    let single_layer = matches!(config, TrackConfig::Hevc(c) if c.info.max_sub_layers == 1);
    if kind <= 14 && single_layer {
        flags |= if kind.is_multiple_of(2) {
            boxes::NOT_DEPENDED_ON
        } else {
            boxes::DEPENDED_ON
        };
    }
    flags
}

/// `a / b` rounded to the nearest integer, halves away from zero, b > 0.
fn div_round(a: i64, b: i64) -> i64 {
    if a >= 0 {
        (a + b / 2) / b
    } else {
        -((-a + b / 2) / b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::fmp4::avc::tests::{hex, BASELINE_PPS, BASELINE_SPS, HIGH_SPS};
    use mp4_atom::{Any, Decode, Moof, TrunSamples};

    const FRAME: i64 = 3000;
    /// One AAC frame at 48 kHz, in 90 kHz ticks.
    const AFRAME: i64 = 1920;

    fn au(key: bool, sps: &str) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 1, 0x09, 0xf0];
        if key {
            for ps in [sps, BASELINE_PPS] {
                out.extend([0, 0, 0, 1]);
                out.extend(hex(ps));
            }
            out.extend([0, 0, 1, 0x65, 0x88, 0x84, 0x21]);
        } else {
            out.extend([0, 0, 1, 0x41, 0x9a, 0x02]);
        }
        out
    }

    /// `n` ADTS frames of 48 kHz stereo AAC LC, each with 4 bytes of data.
    fn adts(n: usize) -> Vec<u8> {
        adts_at(n, 3)
    }

    /// The same at another sampling frequency index.
    fn adts_at(n: usize, rate_index: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend([0xff, 0xf1, 0x40 | (rate_index << 2), 0x80, 0x01, 0x7f, 0xfc]);
            out.extend([i as u8; 4]);
        }
        out
    }

    struct Feed {
        p: Fmp4Packager,
        out: Vec<Output>,
    }

    impl Feed {
        fn new() -> Self {
            Feed {
                p: Fmp4Packager::new(&[StreamKind::H264, StreamKind::Aac]).unwrap(),
                out: Vec::new(),
            }
        }
        fn video(&mut self, dts: i64, pts: i64, key: bool) {
            let data = au(key, BASELINE_SPS);
            self.p
                .on_packet(Packet {
                    stream: 0,
                    dts,
                    pts,
                    key,
                    data: &data,
                })
                .unwrap();
            self.out.extend(self.p.take_ready());
        }
        fn audio(&mut self, pts: i64, frames: usize) {
            let data = adts(frames);
            self.p
                .on_packet(Packet {
                    stream: 1,
                    dts: pts,
                    pts,
                    key: true,
                    data: &data,
                })
                .unwrap();
            self.out.extend(self.p.take_ready());
        }
        fn cut(&mut self, pts: i64, sequence: u64, discontinuity: bool) {
            self.p
                .on_cut(Cut {
                    pts,
                    sequence,
                    discontinuity,
                })
                .unwrap();
            self.out.extend(self.p.take_ready());
        }
        fn finish(&mut self) {
            self.p.finish().unwrap();
            self.out.extend(self.p.take_ready());
        }
        fn segments(&self) -> Vec<&SegmentOut> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    Output::Segment(s) => Some(s),
                    _ => None,
                })
                .collect()
        }
        fn init_ids(&self) -> Vec<u64> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    Output::Init(i) => Some(i.id),
                    _ => None,
                })
                .collect()
        }
    }

    /// Per traf: track id, tfdt, sample count, sum of durations, first flags.
    fn trafs(bytes: &[u8]) -> Vec<(u32, u64, usize, u64, Option<u32>)> {
        let mut buf = bytes;
        let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
            panic!("no moof")
        };
        let _: Moof = moof.clone();
        moof.traf
            .iter()
            .map(|t| {
                let TrunSamples::Explicit(e) = &t.trun[0].samples else {
                    panic!()
                };
                (
                    t.tfhd.track_id,
                    t.tfdt.as_ref().unwrap().base_media_decode_time,
                    e.len(),
                    e.iter().map(|s| u64::from(s.duration.unwrap())).sum(),
                    e[0].flags,
                )
            })
            .collect()
    }

    /// 30 fps video with a keyframe every 30 frames and a cut at each, audio
    /// written 0.4 s late in packets of 8 frames.
    fn run_av(f: &mut Feed, start: i64, frames: i64) {
        let mut next_audio = start;
        for i in 0..frames {
            let pts = start + i * FRAME;
            if i % 30 == 0 {
                f.cut(pts, (i / 30 + 1) as u64, false);
            }
            f.video(pts, pts, i % 30 == 0);
            while next_audio + 8 * AFRAME <= pts - 36_000 {
                f.audio(next_audio, 8);
                next_audio += 8 * AFRAME;
            }
        }
        while next_audio < start + frames * FRAME {
            f.audio(next_audio, 8);
            next_audio += 8 * AFRAME;
        }
    }

    #[test]
    fn late_audio_lands_in_its_own_segment_and_tfdt_continues() {
        let mut f = Feed::new();
        let start = 900_000;
        run_av(&mut f, start, 90);
        // two segments are out: audio of each passed the next cut
        assert_eq!(f.segments().len(), 2);
        f.finish();
        assert_eq!(f.init_ids(), [1]);
        let segs = f.segments();
        assert_eq!(segs.len(), 3);
        let mut next = [None, None];
        for (n, s) in segs.iter().enumerate() {
            assert_eq!(s.sequence, n as u64 + 1);
            assert!(s.starts_with_keyframe);
            assert_eq!(s.start_pts, start + n as i64 * 90_000);
            assert_eq!(s.decode_time, start + n as i64 * 90_000);
            assert_eq!(s.duration, 90_000);
            let t = trafs(&s.bytes);
            assert_eq!(t.len(), 2);
            assert_eq!(t[0].0, 1);
            assert_eq!(t[0].4, Some(boxes::SYNC | boxes::DEPENDED_ON));
            for (i, traf) in t.iter().enumerate() {
                if let Some(expected) = next[i] {
                    assert_eq!(traf.1, expected, "tfdt of track {} in {}", traf.0, n);
                }
                next[i] = Some(traf.1 + traf.3);
            }
            // audio at 48 kHz starts within half a frame of the video
            let audio_start = t[1].1 as i64 * 90_000 / 48_000;
            assert!((audio_start - s.decode_time).abs() <= AFRAME / 2);
        }
        assert_eq!(f.p.dropped_frames(), 0);
    }

    #[test]
    fn audio_fed_ahead_of_the_cut_moves_to_the_new_segment() {
        let mut f = Feed::new();
        f.cut(900_000, 1, false);
        f.video(900_000, 900_000, true);
        // 0.5 s of audio from the start, before the next keyframe
        f.audio(900_000, 24);
        f.cut(900_000 + 30_000, 2, false);
        f.video(930_000, 930_000, true);
        f.finish();
        let segs = f.segments();
        let (first, second) = (trafs(&segs[0].bytes), trafs(&segs[1].bytes));
        // frames whose middle is before 930000: (30000 - 960) / 1920 rounds up to 16
        assert_eq!(first[1].2, 16);
        assert_eq!(second[1].2, 8);
        assert_eq!(second[1].1, first[1].1 + 16 * 1024);
    }

    #[test]
    fn a_dead_audio_track_holds_a_segment_for_lag_only() {
        let mut f = Feed::new();
        f.cut(900_000, 1, false);
        f.audio(900_000, 4);
        for i in 0..120 {
            let pts = 900_000 + i * FRAME;
            if i > 0 && i % 30 == 0 {
                f.cut(pts, (i / 30 + 1) as u64, false);
            }
            f.video(pts, pts, i % 30 == 0);
            if i == 30 {
                assert!(f.segments().is_empty(), "waiting for audio");
            }
        }
        // LAG is 2 s: by 3.97 s in, segment 1 (cut 2 at 1 s) is out, segment
        // 2 waits until 2 s after cut 3 (at 2 s)
        assert_eq!(f.segments().len(), 1);
        f.audio(900_000 + 4 * AFRAME, 2);
        assert_eq!(f.p.dropped_frames(), 2, "late for an emitted segment");
        f.finish();
        assert_eq!(f.segments().len(), 4);
        let t = trafs(&f.segments()[0].bytes);
        assert_eq!(t[1].2, 4);
        assert_eq!(t[1].3, 4 * 1024);
    }

    #[test]
    fn b_frames_near_zero_never_decode_before_zero() {
        let mut f = Feed::new();
        // pts 0 first, dts two frames earlier: shifted by MIN_START
        f.cut(0, 1, false);
        let order = [(0, true), (3, false), (1, false), (2, false)];
        for (n, (slot, key)) in order.iter().enumerate() {
            let dts = (n as i64 - 2) * FRAME;
            f.video(dts, slot * FRAME, *key);
        }
        f.finish();
        let s = f.segments()[0];
        assert_eq!(s.decode_time, MIN_START - 2 * FRAME);
        let mut buf = s.bytes.as_slice();
        let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
            panic!()
        };
        let TrunSamples::Explicit(e) = &moof.traf[0].trun[0].samples else {
            panic!()
        };
        let cts: Vec<i64> = e.iter().map(|s| s.cts.unwrap()).collect();
        assert_eq!(cts, [2 * FRAME, 4 * FRAME, FRAME, FRAME]);
    }

    #[test]
    fn a_new_sps_at_a_cut_gives_a_new_init_and_inside_a_segment_stays_in_band() {
        let mut f = Feed::new();
        f.cut(900_000, 1, false);
        f.video(900_000, 900_000, true);
        f.audio(900_000, 2);
        f.cut(903_000, 2, false);
        let high = au(true, HIGH_SPS);
        f.p.on_packet(Packet {
            stream: 0,
            dts: 903_000,
            pts: 903_000,
            key: true,
            data: &high,
        })
        .unwrap();
        // back to baseline inside segment 2: kept in the sample
        f.video(906_000, 906_000, true);
        f.cut(909_000, 3, false);
        f.video(909_000, 909_000, true);
        f.finish();
        f.out.extend(f.p.take_ready());
        assert_eq!(f.init_ids(), [1, 2, 3]);
        let ids: Vec<u64> = f.segments().iter().map(|s| s.init_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        let second = &f.segments()[1].bytes;
        let sps = hex(BASELINE_SPS);
        let in_band = second.windows(sps.len()).any(|w| w == sps.as_slice());
        assert!(in_band, "the changed SPS stays in the sample");
        let first = &f.segments()[0].bytes;
        assert!(!first.windows(sps.len()).any(|w| w == sps.as_slice()));
    }

    #[test]
    fn a_reset_keeps_decode_times_continuous() {
        let mut f = Feed::new();
        f.cut(900_000, 1, false);
        for i in 0..30 {
            f.video(900_000 + i * FRAME, 900_000 + i * FRAME, i == 0);
        }
        f.audio(900_000, 40);
        // the encoder restarts at 10 s earlier
        let restart = 900_000 + 30 * FRAME - 10 * 90_000;
        f.cut(restart, 2, true);
        for i in 0..30 {
            f.video(restart + i * FRAME, restart + i * FRAME, i == 0);
            if i == 10 {
                f.audio(restart, 10);
            }
        }
        f.finish();
        let segs = f.segments();
        assert!(segs[1].discontinuity);
        let (a, b) = (trafs(&segs[0].bytes), trafs(&segs[1].bytes));
        assert_eq!(b[0].1, a[0].1 + a[0].3, "video tfdt continues");
        assert_eq!(segs[1].decode_time, 900_000 + 90_000);
        // audio: the old run ended 0.15 s before the video, and its last
        // frame lasts until the first of the new timeline
        assert_eq!(b[1].1, a[1].1 + a[1].3);
        let audio_durations = |bytes: &[u8]| -> Vec<u32> {
            let mut buf = bytes;
            let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
                panic!()
            };
            let TrunSamples::Explicit(e) = &moof.traf[1].trun[0].samples else {
                panic!()
            };
            e.iter().map(|s| s.duration.unwrap()).collect()
        };
        let old = audio_durations(&segs[0].bytes);
        assert_eq!(old.last(), Some(&(1024 + 7040)));
        assert_eq!(audio_durations(&segs[1].bytes)[0], 1024);
    }

    #[test]
    fn audio_of_the_old_timeline_after_a_reset_stays_in_the_old_segment() {
        let mut f = Feed::new();
        f.cut(900_000, 1, false);
        for i in 0..30 {
            f.video(900_000 + i * FRAME, 900_000 + i * FRAME, i == 0);
        }
        f.audio(900_000, 24);
        // back by 5 s; the last 0.5 s of old audio comes after the new keyframe
        let restart = 990_000 - 5 * 90_000;
        f.cut(restart, 2, true);
        f.video(restart, restart, true);
        f.audio(900_000 + 24 * AFRAME, 23);
        assert!(f.segments().is_empty(), "segment 1 waits for its audio");
        for i in 1..30 {
            f.video(restart + i * FRAME, restart + i * FRAME, false);
            if i == 12 {
                f.audio(restart, 16);
            }
        }
        f.finish();
        let segs = f.segments();
        let (a, b) = (trafs(&segs[0].bytes), trafs(&segs[1].bytes));
        assert_eq!((a[1].2, b[1].2), (47, 16));
        assert_eq!(b[1].1, a[1].1 + a[1].3);
        assert_eq!(b[0].1, a[0].1 + a[0].3);
        assert_eq!(f.p.dropped_frames(), 0);
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            Fmp4Packager::new(&[StreamKind::from_codec_name("mpeg2video")]),
            Err(Error::UnsupportedCodec { stream: 0, ref codec }) if codec == "mpeg2video"
        ));
        assert_eq!(
            Fmp4Packager::new(&[StreamKind::H264, StreamKind::Hevc]).unwrap_err(),
            Error::SecondVideo { stream: 1 }
        );
        assert_eq!(
            Fmp4Packager::new(&[StreamKind::Ignore]).unwrap_err(),
            Error::NoStreams
        );
        let mut p = Fmp4Packager::new(&[StreamKind::Ignore, StreamKind::H264]).unwrap();
        assert_eq!(p.anchor_stream(), 1);
        let slice = au(false, BASELINE_SPS);
        let pkt = Packet {
            stream: 1,
            dts: 0,
            pts: 0,
            key: false,
            data: &slice,
        };
        // before the first cut a picture is dropped quietly
        assert_eq!(p.on_packet(pkt), Ok(()));
        p.on_cut(Cut {
            pts: 0,
            sequence: 1,
            discontinuity: false,
        })
        .unwrap();
        assert_eq!(p.on_packet(pkt), Err(Error::NoParameterSets { stream: 1 }));
        assert_eq!(
            p.on_packet(Packet { stream: 5, ..pkt }),
            Err(Error::UnknownStream(5))
        );
        assert_eq!(p.on_packet(Packet { stream: 0, ..pkt }), Ok(()));
    }

    #[test]
    fn another_sample_rate_starts_a_new_init_and_timescale() {
        let mut p = Fmp4Packager::new(&[StreamKind::Aac]).unwrap();
        let mut out = Vec::new();
        let mut feed = |p: &mut Fmp4Packager, pts: i64, index: u8, cut: Option<u64>| {
            if let Some(sequence) = cut {
                p.on_cut(Cut {
                    pts,
                    sequence,
                    discontinuity: false,
                })
                .unwrap();
            }
            let data = adts_at(4, index);
            p.on_packet(Packet {
                stream: 0,
                dts: pts,
                pts,
                key: true,
                data: &data,
            })
            .unwrap();
            out.extend(p.take_ready());
        };
        feed(&mut p, 900_000, 3, Some(1));
        feed(&mut p, 900_000 + 4 * AFRAME, 3, None);
        // 44.1 kHz from here; the cut comes with it
        feed(&mut p, 900_000 + 8 * AFRAME, 4, Some(2));
        p.finish().unwrap();
        out.extend(p.take_ready());
        let inits: Vec<&InitOut> = out
            .iter()
            .filter_map(|o| match o {
                Output::Init(i) => Some(i),
                _ => None,
            })
            .collect();
        assert_eq!(inits.len(), 2);
        let segs: Vec<&SegmentOut> = out
            .iter()
            .filter_map(|o| match o {
                Output::Segment(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(segs[1].init_id, inits[1].id);
        let first = trafs(&segs[0].bytes);
        assert_eq!((first[0].2, first[0].3), (8, 8 * 1024));
        let second = trafs(&segs[1].bytes);
        // 900000 + 8 frames of 1920 ticks at 44.1 kHz
        assert_eq!(second[0].1, (900_000 + 8 * 1920) * 44_100 / 90_000);
        assert_eq!(second[0].2, 4);
        assert_eq!(segs[1].duration, 4 * 1024 * 90_000 / 44_100);
    }

    #[test]
    fn after_a_reset_back_by_an_hour_audio_is_still_waited_for() {
        let mut f = Feed::new();
        let start = 3600 * 90_000;
        run_av(&mut f, start, 60);
        // the encoder restarts at 1.4 s; audio keeps coming 0.4 s late
        let restart = 126_000;
        let mut next_audio = restart;
        for i in 0..90 {
            let pts = restart + i * FRAME;
            if i % 30 == 0 {
                f.cut(pts, 3 + (i / 30) as u64, i == 0);
            }
            f.video(pts, pts, i % 30 == 0);
            while next_audio + 8 * AFRAME <= pts - 36_000 {
                f.audio(next_audio, 8);
                next_audio += 8 * AFRAME;
            }
        }
        f.finish();
        let segs = f.segments();
        assert_eq!(segs.len(), 5);
        // a second of audio is 46.875 frames: 47 or 46 by their middles;
        // after the reset 2 fewer, since the old audio ran 2.25 frames past
        // the old video and the frames that overlap it are dropped (the
        // audio written 0.4 s late would have been lost, had the hour-old
        // clock of the other timeline been taken for how far the input got)
        let counts: Vec<usize> = segs[2..4].iter().map(|s| trafs(&s.bytes)[1].2).collect();
        assert_eq!(counts, [45, 47]);
        assert_eq!(f.p.dropped_frames(), 2);
    }

    #[test]
    fn hevc_leading_pictures_and_a_cut_without_a_keyframe() {
        use crate::package::fmp4::hevc::tests::{MAIN_PPS, MAIN_SPS, MAIN_VPS};
        let mut p = Fmp4Packager::new(&[StreamKind::Hevc]).unwrap();
        let unit = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend([0, 0, 0, 1]);
            out.extend(bytes);
        };
        let mut cra = Vec::new();
        unit(&mut cra, &[0x46, 0x01, 0x50]); // AUD
        for ps in [MAIN_VPS, MAIN_SPS, MAIN_PPS] {
            unit(&mut cra, &hex(ps));
        }
        unit(&mut cra, &[0x2a, 0x01, 0xaf, 0x11]); // CRA_NUT
        let rasl = [0, 0, 1, 0x10, 0x01, 0xd0, 0x22]; // RASL_N
        let trail_r = [0, 0, 1, 0x02, 0x01, 0xd0, 0x33]; // TRAIL_R
        let feed = |p: &mut Fmp4Packager, dts: i64, key: bool, data: &[u8]| {
            p.on_packet(Packet {
                stream: 0,
                dts,
                pts: dts,
                key,
                data,
            })
            .unwrap()
        };
        let cut = |p: &mut Fmp4Packager, pts: i64, sequence: u64| {
            p.on_cut(Cut {
                pts,
                sequence,
                discontinuity: false,
            })
            .unwrap()
        };
        cut(&mut p, 900_000, 1);
        feed(&mut p, 900_000, true, &cra);
        feed(&mut p, 903_000, false, &rasl);
        // a forced cut: the segment starts with a picture that is no keyframe
        cut(&mut p, 906_000, 2);
        feed(&mut p, 906_000, false, &trail_r);
        p.finish().unwrap();
        let out = p.take_ready();
        let Output::Init(init) = &out[0] else {
            panic!("init first")
        };
        assert_eq!(init.codecs, "hvc1.1.6.L63.90");
        let segs: Vec<&SegmentOut> = out
            .iter()
            .filter_map(|o| match o {
                Output::Segment(s) => Some(s),
                _ => None,
            })
            .collect();
        let mut buf = segs[0].bytes.as_slice();
        let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
            panic!()
        };
        let TrunSamples::Explicit(e) = &moof.traf[0].trun[0].samples else {
            panic!()
        };
        let flags: Vec<u32> = e.iter().map(|s| s.flags.unwrap()).collect();
        assert_eq!(
            flags,
            [
                // whether anything refers to an IRAP picture is not said
                boxes::SYNC,
                boxes::NON_SYNC | boxes::LEADING_UNDECODABLE | boxes::NOT_DEPENDED_ON,
            ]
        );
        // AUD and parameter sets are not in the samples: 4 + 4 bytes of CRA
        assert_eq!(e[0].size, Some(8));
        assert!(segs[0].starts_with_keyframe);
        assert!(!segs[1].starts_with_keyframe);
    }
}
