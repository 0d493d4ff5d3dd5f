//! Reading fMP4 media segments back with mp4-atom, for the tests.

use mp4_atom::{Any, Decode, TrunSamples};

/// One track fragment of a media segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackFragment {
    pub track: u32,
    /// Its base media decode time (tfdt).
    pub decode_time: u64,
    /// The sum of its sample durations.
    pub duration: u64,
    /// Its first sample's flags.
    pub first_flags: Option<u32>,
}

/// The track fragments of one media segment (moof + mdat); checks that each
/// trun's data offset lands in the mdat.
pub fn read_segment(bytes: &[u8]) -> Vec<TrackFragment> {
    let mut buf = bytes;
    let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
        panic!("a segment starts with moof")
    };
    let moof_len = bytes.len() - buf.len();
    let Any::Mdat(mdat) = Any::decode(&mut buf).unwrap() else {
        panic!("then mdat")
    };
    assert!(buf.is_empty(), "nothing after the mdat");
    let mut expected_offset = moof_len + 8;
    moof.traf
        .iter()
        .map(|t| {
            let trun = &t.trun[0];
            let TrunSamples::Explicit(e) = &trun.samples else {
                panic!("explicit samples")
            };
            assert_eq!(trun.data_offset, Some(expected_offset as i32));
            let size: usize = e.iter().map(|s| s.size.unwrap() as usize).sum();
            expected_offset += size;
            assert!(expected_offset <= moof_len + 8 + mdat.data.len());
            TrackFragment {
                track: t.tfhd.track_id,
                decode_time: t.tfdt.as_ref().unwrap().base_media_decode_time,
                duration: e.iter().map(|s| u64::from(s.duration.unwrap())).sum(),
                first_flags: e[0].flags.or(t.tfhd.default_sample_flags),
            }
        })
        .collect()
}

/// A sync sample's flags: sample_depends_on 2 and not non-sync.
pub fn is_sync(flags: Option<u32>) -> bool {
    flags.is_some_and(|f| f & 0x0301_0000 == 0x0200_0000)
}
