//! Segment assembly by time: which samples of a rendition make each of the
//! source's segments.
//!
//! A rendition's streams do not arrive in step with the source's cuts: the
//! video of an encoded rung comes out of the encoder up to ~2 s after the
//! source video of its time, and the input's audio up to ~0.7 s after it.
//! So a cut is held until the rendition's own samples of its time arrive,
//! and each sample is placed by its timestamps, never by when it came.
//!
//! # Rules
//! - The video sample that starts the segment of cut `T` is the first
//!   keyframe (decode order) whose pts is at least `T - tolerance` (for a
//!   [`TimedCut::forced`] cut, the first video sample whose pts is,
//!   keyframe or not). [`Ready::offset`] tells how far it lies from `T`:
//!   a far keyframe is reported, for the caller to refuse, not hidden.
//!   When one sample starts several waiting cuts at once (keyframes
//!   missing where the earlier ones were), the earlier ones become
//!   segments without samples, starting there too, with their offsets.
//! - A cut that comes after the video sample that starts it (cuts usually
//!   come first) splits the open segment back at that sample; ahead of the
//!   first cut, the video since the last keyframe is kept for that.
//! - Video samples go to the segment open when they come (decode order).
//!   Audio frames go by time: a frame belongs to the last segment whose
//!   start is at most the frame's middle (pts + half its duration). ADTS
//!   packets are split into their frames, each timed from the packet's pts
//!   and the sample rate; other audio packets are one unit at their pts.
//! - Segment `k` is ready once the video has started segment `k + 1` and
//!   every audio track has a frame whose middle is at or past that start,
//!   or once the video has gone [`LAG`] (2 s) past it without some track
//!   doing so (a track that died). Without video, a cut starts its segment
//!   at its own pts, and the audio decides (its newest frame is the clock
//!   for the dead-track rule).
//! - Samples fed before the first cut are dropped; so is video before the
//!   first segment's start. Audio frames fed after the first cut that end
//!   up in no segment (late for a segment already emitted, before the
//!   first segment's start, or held at the end) are counted in
//!   [`TimedSegments::dropped`].
//!
//! # Discontinuities
//! A [`TimedCut::discontinuity`] cut (a timestamp reset) starts a new
//! timeline. Its video sample (and that of any cut after it, while the
//! video is still on the old timeline) must also lie less than [`LAG`]
//! after the cut's pts, so that late video of the old timeline, whose
//! times may be far past the new ones after a step back, does not start
//! it. A track's first frame is taken to be on the latest cut's timeline;
//! after that each audio track moves to the new timeline when its own pts
//! steps back by more than [`MAX_BACK`] or forward by more than
//! [`MAX_FORWARD`]; until then its frames go to the old timeline's last
//! segment. A track counts as
//! past the new timeline's first start once it has moved, so the old
//! timeline's last segment is ready once the new timeline's first video
//! sample came and every track stepped (or [`LAG`] after that). A track
//! that never steps joins the new timeline once the old one's segments are
//! all out.
//!
//! # End of input
//! [`TimedSegments::finish`] makes every started segment ready, the last
//! one ending where its samples end. A cut the video never reached makes
//! no segment; audio from its time on is dropped with the rest.
//!
//! Memory: what is held is bounded by the readiness rules while the video
//! flows; a rendition whose video stops altogether holds its audio until
//! [`TimedSegments::finish`] (the caller gives such a rendition up).

use std::collections::VecDeque;

use super::ts_mux::{MuxSample, Track};
use crate::codec::keyframe::{walk_adts, AdtsFrame};
use crate::package::fmp4::packager::{LAG, MAX_BACK, MAX_FORWARD};
use crate::timeline::TICKS_PER_SECOND;

/// Video samples kept ahead of the first cut, at most (about 17 s at 60
/// fps): beyond that the input has no keyframes worth waiting for.
const MAX_PREROLL: usize = 1024;

/// A segment the source's cutter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedCut {
    /// Where the source's segment starts (unwrapped 90 kHz ticks).
    pub pts: i64,
    pub sequence: u64,
    /// A timestamp reset: a new timeline starts here.
    pub discontinuity: bool,
    /// The source had no keyframe here (keyframes stopped and the segment
    /// grew too long): cut at the first video sample with
    /// pts >= pts - tolerance, keyframe or not.
    pub forced: bool,
}

