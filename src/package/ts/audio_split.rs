//! Splitting an audio PES packet at a segment's start time.
//!
//! Muxers gather several audio frames into one PES packet (ffmpeg's, about
//! 0.37 s of 64 kbit/s AAC) and write it once it is full, after the video of
//! the same time. Cut where the video keyframe lies in the byte stream, a
//! segment's audio would start up to a PES packet's length away from its
//! video, and a player joining there sees a hole at its start. So the
//! router gives each ADTS AAC frame to the segment its time belongs to: the
//! PES packet whose frames straddle the cut is split at a frame boundary
//! into two PES packets, the second with its own PTS. Pure functions over
//! transport stream packets, no I/O.

use crate::codec::keyframe::walk_adts;
use crate::timeline::{pts_diff, PTS_MODULUS, TICKS_PER_SECOND};
use crate::ts::{self, PACKET_SIZE, SYNC_BYTE};

/// Timestamps further apart than this are not compared (a reset, a jump).
const COMPARABLE: i64 = 10 * TICKS_PER_SECOND;

const ADTS_RATES: [i64; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Where the frames of one whole audio PES packet go.
#[derive(Debug, PartialEq, Eq)]
pub enum Split {
    /// Every frame is before the cut: the packets stay in the old segment.
    Before,
    /// Every frame is at or after the cut (or the packet cannot be read
    /// as timed ADTS frames): the packets start the new segment.
    After,
    /// Frames on both sides: the old segment's part and the new segment's,
    /// as packets whose continuity counters follow on from the first
    /// original packet's. `new` may hold more packets than the original
    /// less `old`, so later packets of the PID are renumbered.
    Parts {
        old: Vec<[u8; PACKET_SIZE]>,
        new: Vec<[u8; PACKET_SIZE]>,
    },
}

fn read_pts(b: &[u8]) -> i64 {
    (i64::from(b[0] & 0x0e) << 29)
        | (i64::from(b[1]) << 22)
        | (i64::from(b[2] & 0xfe) << 14)
        | (i64::from(b[3]) << 7)
        | (i64::from(b[4]) >> 1)
}

fn write_pts(pts: i64) -> [u8; 5] {
    let pts = pts.rem_euclid(PTS_MODULUS);
    [
        0x21 | ((pts >> 29) as u8 & 0x0e),
        (pts >> 22) as u8,
        0x01 | ((pts >> 14) as u8 & 0xfe),
        (pts >> 7) as u8,
        0x01 | ((pts << 1) as u8 & 0xfe),
    ]
}

/// One ADTS frame of a PES payload: where it starts and how many samples
/// come before it.
struct Frame {
    offset: usize,
    samples_before: i64,
}

/// The frames of a payload of whole ADTS frames, their sample rate and the
/// samples in all; `None` if it is anything else or the rate changes.
fn adts_layout(payload: &[u8]) -> Option<(Vec<Frame>, i64, i64)> {
    let mut frames = Vec::new();
    let mut rate_index = None;
    let mut same_rate = true;
    let mut samples = 0;
    let whole = walk_adts(payload, |f| {
        same_rate &= *rate_index.get_or_insert(f.rate_index) == f.rate_index;
        frames.push(Frame {
            offset: f.offset,
            samples_before: samples,
        });
        samples += i64::from(f.samples);
    });
    let rate = *ADTS_RATES.get(usize::from(rate_index?))?;
    (whole && same_rate).then_some((frames, rate, samples))
}

/// Decides where the frames of one whole PES packet go, given in its
/// transport packets, when the new segment starts at `cut_pts` (33-bit, 90
/// kHz). A frame belongs to the new segment when its middle is at or after
/// the cut, so each segment's audio starts within half a frame of its video.
pub fn split(packets: &[[u8; PACKET_SIZE]], cut_pts: i64) -> Split {
    split_checked(packets, cut_pts).unwrap_or(Split::After)
}

fn split_checked(packets: &[[u8; PACKET_SIZE]], cut_pts: i64) -> Option<Split> {
    // the PES packet; where each transport packet's payload starts in the
    // packet and in the PES
    let mut pes = Vec::with_capacity(packets.len() * PACKET_SIZE);
    let mut payloads = Vec::with_capacity(packets.len());
    let mut starts = Vec::with_capacity(packets.len());
    let first = ts::parse_header(packets.first()?)?;
    for (i, p) in packets.iter().enumerate() {
        let h = ts::parse_header(p)?;
        if h.pusi != (i == 0) {
            return None;
        }
        let payload = h.payload_start.unwrap_or(PACKET_SIZE);
        payloads.push(payload);
        starts.push(pes.len());
        pes.extend_from_slice(&p[payload..]);
    }
    let head: [u8; 9] = pes.get(..9)?.try_into().ok()?;
    if head[..3] != [0, 0, 1] || head[7] & 0x80 == 0 || head[8] < 5 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([head[4], head[5]]));
    if length > 0 {
        if pes.len() < length + 6 {
            return None;
        }
        pes.truncate(length + 6);
    }
    let body = 9 + usize::from(head[8]);
    let pts = read_pts(pes.get(9..14)?);
    // the header must lie in the first packet, where it is rewritten
    if starts.get(1).is_some_and(|&s| s < body) {
        return None;
    }
    let (frames, rate, samples) = adts_layout(pes.get(body..)?)?;
    let at = |samples: i64| pts + (samples * TICKS_PER_SECOND + rate / 2) / rate;
    let to_cut = |samples: i64| pts_diff(at(samples), cut_pts);
    if to_cut(0).abs() > COMPARABLE {
        return None;
    }
    let first_new = (0..frames.len()).find(|&i| {
        let end = frames.get(i + 1).map_or(samples, |g| g.samples_before);
        to_cut((frames[i].samples_before + end) / 2) >= 0
    });
    let first_new = match first_new {
        None => return Some(Split::Before),
        Some(0) => return Some(Split::After),
        Some(k) => &frames[k],
    };
    let at_byte = body + first_new.offset;

    // the old part: the original packets up to the split, the last one cut
    // short, and the PES length rewritten
    let pid = first.pid;
    let mut old = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let start = starts[i];
        if start >= at_byte {
            break;
        }
        let end = starts.get(i + 1).copied().unwrap_or(pes.len());
        if end <= at_byte {
            old.push(*p);
        } else {
            // keep the adaptation field's contents (after its length byte)
            let from = payloads[i];
            let field = p.get(5..from).unwrap_or(&[]);
            old.push(packet(
                pid,
                i == 0,
                0,
                field,
                &p[from..at_byte - start + from],
            ));
        }
    }
    if length > 0 {
        let first = &mut old[0];
        let s = ts::parse_header(first)?.payload_start?;
        let [hi, lo] = u16::try_from(at_byte - 6).ok()?.to_be_bytes();
        first[s + 4] = hi;
        first[s + 5] = lo;
    }

    // the new part: a PES header with the first frame's PTS, then the rest
    let rest = &pes[at_byte..];
    let mut new_pes = vec![0, 0, 1, pes[3], 0, 0, pes[6], 0x80, 5];
    new_pes.extend_from_slice(&write_pts(at(first_new.samples_before)));
    let [hi, lo] = u16::try_from(new_pes.len() - 6 + rest.len())
        .unwrap_or(0)
        .to_be_bytes();
    new_pes[4] = hi;
    new_pes[5] = lo;
    new_pes.extend_from_slice(rest);
    let mut new: Vec<_> = new_pes
        .chunks(PACKET_SIZE - 4)
        .enumerate()
        .map(|(i, chunk)| packet(pid, i == 0, 0, &[], chunk))
        .collect();

    for (i, p) in old.iter_mut().chain(new.iter_mut()).enumerate() {
        ts::set_continuity(p, first.continuity.wrapping_add(i as u8));
    }
    Some(Split::Parts { old, new })
}

