//! The pure part of a ladder: each rung's picture size, which picture each
//! rung is scaled from, and the rate-control numbers given to libx264.

use crate::media::MediaDuration;
use crate::timeline::TICKS_PER_SECOND;

/// The width of a rung of `height` lines made from a `src_w`×`src_h` source
/// whose pixels have the sample aspect ratio `sar` (`(0, 0)`, `(1, 1)` or any
/// ratio with a zero term: square). The rung has square pixels, so it keeps
/// the source's *display* aspect ratio: `height × (src_w × sar) / src_h`,
/// rounded to the nearest even number (4:2:0 chroma needs even sizes; a
/// half rounds up), and never below 2. 0 when `src_h` or `height` is 0 (no
/// picture to speak of).
///
/// ffmpeg's `scale=-2:HEIGHT` gives the same width for square pixels, so
/// comparisons with ffmpeg's own ladder use the same sizes.
pub fn scaled_width(src_w: u32, src_h: u32, sar: (u32, u32), height: u32) -> u32 {
    if src_h == 0 || height == 0 {
        return 0;
    }
    let (num, den) = match sar {
        (n, d) if n == 0 || d == 0 => (1, 1),
        (n, d) => (u128::from(n), u128::from(d)),
    };
    let exact_num = u128::from(height) * u128::from(src_w) * num;
    // halved: the rounding is to a multiple of 2
    let exact_den = u128::from(src_h) * den * 2;
    let halves = (exact_num + exact_den / 2) / exact_den;
    u32::try_from(halves.max(1) * 2).unwrap_or(u32::MAX - 1)
}

/// Where a rung's picture is scaled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleFrom {
    /// The decoded source picture.
    Source,
    /// The (already scaled) picture of another rung, by index.
    Rung(usize),
}

/// A rung is scaled from a larger rung's picture instead of the source's
/// only when that rung is at least this many times its height.
///
/// Why 2: a second bicubic pass softens what the first one let through;
/// when the intermediate picture is at least twice the target, that
/// softening lies above the target's own pass band and is filtered away
/// anyway. Measured with ffmpeg 5.1 (20 s of 1280x720, libx264 veryfast,
/// PSNR against the source scaled directly with bicubic): 720→360→180 at
/// 200k lost 0.10 dB (testsrc2) and 0.0 dB (mandelbrot) against 720→180,
/// within the 0.2 dB allowed (this transcoder's 180p, cascaded, came within
/// 0.04 dB of ffmpeg's direct one), and cut the scaling CPU by a third
/// (0.70 s to 0.47 s per 20 s); 720→480→360 at 600k lost 0.9 dB on
/// testsrc2 (chroma 1.6 dB), so a rung closer than 2× is scaled from the
/// source. Scaling is a few percent of the CPU the encodes take, so the
/// saving never justifies a visible loss.
pub const CASCADE_MIN_RATIO: u32 = 2;

/// The order rungs are scaled in (every rung after the rung it is scaled
/// from) with where each one's picture comes from: `(rung index, from)`.
///
/// `sizes` are the rungs' (width, height). A rung takes, among the rungs
/// already placed (taller first; ties in the given order), one of the same
/// size (a lossless copy), or else the smallest at least
/// [`CASCADE_MIN_RATIO`] times its height; failing both, the source.
pub fn scale_order(sizes: &[(u32, u32)]) -> Vec<(usize, ScaleFrom)> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    // stable: equal heights keep the order given
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i].1));
    let mut placed: Vec<(usize, ScaleFrom)> = Vec::with_capacity(sizes.len());
    for &i in &order {
        let (w, h) = sizes[i];
        let same = placed.iter().find(|(j, _)| sizes[*j] == (w, h));
        let larger = placed
            .iter()
            .filter(|(j, _)| u64::from(sizes[*j].1) >= u64::from(h) * u64::from(CASCADE_MIN_RATIO))
            .min_by_key(|(j, _)| sizes[*j].1);
        let from = match same.or(larger) {
            Some(&(j, _)) => ScaleFrom::Rung(j),
            None => ScaleFrom::Source,
        };
        placed.push((i, from));
    }
    placed
}

