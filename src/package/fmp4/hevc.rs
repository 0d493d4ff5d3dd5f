//! HEVC: what the `hvc1` sample entry needs from the video, sequence and
//! picture parameter sets (ITU-T H.265 7.3.2.1-7.3.2.3, 7.3.3; ISO/IEC
//! 14496-15 8.3.3).

use mp4_atom::{Codec, Hvc1, HvcCArray, Hvcc};

use super::avc::{pasp, visual};
use super::bits::BitReader;
use super::Error;
use crate::codec::keyframe::unescape;

pub const NAL_RASL_N: u8 = 8;
pub const NAL_RASL_R: u8 = 9;
pub const NAL_RADL_N: u8 = 6;
pub const NAL_RADL_R: u8 = 7;
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;
pub const NAL_FILLER: u8 = 38;

/// The NAL unit type of a NAL unit (from its two-byte header).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0xff, |h| (h >> 1) & 0x3f)
}

/// The general profile, tier and level (H.265 7.3.3), as hvcC carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTierLevel {
    pub profile_space: u8,
    pub tier: bool,
    pub profile_idc: u8,
    /// general_profile_compatibility_flag[0..32], flag 0 first (most
    /// significant bit).
    pub compatibility_flags: [u8; 4],
    /// The 48 bits from general_progressive_source_flag on.
    pub constraint_flags: [u8; 6],
    pub level_idc: u8,
}

/// The fields of a sequence parameter set that packaging uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcSps {
    pub id: u32,
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub ptl: ProfileTierLevel,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Picture size inside the conformance window.
    pub width: u32,
    pub height: u32,
}

fn rbsp(nal: &[u8], kind: u8, what: &'static str) -> Result<Vec<u8>, Error> {
    if nal.len() < 3 || nal_type(nal) != kind {
        return Err(Error::malformed(what, "not a NAL unit of this type"));
    }
    Ok(unescape(&nal[2..]))
}

/// Parses an SPS NAL unit (with its two-byte header).
pub fn parse_sps(nal: &[u8]) -> Result<HevcSps, Error> {
    const WHAT: &str = "HEVC SPS";
    let rbsp = rbsp(nal, NAL_SPS, WHAT)?;
    let mut r = BitReader::new(&rbsp, WHAT);
    let _vps_id = r.bits(4)?;
    let max_sub_layers = r.bits(3)? as u8 + 1;
    let temporal_id_nesting = r.flag()?;
    // the general profile_tier_level starts byte-aligned, at rbsp[1]
    let general = rbsp
        .get(1..13)
        .ok_or(Error::malformed(WHAT, "ends early"))?;
    let ptl = ProfileTierLevel {
        profile_space: general[0] >> 6,
        tier: general[0] & 0x20 != 0,
        profile_idc: general[0] & 0x1f,
        compatibility_flags: general[1..5].try_into().unwrap(),
        constraint_flags: general[5..11].try_into().unwrap(),
        level_idc: general[11],
    };
    r.skip(96)?;
    let sub_layers = usize::from(max_sub_layers - 1);
    let mut present = Vec::with_capacity(sub_layers);
    for _ in 0..sub_layers {
        present.push((r.flag()?, r.flag()?));
    }
    if sub_layers > 0 {
        r.skip(2 * (8 - sub_layers))?;
    }
    for (profile, level) in present {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    let id = r.ue()?;
    if id > 15 {
        return Err(Error::malformed(WHAT, "sps_seq_parameter_set_id above 15"));
    }
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(Error::malformed(WHAT, "chroma_format_idc above 3"));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let mut width = u64::from(r.ue()?);
    let mut height = u64::from(r.ue()?);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let crop_w = sub_width * (u64::from(left) + u64::from(right));
        let crop_h = sub_height * (u64::from(top) + u64::from(bottom));
        if crop_w >= width || crop_h >= height {
            return Err(Error::malformed(
                WHAT,
                "conformance window larger than the picture",
            ));
        }
        width -= crop_w;
        height -= crop_h;
    }
    if width == 0 || height == 0 || width > 16888 || height > 16888 {
        return Err(Error::malformed(WHAT, "picture size out of range"));
    }
    let bit_depth_luma = 8 + r.ue()?;
    let bit_depth_chroma = 8 + r.ue()?;
    if bit_depth_luma > 16 || bit_depth_chroma > 16 {
        return Err(Error::malformed(WHAT, "bit depth above 16"));
    }
    Ok(HevcSps {
        id,
        max_sub_layers,
        temporal_id_nesting,
        ptl,
        chroma_format_idc: chroma_format_idc as u8,
        bit_depth_luma: bit_depth_luma as u8,
        bit_depth_chroma: bit_depth_chroma as u8,
        width: width as u32,
        height: height as u32,
    })
}

