//! Media time on a 90 kHz clock, and unwrapping of 33-bit MPEG-TS timestamps.
//!
//! MPEG-TS carries PTS/DTS as 33-bit counters of a 90 kHz clock, so they wrap
//! after 2^33 / 90000 s ≈ 26.5 hours. [`Unwrapper`] turns such a sequence into
//! a monotonic 64-bit timeline and reports jumps that are too large to be
//! ordinary packet spacing (encoder restarts, spliced inputs) as resets.

pub use crate::media::time::{
    format_secs, pts_diff, round_secs, ticks_from_secs, PTS_MODULUS, TICKS_PER_SECOND,
};

/// The outcome of feeding one timestamp to an [`Unwrapper`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwrapped {
    /// The timestamp on the unwrapped timeline.
    pub ticks: i64,
    /// True when the step from the previous timestamp was outside the
    /// allowed range: the timeline was reset.
    pub reset: bool,
}

/// Unwraps one stream's 33-bit timestamps into a monotonic timeline.
///
/// Each new raw value is placed at the position nearest to the previous one
/// modulo 2^33, so a wrap from `2^33 - 1` to `0` continues forward. A step
/// backwards by more than `max_back` or forwards by more than `max_forward`
/// is reported as a reset; the value is still placed on the same timeline
/// (it may then lie before earlier values), which keeps all streams of a
/// program on one comparable clock.
#[derive(Debug, Clone)]
pub struct Unwrapper {
    last: Option<i64>,
    max_back: i64,
    max_forward: i64,
}

impl Unwrapper {
    pub fn new(max_back: i64, max_forward: i64) -> Self {
        Unwrapper {
            last: None,
            max_back,
            max_forward,
        }
    }

    /// Feeds a raw timestamp; only its low 33 bits are used.
    pub fn unwrap(&mut self, raw: i64) -> Unwrapped {
        let raw = raw.rem_euclid(PTS_MODULUS);
        let Some(last) = self.last else {
            self.last = Some(raw);
            return Unwrapped {
                ticks: raw,
                reset: false,
            };
        };
        let step = pts_diff(raw, last);
        let ticks = last + step;
        self.last = Some(ticks);
        Unwrapped {
            ticks,
            reset: step < -self.max_back || step > self.max_forward,
        }
    }

    /// Like [`unwrap`](Self::unwrap), but a first timestamp is placed
    /// nearest to `near` (a value on another stream's timeline) instead of
    /// at its raw value, so that streams whose first timestamps lie on
    /// either side of a wrap share one timeline.
    pub fn unwrap_near(&mut self, raw: i64, near: Option<i64>) -> Unwrapped {
        match (self.last, near) {
            (None, Some(near)) => {
                let ticks = near + pts_diff(raw, near);
                self.last = Some(ticks);
                Unwrapped {
                    ticks,
                    reset: false,
                }
            }
            _ => self.unwrap(raw),
        }
    }

    /// The last unwrapped value, if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Unwrapper {
        Unwrapper::new(TICKS_PER_SECOND, 60 * TICKS_PER_SECOND)
    }

    #[test]
    fn seconds_conversions() {
        assert_eq!(ticks_from_secs(2.5), 225_000);
        assert_eq!(format_secs(900_900), "10.010");
        assert_eq!(format_secs(0), "0.000");
        assert_eq!(format_secs(44), "0.000");
        assert_eq!(format_secs(45), "0.001");
        assert_eq!(round_secs(405_000), 5, "4.5 s rounds up to 5");
        assert_eq!(round_secs(404_999), 4);
    }

    #[test]
    fn continues_forward_across_the_33_bit_wrap() {
        let mut u = plain();
        let start = PTS_MODULUS - 3000;
        assert_eq!(u.unwrap(start).ticks, start);
        let after = u.unwrap(3000);
        assert_eq!(after.ticks, PTS_MODULUS + 3000);
        assert!(!after.reset);
        // and a second wrap a full period later
        let mut t = PTS_MODULUS + 3000;
        while t < 2 * PTS_MODULUS + 90_000 {
            t += 3000 * 1000;
            assert!(!u.unwrap(t).reset);
        }
        assert_eq!(u.last(), Some(t));
    }

    #[test]
    fn a_value_slightly_behind_is_not_a_wrap() {
        let mut u = plain();
        u.unwrap(10);
        // B-frame style reordering across the wrap boundary
        let back = u.unwrap(PTS_MODULUS - 3000);
        assert_eq!(back.ticks, -3000);
        assert!(!back.reset);
    }

    #[test]
    fn upper_bits_from_libav_are_ignored() {
        let mut u = plain();
        u.unwrap(PTS_MODULUS - 10);
        // libav may already have added 2^33 itself
        assert_eq!(u.unwrap(PTS_MODULUS + 20).ticks, PTS_MODULUS + 20);
    }

    #[test]
    fn a_first_value_is_placed_near_another_timeline() {
        let mut u = plain();
        let near = PTS_MODULUS - 1000;
        let first = u.unwrap_near(500, Some(near));
        assert_eq!(
            first,
            Unwrapped {
                ticks: PTS_MODULUS + 500,
                reset: false
            }
        );
        // later values follow on as usual, whatever `near` says
        assert_eq!(u.unwrap_near(3500, Some(0)).ticks, PTS_MODULUS + 3500);
        assert_eq!(plain().unwrap_near(500, None).ticks, 500);
    }

    #[test]
    fn large_jumps_are_resets() {
        let mut u = plain();
        u.unwrap(100 * TICKS_PER_SECOND);
        let back = u.unwrap(TICKS_PER_SECOND);
        assert!(back.reset);
        assert_eq!(back.ticks, TICKS_PER_SECOND);
        let fwd = u.unwrap(TICKS_PER_SECOND + 61 * TICKS_PER_SECOND);
        assert!(fwd.reset);
        let fine = u.unwrap(fwd.ticks + 3000);
        assert!(!fine.reset);
    }
}
