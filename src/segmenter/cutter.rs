//! Where to cut: the pure decision logic of the segmenter.
//!
//! The [`Cutter`] sees the demuxed packets' timestamps, keyframe flags and
//! byte positions (no media data, no I/O) and decides at which byte position
//! each segment starts, how long each finished segment lasts, and where the
//! timeline was reset.
//!
//! It takes [`RawPts`] and hands out [`MediaTime`] and [`MediaDuration`];
//! inside, times are plain `i64` ticks of the unwrapped 90 kHz timeline.

use chrono::{DateTime, Duration, Utc};

use crate::journal;
use crate::media::{MediaDuration, MediaTime, RawPts};
use crate::timeline::{format_secs, Unwrapper, TICKS_PER_SECOND};

pub use crate::media::cut::{Cut, PacketInfo, SegmentTiming};

pub type Clock = Box<dyn Fn() -> DateTime<Utc> + Send>;

pub struct CutterConfig {
    /// Target segment duration.
    pub target: MediaDuration,
    /// Index of the stream whose packets decide the cuts.
    pub anchor: usize,
    /// The anchor is a video stream: cut only on its keyframes.
    pub anchor_is_video: bool,
    /// Number of streams in the input.
    pub streams: usize,
    /// Cut without a keyframe once a segment lasts this long and
    /// [`KEYFRAMES_STOPPED`] times the longest keyframe interval seen so
    /// far. Before an interval is known, a keyframe is waited for up to one
    /// and a half times this (see [`Cutter::hold`]).
    pub max_segment: MediaDuration,
    /// Sequence number of the first segment.
    pub first_sequence: u64,
    /// The first segment continues an earlier run after a break.
    pub first_discontinuity: bool,
    pub clock: Clock,
}

struct StreamClock {
    unwrapper: Unwrapper,
    /// Number of resets this stream has seen.
    epoch: u32,
    last_pos: Option<u64>,
    /// The last packet's unwrapped decode time and the step from the one
    /// before: the duration of packets that carry none (the demuxer runs
    /// without parsers, which would fill it in).
    last_dts: Option<i64>,
    step: i64,
}

struct Open {
    sequence: u64,
    start: i64,
    /// The first segment of the run: its start is the earliest timestamp of
    /// any stream, refined as packets arrive.
    first_of_run: bool,
    discontinuity: bool,
    forced: bool,
    program_date_time: DateTime<Utc>,
    /// The latest end (pts + duration) of a packet on this segment's timeline.
    max_end: i64,
    epoch: u32,
}

pub struct Cutter {
    cfg: CutterConfig,
    streams: Vec<StreamClock>,
    open: Option<Open>,
    next_sequence: u64,
    anchor_packets: u64,
    /// Earliest position of a packet on a non-anchor stream that came after a
    /// reset which the anchor has not shown yet.
    reset_pos: Option<u64>,
    /// Earliest timestamp seen before the first segment opened.
    early_min: Option<i64>,
    last_cut_pos: u64,
    warned_no_keyframe: bool,
    /// The last timestamp of any stream, on the unwrapped timeline.
    latest: Option<i64>,
    /// The anchor's last keyframe, unless a cut without one came after it.
    last_keyframe: Option<i64>,
    /// The longest interval between two keyframes that followed each other.
    longest_interval: Option<i64>,
    /// A cut without a keyframe at the limit, made only if no keyframe
    /// comes in time (no interval was known to judge by).
    held: Option<CutAt>,
    /// The unwrapped decode and presentation time of the packet observed
    /// last (`None` when it had no timestamp).
    times: Option<(i64, i64)>,
}

/// Where a segment may start.
#[derive(Debug, Clone, Copy)]
struct CutAt {
    pos: u64,
    pts: i64,
    /// The PTS as in the input, for [`Cut::pts`].
    raw_pts: Option<RawPts>,
}