/// One video access unit or audio packet (unwrapped 90 kHz ticks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub pts: i64,
    pub dts: i64,
    pub key: bool,
    pub data: Vec<u8>,
}

/// A segment whose samples are all known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub sequence: u64,
    pub discontinuity: bool,
    /// The video keyframe's pts that starts it (or the cut's pts without
    /// video).
    pub start: i64,
    /// How far its first video keyframe is from the cut's pts (0 = exact).
    pub offset: i64,
    /// Interleaved by dts, video first on ties (then audio by track).
    pub samples: Vec<(Track, Sample)>,
}

impl Ready {
    /// Its samples as [`super::TsMuxer::segment`] takes them.
    pub fn mux_samples(&self) -> Vec<MuxSample<'_>> {
        self.samples
            .iter()
            .map(|(track, s)| MuxSample {
                track: *track,
                pts: s.pts,
                dts: s.dts,
                key: s.key,
                data: &s.data,
            })
            .collect()
    }
}

/// A segment the video (or, without video, the cut) has started.
#[derive(Debug)]
struct Open {
    sequence: u64,
    discontinuity: bool,
    epoch: u64,
    start: i64,
    offset: i64,
    video: Vec<Sample>,
}

/// A cut the video has not reached yet.
#[derive(Debug)]
struct Waiting {
    cut: TimedCut,
    epoch: u64,
}

/// An audio frame held until its segment is emitted.
#[derive(Debug)]
struct Frame {
    epoch: u64,
    middle: i64,
    sample: Sample,
}

#[derive(Debug, Default)]
struct AudioTrack {
    /// The sample rate of ADTS AAC; `None` for other codecs.
    rate: Option<u32>,
    /// Its timeline; `None` before its first frame.
    epoch: Option<u64>,
    last_pts: Option<i64>,
    /// The latest frame middle on its timeline.
    max_middle: i64,
    frames: VecDeque<Frame>,
}

impl AudioTrack {
    /// Whether the track has gone past `at` on timeline `epoch`.
    fn passed(&self, epoch: u64, at: i64) -> bool {
        self.epoch
            .is_some_and(|e| e > epoch || (e == epoch && self.max_middle >= at))
    }
}

/// Where an audio frame goes relative to one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Before,
    In,
    After,
}

/// Where a frame on timeline `epoch` whose middle is at `middle` goes
/// relative to the segment on `seg_epoch` starting at `start`, the next
/// segment (or cut) being `end`.
fn place(epoch: u64, middle: i64, seg_epoch: u64, start: i64, end: Option<(u64, i64)>) -> Place {
    if epoch < seg_epoch || (epoch == seg_epoch && middle < start) {
        Place::Before
    } else if epoch == seg_epoch && end.is_none_or(|(e, at)| e != seg_epoch || middle < at) {
        Place::In
    } else {
        Place::After
    }
}

/// Whether video sample `s` may start the segment of `cut`; see the module
/// documentation. `new_timeline`: the cut is on a later timeline than the
/// video so far, whose late samples must not start it.
fn starts(cut: &TimedCut, s: &Sample, tolerance: i64, new_timeline: bool) -> bool {
    (s.key || cut.forced)
        && s.pts >= cut.pts - tolerance
        && (!(new_timeline || cut.discontinuity) || s.pts < cut.pts + LAG)
}

/// Splits an audio packet into its timed units with half their duration:
/// the frames of ADTS AAC at `rate`, or the packet itself (bytes that are
/// not whole ADTS frames too).
fn audio_units(rate: Option<u32>, s: Sample) -> Vec<(Sample, i64)> {
    let Some(rate) = rate.filter(|&r| r > 0).map(i64::from) else {
        return vec![(s, 0)];
    };
    let mut frames: Vec<AdtsFrame> = Vec::new();
    if !walk_adts(&s.data, |f| frames.push(f)) {
        return vec![(s, 0)];
    }
    let mut units = Vec::with_capacity(frames.len());
    let mut before = 0i64;
    for (i, f) in frames.iter().enumerate() {
        let end = frames.get(i + 1).map_or(s.data.len(), |n| n.offset);
        let since = before * TICKS_PER_SECOND / rate;
        let duration = i64::from(f.samples) * TICKS_PER_SECOND / rate;
        before += i64::from(f.samples);
        let frame = Sample {
            pts: s.pts + since,
            dts: s.dts + since,
            key: s.key,
            data: s.data[f.offset..end].to_vec(),
        };
        units.push((frame, duration / 2));
    }
    units
}