/// A transport packet carrying `payload` (at most 184 bytes less the
/// adaptation field), with the adaptation field's contents `field` (its
/// flags and what they announce, without the length byte) stuffed out to
/// fill the packet.
fn packet(pid: u16, pusi: bool, cc: u8, field: &[u8], payload: &[u8]) -> [u8; PACKET_SIZE] {
    let mut p = [0xffu8; PACKET_SIZE];
    p[0] = SYNC_BYTE;
    p[1] = ((pid >> 8) as u8 & 0x1f) | if pusi { 0x40 } else { 0 };
    p[2] = pid as u8;
    let room = PACKET_SIZE - 4;
    if field.is_empty() && payload.len() == room {
        p[3] = 0x10 | (cc & 0x0f);
        p[4..].copy_from_slice(payload);
        return p;
    }
    p[3] = 0x30 | (cc & 0x0f);
    let field_len = room - 1 - payload.len();
    p[4] = field_len as u8;
    if field_len > 0 {
        if field.is_empty() {
            p[5] = 0x00;
        } else {
            p[5..5 + field.len()].copy_from_slice(field);
        }
    }
    p[PACKET_SIZE - payload.len()..].copy_from_slice(payload);
    p
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ADTS frame of `len` bytes (48 kHz, one raw data block), filled with `tag`.
    pub fn adts(len: usize, tag: u8) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..7].copy_from_slice(&[
            0xff,
            0xf1,
            0x4c,
            0x80 | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1f,
            0xfc,
        ]);
        f
    }

    /// One PES packet of `frames` with a PTS.
    fn pes_bytes(pts: i64, frames: &[Vec<u8>]) -> Vec<u8> {
        let payload: Vec<u8> = frames.concat();
        let mut pes = vec![0, 0, 1, 0xc0, 0, 0, 0x80, 0x80, 5];
        pes.extend_from_slice(&write_pts(pts));
        let [hi, lo] = u16::try_from(pes.len() - 6 + payload.len())
            .unwrap()
            .to_be_bytes();
        pes[4] = hi;
        pes[5] = lo;
        pes.extend_from_slice(&payload);
        pes
    }

    /// The transport packets of one PES packet of `frames` on PID 0x101,
    /// starting with continuity counter `cc`.
    pub fn pes_packets(pts: i64, frames: &[Vec<u8>], cc: u8) -> Vec<[u8; PACKET_SIZE]> {
        pes_bytes(pts, frames)
            .chunks(184)
            .enumerate()
            .map(|(i, c)| packet(0x101, i == 0, cc.wrapping_add(i as u8), &[], c))
            .collect()
    }

    /// The PES packets (PTS and payload) carried by a run of transport packets.
    pub fn reassemble(packets: &[[u8; PACKET_SIZE]]) -> Vec<(i64, Vec<u8>)> {
        let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut cur = Vec::new();
        let flush = |cur: &mut Vec<u8>, out: &mut Vec<(i64, Vec<u8>)>| {
            if cur.is_empty() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([cur[4], cur[5]]));
            assert_eq!(cur.len(), len + 6, "PES length matches what was carried");
            let body = 9 + usize::from(cur[8]);
            out.push((read_pts(&cur[9..14]), cur[body..].to_vec()));
            cur.clear();
        };
        for p in packets {
            let h = ts::parse_header(p).unwrap();
            if h.pusi {
                flush(&mut cur, &mut out);
            }
            cur.extend_from_slice(&p[h.payload_start.unwrap()..]);
        }
        flush(&mut cur, &mut out);
        out
    }

    pub fn continuity(packets: &[[u8; PACKET_SIZE]]) -> Vec<u8> {
        packets
            .iter()
            .map(|p| ts::parse_header(p).unwrap().continuity)
            .collect()
    }

    #[test]
    fn timestamps_compare_across_the_wrap() {
        assert_eq!(pts_diff(5, PTS_MODULUS - 5), 10);
        assert_eq!(pts_diff(PTS_MODULUS - 5, 5), -10);
        assert_eq!(read_pts(&write_pts(PTS_MODULUS - 1)), PTS_MODULUS - 1);
        assert_eq!(read_pts(&write_pts(123_456_789)), 123_456_789);
    }

    #[test]
    fn a_pes_straddling_the_cut_is_split_at_the_frame_boundary() {
        // 16 frames of 1920 ticks (48 kHz) from 90_000; frame sizes vary so
        // that the split falls inside a transport packet
        let frames: Vec<Vec<u8>> = (0..16).map(|i| adts(150 + i * 7, i as u8)).collect();
        let packets = pes_packets(90_000, &frames, 14);
        // the cut lies inside frame 10 (90_000 + 10 * 1920 = 109_200), past its middle
        let Split::Parts { old, new } = split(&packets, 109_200 + 1000) else {
            panic!("expected a split");
        };
        let old_pes = reassemble(&old);
        let new_pes = reassemble(&new);
        assert_eq!(old_pes, vec![(90_000, frames[..11].concat())]);
        assert_eq!(new_pes, vec![(90_000 + 11 * 1920, frames[11..].concat())]);
        // continuity counters run on from the original first packet's
        let all: Vec<_> = old.iter().chain(&new).copied().collect();
        let expect: Vec<u8> = (0..all.len()).map(|i| (14 + i as u8) & 0x0f).collect();
        assert_eq!(continuity(&all), expect);
        assert!(old.len() + new.len() >= packets.len());
        assert!(old.len() + new.len() <= packets.len() + 1);
    }

    #[test]
    fn whole_pes_packets_stay_on_their_side() {
        let frames: Vec<Vec<u8>> = (0..4).map(|i| adts(300, i)).collect();
        let packets = pes_packets(90_000, &frames, 0);
        // the last frame's middle is at 90_000 + 3.5 * 1920
        assert_eq!(split(&packets, 90_000 + 4 * 1920), Split::Before);
        assert_eq!(split(&packets, 90_000 + 3 * 1920 + 961), Split::Before);
        assert!(matches!(
            split(&packets, 90_000 + 3 * 1920 + 959),
            Split::Parts { .. }
        ));
        // the first frame's middle at or after the cut
        assert_eq!(split(&packets, 90_000 + 960), Split::After);
        assert_eq!(split(&packets, 80_000), Split::After);
        // across the wrap of the 33-bit clock
        let wrapped = pes_packets(PTS_MODULUS - 1920, &frames, 0);
        let Split::Parts { new, .. } = split(&wrapped, 100) else {
            panic!("expected a split across the wrap");
        };
        assert_eq!(reassemble(&new)[0].0, 0);
    }

    #[test]
    fn what_cannot_be_read_starts_the_new_segment() {
        let frames: Vec<Vec<u8>> = (0..4).map(|i| adts(300, i)).collect();
        let packets = pes_packets(90_000, &frames, 0);
        // far from the cut: a reset, not a split
        assert_eq!(split(&packets, 90_000 + 20 * 90_000), Split::After);
        // not ADTS
        let mut other = packets.clone();
        other[0][4 + 14] = 0;
        assert_eq!(split(&other, 90_000 + 2 * 1920), Split::After);
        // incomplete
        assert_eq!(split(&packets[..2], 90_000 + 2 * 1920), Split::After);
        // no PTS
        let mut untimed = packets.clone();
        untimed[0][4 + 7] = 0;
        assert_eq!(split(&untimed, 90_000 + 2 * 1920), Split::After);
    }

    #[test]
    fn any_split_keeps_every_frame_once_in_order() {
        // pseudo-random frame sizes, counts, cuts and counters
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let count = 1 + next(24) as usize;
            let frames: Vec<Vec<u8>> = (0..count)
                .map(|i| adts(7 + next(700) as usize, i as u8))
                .collect();
            let pts = next(PTS_MODULUS as u64) as i64;
            let cc = next(16) as u8;
            let packets = pes_packets(pts, &frames, cc);
            let cut = (pts + next((count as u64 + 2) * 1920) as i64 - 1920) % PTS_MODULUS;
            let (old, new) = match split(&packets, cut) {
                Split::Before => (packets.clone(), vec![]),
                Split::After => (vec![], packets.clone()),
                Split::Parts { old, new } => (old, new),
            };
            let mut got = reassemble(&old);
            let old_frames: usize = got.iter().map(|(_, p)| p.len()).sum();
            got.extend(reassemble(&new));
            let joined: Vec<u8> = got.iter().flat_map(|(_, p)| p.clone()).collect();
            assert_eq!(joined, frames.concat(), "every frame once, in order");
            // the old side holds exactly the frames whose middle is before the cut
            let k = (0..count)
                .find(|&i| pts_diff(pts + (i as i64 * 1920) + 960, cut) >= 0)
                .unwrap_or(count);
            let want: usize = frames[..k].iter().map(Vec::len).sum();
            assert_eq!(old_frames, want, "cut {cut} pts {pts} frames {count}");
            if let [_, (second, _)] = got[..] {
                assert_eq!(second, (pts + k as i64 * 1920) % PTS_MODULUS);
            }
            let all: Vec<_> = old.iter().chain(&new).copied().collect();
            let expect: Vec<u8> = (0..all.len()).map(|i| (cc + i as u8) & 0x0f).collect();
            assert_eq!(continuity(&all), expect);
        }
    }

    #[test]
    fn an_adaptation_field_in_the_cut_packet_is_kept() {
        let frames: Vec<Vec<u8>> = (0..6).map(|i| adts(60, i)).collect();
        let pes = pes_bytes(0, &frames);
        // the second packet has a random access flag in an adaptation field
        let packets = vec![
            packet(0x101, true, 3, &[], &pes[..184]),
            packet(0x101, false, 4, &[0x40], &pes[184..366]),
            packet(0x101, false, 5, &[], &pes[366..]),
        ];
        assert_eq!(reassemble(&packets)[0].1, frames.concat(), "test input");
        // frame 3 starts at 14 + 180 bytes: in the second packet
        let Split::Parts { old, new } = split(&packets, 3 * 1920) else {
            panic!("expected a split");
        };
        assert_eq!(old.len(), 2);
        assert_eq!(
            usize::from(old[1][4]),
            183 - (14 + 180 - 184),
            "stuffed out"
        );
        assert_eq!(old[1][5], 0x40, "flags kept");
        assert_eq!(reassemble(&old)[0].1, frames[..3].concat());
        assert_eq!(reassemble(&new), vec![(3 * 1920, frames[3..].concat())]);
        assert_eq!(continuity(&old), vec![3, 4]);
        assert_eq!(continuity(&new), vec![5, 6]);
    }
}