/// Keyframes have stopped once a segment lasts this many times the longest
/// keyframe interval seen (and `max_segment`); until then a long interval
/// is the input's keyframe spacing, and segments follow it.
pub const KEYFRAMES_STOPPED: i64 = 3;

/// Smallest backwards step of a stream's DTS that counts as a reset.
const MAX_BACK: i64 = TICKS_PER_SECOND / 2;

impl Cutter {
    pub fn new(cfg: CutterConfig) -> Self {
        let max_forward = (3 * cfg.target.ticks()).max(10 * TICKS_PER_SECOND);
        let streams = (0..cfg.streams)
            .map(|_| StreamClock {
                unwrapper: Unwrapper::new(MAX_BACK, max_forward),
                epoch: 0,
                last_pos: None,
                last_dts: None,
                step: 0,
            })
            .collect();
        Cutter {
            next_sequence: cfg.first_sequence,
            cfg,
            streams,
            open: None,
            anchor_packets: 0,
            reset_pos: None,
            early_min: None,
            last_cut_pos: 0,
            warned_no_keyframe: false,
            latest: None,
            last_keyframe: None,
            longest_interval: None,
            held: None,
            times: None,
        }
    }

    /// The unwrapped (decode, presentation) time of the packet just
    /// observed, on the timeline the cuts use; `None` without a timestamp.
    pub fn times(&self) -> Option<(i64, i64)> {
        self.times
    }

    /// Feeds one demuxed packet; returns a cut when a segment starts here.
    pub fn observe(&mut self, pkt: &PacketInfo) -> Option<Cut> {
        self.times = None;
        let raw = pkt.dts.or(pkt.pts)?;
        let stream = self.streams.get_mut(pkt.stream)?;
        // a stream's first timestamp joins the others' timeline, also when
        // the wrap lies between them
        let u = stream.unwrapper.unwrap_near(raw.get(), self.latest);
        self.latest = Some(u.ticks);
        if u.reset {
            stream.epoch += 1;
        }
        // libav may have wrapped only one of the two (DTS 2^33 - 3000, PTS 3003)
        let pts = u.ticks + pkt.pts.map_or(0, |p| p.since(raw).ticks());
        self.times = Some((u.ticks, pts));
        if let Some(last) = stream.last_dts.filter(|_| !u.reset) {
            if u.ticks > last {
                stream.step = u.ticks - last;
            }
        }
        stream.last_dts = Some(u.ticks);
        let duration = if pkt.duration > MediaDuration::ZERO {
            pkt.duration.ticks()
        } else {
            stream.step
        };
        let end = pts + duration;
        let pes_start = pkt.pos.is_some() && pkt.pos != stream.last_pos;
        if pes_start {
            stream.last_pos = pkt.pos;
        }
        let epoch = stream.epoch;

        if pkt.stream != self.cfg.anchor {
            if u.reset && pkt.pos >= Some(self.last_cut_pos) {
                self.reset_pos = self.reset_pos.min(pkt.pos).or(pkt.pos);
            }
            let anchor_epoch = self.streams[self.cfg.anchor].epoch;
            match &mut self.open {
                Some(open) if epoch == open.epoch && epoch == anchor_epoch => {
                    open.max_end = open.max_end.max(end);
                    if open.first_of_run {
                        open.start = open.start.min(pts);
                    }
                }
                None if epoch == 0 => {
                    self.early_min = Some(self.early_min.map_or(pts, |m| m.min(pts)));
                }
                _ => {}
            }
            return None;
        }

        self.anchor_packets += 1;
        let candidate = pes_start && (pkt.key || !self.cfg.anchor_is_video);
        let Some(open) = self.open.as_mut() else {
            return self.open_first(pkt, pts, end, candidate, epoch);
        };
        if u.reset {
            let pos = match pkt.pos {
                Some(p) => self.reset_pos.map_or(p, |r| r.min(p)),
                None => self.reset_pos?,
            };
            log::warn!(
                "timestamps jumped from {} s to {} s: starting a new segment after a discontinuity",
                format_secs(open.max_end),
                format_secs(pts)
            );
            if !candidate {
                log::warn!("the first packet after the jump is not a keyframe");
            }
            journal::warning::timestamp_jump(open.max_end, pts, candidate);
            // an interval across the jump means nothing
            self.last_keyframe = (candidate && self.cfg.anchor_is_video).then_some(pts);
            let end = open.max_end;
            let closed = self.close(end);
            return Some(self.start(pos, pts, end, true, !candidate, epoch, closed));
        }
        open.max_end = open.max_end.max(end);
        if open.first_of_run {
            open.start = open.start.min(pts);
        }
        let elapsed = pts - open.start;
        let (forced, max_end) = (open.forced, open.max_end);
        if candidate && self.cfg.anchor_is_video {
            self.keyframe_at(pts);
        }
        let pos = pkt.pos?;
        let raw_pts = pkt.pts;
        if candidate && elapsed >= self.cfg.target.ticks() {
            let closed = self.close(pts);
            let cut = self.start(pos, pts, end, false, false, epoch, closed);
            return Some(Cut {
                pts: raw_pts,
                ..cut
            });
        }
        if let Some(held) = self.held {
            // no keyframe came in time: the cut is made where it was held
            if pes_start && elapsed >= self.keyframe_wait() {
                return Some(self.cut_without_keyframe(held, max_end, epoch));
            }
            return None;
        }
        if pes_start && elapsed >= self.cfg.max_segment.ticks() {
            let here = CutAt { pos, pts, raw_pts };
            match self.longest_interval {
                // keyframes further apart than the limit, but regular
                Some(longest) if elapsed < KEYFRAMES_STOPPED * longest => {}
                // the spacing is not known yet: wait a while for a keyframe
                None if !forced => self.held = Some(here),
                _ => return Some(self.cut_without_keyframe(here, end, epoch)),
            }
        }
        None
    }

