//! AAC in ADTS frames (ISO/IEC 14496-3 1.A.2, 13818-7): the
//! AudioSpecificConfig of the `mp4a` sample entry, and the raw frames that
//! are the samples.

use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{Audio, Codec, Esds, Mp4a};

use super::Error;
use crate::codec::keyframe::walk_adts;

/// Sampling frequencies by sampling_frequency_index (14496-3 Table 1.18).
pub const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Samples per AAC frame (one raw data block).
pub const FRAME_SAMPLES: u32 = 1024;

/// What an ADTS header says about the stream: all that the
/// AudioSpecificConfig of an AAC track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// audioObjectType: the ADTS profile + 1 (2 is AAC LC).
    pub object_type: u8,
    pub rate_index: u8,
    pub sample_rate: u32,
    pub channel_config: u8,
    pub channels: u16,
}

impl AacConfig {
    /// The two-byte AudioSpecificConfig (14496-3 1.6.2.1) with a
    /// GASpecificConfig of 1024-sample frames, no core coder, no extension.
    pub fn audio_specific_config(&self) -> [u8; 2] {
        let bits: u16 = (u16::from(self.object_type) << 11)
            | (u16::from(self.rate_index) << 7)
            | (u16::from(self.channel_config) << 3);
        bits.to_be_bytes()
    }

    /// The `mp4a` sample entry with its `esds` (14496-14 5.6).
    pub fn sample_entry(&self) -> Codec {
        let asc = self.audio_specific_config();
        Mp4a {
            audio: Audio {
                data_reference_index: 1,
                channel_count: self.channels,
                sample_size: 16,
                // 16.16 fixed point: rates above 65535 do not fit (the
                // timescale and the AudioSpecificConfig carry the rate)
                sample_rate: u16::try_from(self.sample_rate).unwrap_or(0).into(),
            },
            esds: Esds {
                es_desc: EsDescriptor {
                    es_id: 0,
                    dec_config: DecoderConfig {
                        // Audio ISO/IEC 14496-3, AudioStream
                        object_type_indication: 0x40,
                        stream_type: 0x05,
                        dec_specific: Some(DecoderSpecific {
                            profile: self.object_type,
                            freq_index: self.rate_index,
                            chan_conf: self.channel_config,
                            raw: asc.to_vec(),
                        }),
                        ..Default::default()
                    },
                    sl_config: SLConfig {},
                    ..Default::default()
                },
            },
            btrt: None,
            taic: None,
        }
        .into()
    }

    /// `mp4a.40.<audioObjectType>` (RFC 6381 3.3).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// One ADTS frame of a packet: its stream configuration and its raw data
/// block (header and CRC removed), the sample to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsFrame<'a> {
    pub config: AacConfig,
    pub raw: &'a [u8],
}