/// Decides which samples make each segment; see the module documentation.
#[derive(Debug)]
pub struct TimedSegments {
    has_video: bool,
    tolerance: i64,
    tracks: Vec<AudioTrack>,
    /// Started segments not emitted yet, oldest first.
    open: VecDeque<Open>,
    /// Cuts the video has not reached, oldest first.
    waiting: VecDeque<Waiting>,
    /// Video since the last keyframe, before any segment or cut.
    preroll: Vec<Sample>,
    /// The latest cut's timeline; `None` before the first cut.
    epoch: Option<u64>,
    /// The timeline and newest pts of the video.
    video_clock: Option<(u64, i64)>,
    ready: Vec<Ready>,
    dropped: u64,
}

impl TimedSegments {
    /// `audio`: per audio track, `Some(sample_rate)` for ADTS AAC (its
    /// packets are split into frames of 1024 samples, each timed), `None`
    /// for other codecs (a packet is one unit at its pts). `tolerance`:
    /// half a video frame in ticks.
    pub fn new(has_video: bool, audio: &[Option<u32>], tolerance: i64) -> Self {
        TimedSegments {
            has_video,
            tolerance: tolerance.max(0),
            tracks: audio
                .iter()
                .map(|&rate| AudioTrack {
                    rate,
                    ..AudioTrack::default()
                })
                .collect(),
            open: VecDeque::new(),
            waiting: VecDeque::new(),
            preroll: Vec::new(),
            epoch: None,
            video_clock: None,
            ready: Vec::new(),
            dropped: 0,
        }
    }

    /// A segment starts at `pts`. Cuts come in increasing order (within a
    /// timeline), usually before the samples of that time.
    pub fn cut(&mut self, cut: TimedCut) {
        let epoch = match self.epoch {
            None => 0,
            Some(e) if cut.discontinuity => e + 1,
            Some(e) => e,
        };
        self.epoch = Some(epoch);
        if !self.has_video {
            self.open.push_back(Open {
                sequence: cut.sequence,
                discontinuity: cut.discontinuity,
                epoch,
                start: cut.pts,
                offset: 0,
                video: Vec::new(),
            });
        } else if !(self.waiting.is_empty() && self.start_late(cut, epoch)) {
            self.waiting.push_back(Waiting { cut, epoch });
        }
        self.release();
    }

    /// A cut whose video sample came already: splits the open segment (or
    /// the preroll) there. Returns whether it found one.
    fn start_late(&mut self, cut: TimedCut, epoch: u64) -> bool {
        let tolerance = self.tolerance;
        // the sample that started the open segment stays in it
        let (samples, from, newer) = match self.open.back_mut() {
            Some(last) => (&mut last.video, 1, epoch > last.epoch),
            None => (&mut self.preroll, 0, false),
        };
        let Some(at) = samples
            .iter()
            .skip(from)
            .position(|s| starts(&cut, s, tolerance, newer))
        else {
            return false;
        };
        let moved = samples.split_off(at + from);
        self.preroll.clear();
        self.begin(cut, epoch, moved);
        true
    }

    /// Opens the segment of `cut` with its first video samples (at least
    /// one).
    fn begin(&mut self, cut: TimedCut, epoch: u64, video: Vec<Sample>) {
        let Some(first) = video.first() else {
            return;
        };
        let start = first.pts;
        for s in &video {
            self.tick_video(epoch, s.pts);
        }
        self.open.push_back(Open {
            sequence: cut.sequence,
            discontinuity: cut.discontinuity,
            epoch,
            start,
            offset: start - cut.pts,
            video,
        });
    }

    fn tick_video(&mut self, epoch: u64, pts: i64) {
        self.video_clock = match self.video_clock {
            Some((e, newest)) if e == epoch => Some((e, newest.max(pts))),
            Some((e, newest)) if e > epoch => Some((e, newest)),
            _ => Some((epoch, pts)),
        };
    }