    /// Where input must wait before it is routed: the position of a cut
    /// without a keyframe that is made only if no keyframe comes in time.
    /// It is decided within half of `max_segment`.
    pub fn hold(&self) -> Option<u64> {
        self.held.map(|h| h.pos)
    }

    /// How long a keyframe is waited for while no keyframe interval is
    /// known, in ticks.
    fn keyframe_wait(&self) -> i64 {
        let max = self.cfg.max_segment.ticks();
        max + max / 2
    }

    /// Notes a keyframe of the anchor at `pts`.
    fn keyframe_at(&mut self, pts: i64) {
        if let Some(interval) = self.last_keyframe.map(|k| pts - k).filter(|&i| i > 0) {
            self.longest_interval =
                Some(self.longest_interval.map_or(interval, |l| l.max(interval)));
        }
        self.last_keyframe = Some(pts);
    }

    /// Ends the open segment at `at` and starts the next there, without a
    /// keyframe; `end` is the latest end of a packet seen.
    fn cut_without_keyframe(&mut self, at: CutAt, end: i64, epoch: u32) -> Cut {
        let elapsed = at.pts - self.open.as_ref().map_or(at.pts, |o| o.start);
        if !self.warned_no_keyframe {
            log::warn!(
                "no keyframe for {} s: cutting without one (further such cuts are logged at debug level)",
                format_secs(elapsed)
            );
            journal::warning::no_keyframe(elapsed);
            self.warned_no_keyframe = true;
        } else {
            log::debug!(
                "cutting without a keyframe after {} s",
                format_secs(elapsed)
            );
        }
        self.last_keyframe = None;
        let closed = self.close(at.pts);
        let cut = self.start(at.pos, at.pts, end, false, true, epoch, closed);
        Cut {
            pts: at.raw_pts,
            ..cut
        }
    }