/// Splits a payload of whole ADTS frames (one PES packet) into its frames.
/// A frame with several raw data blocks is refused (rare; storing it would
/// need its blocks split by their CRCs or positions).
pub fn split_adts(data: &[u8]) -> Result<Vec<AdtsFrame<'_>>, Error> {
    const WHAT: &str = "ADTS";
    let mut offsets = Vec::new();
    if !walk_adts(data, |f| offsets.push(f.offset)) {
        return Err(Error::malformed(WHAT, "not whole ADTS frames"));
    }
    let mut frames = Vec::with_capacity(offsets.len());
    for (i, &start) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).copied().unwrap_or(data.len());
        let h = &data[start..end];
        let protection_absent = h[1] & 0x01 != 0;
        let header_len = if protection_absent { 7 } else { 9 };
        if h[6] & 0x03 != 0 {
            return Err(Error::Unsupported(
                "an ADTS frame with more than one raw data block",
            ));
        }
        if h.len() <= header_len {
            return Err(Error::malformed(WHAT, "frame without data"));
        }
        let rate_index = (h[2] >> 2) & 0x0f;
        let sample_rate = *SAMPLE_RATES
            .get(usize::from(rate_index))
            .ok_or(Error::malformed(WHAT, "reserved sampling frequency index"))?;
        let channel_config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        let channels = match channel_config {
            0 => {
                return Err(Error::Unsupported(
                    "AAC with its channels in a program config element",
                ))
            }
            7 => 8,
            n => u16::from(n),
        };
        frames.push(AdtsFrame {
            config: AacConfig {
                object_type: (h[2] >> 6) + 1,
                rate_index,
                sample_rate,
                channel_config,
                channels,
            },
            raw: &h[header_len..],
        });
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Encode};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The first ADTS headers of FFmpeg's AAC encoder (`-c:a aac -f adts`)
    /// at 44.1 kHz stereo and 48 kHz 5.1.
    const STEREO_44K: &str = "fff150802b3ffc";
    const SURROUND_48K: &str = "fff14d802fdffc";

    fn frame(header: &str, payload: usize) -> Vec<u8> {
        let mut f = hex(header);
        let len = f.len() + payload;
        f[3] = (f[3] & 0xfc) | ((len >> 11) as u8 & 0x03);
        f[4] = (len >> 3) as u8;
        f[5] = (f[5] & 0x1f) | ((len as u8 & 0x07) << 5);
        f.extend((0..payload).map(|i| i as u8));
        f
    }

    #[test]
    fn configs_from_real_headers() {
        let stereo = frame(STEREO_44K, 10);
        let f = split_adts(&stereo).unwrap();
        assert_eq!(
            f[0].config,
            AacConfig {
                object_type: 2,
                rate_index: 4,
                sample_rate: 44_100,
                channel_config: 2,
                channels: 2,
            }
        );
        assert_eq!(f[0].config.audio_specific_config(), [0x12, 0x10]);
        assert_eq!(f[0].raw, &stereo[7..]);
        let surround = frame(SURROUND_48K, 3);
        let c = split_adts(&surround).unwrap()[0].config;
        assert_eq!((c.sample_rate, c.channels), (48_000, 6));
        assert_eq!(c.audio_specific_config(), [0x11, 0xb0]);
        assert_eq!(c.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn several_frames_and_crc() {
        let mut pes = frame(STEREO_44K, 5);
        // a frame with protection_absent = 0: two CRC bytes after the header
        let mut protected = frame(STEREO_44K, 6);
        protected[1] &= 0xfe;
        pes.extend(&protected);
        let frames = split_adts(&pes).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].raw, &[0, 1, 2, 3, 4]);
        assert_eq!(frames[1].raw, &[2, 3, 4, 5], "CRC skipped");
    }

    #[test]
    fn refusals() {
        let mut two_blocks = frame(STEREO_44K, 10);
        two_blocks[6] |= 0x01;
        assert!(matches!(
            split_adts(&two_blocks),
            Err(Error::Unsupported(_))
        ));
        let mut pce = frame(STEREO_44K, 10);
        pce[2] &= 0xfe;
        pce[3] &= 0x3f;
        assert!(matches!(split_adts(&pce), Err(Error::Unsupported(_))));
        assert!(split_adts(&[0x47, 0x40, 0, 0, 0, 0, 0, 0]).is_err());
        let whole = frame(STEREO_44K, 10);
        assert!(split_adts(&whole[..whole.len() - 1]).is_err());
    }

    #[test]
    fn esds_reads_back() {
        let c = split_adts(&frame(STEREO_44K, 4)).unwrap()[0].config;
        let mut buf = Vec::new();
        match c.sample_entry() {
            Codec::Mp4a(m) => m.encode(&mut buf).unwrap(),
            _ => unreachable!(),
        }
        let m = Mp4a::decode(&mut buf.as_slice()).unwrap();
        let ds = m.esds.es_desc.dec_config.dec_specific.unwrap();
        assert_eq!((ds.profile, ds.freq_index, ds.chan_conf), (2, 4, 2));
        assert_eq!(m.audio.channel_count, 2);
        assert_eq!(m.esds.es_desc.dec_config.object_type_indication, 0x40);
    }
}
