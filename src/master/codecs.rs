//! RFC 6381 codec strings read from the elementary streams: the CODECS of
//! a TS variant, which has no init segment to take them from. The strings
//! are those the fMP4 packager writes for the same streams (its parsers do
//! the reading), so that both packagings of one input declare alike.

use crate::package::fmp4::aac::split_adts;
use crate::package::fmp4::avc::{self, AvcConfig};
use crate::package::fmp4::hevc::{self, HevcConfig};
use crate::package::fmp4::nal;

/// A video codec whose CODECS string is read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoKind {
    H264,
    Hevc,
}

/// What a variant's EXT-X-STREAM-INF says of its video, from one SPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFacts {
    /// `avc1.PPCCLL` or `hvc1.…`.
    pub codecs: String,
    /// The picture size after cropping (RESOLUTION).
    pub width: u32,
    pub height: u32,
}

/// The codec string and picture size from the first SPS of an Annex B
/// access unit that parses. `None` until an access unit carries one (an
/// encoder repeats them at each keyframe, so the caller tries the next).
pub fn video_codecs(codec: VideoKind, access_unit_annexb: &[u8]) -> Option<VideoFacts> {
    let mut units = nal::units(access_unit_annexb);
    match codec {
        VideoKind::H264 => units.find_map(|unit| {
            if avc::nal_type(unit) != avc::NAL_SPS {
                return None;
            }
            let info = avc::parse_sps(unit).ok()?;
            let (width, height) = (info.width, info.height);
            // the codec string is made of the SPS alone; the parameter set
            // lists are not read by it
            let config = AvcConfig {
                sps: vec![unit.to_vec()],
                pps: Vec::new(),
                info,
            };
            Some(VideoFacts {
                codecs: config.codec_string(),
                width,
                height,
            })
        }),
        VideoKind::Hevc => units.find_map(|unit| {
            if hevc::nal_type(unit) != hevc::NAL_SPS {
                return None;
            }
            let info = hevc::parse_sps(unit).ok()?;
            let (width, height) = (info.width, info.height);
            let config = HevcConfig {
                vps: Vec::new(),
                sps: vec![unit.to_vec()],
                pps: Vec::new(),
                info,
            };
            Some(VideoFacts {
                codecs: config.codec_string(),
                width,
                height,
            })
        }),
    }
}