/// The vps_video_parameter_set_id of a VPS NAL unit.
pub fn vps_id(nal: &[u8]) -> Result<u32, Error> {
    let rbsp = rbsp(nal, NAL_VPS, "HEVC VPS")?;
    Ok(u32::from(rbsp[0] >> 4))
}

/// The pps_pic_parameter_set_id of a PPS NAL unit.
pub fn pps_id(nal: &[u8]) -> Result<u32, Error> {
    const WHAT: &str = "HEVC PPS";
    let rbsp = rbsp(nal, NAL_PPS, WHAT)?;
    let id = BitReader::new(&rbsp, WHAT).ue()?;
    if id > 63 {
        return Err(Error::malformed(WHAT, "pps_pic_parameter_set_id above 63"));
    }
    Ok(id)
}

/// The configuration of an HEVC track: its parameter sets, and what the
/// first SPS says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    pub vps: Vec<Vec<u8>>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub info: HevcSps,
}

impl HevcConfig {
    /// Builds the configuration from whole VPS, SPS and PPS NAL units (at
    /// least one of each); the first SPS gives profile, level and size.
    pub fn new(vps: Vec<Vec<u8>>, sps: Vec<Vec<u8>>, pps: Vec<Vec<u8>>) -> Result<Self, Error> {
        const WHAT: &str = "HEVC configuration";
        if vps.is_empty() {
            return Err(Error::malformed(WHAT, "no VPS"));
        }
        if pps.is_empty() {
            return Err(Error::malformed(WHAT, "no PPS"));
        }
        let info = parse_sps(sps.first().ok_or(Error::malformed(WHAT, "no SPS"))?)?;
        Ok(HevcConfig {
            vps,
            sps,
            pps,
            info,
        })
    }

    /// The HEVCDecoderConfigurationRecord (14496-15 8.3.3.1): every
    /// parameter set in its array, marked complete (none in the samples),
    /// 4-byte NAL lengths. min_spatial_segmentation_idc, parallelismType and
    /// the frame rate fields are left at 0, "unknown".
    pub fn hvcc(&self) -> Hvcc {
        let i = &self.info;
        let array = |nal_unit_type, nalus: &Vec<Vec<u8>>| HvcCArray {
            completeness: true,
            nal_unit_type,
            nalus: nalus.clone(),
        };
        Hvcc {
            configuration_version: 1,
            general_profile_space: i.ptl.profile_space,
            general_tier_flag: i.ptl.tier,
            general_profile_idc: i.ptl.profile_idc,
            general_profile_compatibility_flags: i.ptl.compatibility_flags,
            general_constraint_indicator_flags: i.ptl.constraint_flags,
            general_level_idc: i.ptl.level_idc,
            min_spatial_segmentation_idc: 0,
            parallelism_type: 0,
            chroma_format_idc: i.chroma_format_idc,
            bit_depth_luma_minus8: i.bit_depth_luma - 8,
            bit_depth_chroma_minus8: i.bit_depth_chroma - 8,
            avg_frame_rate: 0,
            constant_frame_rate: 0,
            num_temporal_layers: i.max_sub_layers,
            temporal_id_nested: i.temporal_id_nesting,
            length_size_minus_one: 3,
            arrays: vec![
                array(NAL_VPS, &self.vps),
                array(NAL_SPS, &self.sps),
                array(NAL_PPS, &self.pps),
            ],
        }
    }

