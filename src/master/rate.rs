//! Bit-rate bookkeeping of one variant: what its EXT-X-STREAM-INF declares
//! as BANDWIDTH and AVERAGE-BANDWIDTH (RFC 8216 §4.3.4.2), from the
//! segments it stores.

use crate::media::MediaDuration;
use crate::timeline::TICKS_PER_SECOND;

/// Headroom over the peak when a declaration is made: 10 %, so that a peak
/// a little above the last one does not republish the master each time.
const HEADROOM_PERCENT: u128 = 110;

/// Declarations are rounded up to whole kbit/s.
const STEP: u128 = 1000;

/// Bit-rate bookkeeping of one variant, from the segments it stores.
///
/// RFC 8216 §4.3.4.2 wants BANDWIDTH at least the peak segment bit rate and
/// AVERAGE-BANDWIDTH the average one. Rates are taken over each segment's
/// EXTINF as the media playlist writes it (milliseconds), so that a client
/// that divides a segment's size by its EXTINF never finds more than what
/// is declared.
///
/// The declaration stays provisional (it follows the peak) until it is
/// fixed by [`RateTracker::declare`] or [`RateTracker::raise_if_exceeded`];
/// from then on it only rises, through `raise_if_exceeded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTracker {
    floor: u64,
    peak: u64,
    total_bits: u128,
    total_millis: u128,
    declared: Option<u64>,
}

impl RateTracker {
    /// A declared BANDWIDTH is never below `floor` (for an encoded rung: the
    /// bound of its rate control, known before any segment).
    pub fn new(floor: u64) -> Self {
        RateTracker {
            floor,
            peak: 0,
            total_bits: 0,
            total_millis: 0,
            declared: None,
        }
    }

    /// One stored segment: `bytes` of all the tracks of the variant (for a
    /// variant whose audio is a separate rendition, the caller adds the
    /// audio's bytes of the same sequence, since the client loads both).
    /// A segment whose EXTINF is 0 (or a negative duration) says nothing
    /// of a rate and is ignored.
    pub fn record(&mut self, bytes: u64, duration: MediaDuration) {
        let Some(millis) = extinf_millis(duration) else {
            return;
        };
        let bits = u128::from(bytes) * 8;
        self.peak = self.peak.max(saturate(rate(bits, millis)));
        self.total_bits += bits;
        self.total_millis += millis;
    }

    /// The highest segment bit rate so far, bits per EXTINF second rounded
    /// up; 0 before any segment.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// All bits over all EXTINF seconds, rounded up; `None` before any
    /// segment.
    pub fn average(&self) -> Option<u64> {
        (self.total_millis > 0).then(|| saturate(rate(self.total_bits, self.total_millis)))
    }

    /// What BANDWIDTH says now: the fixed declaration, or while none is
    /// fixed, the one [`RateTracker::declare`] would fix.
    pub fn declared(&self) -> u64 {
        self.declared.unwrap_or_else(|| self.target())
    }

    /// Fixes the declaration (for a master about to be published) and
    /// returns it: from now on it changes only when a peak exceeds it.
    pub fn declare(&mut self) -> u64 {
        let declared = self.declared();
        self.declared = Some(declared);
        declared
    }

    /// True when the peak now exceeds what was declared: the declaration is
    /// raised (with 10% headroom over the new peak, rounded up to a whole
    /// kbit/s, so that the master is not republished for every small step)
    /// and the master must be republished. Also true, once, when nothing was
    /// fixed yet: the declaration is fixed now and no published master can
    /// carry it already.
    pub fn raise_if_exceeded(&mut self) -> bool {
        match self.declared {
            Some(declared) if self.peak <= declared => false,
            _ => {
                self.declared = Some(self.target());
                true
            }
        }
    }

    /// The declaration the current peak calls for.
    fn target(&self) -> u64 {
        self.floor.max(with_headroom(self.peak))
    }
}

/// A segment's EXTINF in milliseconds, rounded as the media playlist
/// renders it; `None` when that is not positive.
fn extinf_millis(duration: MediaDuration) -> Option<u128> {
    let ticks = i128::from(duration.ticks());
    let per_second = i128::from(TICKS_PER_SECOND);
    let millis = (ticks * 1000 + per_second / 2).div_euclid(per_second);
    u128::try_from(millis).ok().filter(|&m| m > 0)
}