    fn open_first(
        &mut self,
        pkt: &PacketInfo,
        pts: i64,
        end: i64,
        candidate: bool,
        epoch: u32,
    ) -> Option<Cut> {
        let first_anchor = self.anchor_packets == 1;
        if !candidate {
            let earliest = self.early_min.map_or(pts, |m| m.min(pts));
            self.early_min = Some(earliest);
            if first_anchor {
                log::warn!("the input does not start with a keyframe: skipping to the first one");
            }
            if pts - earliest < self.keyframe_wait() || pkt.pos.is_none() {
                return None;
            }
            log::warn!(
                "no keyframe in the first {} s: starting without one",
                format_secs(pts - earliest)
            );
            journal::warning::no_keyframe_at_start(pts - earliest);
        }
        let (pos, start) = if first_anchor {
            (0, self.early_min.map_or(pts, |m| m.min(pts)))
        } else {
            (pkt.pos?, pts)
        };
        if candidate && self.cfg.anchor_is_video {
            self.keyframe_at(pts);
        }
        let discontinuity = self.cfg.first_discontinuity;
        let mut cut = self.start(pos, start, end, discontinuity, !candidate, epoch, None);
        if let Some(open) = self.open.as_mut() {
            open.first_of_run = first_anchor;
            open.max_end = open.max_end.max(end);
        }
        cut.pos = pos;
        Some(cut)
    }