/// libx264's `rc_max_rate` as a percentage of the target bit rate: a capped
/// VBR whose short-term rate may exceed the target by 10%.
///
/// With a VBV buffer of `B` bits and a max rate of `M` bit/s, a segment of
/// `T` seconds holds at most `M·T + B` bits, so its peak bit rate (what
/// an HLS `BANDWIDTH` must cover) is bounded by `M + B / T`: see
/// [`segment_peak_bps`].
pub const MAX_RATE_PERCENT: u64 = 110;

/// libx264's `rc_buffer_size` (the VBV buffer) as a percentage of the
/// target bit rate, i.e. 2 s of it: room for an IDR at every cut without
/// starving the frames around it, while keeping the segment peak
/// (`maxrate + bufsize / segment duration`, see [`MAX_RATE_PERCENT`]) near
/// the target for segments of a few seconds.
pub const BUFFER_PERCENT: u64 = 200;

/// The target bit rate in bit/s of a rung of `kbps`.
pub fn bit_rate(kbps: u32) -> u64 {
    u64::from(kbps) * 1000
}

/// The VBV max rate in bit/s of a rung of `kbps` ([`MAX_RATE_PERCENT`]).
pub fn max_rate(kbps: u32) -> u64 {
    bit_rate(kbps) * MAX_RATE_PERCENT / 100
}

/// The VBV buffer size in bits of a rung of `kbps` ([`BUFFER_PERCENT`]).
pub fn buffer_size(kbps: u32) -> u64 {
    bit_rate(kbps) * BUFFER_PERCENT / 100
}

