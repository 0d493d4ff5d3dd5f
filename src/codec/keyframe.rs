//! Random-access points read from the coded bytes of a video access unit.
//!
//! libav's parsers would tell the same (they run on every packet to split
//! and flag frames), but they cost about a third of the demuxing work and
//! the transport stream's PES packets already are whole access units, so
//! the demuxer runs without them (`AVFMT_FLAG_NOPARSE`) and a look at the
//! first NAL units of each packet decides instead. Pure functions, no I/O.

/// Video codecs whose keyframes are read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Hevc,
    Mpeg2,
    /// Anything else: libav's own flag is used.
    Other,
}

/// Whether the access unit in `data` starts at a random-access point:
/// an H.264 IDR picture or recovery point, an HEVC IRAP picture (IDR, CRA,
/// BLA), an MPEG-2 I picture. `None` when the bytes do not say (another
/// codec, or no picture found).
pub fn is_keyframe(codec: Codec, data: &[u8]) -> Option<bool> {
    match codec {
        Codec::H264 => h264(data),
        Codec::Hevc => hevc(data),
        Codec::Mpeg2 => mpeg2(data),
        Codec::Other => None,
    }
}

/// The position after the next `00 00 01` start code at or after `from`.
pub(crate) fn next_start(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// Where each unit after a `00 00 01` start code begins, found as they are
/// asked for: a caller that stops at the first picture never scans the
/// picture's own bytes, only those before it.
fn unit_starts(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = next_start(data, from)?;
        from = start;
        Some(start)
    })
}

/// The unit that begins at `start`, up to the next start code. (The zero
/// before a four-byte start code ends up as a trailing zero, which nothing
/// here reads.)
fn unit_at(data: &[u8], start: usize) -> &[u8] {
    let end = next_start(data, start).map_or(data.len(), |n| n - 3);
    &data[start..end.max(start)]
}

fn h264(data: &[u8]) -> Option<bool> {
    let mut recovery_point = false;
    for start in unit_starts(data) {
        let Some(&header) = data.get(start) else {
            continue;
        };
        match header & 0x1f {
            5 => return Some(true),
            // the first slice of a non-IDR picture decides
            1..=4 => return Some(recovery_point),
            6 => {
                let nal = unit_at(data, start);
                recovery_point |= sei_has_recovery_point(&unescape(&nal[1..]));
            }
            _ => {}
        }
    }
    None
}

/// Walks the messages of an H.264 SEI payload (emulation prevention
/// removed) for a recovery point (payload type 6).
fn sei_has_recovery_point(rbsp: &[u8]) -> bool {
    let mut i = 0;
    let read_value = |i: &mut usize| -> Option<usize> {
        let mut value = 0usize;
        loop {
            let b = *rbsp.get(*i)?;
            *i += 1;
            value += b as usize;
            if b != 0xff {
                return Some(value);
            }
        }
    };
    // the last byte is the RBSP stop bit
    while i + 1 < rbsp.len() {
        let (Some(kind), Some(size)) = (read_value(&mut i), read_value(&mut i)) else {
            return false;
        };
        if kind == 6 {
            return true;
        }
        i += size;
    }
    false
}

/// Removes emulation prevention bytes (`00 00 03` becomes `00 00`).
pub(crate) fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// One frame in a run of ADTS frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsFrame {
    /// Where its header starts.
    pub offset: usize,
    /// Its sampling frequency index (ISO/IEC 14496-3).
    pub rate_index: u8,
    /// Its samples: 1024 per raw data block.
    pub samples: u32,
}

/// Calls `each` for every frame of `data` in order while it reads as whole
/// ADTS frames; returns whether all of it did (and held at least one).
pub fn walk_adts(data: &[u8], mut each: impl FnMut(AdtsFrame)) -> bool {
    let mut i = 0;
    while i < data.len() {
        let Some(h) = data.get(i..i + 7) else {
            return false;
        };
        if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
            return false;
        }
        let length =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        if length < 7 {
            return false;
        }
        each(AdtsFrame {
            offset: i,
            rate_index: (h[2] >> 2) & 0x0f,
            // raw data blocks in the frame, less one
            samples: 1024 * (1 + u32::from(h[6] & 0x03)),
        });
        i += length;
    }
    i == data.len() && !data.is_empty()
}

/// The number of AAC frames (1024 samples each) in a packet of ADTS frames,
/// the usual form of AAC in a transport stream; `None` when the bytes are
/// not whole ADTS frames. (Without parsers a packet is a whole PES packet,
/// which holds several frames, and libav gives it no duration.)
pub fn adts_frames(data: &[u8]) -> Option<u32> {
    let mut samples = 0;
    walk_adts(data, |f| samples += f.samples).then_some(samples / 1024)
}