    /// Ends the open segment at `end` ticks and returns its timing.
    fn close(&mut self, end: i64) -> Option<SegmentTiming> {
        let open = self.open.take()?;
        Some(SegmentTiming {
            sequence: open.sequence,
            start: MediaTime(open.start),
            duration: MediaDuration((end - open.start).max(0)),
            discontinuity: open.discontinuity,
            program_date_time: open.program_date_time,
            forced: open.forced,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        pos: u64,
        start: i64,
        end: i64,
        discontinuity: bool,
        forced: bool,
        epoch: u32,
        closed: Option<SegmentTiming>,
    ) -> Cut {
        let now = (self.cfg.clock)();
        let program_date_time = match &closed {
            Some(c) => {
                let continued = c.program_date_time + ticks_to_duration(c.duration);
                if discontinuity {
                    continued.max(now)
                } else {
                    continued
                }
            }
            None => now,
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.open = Some(Open {
            sequence,
            start,
            first_of_run: false,
            discontinuity,
            forced,
            program_date_time,
            max_end: end.max(start),
            epoch,
        });
        self.reset_pos = None;
        self.held = None;
        self.last_cut_pos = pos;
        Cut {
            pos,
            sequence,
            pts: None,
            start: MediaTime(start),
            discontinuity,
            closed,
        }
    }

    /// Ends the run: returns the timing of the segment still open, which
    /// lasts until the end of the last packet seen on its timeline.
    pub fn finish(&mut self) -> Option<SegmentTiming> {
        let end = self.open.as_ref()?.max_end;
        self.close(end)
    }
}

fn ticks_to_duration(d: MediaDuration) -> Duration {
    Duration::microseconds(d.ticks() * 1000 / 90)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::PTS_MODULUS;
    use chrono::TimeZone;

    const S: i64 = TICKS_PER_SECOND;

    fn cutter(target: i64, anchor_is_video: bool) -> Cutter {
        Cutter::new(CutterConfig {
            target: MediaDuration(target),
            anchor: 0,
            anchor_is_video,
            streams: 2,
            max_segment: MediaDuration(4 * target),
            first_sequence: 1,
            first_discontinuity: false,
            clock: Box::new(|| Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()),
        })
    }

    fn video(pos: u64, pts: i64, key: bool) -> PacketInfo {
        PacketInfo {
            stream: 0,
            pos: Some(pos),
            pts: Some(RawPts::new(pts)),
            dts: Some(RawPts::new(pts)),
            duration: MediaDuration(3000),
            key,
        }
    }

    fn audio(pos: u64, pts: i64) -> PacketInfo {
        PacketInfo {
            stream: 1,
            pos: Some(pos),
            pts: Some(RawPts::new(pts)),
            dts: Some(RawPts::new(pts)),
            duration: MediaDuration(1920),
            key: true,
        }
    }

    /// Feeds 30 fps video with a keyframe every `gop` frames; returns the cuts.
    fn run(c: &mut Cutter, frames: i64, gop: i64, base: i64) -> Vec<Cut> {
        run_at(c, frames, gop, base, 1000)
    }

    fn run_at(c: &mut Cutter, frames: i64, gop: i64, base: i64, pos: u64) -> Vec<Cut> {
        (0..frames)
            .filter_map(|i| c.observe(&video(pos + i as u64 * 100, base + i * 3000, i % gop == 0)))
            .collect()
    }

    #[test]
    fn cuts_on_the_first_keyframe_after_the_target() {
        let mut c = cutter(2 * S, true);
        let cuts = run(&mut c, 300, 45, 0); // keyframe every 1.5 s, 10 s of video
        let starts: Vec<u64> = cuts.iter().map(|c| c.pos).collect();
        // first segment from byte 0, then keyframes at 3.0, 6.0, 9.0 s
        assert_eq!(
            starts,
            vec![0, 1000 + 90 * 100, 1000 + 180 * 100, 1000 + 270 * 100]
        );
        let durations: Vec<i64> = cuts
            .iter()
            .filter_map(|c| c.closed)
            .map(|t| t.duration.ticks())
            .collect();
        assert_eq!(durations, vec![3 * S, 3 * S, 3 * S]);
        let last = c.finish().unwrap();
        assert_eq!(last.start, MediaTime(9 * S));
        assert_eq!(last.duration, MediaDuration(S), "last frame ends at 10 s");
        assert_eq!(last.sequence, 4);
    }

    #[test]
    fn durations_add_up_to_the_input_duration() {
        let mut c = cutter(2 * S, true);
        let base = 126_000; // 1.4 s, ffmpeg's usual start
        c.observe(&audio(500, base - 900)); // audio starts slightly earlier
        let cuts = run(&mut c, 1234, 60, base);
        let mut total: i64 = cuts
            .iter()
            .filter_map(|c| c.closed)
            .map(|t| t.duration.ticks())
            .sum();
        total += c.finish().unwrap().duration.ticks();
        assert_eq!(total, 1234 * 3000 + 900);
    }

    #[test]
    fn audio_only_cuts_on_any_pes_start() {
        let mut c = cutter(2 * S, false);
        let mut cuts = Vec::new();
        for i in 0..200i64 {
            // two frames per PES: the second shares the first's position
            let pos = 100 + (i / 2) as u64 * 1000;
            cuts.extend(c.observe(&PacketInfo {
                stream: 0,
                ..audio(pos, i * 1920)
            }));
        }
        let durations: Vec<i64> = cuts
            .iter()
            .filter_map(|c| c.closed)
            .map(|t| t.duration.ticks())
            .collect();
        // 1920-tick frames, cut on even frames once 2 s (180000) is reached: 94 frames
        assert!(durations.iter().all(|&d| d == 94 * 1920), "{durations:?}");
        assert!(cuts.iter().skip(1).all(|c| (c.pos - 100) % 1000 == 0));
    }

    #[test]
    fn keyframes_that_stop_force_a_cut_at_the_limit() {
        let mut c = cutter(2 * S, true);
        let mut cuts = run(&mut c, 1, 1, 0);
        // no keyframe ever again
        for i in 1..600i64 {
            cuts.extend(c.observe(&video(1000 + i as u64 * 100, i * 3000, false)));
        }
        let closed: Vec<SegmentTiming> = cuts.iter().filter_map(|c| c.closed).collect();
        assert_eq!(closed[0].duration, MediaDuration(8 * S));
        assert!(!closed[0].forced);
        assert!(closed[1].forced);
    }

    #[test]
    fn regular_keyframes_further_apart_than_the_limit_are_followed() {
        let mut c = cutter(2 * S, true);
        let cuts = run(&mut c, 1200, 300, 0); // keyframe every 10 s, 40 s of video
        let starts: Vec<u64> = cuts.iter().map(|c| c.pos).collect();
        assert_eq!(
            starts,
            vec![0, 1000 + 300 * 100, 1000 + 600 * 100, 1000 + 900 * 100]
        );
        let closed: Vec<SegmentTiming> = cuts.iter().filter_map(|c| c.closed).collect();
        assert!(closed
            .iter()
            .all(|t| t.duration == MediaDuration(10 * S) && !t.forced));
        let last = c.finish().unwrap();
        assert_eq!((last.duration, last.forced), (MediaDuration(10 * S), false));
    }

    #[test]
    fn keyframes_that_stop_after_long_intervals_are_cut_at_three_intervals() {
        let mut c = cutter(2 * S, true);
        // keyframes at 0, 10 and 20 s, then none until the end at 80 s
        let cuts: Vec<Cut> = (0..2400i64)
            .filter_map(|i| {
                let key = i % 300 == 0 && i <= 600;
                c.observe(&video(1000 + i as u64 * 100, i * 3000, key))
            })
            .collect();
        let closed: Vec<(i64, bool)> = cuts
            .iter()
            .filter_map(|c| c.closed)
            .map(|t| (t.duration.ticks(), t.forced))
            .collect();
        assert_eq!(
            closed,
            vec![(10 * S, false), (10 * S, false), (30 * S, false)]
        );
        let last = c.finish().unwrap();
        assert_eq!(
            (last.start, last.duration, last.forced),
            (MediaTime(50 * S), MediaDuration(30 * S), true)
        );
    }

    #[test]
    fn a_first_keyframe_later_than_the_limit_is_waited_for() {
        let mut c = cutter(2 * S, true);
        // joined 10 s before the next keyframe, then a keyframe every second
        let cuts: Vec<Cut> = (0..600i64)
            .filter_map(|i| {
                let key = i >= 300 && i % 30 == 0;
                c.observe(&video(1000 + i as u64 * 100, i * 3000, key))
            })
            .collect();
        assert_eq!(cuts[0].pos, 1000 + 300 * 100, "starts on the keyframe");
        let first = cuts[1].closed.unwrap();
        assert_eq!((first.start, first.forced), (MediaTime(10 * S), false));
    }

    #[test]
    fn a_cut_without_a_keyframe_holds_the_input_until_it_is_decided() {
        let mut c = cutter(2 * S, true);
        let pos = |i: i64| 1000 + i as u64 * 100;
        assert!(c.observe(&video(pos(0), 0, true)).is_some());
        let mut cuts = Vec::new();
        for i in 1..360i64 {
            cuts.extend(c.observe(&video(pos(i), i * 3000, false)));
            let expect = (i >= 240).then_some(pos(240));
            assert_eq!(c.hold(), expect, "frame {i}");
        }
        assert!(cuts.is_empty(), "{cuts:?}");
        // 12 s without a keyframe: the cut is made back at 8 s
        let cut = c.observe(&video(pos(360), 360 * 3000, false)).unwrap();
        assert_eq!((cut.pos, cut.pts), (pos(240), Some(RawPts::new(8 * S))));
        assert_eq!(cut.closed.unwrap().duration, MediaDuration(8 * S));
        assert_eq!(c.hold(), None);
        // a keyframe within the wait ends the hold, with no cut at 8 s
        let mut c = cutter(2 * S, true);
        let cuts = run(&mut c, 600, 300, 0);
        assert_eq!(cuts.len(), 2);
        assert_eq!(cuts[1].pos, pos(300));
        assert_eq!(c.hold(), None);
    }

    #[test]
    fn a_backwards_jump_is_a_discontinuity_with_continuous_dates() {
        let mut c = cutter(2 * S, true);
        let mut cuts = run(&mut c, 150, 30, 10 * S); // 10 s .. 15 s
        c.observe(&audio(1000 + 149 * 100 + 50, 15 * S)); // audio still on the old clock
        c.observe(&audio(1000 + 150 * 100 - 20, S)); // new clock, before the video's jump
        cuts.extend(run_at(&mut c, 150, 30, S, 1000 + 150 * 100));
        let reset = cuts
            .iter()
            .find(|c| c.closed.is_some_and(|t| t.start == MediaTime(14 * S)))
            .unwrap();
        assert_eq!(
            reset.pos,
            1000 + 150 * 100 - 20,
            "cut where the first stream jumped"
        );
        let before = reset.closed.unwrap();
        assert_eq!(
            before.duration,
            MediaDuration(S + 1920),
            "ends with the last packet on the old clock"
        );
        let after = cuts
            .iter()
            .find_map(|c| c.closed.filter(|t| t.discontinuity))
            .unwrap();
        assert_eq!(after.start, MediaTime(S));
        assert_eq!(
            after.program_date_time,
            before.program_date_time + ticks_to_duration(MediaDuration(S + 1920))
        );
    }

    #[test]
    fn the_33_bit_wrap_is_not_a_discontinuity() {
        let mut c = cutter(2 * S, true);
        let base = PTS_MODULUS - 5 * S;
        let cuts = run(&mut c, 300, 30, base);
        assert!(cuts
            .iter()
            .filter_map(|c| c.closed)
            .all(|t| !t.discontinuity && t.duration == MediaDuration(2 * S)));
        assert_eq!(cuts.len(), 5);
    }

    #[test]
    fn streams_starting_on_either_side_of_the_wrap_share_one_timeline() {
        let mut c = cutter(2 * S, true);
        // the audio's first packet is stamped after the wrap, the video's before
        let base = PTS_MODULUS - 1000;
        c.observe(&audio(500, 500));
        let cuts = run(&mut c, 1234, 60, base);
        assert!(cuts.iter().filter_map(|c| c.closed).all(|t| !t.forced));
        let mut total: i64 = cuts
            .iter()
            .filter_map(|c| c.closed)
            .map(|t| t.duration.ticks())
            .sum();
        total += c.finish().unwrap().duration.ticks();
        assert_eq!(total, 1234 * 3000);
    }

    #[test]
    fn pts_and_dts_on_either_side_of_the_wrap_keep_their_offset() {
        let mut c = cutter(2 * S, true);
        // the keyframe that starts the third segment is decoded just before
        // the wrap and shown after it
        let base = PTS_MODULUS - 3000 - 120 * 3000;
        let mut cuts = Vec::new();
        for i in 0..300i64 {
            // B-frame style: shown two frames after it is decoded, and each
            // timestamp wrapped on its own (DTS 2^33 - 3000 with PTS 3000)
            let dts = base + i * 3000;
            cuts.extend(c.observe(&PacketInfo {
                stream: 0,
                pos: Some(1000 + i as u64 * 100),
                pts: Some(RawPts::new((dts + 6000) % PTS_MODULUS)),
                dts: Some(RawPts::new(dts % PTS_MODULUS)),
                duration: MediaDuration(3000),
                key: i % 30 == 0,
            }));
        }
        let durations: Vec<i64> = cuts
            .iter()
            .filter_map(|c| c.closed)
            .map(|t| t.duration.ticks())
            .collect();
        assert_eq!(durations, vec![2 * S; 4]);
        let last = c.finish().unwrap();
        assert_eq!(
            (last.start, last.duration),
            (MediaTime(base + 6000 + 8 * S), MediaDuration(2 * S))
        );
    }

    #[test]
    fn input_starting_without_a_keyframe_skips_to_the_first_one() {
        let mut c = cutter(2 * S, true);
        assert!(c.observe(&video(100, 0, false)).is_none());
        assert!(c.observe(&video(200, 3000, false)).is_none());
        let first = c.observe(&video(300, 6000, true)).unwrap();
        assert_eq!(first.pos, 300);
        assert_eq!(first.sequence, 1);
        assert!(first.closed.is_none());
    }
}