    /// Video samples in decode order.
    pub fn video(&mut self, s: Sample) {
        if !self.has_video {
            return;
        }
        let tolerance = self.tolerance;
        // the video's timeline: the open segment's, or before any the first cut's
        let current = self
            .open
            .back()
            .map(|o| o.epoch)
            .or_else(|| self.waiting.front().map(|w| w.epoch));
        // the last waiting cut this sample starts; the ones before start here too
        if let Some(last) = self.waiting.iter().rposition(|w| {
            let newer = current.is_some_and(|e| w.epoch > e);
            starts(&w.cut, &s, tolerance, newer)
        }) {
            let mut started: Vec<Waiting> = self.waiting.drain(..=last).collect();
            let Some(w) = started.pop() else {
                return;
            };
            for skipped in started {
                self.open.push_back(Open {
                    sequence: skipped.cut.sequence,
                    discontinuity: skipped.cut.discontinuity,
                    epoch: skipped.epoch,
                    start: s.pts,
                    offset: s.pts - skipped.cut.pts,
                    video: Vec::new(),
                });
            }
            self.preroll.clear();
            self.begin(w.cut, w.epoch, vec![s]);
        } else if let Some(open) = self.open.back_mut() {
            let epoch = open.epoch;
            let pts = s.pts;
            open.video.push(s);
            self.tick_video(epoch, pts);
        } else if self.waiting.is_empty() {
            if s.key {
                self.preroll.clear();
                self.preroll.push(s);
            } else if !self.preroll.is_empty() && self.preroll.len() < MAX_PREROLL {
                self.preroll.push(s);
            } else {
                self.preroll.clear();
            }
        }
        self.release();
    }

    /// An audio packet of track `track` (as given to [`TimedSegments::new`]);
    /// one of a track not given is ignored.
    pub fn audio(&mut self, track: usize, s: Sample) {
        let Some(latest) = self.epoch else {
            return;
        };
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let mut epoch = match (t.epoch, t.last_pts) {
            (None, _) => latest,
            (Some(e), Some(last))
                if e < latest && !(-MAX_BACK..=MAX_FORWARD).contains(&(s.pts - last)) =>
            {
                e + 1
            }
            (Some(e), _) => e,
        };
        if epoch < latest && !self.has_timeline(epoch) {
            // its timeline's segments are all out: it did not reset with the rest
            epoch = latest;
        }
        let front = self.open.front().map(|o| (o.epoch, o.start));
        let packet_pts = s.pts;
        let units = audio_units(t.rate, s);
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        for (sample, half) in units {
            let middle = sample.pts + half;
            t.max_middle = match t.epoch {
                Some(e) if e == epoch => t.max_middle.max(middle),
                _ => middle,
            };
            t.epoch = Some(epoch);
            let late = front
                .is_some_and(|(e, start)| place(epoch, middle, e, start, None) == Place::Before);
            if late {
                self.dropped += 1;
            } else {
                t.frames.push_back(Frame {
                    epoch,
                    middle,
                    sample,
                });
            }
        }
        t.last_pts = Some(packet_pts);
        self.release();
    }

    /// Whether a started segment or a waiting cut is on timeline `epoch`.
    fn has_timeline(&self, epoch: u64) -> bool {
        self.open.iter().any(|o| o.epoch == epoch) || self.waiting.iter().any(|w| w.epoch == epoch)
    }

    /// The newest time seen, on its timeline: the video's, or without video
    /// the newest audio frame's.
    fn clock(&self) -> Option<(u64, i64)> {
        if self.has_video {
            self.video_clock
        } else {
            self.tracks
                .iter()
                .filter_map(|t| t.epoch.map(|e| (e, t.max_middle)))
                .max()
        }
    }

    /// Emits the segments that are ready by the rules.
    fn release(&mut self) {
        while let Some(next) = self.open.get(1) {
            let (epoch, at) = (next.epoch, next.start);
            let audio_past = self.tracks.iter().all(|t| t.passed(epoch, at));
            let dead = self
                .clock()
                .is_some_and(|(e, newest)| e > epoch || (e == epoch && newest - at >= LAG));
            if !(audio_past || dead) {
                break;
            }
            self.emit_front();
        }
    }

