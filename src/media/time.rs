//! Media time on the 90 kHz MPEG clock.
//!
//! Three kinds of number that used to be bare `i64`s:
//! - [`RawPts`]: a PTS or DTS as the stream carries it, 33 bits that wrap
//!   every 2^33 / 90000 s ≈ 26.5 hours;
//! - [`MediaTime`]: a point on the run's unwrapped 64-bit timeline;
//! - [`MediaDuration`]: a span of that timeline.
//!
//! Raw integers that remain (in hot loops, in libav's packets) carry ticks of
//! [`TICKS_PER_SECOND`].

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Mul, Sub, SubAssign};

/// Ticks of the 90 kHz MPEG clock.
pub const TICKS_PER_SECOND: i64 = 90_000;

/// Size of the 33-bit PTS/DTS space.
pub const PTS_MODULUS: i64 = 1 << 33;

/// `a - b` for 33-bit timestamps, taking the shorter way round the wrap.
pub fn pts_diff(a: i64, b: i64) -> i64 {
    let d = (a - b).rem_euclid(PTS_MODULUS);
    if d >= PTS_MODULUS / 2 {
        d - PTS_MODULUS
    } else {
        d
    }
}

/// Converts seconds to ticks, rounding to the nearest tick.
pub fn ticks_from_secs(secs: f64) -> i64 {
    (secs * TICKS_PER_SECOND as f64).round() as i64
}

/// Renders ticks as seconds with millisecond precision, e.g. `10.010`.
pub fn format_secs(ticks: i64) -> String {
    let ms = (ticks * 1000 + TICKS_PER_SECOND / 2).div_euclid(TICKS_PER_SECOND);
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Rounds ticks to whole seconds the way RFC 8216 §4.3.3.1 compares EXTINF to
/// the target duration: to the nearest integer, halves up.
pub fn round_secs(ticks: i64) -> i64 {
    (ticks + TICKS_PER_SECOND / 2).div_euclid(TICKS_PER_SECOND)
}

/// A PTS or DTS as carried in the stream: 33 bits of the 90 kHz clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawPts(i64);

impl RawPts {
    /// Keeps the low 33 bits (libav may hand over values it already
    /// offset or partly unwrapped).
    pub fn new(value: i64) -> Self {
        RawPts(value.rem_euclid(PTS_MODULUS))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `self - other` the shorter way round the wrap.
    pub fn since(self, other: RawPts) -> MediaDuration {
        MediaDuration(pts_diff(self.0, other.0))
    }
}

/// A point on the run's unwrapped 90 kHz timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MediaTime(pub i64);

impl MediaTime {
    pub fn ticks(self) -> i64 {
        self.0
    }

    /// The later of two times.
    pub fn max(self, other: MediaTime) -> MediaTime {
        MediaTime(self.0.max(other.0))
    }
}

/// A span of the 90 kHz timeline (may be negative as an intermediate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MediaDuration(pub i64);

impl MediaDuration {
    pub const ZERO: MediaDuration = MediaDuration(0);

    pub fn from_secs(secs: f64) -> Self {
        MediaDuration(ticks_from_secs(secs))
    }

    /// Whole seconds, exactly: an EXT-X-TARGETDURATION (or a multiple of
    /// one) on the timeline of the EXTINF values it bounds.
    pub fn from_whole_secs(secs: u64) -> Self {
        MediaDuration(secs as i64 * TICKS_PER_SECOND)
    }

    pub fn ticks(self) -> i64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TICKS_PER_SECOND as f64
    }

    /// Whole seconds, rounded as RFC 8216 compares EXTINF with the target
    /// duration.
    pub fn rounded_secs(self) -> i64 {
        round_secs(self.0)
    }

    /// A wall-clock span of the same length (zero when negative).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_micros((self.0.max(0) as u64).saturating_mul(100) / 9)
    }
}

impl fmt::Display for MediaDuration {
    /// Seconds with millisecond precision, e.g. `10.010`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_secs(self.0))
    }
}

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_secs(self.0))
    }
}

impl Sub for MediaTime {
    type Output = MediaDuration;
    fn sub(self, rhs: MediaTime) -> MediaDuration {
        MediaDuration(self.0 - rhs.0)
    }
}

impl Add<MediaDuration> for MediaTime {
    type Output = MediaTime;
    fn add(self, rhs: MediaDuration) -> MediaTime {
        MediaTime(self.0 + rhs.0)
    }
}

impl Sub<MediaDuration> for MediaTime {
    type Output = MediaTime;
    fn sub(self, rhs: MediaDuration) -> MediaTime {
        MediaTime(self.0 - rhs.0)
    }
}

impl Add for MediaDuration {
    type Output = MediaDuration;
    fn add(self, rhs: MediaDuration) -> MediaDuration {
        MediaDuration(self.0 + rhs.0)
    }
}

impl Sub for MediaDuration {
    type Output = MediaDuration;
    fn sub(self, rhs: MediaDuration) -> MediaDuration {
        MediaDuration(self.0 - rhs.0)
    }
}

/// `n` spans one after the other (a window of `n` target durations).
impl Mul<i64> for MediaDuration {
    type Output = MediaDuration;
    fn mul(self, n: i64) -> MediaDuration {
        MediaDuration(self.0 * n)
    }
}

impl AddAssign for MediaDuration {
    fn add_assign(&mut self, rhs: MediaDuration) {
        self.0 += rhs.0;
    }
}

impl SubAssign for MediaDuration {
    fn sub_assign(&mut self, rhs: MediaDuration) {
        self.0 -= rhs.0;
    }
}

impl Sum for MediaDuration {
    fn sum<I: Iterator<Item = MediaDuration>>(iter: I) -> MediaDuration {
        MediaDuration(iter.map(|d| d.0).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_conversions() {
        assert_eq!(ticks_from_secs(10.0), 900_000);
        assert_eq!(format_secs(900_900), "10.010");
        assert_eq!(round_secs(4 * TICKS_PER_SECOND + TICKS_PER_SECOND / 2), 5);
        assert_eq!(MediaDuration::from_secs(2.5).to_string(), "2.500");
        assert_eq!(MediaDuration::from_whole_secs(4), MediaDuration(360_000));
        assert_eq!(MediaDuration(3003) * 3, MediaDuration(9009));
        assert_eq!(
            MediaDuration(TICKS_PER_SECOND).to_std(),
            std::time::Duration::from_secs(1)
        );
    }

    #[test]
    fn raw_timestamps_differ_the_short_way_round() {
        let before = RawPts::new(PTS_MODULUS - 3000);
        let after = RawPts::new(3003);
        assert_eq!(after.since(before), MediaDuration(6003));
        assert_eq!(before.since(after), MediaDuration(-6003));
        // libav's upper bits are dropped
        assert_eq!(RawPts::new(PTS_MODULUS + 5).get(), 5);
    }

    #[test]
    fn times_and_durations_add_up() {
        let start = MediaTime(1000);
        let spans = [MediaDuration(10), MediaDuration(20)];
        let total: MediaDuration = spans.iter().copied().sum();
        assert_eq!(start + total, MediaTime(1030));
        assert_eq!(MediaTime(1030) - start, total);
    }
}