/// `mp4a.40.<audioObjectType>` from the first ADTS header of a PES payload
/// of whole ADTS frames (the form the packager takes): "mp4a.40.2" for AAC
/// LC. HE-AAC in ADTS signals LC (its SBR is implicit), so it reads as
/// "mp4a.40.2" too, which every HE-AAC decoder plays. `None` when the bytes
/// are not whole ADTS frames of a stream the packager carries.
pub fn adts_codecs(adts: &[u8]) -> Option<String> {
    let frames = split_adts(adts).ok()?;
    frames.first().map(|f| f.config.codec_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::fmp4::avc::tests::{hex, BASELINE_PPS, BASELINE_SPS};
    use crate::package::fmp4::hevc::tests::{MAIN_PPS, MAIN_SPS, MAIN_VPS};
    use crate::package::fmp4::{Cut, Fmp4Packager, Output, Packet, StreamKind};

    /// Parameter sets of libx264 (FFmpeg 5.1), written by
    /// `ffmpeg -f lavfi -i testsrc=size=320x240:rate=10 -t 1 -pix_fmt yuv420p
    /// -c:v libx264 -profile:v high -f h264`: High, level 1.2, 320x240.
    const HIGH_320X240_SPS: &str = "6764000cacd94141fb011000000300100000030140f1429960";
    const HIGH_320X240_PPS: &str = "68ebe3cb22c0";

    /// An Annex B access unit: AUD, the parameter sets, one stand-in IDR
    /// slice (never decoded here).
    fn access_unit(params: &[&str], slice: &[u8]) -> Vec<u8> {
        let mut au = vec![0, 0, 0, 1, 0x09, 0xf0];
        for p in params {
            au.extend([0, 0, 0, 1]);
            au.extend(hex(p));
        }
        au.extend([0, 0, 1]);
        au.extend(slice);
        au
    }

    /// The codecs of the init segment the fMP4 packager makes of `au`.
    fn fmp4_codecs(kind: StreamKind, au: &[u8]) -> String {
        let mut p = Fmp4Packager::new(&[kind]).unwrap();
        p.on_cut(Cut {
            pts: 900_000,
            sequence: 1,
            discontinuity: false,
        })
        .unwrap();
        p.on_packet(Packet {
            stream: 0,
            dts: 900_000,
            pts: 900_000,
            key: true,
            data: au,
        })
        .unwrap();
        p.finish().unwrap();
        p.take_ready()
            .into_iter()
            .find_map(|o| match o {
                Output::Init(init) => Some(init.codecs),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn h264_from_a_real_sps_matches_the_fmp4_path() {
        let au = access_unit(
            &[HIGH_320X240_SPS, HIGH_320X240_PPS],
            &[0x65, 0x88, 0x84, 0x00, 0x11],
        );
        let facts = video_codecs(VideoKind::H264, &au).unwrap();
        assert_eq!(
            facts,
            VideoFacts {
                codecs: "avc1.64000c".to_string(),
                width: 320,
                height: 240,
            }
        );
        assert_eq!(facts.codecs, fmp4_codecs(StreamKind::H264, &au));
        let base = access_unit(&[BASELINE_SPS, BASELINE_PPS], &[0x65, 0x88]);
        let facts = video_codecs(VideoKind::H264, &base).unwrap();
        assert_eq!(
            (facts.codecs.as_str(), facts.width, facts.height),
            ("avc1.42c00d", 320, 180)
        );
    }

    #[test]
    fn hevc_matches_the_fmp4_path() {
        // an IDR_W_RADL slice header (type 19)
        let au = access_unit(&[MAIN_VPS, MAIN_SPS, MAIN_PPS], &[0x26, 0x01, 0xaf]);
        let facts = video_codecs(VideoKind::Hevc, &au).unwrap();
        assert_eq!((facts.width, facts.height), (642, 362));
        assert_eq!(facts.codecs, "hvc1.1.6.L63.90");
        assert_eq!(facts.codecs, fmp4_codecs(StreamKind::Hevc, &au));
    }

    #[test]
    fn no_sps_no_facts() {
        let picture = access_unit(&[], &[0x41, 0x9a, 0x24]);
        assert_eq!(video_codecs(VideoKind::H264, &picture), None);
        // an H.264 SPS is not an HEVC one
        let au = access_unit(&[HIGH_320X240_SPS], &[0x65, 0x88]);
        assert_eq!(video_codecs(VideoKind::Hevc, &au), None);
        // a broken SPS is skipped for a later one that parses
        let broken = &HIGH_320X240_SPS[..8];
        let au = access_unit(&[broken, HIGH_320X240_SPS], &[0x65, 0x88]);
        assert_eq!(
            video_codecs(VideoKind::H264, &au).map(|f| f.codecs),
            Some("avc1.64000c".to_string())
        );
        assert_eq!(video_codecs(VideoKind::H264, &[]), None);
    }

    /// An ADTS frame of `payload` bytes after the 7-byte header `header`,
    /// its frame length set.
    fn adts_frame(header: &str, payload: usize) -> Vec<u8> {
        let mut f = hex(header);
        let len = f.len() + payload;
        f[3] = (f[3] & 0xfc) | ((len >> 11) as u8 & 0x03);
        f[4] = (len >> 3) as u8;
        f[5] = (f[5] & 0x1f) | ((len as u8 & 0x07) << 5);
        f.extend(std::iter::repeat_n(0x21, payload));
        f
    }

    #[test]
    fn aac_lc_from_adts() {
        // FFmpeg's AAC encoder at 48 kHz stereo: profile 1 (LC)
        let lc = adts_frame("fff14c8026dffc", 20);
        let pes = [lc.clone(), lc].concat();
        assert_eq!(adts_codecs(&pes).as_deref(), Some("mp4a.40.2"));
        // profile 0 (AAC Main): object type 1
        let mut main = adts_frame("fff14c8026dffc", 20);
        main[2] &= 0x3f;
        assert_eq!(adts_codecs(&main).as_deref(), Some("mp4a.40.1"));
        assert_eq!(adts_codecs(&[0x47, 0x40, 0x11, 0x10]), None);
        assert_eq!(adts_codecs(&[]), None);
    }
}