/// Bits per second over `millis`, rounded up.
fn rate(bits: u128, millis: u128) -> u128 {
    (bits * 1000).div_ceil(millis)
}

/// `peak` plus 10 %, rounded up to a whole kbit/s.
fn with_headroom(peak: u64) -> u64 {
    let raised = (u128::from(peak) * HEADROOM_PERCENT).div_ceil(100 * STEP) * STEP;
    saturate(raised)
}

fn saturate(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> MediaDuration {
        MediaDuration(s * TICKS_PER_SECOND)
    }

    #[test]
    fn peak_average_and_raises() {
        let mut t = RateTracker::new(0);
        assert_eq!((t.peak(), t.average(), t.declared()), (0, None, 0));
        // 1 MB over 2 s: 4 Mbit/s
        t.record(1_000_000, secs(2));
        assert_eq!(t.peak(), 4_000_000);
        assert_eq!(t.average(), Some(4_000_000));
        assert_eq!(t.declared(), 4_400_000);
        assert!(t.raise_if_exceeded(), "the first declaration is fixed");
        assert!(!t.raise_if_exceeded());
        assert_eq!(t.declared(), 4_400_000);
        // 4.2 Mbit/s is within the headroom
        t.record(1_050_000, secs(2));
        assert!(!t.raise_if_exceeded());
        assert_eq!((t.peak(), t.declared()), (4_200_000, 4_400_000));
        // 6 Mbit/s raises to 6.6 Mbit/s
        t.record(1_500_000, secs(2));
        assert_eq!(t.declared(), 4_400_000, "fixed until raised");
        assert!(t.raise_if_exceeded());
        assert_eq!((t.peak(), t.declared()), (6_000_000, 6_600_000));
        // a smaller one does not
        t.record(500_000, secs(2));
        assert!(!t.raise_if_exceeded());
        assert_eq!((t.peak(), t.declared()), (6_000_000, 6_600_000));
        // 4.05 MB over 8 s
        assert_eq!(t.average(), Some(4_050_000));
    }

    #[test]
    fn floor_and_declare() {
        let mut t = RateTracker::new(5_000_000);
        assert_eq!(t.declared(), 5_000_000, "the floor before any segment");
        t.record(1_000_000, secs(2));
        assert_eq!(t.declare(), 5_000_000, "4.4 Mbit/s stays under the floor");
        assert!(!t.raise_if_exceeded(), "declare fixed it already");
        t.record(1_250_000, secs(2));
        assert!(!t.raise_if_exceeded(), "5 Mbit/s does not exceed 5 Mbit/s");
        t.record(1_251_000, secs(2));
        assert!(t.raise_if_exceeded());
        // 5.004 Mbit/s + 10 % = 5.5044, up to 5.505 Mbit/s
        assert_eq!(t.declared(), 5_505_000);
    }

    #[test]
    fn rates_use_the_rendered_extinf() {
        let mut t = RateTracker::new(0);
        // 0.4 ms rounds to an EXTINF of 0.000: ignored, as is a negative one
        t.record(1_000_000, MediaDuration(36));
        t.record(1_000_000, MediaDuration(-90_000));
        t.record(1_000_000, MediaDuration::ZERO);
        assert_eq!((t.peak(), t.average()), (0, None));
        // 1.0004 s is written 1.000: 8 Mbit/s over EXTINF
        t.record(1_000_000, MediaDuration(90_036));
        assert_eq!(t.peak(), 8_000_000);
        // 3 bytes over 7 ms: 24000/7 = 3428.57.. rounded up
        let mut t = RateTracker::new(0);
        t.record(3, MediaDuration(630));
        assert_eq!(t.peak(), 3429);
        assert_eq!(t.declared(), 4000, "3771.4 up to a whole kbit/s");
    }

    #[test]
    fn huge_values_saturate() {
        let mut t = RateTracker::new(0);
        t.record(u64::MAX, MediaDuration(90));
        assert_eq!(t.peak(), u64::MAX);
        assert_eq!(t.declared(), u64::MAX);
        assert!(t.raise_if_exceeded());
        assert!(!t.raise_if_exceeded());
    }
}