    /// The `hvc1` sample entry: parameter sets in the sample entry only, the
    /// form Apple's players require.
    pub fn sample_entry(&self) -> Codec {
        Hvc1 {
            visual: visual(self.info.width, self.info.height),
            hvcc: self.hvcc(),
            pasp: pasp(None),
            ..Default::default()
        }
        .into()
    }

    /// `hvc1.<space><profile>.<compatibility>.<tier><level>.<constraints>`
    /// (14496-15 E.3).
    pub fn codec_string(&self) -> String {
        let p = &self.info.ptl;
        let space = ["", "A", "B", "C"][usize::from(p.profile_space)];
        let compatibility = u32::from_be_bytes(p.compatibility_flags).reverse_bits();
        let tier = if p.tier { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{compatibility:X}.{tier}{}",
            p.profile_idc, p.level_idc
        );
        let used = p
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &p.constraint_flags[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Parameter sets written by libx265 (FFmpeg 5.1), extracted from
    // `ffmpeg -f lavfi -i testsrc2=... -c:v libx265 -f hevc`.
    /// Main, 642x362 (coded 648x368, conformance window 3+3 chroma units).
    pub(crate) const MAIN_VPS: &str = "40010c01ffff01600000030090000003000003003f959809";
    pub(crate) const MAIN_SPS: &str =
        "42010101600000030090000003000003003fa005120171c9265959a4932bc05a020000030002000003003210";
    pub(crate) const MAIN_PPS: &str = "4401c172b46240";
    /// Format range extensions, 4:4:4 10-bit, 320x240.
    const REXT_SPS: &str =
        "4201010408000003009c0800000300003c90014101e26cb2b349265780b4040000030004000003006420";

    #[test]
    fn main_profile_with_conformance_window() {
        let sps = parse_sps(&hex(MAIN_SPS)).unwrap();
        assert_eq!((sps.width, sps.height), (642, 362));
        assert_eq!(sps.ptl.profile_idc, 1);
        assert!(!sps.ptl.tier);
        assert_eq!(sps.ptl.level_idc, 63);
        assert_eq!(sps.ptl.compatibility_flags, [0x60, 0, 0, 0]);
        assert_eq!(sps.ptl.constraint_flags, [0x90, 0, 0, 0, 0, 0]);
        assert_eq!((sps.max_sub_layers, sps.temporal_id_nesting), (1, true));
        assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma), (1, 8));
        assert_eq!(vps_id(&hex(MAIN_VPS)).unwrap(), 0);
        assert_eq!(pps_id(&hex(MAIN_PPS)).unwrap(), 0);
        let c = HevcConfig::new(
            vec![hex(MAIN_VPS)],
            vec![hex(MAIN_SPS)],
            vec![hex(MAIN_PPS)],
        )
        .unwrap();
        assert_eq!(c.codec_string(), "hvc1.1.6.L63.90");
        let hvcc = c.hvcc();
        assert_eq!(hvcc.length_size_minus_one, 3);
        let types: Vec<u8> = hvcc.arrays.iter().map(|a| a.nal_unit_type).collect();
        assert_eq!(types, [32, 33, 34]);
    }

    #[test]
    fn range_extensions_444_10_bit() {
        let sps = parse_sps(&hex(REXT_SPS)).unwrap();
        assert_eq!((sps.width, sps.height), (320, 240));
        assert_eq!(sps.ptl.profile_idc, 4);
        assert_eq!(sps.chroma_format_idc, 3);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
    }

    #[test]
    fn wrong_or_short_units_are_errors() {
        let sps = hex(MAIN_SPS);
        assert!(parse_sps(&sps[..20]).is_err());
        assert!(parse_sps(&hex(MAIN_VPS)).is_err());
        assert!(pps_id(&sps).is_err());
        assert!(HevcConfig::new(vec![], vec![sps], vec![hex(MAIN_PPS)]).is_err());
    }
}
