//! H.264: what the `avc1` sample entry needs from the sequence and picture
//! parameter sets (ITU-T H.264 7.3.2.1, 7.3.2.2; ISO/IEC 14496-15 5.3.3).

use mp4_atom::{Avc1, Avcc, AvccExt, Codec, Pasp, Visual};

use super::bits::BitReader;
use super::Error;
use crate::codec::keyframe::unescape;

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;
pub const NAL_FILLER: u8 = 12;

/// The NAL unit type of a NAL unit (its first byte).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| h & 0x1f)
}

/// Sample aspect ratios of aspect_ratio_idc 1..=16 (H.264 Table E-1, the
/// same in HEVC).
pub(crate) const SAR: [(u32, u32); 16] = [
    (1, 1),
    (12, 11),
    (10, 11),
    (16, 11),
    (40, 33),
    (24, 11),
    (20, 11),
    (32, 11),
    (80, 33),
    (18, 11),
    (15, 11),
    (64, 33),
    (160, 99),
    (4, 3),
    (3, 2),
    (2, 1),
];

/// The fields of a sequence parameter set that packaging uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcSps {
    pub id: u32,
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as one byte.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub frame_mbs_only: bool,
    /// Picture size after frame cropping.
    pub width: u32,
    pub height: u32,
    /// Sample (pixel) aspect ratio from the VUI, when given.
    pub sar: Option<(u32, u32)>,
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling
/// matrices (H.264 7.3.2.1.1), and whose avcC carries the extension fields.
fn high_profile(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), Error> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Parses an SPS NAL unit (with its header byte, emulation prevention still
/// in place).
pub fn parse_sps(nal: &[u8]) -> Result<AvcSps, Error> {
    const WHAT: &str = "H.264 SPS";
    if nal_type(nal) != NAL_SPS {
        return Err(Error::malformed(WHAT, "not an SPS NAL unit"));
    }
    let rbsp = unescape(&nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let id = r.ue()?;
    if id > 31 {
        return Err(Error::malformed(WHAT, "seq_parameter_set_id above 31"));
    }
    let (mut chroma_format_idc, mut separate_colour_plane) = (1, false);
    let (mut bit_depth_luma, mut bit_depth_chroma) = (8, 8);
    if high_profile(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(Error::malformed(WHAT, "chroma_format_idc above 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        bit_depth_luma = 8 + r.ue()?;
        bit_depth_chroma = 8 + r.ue()?;
        if bit_depth_luma > 14 || bit_depth_chroma > 14 {
            return Err(Error::malformed(WHAT, "bit depth above 14"));
        }
        let _qpprime_y_zero_transform_bypass = r.flag()?;
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num = r.ue()?;
    match r.ue()? {
        0 => {
            let _log2_max_pic_order_cnt_lsb = r.ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.flag()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(Error::malformed(WHAT, "POC cycle above 255"));
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(Error::malformed(WHAT, "pic_order_cnt_type above 2")),
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.flag()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.flag()?;
    }
    let _direct_8x8_inference = r.flag()?;
    let frame_height_mbs = (2 - u64::from(frame_mbs_only)) * height_map_units;
    let mut width = width_mbs * 16;
    let mut height = frame_height_mbs * 16;
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (crop_x, crop_y) = if chroma_array_type == 0 {
            (1, 2 - u64::from(frame_mbs_only))
        } else {
            let sub_width = if chroma_format_idc == 3 { 1 } else { 2 };
            let sub_height = if chroma_format_idc == 1 { 2 } else { 1 };
            (sub_width, sub_height * (2 - u64::from(frame_mbs_only)))
        };
        let crop_w = crop_x * (u64::from(left) + u64::from(right));
        let crop_h = crop_y * (u64::from(top) + u64::from(bottom));
        if crop_w >= width || crop_h >= height {
            return Err(Error::malformed(WHAT, "cropping larger than the picture"));
        }
        width -= crop_w;
        height -= crop_h;
    }
    if width > 16384 || height > 16384 {
        return Err(Error::malformed(WHAT, "picture larger than 16384"));
    }
    let mut sar = None;
    // vui_parameters_present_flag, then aspect_ratio_info_present_flag
    if r.flag()? && r.flag()? {
        let idc = r.bits(8)?;
        sar = match idc {
            1..=16 => Some(SAR[idc as usize - 1]),
            255 => {
                let (w, h) = (r.bits(16)?, r.bits(16)?);
                (w > 0 && h > 0).then_some((w, h))
            }
            _ => None,
        };
    }
    Ok(AvcSps {
        id,
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc: chroma_format_idc as u8,
        bit_depth_luma: bit_depth_luma as u8,
        bit_depth_chroma: bit_depth_chroma as u8,
        frame_mbs_only,
        width: width as u32,
        height: height as u32,
        sar,
    })
}

/// The pic_parameter_set_id of a PPS NAL unit.
pub fn pps_id(nal: &[u8]) -> Result<u32, Error> {
    const WHAT: &str = "H.264 PPS";
    if nal_type(nal) != NAL_PPS {
        return Err(Error::malformed(WHAT, "not a PPS NAL unit"));
    }
    let rbsp = unescape(&nal[1..nal.len().min(8)]);
    let id = BitReader::new(&rbsp, WHAT).ue()?;
    if id > 255 {
        return Err(Error::malformed(WHAT, "pic_parameter_set_id above 255"));
    }
    Ok(id)
}

/// The configuration of an H.264 track: its parameter sets, and what the
/// first SPS says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub info: AvcSps,
}

impl AvcConfig {
    /// Builds the configuration from whole SPS and PPS NAL units (at least
    /// one of each); the first SPS gives profile, level and size.
    pub fn new(sps: Vec<Vec<u8>>, pps: Vec<Vec<u8>>) -> Result<Self, Error> {
        let first = sps
            .first()
            .ok_or(Error::malformed("H.264 configuration", "no SPS"))?;
        if pps.is_empty() {
            return Err(Error::malformed("H.264 configuration", "no PPS"));
        }
        let info = parse_sps(first)?;
        Ok(AvcConfig { sps, pps, info })
    }

    /// The AVCDecoderConfigurationRecord (14496-15 5.3.3.1), 4-byte NAL
    /// lengths.
    pub fn avcc(&self) -> Avcc {
        let i = &self.info;
        Avcc {
            configuration_version: 1,
            avc_profile_indication: i.profile_idc,
            profile_compatibility: i.constraint_flags,
            avc_level_indication: i.level_idc,
            length_size: 4,
            sequence_parameter_sets: self.sps.clone(),
            picture_parameter_sets: self.pps.clone(),
            // present for these profiles only (14496-15 5.3.3.1.2)
            ext: matches!(i.profile_idc, 100 | 110 | 122 | 144).then(|| AvccExt {
                chroma_format: i.chroma_format_idc,
                bit_depth_luma: i.bit_depth_luma,
                bit_depth_chroma: i.bit_depth_chroma,
                sequence_parameter_sets_ext: Vec::new(),
            }),
        }
    }

    /// The `avc1` sample entry: parameter sets in the sample entry only.
    pub fn sample_entry(&self) -> Codec {
        Avc1 {
            visual: visual(self.info.width, self.info.height),
            avcc: self.avcc(),
            pasp: pasp(self.info.sar),
            ..Default::default()
        }
        .into()
    }

    /// `avc1.PPCCLL` (RFC 6381 3.3).
    pub fn codec_string(&self) -> String {
        let i = &self.info;
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            i.profile_idc, i.constraint_flags, i.level_idc
        )
    }
}

pub(crate) fn visual(width: u32, height: u32) -> Visual {
    Visual {
        data_reference_index: 1,
        width: width as u16,
        height: height as u16,
        ..Default::default()
    }
}

pub(crate) fn pasp(sar: Option<(u32, u32)>) -> Option<Pasp> {
    sar.filter(|&(w, h)| w != h).map(|(w, h)| Pasp {
        h_spacing: w,
        v_spacing: h,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::package::fmp4::bits::tests::BitWriter;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Parameter sets written by libx264 (FFmpeg 5.1), extracted with
    // `ffmpeg -f lavfi -i testsrc2=... -c:v libx264 ... -f h264`.
    /// 320x180 constrained baseline: 12 map units less 6 lines of cropping.
    pub(crate) const BASELINE_SPS: &str = "6742c00dd901419f9f0110000003001000000303c0f142a480";
    pub(crate) const BASELINE_PPS: &str = "68cb83cb20";
    /// 1920x1080 high (68 rows of 16 cropped by 8).
    pub(crate) const HIGH_SPS: &str = "67640028acb403c0113f2e0220000003002000000781e30654";
    /// 720x576 interlaced high 4:2:2.
    const HIGH422_INTERLACED_SPS: &str = "677a001ebce80b424d808800000300080000030190f8a155";
    /// 1280x720 high 10.
    const HIGH10_SPS: &str = "676e001fa6cd9405005bb0110000030001000003003c0f183196";

    #[test]
    fn baseline_sps_with_cropping() {
        let sps = parse_sps(&hex(BASELINE_SPS)).unwrap();
        assert_eq!(
            sps,
            AvcSps {
                id: 0,
                profile_idc: 66,
                constraint_flags: 0xc0,
                level_idc: 13,
                chroma_format_idc: 1,
                bit_depth_luma: 8,
                bit_depth_chroma: 8,
                frame_mbs_only: true,
                width: 320,
                height: 180,
                sar: Some((1, 1)),
            }
        );
        assert_eq!(pps_id(&hex(BASELINE_PPS)).unwrap(), 0);
    }

    #[test]
    fn high_profiles() {
        let s = parse_sps(&hex(HIGH_SPS)).unwrap();
        assert_eq!((s.profile_idc, s.level_idc), (100, 40));
        assert_eq!((s.width, s.height), (1920, 1080));
        let s = parse_sps(&hex(HIGH422_INTERLACED_SPS)).unwrap();
        assert_eq!((s.profile_idc, s.chroma_format_idc), (122, 2));
        assert!(!s.frame_mbs_only);
        assert_eq!((s.width, s.height), (720, 576));
        let s = parse_sps(&hex(HIGH10_SPS)).unwrap();
        assert_eq!(
            (s.profile_idc, s.bit_depth_luma, s.bit_depth_chroma),
            (110, 10, 10)
        );
        assert_eq!((s.width, s.height), (1280, 720));
    }

    /// libx264 puts custom matrices in the PPS, so an SPS with scaling
    /// lists is written here: 4:4:4 (12 lists), some with deltas, one
    /// falling back to the default (delta to 0), cropping by 1 pixel per
    /// side and a 16:11 aspect ratio.
    #[test]
    fn scaling_lists_and_444_cropping() {
        let mut w = BitWriter::default();
        w.bits(8, 244).bits(8, 0).bits(8, 31).ue(3); // profile, flags, level, id
        w.ue(3).bits(1, 0).ue(0).ue(0).bits(1, 0); // 4:4:4, 8 bit, no bypass
        w.bits(1, 1); // seq_scaling_matrix_present_flag
        for i in 0..12 {
            if i % 3 == 0 {
                w.bits(1, 0);
                continue;
            }
            w.bits(1, 1);
            let size = if i < 6 { 16 } else { 64 };
            if i == 4 {
                w.se(-8); // next = 0: use the default list, nothing more
                continue;
            }
            for j in 0..size {
                w.se(if j % 2 == 0 { 3 } else { -2 });
            }
        }
        w.ue(0).ue(2).ue(4).bits(1, 0); // frame_num, poc type 2, refs, gaps
        w.ue(79).ue(44).bits(1, 1).bits(1, 1); // 80x45 MBs, frame_mbs_only, direct8x8
        w.bits(1, 1).ue(1).ue(1).ue(2).ue(2); // cropping (units of 1 for 4:4:4)
        w.bits(1, 1).bits(1, 1).bits(8, 4); // VUI, aspect ratio 16:11
        let mut nal = vec![0x67];
        nal.extend(w.finish());
        let s = parse_sps(&nal).unwrap();
        assert_eq!((s.id, s.chroma_format_idc), (3, 3));
        assert_eq!((s.width, s.height), (1280 - 2, 720 - 4));
        assert_eq!(s.sar, Some((16, 11)));
    }

    #[test]
    fn avcc_and_codec_string() {
        let c = AvcConfig::new(vec![hex(HIGH_SPS)], vec![hex("68ce0fc40c")]).unwrap();
        assert_eq!(c.codec_string(), "avc1.640028");
        let avcc = c.avcc();
        assert_eq!(avcc.length_size, 4);
        assert_eq!(avcc.ext.as_ref().unwrap().chroma_format, 1);
        let base = AvcConfig::new(vec![hex(BASELINE_SPS)], vec![hex(BASELINE_PPS)]).unwrap();
        assert_eq!(base.avcc().ext, None);
        assert_eq!(base.codec_string(), "avc1.42c00d");
        assert!(AvcConfig::new(vec![], vec![hex(BASELINE_PPS)]).is_err());
    }

    #[test]
    fn truncated_or_wrong_units_are_errors() {
        let sps = hex(BASELINE_SPS);
        assert_eq!(
            parse_sps(&sps[..6]),
            Err(Error::malformed("H.264 SPS", "ends early"))
        );
        assert!(parse_sps(&hex(BASELINE_PPS)).is_err());
        assert!(pps_id(&sps).is_err());
    }
}
