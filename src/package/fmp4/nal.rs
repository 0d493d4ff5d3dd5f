//! Annex B access units (start codes) into NAL units, and NAL units into
//! the 4-byte length-prefixed form of ISO/IEC 14496-15 samples.

use crate::codec::keyframe::next_start;

/// The NAL units of an Annex B access unit, without start codes and without
/// the zero bytes that stand before a four-byte start code or trail the
/// stream (a NAL unit never ends in a zero byte: H.264 7.4.1, HEVC 7.4.2).
/// Bytes before the first start code are skipped.
pub(crate) fn units(data: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut start = next_start(data, 0);
    std::iter::from_fn(move || loop {
        let s = start?;
        let next = next_start(data, s);
        let mut end = next.map_or(data.len(), |n| n - 3);
        start = next;
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            return Some(&data[s..end]);
        }
    })
}

/// Appends `nal` with its 4-byte big-endian length.
pub(crate) fn push_prefixed(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    out.extend_from_slice(nal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x65, 0x88, 0, 0, 3, 1, 0,
        ];
        let got: Vec<&[u8]> = units(&au).collect();
        assert_eq!(
            got,
            vec![&[0x09, 0xf0][..], &[0x67, 0x42], &[0x65, 0x88, 0, 0, 3, 1]]
        );
        assert_eq!(units(&[1, 2, 3]).count(), 0);
        assert_eq!(units(&[0, 0, 1, 0, 0, 1]).count(), 0, "empty units skipped");
        let mut out = Vec::new();
        push_prefixed(&mut out, &[0x65, 0x88]);
        assert_eq!(out, [0, 0, 0, 2, 0x65, 0x88]);
    }
}