fn hevc(data: &[u8]) -> Option<bool> {
    for start in unit_starts(data) {
        let Some(&header) = data.get(start) else {
            continue;
        };
        match (header >> 1) & 0x3f {
            16..=21 => return Some(true),
            0..=9 => return Some(false),
            _ => {}
        }
    }
    None
}

fn mpeg2(data: &[u8]) -> Option<bool> {
    for start in unit_starts(data) {
        // a picture header: start code 00, 10 bits of temporal reference,
        // then 3 bits of picture_coding_type (1 = I)
        if let [0, _, coding, ..] = data[start..] {
            return Some((coding >> 3) & 7 == 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annex_b(units: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, u) in units.iter().enumerate() {
            // four-byte start codes first, as encoders write them
            out.extend_from_slice(if i == 0 { &[0, 0, 0, 1] } else { &[0, 0, 1] });
            out.extend_from_slice(u);
        }
        out
    }

    #[test]
    fn h264_idr_recovery_points_and_other_pictures() {
        let aud: &[u8] = &[0x09, 0xf0];
        let sps: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac];
        let pps: &[u8] = &[0x68, 0xeb, 0xe3];
        // an SEI with user data (type 5, 3 bytes) then nothing else
        let sei_user: &[u8] = &[0x06, 0x05, 0x03, 0xaa, 0xbb, 0xcc, 0x80];
        // an SEI with a recovery point (type 6) after a long (255 + 4 byte) message
        let mut sei_recovery = vec![0x06, 0x05, 0xff, 0x04];
        sei_recovery.extend(std::iter::repeat_n(0x11, 259));
        sei_recovery.extend_from_slice(&[0x06, 0x01, 0x84, 0x80]);
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        let slice: &[u8] = &[0x41, 0x9a, 0x02];
        assert_eq!(h264(&annex_b(&[aud, sps, pps, sei_user, idr])), Some(true));
        assert_eq!(h264(&annex_b(&[aud, sei_user, slice])), Some(false));
        assert_eq!(h264(&annex_b(&[aud, &sei_recovery, slice])), Some(true));
        assert_eq!(h264(&annex_b(&[aud, sps])), None);
        assert_eq!(h264(&[]), None);
        // three zero bytes of user data go on the wire as 00 00 03 00: read
        // without removing the 03, the recovery point after them would be missed
        let escaped: &[u8] = &[
            0x06, 0x05, 0x03, 0x00, 0x00, 0x03, 0x00, 0x06, 0x01, 0x84, 0x80,
        ];
        assert_eq!(h264(&annex_b(&[escaped, slice])), Some(true));
        assert!(!sei_has_recovery_point(&escaped[1..]));
    }

    fn adts(length: usize, blocks: u8) -> Vec<u8> {
        let mut f = vec![0xff, 0xf1, 0x50, 0x80, 0, 0, 0xfc | (blocks - 1)];
        f[3] |= ((length >> 11) & 0x03) as u8;
        f[4] = ((length >> 3) & 0xff) as u8;
        f[5] = (((length & 0x07) << 5) as u8) | 0x1f;
        f.resize(length, 0x5a);
        f
    }

    #[test]
    fn adts_frames_are_counted() {
        let mut pes = adts(371, 1);
        pes.extend(adts(9, 1));
        pes.extend(adts(2100, 2));
        assert_eq!(adts_frames(&pes), Some(4));
        assert_eq!(adts_frames(&pes[..pes.len() - 1]), None, "cut short");
        assert_eq!(adts_frames(&[0x47, 0x40, 0x11, 0x10, 0, 0, 0]), None);
        assert_eq!(adts_frames(&[]), None);
    }

    #[test]
    fn hevc_irap_pictures() {
        let vps: &[u8] = &[0x40, 0x01, 0x0c];
        let idr_w_radl: &[u8] = &[0x26, 0x01, 0xaf];
        let cra: &[u8] = &[0x2a, 0x01, 0xaf];
        let trail_r: &[u8] = &[0x02, 0x01, 0xd0];
        assert_eq!(hevc(&annex_b(&[vps, idr_w_radl])), Some(true));
        assert_eq!(hevc(&annex_b(&[cra])), Some(true));
        assert_eq!(hevc(&annex_b(&[trail_r])), Some(false));
        assert_eq!(hevc(&annex_b(&[vps])), None);
    }

    #[test]
    fn mpeg2_picture_types() {
        let sequence: &[u8] = &[0xb3, 0x14, 0x00, 0xf0];
        let i_picture: &[u8] = &[0x00, 0x00, 0x0f, 0xff];
        let p_picture: &[u8] = &[0x00, 0x00, 0x57, 0xff];
        assert_eq!(mpeg2(&annex_b(&[sequence, i_picture])), Some(true));
        assert_eq!(mpeg2(&annex_b(&[p_picture])), Some(false));
        assert_eq!(is_keyframe(Codec::Other, &annex_b(&[i_picture])), None);
    }
}