    /// Makes the oldest open segment ready with the audio frames that fall
    /// in it.
    fn emit_front(&mut self) {
        let Some(seg) = self.open.pop_front() else {
            return;
        };
        let end = self
            .open
            .front()
            .map(|n| (n.epoch, n.start))
            .or_else(|| self.waiting.front().map(|w| (w.epoch, w.cut.pts)));
        let mut samples: Vec<(Track, Sample)> =
            seg.video.into_iter().map(|s| (Track::Video, s)).collect();
        for (n, t) in self.tracks.iter_mut().enumerate() {
            let mut keep = VecDeque::with_capacity(t.frames.len());
            for f in t.frames.drain(..) {
                match place(f.epoch, f.middle, seg.epoch, seg.start, end) {
                    Place::Before => self.dropped += 1,
                    Place::In => samples.push((Track::Audio(n), f.sample)),
                    Place::After => keep.push_back(f),
                }
            }
            t.frames = keep;
        }
        samples.sort_by_key(|(track, s)| (s.dts, *track));
        self.ready.push(Ready {
            sequence: seg.sequence,
            discontinuity: seg.discontinuity,
            start: seg.start,
            offset: seg.offset,
            samples,
        });
    }

    /// Segments complete since the last call, in order.
    pub fn take_ready(&mut self) -> Vec<Ready> {
        std::mem::take(&mut self.ready)
    }

    /// End of input: everything held becomes segments (the last one ends
    /// where its samples end). Call it once, at the end.
    pub fn finish(&mut self) -> Vec<Ready> {
        while !self.open.is_empty() {
            self.emit_front();
        }
        for t in &mut self.tracks {
            self.dropped += t.frames.len() as u64;
            t.frames.clear();
        }
        self.waiting.clear();
        self.preroll.clear();
        std::mem::take(&mut self.ready)
    }

    /// Audio frames dropped because their segment was already emitted (or
    /// they fell in no segment; see the module documentation).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame's duration at 48 kHz: 1024 samples.
    const FRAME: i64 = 1920;
    /// Half a frame of 30 fps video.
    const TOLERANCE: i64 = 1500;
    const VIDEO_FRAME: i64 = 3000;

    /// An ADTS frame (AAC LC, 48 kHz, stereo) whose payload is `tag`.
    fn adts_frame(tag: u8) -> Vec<u8> {
        let len = 7 + 4;
        let mut f = vec![
            0xff,
            0xf1,
            (1 << 6) | (3 << 2),
            (2 << 6) | ((len >> 11) & 0x03) as u8,
            (len >> 3) as u8,
            (((len & 7) << 5) as u8) | 0x1f,
            0xfc,
        ];
        f.extend_from_slice(&[tag; 4]);
        f
    }

    /// An ADTS packet of `n` frames, tagged from `first`.
    fn adts(pts: i64, first: u8, n: u8) -> Sample {
        let data = (0..n)
            .flat_map(|i| adts_frame(first.wrapping_add(i)))
            .collect();
        Sample {
            pts,
            dts: pts,
            key: true,
            data,
        }
    }

    fn video(pts: i64, key: bool) -> Sample {
        Sample {
            pts,
            dts: pts,
            key,
            data: pts.to_be_bytes().to_vec(),
        }
    }

    fn cut(pts: i64, sequence: u64) -> TimedCut {
        TimedCut {
            pts,
            sequence,
            discontinuity: false,
            forced: false,
        }
    }

    fn audio_frames(r: &Ready, track: usize) -> Vec<&Sample> {
        r.samples
            .iter()
            .filter(|(t, _)| *t == Track::Audio(track))
            .map(|(_, s)| s)
            .collect()
    }

    fn video_pts(r: &Ready) -> Vec<i64> {
        r.samples
            .iter()
            .filter(|(t, _)| *t == Track::Video)
            .map(|(_, s)| s.pts)
            .collect()
    }

    enum Event {
        Cut(TimedCut),
        Video(Sample),
        Audio(usize, Sample),
    }