/// The highest bit rate (bit/s, rounded up) a segment of `segment` length
/// of a rung of `kbps` can have: `maxrate + bufsize / duration`. `None` for
/// a segment of no length (no bound).
pub fn segment_peak_bps(kbps: u32, segment: MediaDuration) -> Option<u64> {
    let ticks = u128::try_from(segment.ticks()).ok().filter(|&t| t > 0)?;
    let buffer = u128::from(buffer_size(kbps)) * TICKS_PER_SECOND as u128;
    let per_second = buffer.div_ceil(ticks);
    u64::try_from(u128::from(max_rate(kbps)) + per_second).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_pixels_keep_16_by_9() {
        assert_eq!(scaled_width(1920, 1080, (1, 1), 720), 1280);
        assert_eq!(scaled_width(1920, 1080, (0, 0), 360), 640);
        assert_eq!(scaled_width(1280, 720, (1, 1), 180), 320);
    }

    #[test]
    fn odd_results_round_to_the_nearest_even() {
        // 640x360 → 240 lines: 426.67 wide; the nearest even is 426
        assert_eq!(scaled_width(640, 360, (1, 1), 240), 426);
        // 1280x720 → 480 lines: 853.33; 854 (as ffmpeg's scale=-2:480)
        assert_eq!(scaled_width(1280, 720, (1, 1), 480), 854);
        // exactly odd: 3:2 at 90 lines is 135 wide
        assert_eq!(scaled_width(720, 480, (1, 1), 90), 136);
        // a half rounds up: 2 × 1.5 → 4
        assert_eq!(scaled_width(3, 2, (1, 1), 2), 4);
    }

    #[test]
    fn anamorphic_sources_keep_their_display_aspect() {
        // PAL 4:3: 720x576 with SAR 16:15 displays as 768x576
        assert_eq!(scaled_width(720, 576, (16, 15), 576), 768);
        assert_eq!(scaled_width(720, 576, (16, 15), 480), 640);
        // PAL 16:9: SAR 64:45 displays as 1024x576
        assert_eq!(scaled_width(720, 576, (64, 45), 360), 640);
        // 1440x1080 with SAR 4:3 (HDV) displays as 1920x1080
        assert_eq!(scaled_width(1440, 1080, (4, 3), 720), 1280);
        // NTSC 4:3: 720x480 SAR 8:9 displays as 640x480
        assert_eq!(scaled_width(720, 480, (8, 9), 240), 320);
    }

    #[test]
    fn a_zero_sar_term_means_square() {
        assert_eq!(scaled_width(1280, 720, (0, 1), 360), 640);
        assert_eq!(scaled_width(1280, 720, (4, 0), 360), 640);
    }

    #[test]
    fn degenerate_sizes_give_zero_or_two() {
        assert_eq!(scaled_width(1280, 0, (1, 1), 360), 0);
        assert_eq!(scaled_width(1280, 720, (1, 1), 0), 0);
        assert_eq!(scaled_width(1, 720, (1, 1), 2), 2);
        // no overflow for the largest inputs
        assert_eq!(scaled_width(u32::MAX, u32::MAX, (1, 1), 4320), 4320);
    }

    #[test]
    fn rungs_close_in_size_are_scaled_from_the_source() {
        let order = scale_order(&[(854, 480), (640, 360)]);
        assert_eq!(order, vec![(0, ScaleFrom::Source), (1, ScaleFrom::Source)]);
    }

    #[test]
    fn a_rung_half_as_tall_or_less_cascades_from_the_smallest_fit() {
        // given smallest first: the order is tallest first
        let sizes = [(320, 180), (1280, 720), (640, 360), (854, 480)];
        let order = scale_order(&sizes);
        assert_eq!(
            order,
            vec![
                (1, ScaleFrom::Source),
                (3, ScaleFrom::Source),
                // 720 is the only rung at least twice 360
                (2, ScaleFrom::Rung(1)),
                // 360 and 480 and 720 all fit 180: 360 is the cheapest
                (0, ScaleFrom::Rung(2)),
            ]
        );
    }

    #[test]
    fn a_rung_of_the_same_size_is_copied_from_the_first() {
        let order = scale_order(&[(640, 360), (640, 360), (1280, 720)]);
        assert_eq!(
            order,
            vec![
                (2, ScaleFrom::Source),
                (0, ScaleFrom::Rung(2)),
                (1, ScaleFrom::Rung(0)),
            ]
        );
        // same height, other width: not the same picture
        let order = scale_order(&[(640, 360), (480, 360)]);
        assert_eq!(order, vec![(0, ScaleFrom::Source), (1, ScaleFrom::Source)]);
    }

    #[test]
    fn every_rung_comes_after_the_one_it_is_scaled_from() {
        let sizes = [(256, 144), (426, 240), (640, 360), (854, 480), (1920, 1080)];
        let order = scale_order(&sizes);
        assert_eq!(order.len(), sizes.len());
        for (pos, (_, from)) in order.iter().enumerate() {
            if let ScaleFrom::Rung(j) = from {
                assert!(order[..pos].iter().any(|(i, _)| i == j), "{order:?}");
            }
        }
    }

    #[test]
    fn rate_control_numbers() {
        assert_eq!(bit_rate(1200), 1_200_000);
        assert_eq!(max_rate(1200), 1_320_000);
        assert_eq!(buffer_size(1200), 2_400_000);
        // 4 s segments: 1.32 Mbit/s + 2.4 Mbit / 4 s
        assert_eq!(
            segment_peak_bps(1200, MediaDuration::from_whole_secs(4)),
            Some(1_920_000)
        );
        // rounded up: 2.4 Mbit over 7 s
        assert_eq!(
            segment_peak_bps(1200, MediaDuration::from_whole_secs(7)),
            Some(1_320_000 + 342_858)
        );
        assert_eq!(segment_peak_bps(1200, MediaDuration::ZERO), None);
        assert_eq!(segment_peak_bps(1200, MediaDuration(-1)), None);
    }
}