    #[test]
    fn late_video_still_cuts_by_time() {
        let base = 900_000;
        let cuts: Vec<i64> = (0..4).map(|k| base + k * 180_000).collect();
        // (arrival time, event): cuts at their time, AAC 0.5 s late in
        // packets of 5 frames, MP2-like packets 0.3 s late, video 1.5 s late
        let mut events: Vec<(i64, Event)> = Vec::new();
        for (k, &c) in cuts.iter().enumerate() {
            events.push((c, Event::Cut(cut(c, k as u64 + 1))));
        }
        let end = base + 4 * 180_000;
        let mut aac_in = 0u64;
        let mut pts = base;
        let mut tag = 0u8;
        while pts < end {
            events.push((pts + 45_000, Event::Audio(0, adts(pts, tag, 5))));
            aac_in += 5;
            pts += 5 * FRAME;
            tag = tag.wrapping_add(5);
        }
        let mut mp2_in = 0u64;
        for p in (base..end).step_by(2160) {
            let s = Sample {
                pts: p,
                dts: p,
                key: true,
                data: vec![1, 2, 3],
            };
            events.push((p + 27_000, Event::Audio(1, s)));
            mp2_in += 1;
        }
        let mut video_in = 0u64;
        for p in (base..end).step_by(VIDEO_FRAME as usize) {
            let key = (p - base) % 180_000 == 0;
            events.push((p + 135_000, Event::Video(video(p, key))));
            video_in += 1;
        }
        events.sort_by_key(|(at, _)| *at);

        let mut t = TimedSegments::new(true, &[Some(48_000), None], TOLERANCE);
        let mut out = Vec::new();
        for (_, e) in events {
            match e {
                Event::Cut(c) => t.cut(c),
                Event::Video(s) => t.video(s),
                Event::Audio(n, s) => t.audio(n, s),
            }
            out.extend(t.take_ready());
        }
        assert_eq!(out.len(), 3, "segments 1 to 3 ready before the end");
        out.extend(t.finish());
        assert_eq!(
            out.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        for (k, r) in out.iter().enumerate() {
            assert_eq!(r.start, cuts[k]);
            assert_eq!(r.offset, 0);
            let next = cuts.get(k + 1).copied().unwrap_or(i64::MAX);
            let in_range = |at: i64| (r.start..next).contains(&at);
            assert!(video_pts(r).iter().all(|&p| in_range(p)), "video of {k}");
            assert!(audio_frames(r, 0)
                .iter()
                .all(|s| in_range(s.pts + FRAME / 2)));
            assert!(audio_frames(r, 1).iter().all(|s| in_range(s.pts)));
            assert_eq!(video_pts(r).len(), 60, "2 s of 30 fps video");
            let dts: Vec<(i64, Track)> = r.samples.iter().map(|(t, s)| (s.dts, *t)).collect();
            assert!(dts.windows(2).all(|w| w[0] <= w[1]), "interleaved by dts");
        }
        let count = |track: Track| {
            out.iter()
                .flat_map(|r| r.samples.iter())
                .filter(|(t, _)| *t == track)
                .count() as u64
        };
        assert_eq!(count(Track::Video), video_in);
        assert_eq!(count(Track::Audio(0)) + t.dropped(), aac_in);
        assert_eq!(count(Track::Audio(1)), mp2_in);
        assert_eq!(t.dropped(), 0);
    }

    #[test]
    fn an_adts_packet_straddling_a_cut_splits_by_frame_middles() {
        // without video the cuts start the segments and audio decides
        let mut t = TimedSegments::new(false, &[Some(48_000)], TOLERANCE);
        t.cut(cut(0, 1));
        t.cut(cut(9_500, 2));
        // frames at 5000, 6920, 8840, 10760, 12680: middles 5960, 7880,
        // 9800, ...: the third starts before the cut but is mostly after it
        t.audio(0, adts(5_000, 10, 5));
        let ready = t.take_ready();
        assert_eq!(ready.len(), 1, "audio past the second cut");
        let first = audio_frames(&ready[0], 0);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].pts, 5_000);
        assert_eq!(first[1].pts, 6_920);
        assert_eq!(
            first[1].data,
            adts_frame(11),
            "the frame's own bytes, header included"
        );
        assert_eq!(ready[0].start, 0);
        let rest = t.finish();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].start, 9_500);
        let pts: Vec<i64> = audio_frames(&rest[0], 0).iter().map(|s| s.pts).collect();
        assert_eq!(pts, vec![8_840, 10_760, 12_680]);
        assert_eq!(audio_frames(&rest[0], 0)[2].data, adts_frame(14));
    }

    #[test]
    fn a_late_keyframe_is_reported_not_hidden() {
        let mut t = TimedSegments::new(true, &[], TOLERANCE);
        t.cut(cut(0, 1));
        t.cut(cut(90_000, 2));
        t.cut(cut(181_000, 3));
        t.cut(cut(270_000, 4));
        for p in (0..=273_000).step_by(VIDEO_FRAME as usize) {
            // a keyframe one frame late, one within the tolerance early,
            // one exactly at its cut
            let key = [0, 93_000, 180_000, 270_000].contains(&p);
            t.video(video(p, key));
        }
        let out = t.finish();
        let got: Vec<(u64, i64, i64)> = out
            .iter()
            .map(|r| (r.sequence, r.start, r.offset))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 0),
                (2, 93_000, 3_000),
                (3, 180_000, -1_000),
                (4, 270_000, 0)
            ]
        );
        assert!(
            video_pts(&out[0]).contains(&90_000),
            "the frame at the cut that is no keyframe stays before it"
        );
    }

    #[test]
    fn a_forced_cut_takes_any_frame_and_missing_keyframes_leave_empty_segments() {
        let mut t = TimedSegments::new(true, &[], TOLERANCE);
        t.cut(cut(0, 1));
        t.cut(TimedCut {
            forced: true,
            ..cut(30_000, 2)
        });
        t.cut(cut(60_000, 3));
        t.cut(cut(90_000, 4));
        for p in (0..=150_000).step_by(VIDEO_FRAME as usize) {
            t.video(video(p, p == 0 || p == 120_000));
        }
        let out = t.finish();
        let got: Vec<(u64, i64, i64, usize)> = out
            .iter()
            .map(|r| (r.sequence, r.start, r.offset, r.samples.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 0, 10),
                (2, 30_000, 0, 30),
                // no keyframe until 120000: reported, and empty
                (3, 120_000, 60_000, 0),
                (4, 120_000, 30_000, 11),
            ]
        );
    }

    #[test]
    fn a_dead_audio_track_is_let_go_after_two_seconds() {
        let mut t = TimedSegments::new(true, &[Some(48_000), Some(48_000)], TOLERANCE);
        t.cut(cut(0, 1));
        t.cut(cut(90_000, 2));
        t.audio(1, adts(0, 0, 10)); // up to 19200, then nothing
        let mut audio_pts = 0;
        let mut released_at = None;
        for p in (0..=300_000).step_by(VIDEO_FRAME as usize) {
            t.video(video(p, p % 90_000 == 0));
            while audio_pts <= p {
                t.audio(0, adts(audio_pts, 0, 1));
                audio_pts += FRAME;
            }
            let ready = t.take_ready();
            if !ready.is_empty() {
                assert_eq!(ready[0].sequence, 1);
                assert_eq!(audio_frames(&ready[0], 1).len(), 10);
                assert!(!audio_frames(&ready[0], 0).is_empty());
                released_at.get_or_insert(p);
            }
        }
        assert_eq!(released_at, Some(90_000 + LAG), "2 s of video past the cut");
    }

    #[test]
    fn ready_waits_for_every_audio_track_to_pass_the_next_start() {
        let mut t = TimedSegments::new(true, &[Some(48_000)], TOLERANCE);
        t.cut(cut(0, 1));
        t.cut(cut(90_000, 2));
        for p in (0..=93_000).step_by(VIDEO_FRAME as usize) {
            t.video(video(p, p % 90_000 == 0));
        }
        t.audio(0, adts(0, 0, 46)); // to 88320, last middle 87360
        assert!(t.take_ready().is_empty(), "audio not past 90000 yet");
        t.audio(0, adts(88_320, 46, 2)); // middles 89280, 91200
        let ready = t.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(audio_frames(&ready[0], 0).len(), 47);
        // late for the emitted segment: dropped and counted
        t.audio(0, adts(50_000, 0, 1));
        assert_eq!(t.dropped(), 1);
        let rest = t.finish();
        assert_eq!(audio_frames(&rest[0], 0).len(), 1);
    }

    #[test]
    fn a_cut_after_its_keyframe_splits_back() {
        let mut t = TimedSegments::new(true, &[None], TOLERANCE);
        // video before the first cut: kept from its last keyframe
        t.video(video(-6_000, true));
        t.video(video(-3_000, false));
        t.video(video(0, true));
        t.video(video(3_000, false));
        t.cut(cut(0, 1));
        t.video(video(6_000, false));
        t.video(video(9_000, true));
        t.video(video(12_000, false));
        t.audio(0, video(10_000, true));
        t.cut(cut(9_000, 2));
        let ready = t.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].start, 0);
        assert_eq!(video_pts(&ready[0]), vec![0, 3_000, 6_000]);
        let rest = t.finish();
        assert_eq!((rest[0].start, rest[0].offset), (9_000, 0));
        assert_eq!(video_pts(&rest[0]), vec![9_000, 12_000]);
        assert_eq!(audio_frames(&rest[0], 0).len(), 1);
    }

    #[test]
    fn a_discontinuity_keeps_late_old_timeline_samples_apart() {
        let mut t = TimedSegments::new(true, &[Some(48_000)], TOLERANCE);
        t.cut(cut(900_000, 1));
        t.audio(0, adts(900_000, 0, 45));
        // the source resets to 1 s before the rendition's old video is out
        t.cut(TimedCut {
            discontinuity: true,
            ..cut(90_000, 2)
        });
        t.cut(cut(180_000, 3));
        let mut old_video = 0;
        for p in (900_000..1_080_000).step_by(VIDEO_FRAME as usize) {
            // old keyframes after the reset cut must not start it
            t.video(video(p, p % 90_000 == 0));
            old_video += 1;
        }
        t.audio(0, adts(900_000 + 45 * FRAME, 45, 45)); // old timeline, to 1072800
        assert!(t.take_ready().is_empty());
        for p in (90_000..270_000).step_by(VIDEO_FRAME as usize) {
            t.video(video(p, p % 90_000 == 0));
        }
        assert!(
            t.take_ready().is_empty(),
            "the audio has not moved to the new timeline"
        );
        t.audio(0, adts(1_072_800, 90, 5)); // still the old one
        t.audio(0, adts(90_000, 0, 40)); // steps back: the new timeline
        let ready = t.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].sequence, 1);
        assert_eq!(video_pts(&ready[0]).len(), old_video);
        assert_eq!(audio_frames(&ready[0], 0).len(), 95);
        t.audio(0, adts(90_000 + 40 * FRAME, 40, 10)); // past 180000
        let mut rest = t.take_ready();
        assert_eq!(rest.len(), 1, "the first segment of the new timeline");
        rest.extend(t.finish());
        assert_eq!(rest.len(), 2);
        assert!(rest[0].discontinuity);
        assert_eq!((rest[0].start, rest[0].offset), (90_000, 0));
        assert_eq!(video_pts(&rest[0]).len(), 30);
        // 90000 + 46 frames: the 47th's middle is past 180000
        assert_eq!(audio_frames(&rest[0], 0).len(), 47);
        assert_eq!(audio_frames(&rest[1], 0).len(), 3);
        assert_eq!(t.dropped(), 0);
    }

    #[test]
    fn samples_before_the_first_cut_and_after_the_end_are_dropped() {
        let mut t = TimedSegments::new(true, &[Some(48_000)], TOLERANCE);
        t.audio(0, adts(0, 0, 3)); // before any cut: not counted
        t.cut(cut(90_000, 1));
        t.audio(0, adts(80_000, 0, 3)); // middles before the start
        t.video(video(87_000, false));
        t.video(video(90_000, true));
        t.audio(0, adts(90_000, 0, 2));
        t.cut(cut(180_000, 2)); // the video never gets there
        t.audio(0, adts(180_000, 0, 2));
        let out = t.finish();
        assert_eq!(out.len(), 1);
        assert_eq!(video_pts(&out[0]), vec![90_000]);
        assert_eq!(audio_frames(&out[0], 0).len(), 2);
        assert_eq!(
            t.dropped(),
            5,
            "3 before the start, 2 past the cut not made"
        );
    }

    #[test]
    fn malformed_adts_is_one_unit() {
        let units = audio_units(Some(48_000), video(100, true));
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].1, 0);
        let units = audio_units(Some(44_100), adts(0, 0, 3));
        let pts: Vec<i64> = units.iter().map(|(s, _)| s.pts).collect();
        assert_eq!(pts, vec![0, 2089, 4179]);
        assert_eq!(units[0].1, 1044);
        assert_eq!(
            audio_units(Some(0), adts(0, 0, 3)).len(),
            1,
            "no rate, no split"
        );
    }
}
