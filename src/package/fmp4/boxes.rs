//! The ISOBMFF boxes of an init segment (`ftyp` + `moov`) and of a media
//! segment (`moof` + `mdat`), encoded with `mp4-atom`.
//!
//! Brands: `iso6` is the major brand and is compatible, since the segments
//! use what ISO/IEC 14496-12 brought in by then (version 1 `tfdt`, signed
//! composition offsets in version 1 `trun`, default-base-is-moof); `mp41`
//! for the MP4 file format (14496-14: `esds`). `cmfc`, the CMAF structural
//! brand (ISO/IEC 23000-19 7.2), is added only when the init holds a single
//! track: a CMAF track has exactly one, so a muxed audio+video init is an
//! HLS fMP4 init but not a CMAF header, and saying `cmfc` there would
//! promise what the file is not. No `styp`: it is optional in HLS and CMAF
//! and nothing reads it.

use mp4_atom::{
    Atom, Dinf, Dref, Encode, FourCC, Ftyp, Hdlr, Header, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, Url,
    Vmhd,
};

use super::{Error, TrackConfig};

/// Sample flags (14496-12 8.8.3.1): sample_depends_on = 2, a sync sample.
pub const SYNC: u32 = 0x0200_0000;
/// sample_depends_on = 1 and sample_is_non_sync_sample.
pub const NON_SYNC: u32 = 0x0101_0000;
/// sample_is_depended_on = 2: no other sample refers to this one.
pub const NOT_DEPENDED_ON: u32 = 0x0020_0000;
/// sample_is_depended_on = 1.
pub const DEPENDED_ON: u32 = 0x0010_0000;
/// is_leading = 1: a leading sample that refers to one before the
/// random access point (HEVC RASL), undecodable when starting there.
pub const LEADING_UNDECODABLE: u32 = 0x0400_0000;
/// is_leading = 3: a leading sample decodable from the random access point
/// (HEVC RADL).
pub const LEADING_DECODABLE: u32 = 0x0c00_0000;

/// One track of an init segment.
#[derive(Debug, Clone, Copy)]
pub struct InitTrack<'a> {
    pub id: u32,
    pub config: &'a TrackConfig,
}

fn encode<T: Encode>(atom: &T, out: &mut Vec<u8>, name: &'static str) -> Result<(), Error> {
    atom.encode(out).map_err(|_| Error::Encode(name))
}

/// The `ftyp` of an init segment with these many tracks.
pub fn ftyp(tracks: usize) -> Ftyp {
    let mut compatible_brands = vec![FourCC::new(b"iso6")];
    if tracks == 1 {
        compatible_brands.push(FourCC::new(b"cmfc"));
    }
    compatible_brands.push(FourCC::new(b"mp41"));
    Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands,
    }
}

fn trak(t: &InitTrack) -> Trak {
    let video = t.config.is_video();
    let (handler, name) = if video {
        (b"vide", "VideoHandler")
    } else {
        (b"soun", "SoundHandler")
    };
    let (width, height) = match t.config {
        TrackConfig::Avc(c) => {
            let (w, h) = (c.info.width, c.info.height);
            // the track header gives the display size: pixels times their aspect
            match c.info.sar {
                Some((sw, sh)) if sw != sh => {
                    ((u64::from(w) * u64::from(sw) / u64::from(sh)) as u32, h)
                }
                _ => (w, h),
            }
        }
        TrackConfig::Hevc(c) => (c.info.width, c.info.height),
        TrackConfig::Aac(_) => (0, 0),
    };
    let codec = match t.config {
        TrackConfig::Avc(c) => c.sample_entry(),
        TrackConfig::Hevc(c) => c.sample_entry(),
        TrackConfig::Aac(c) => c.sample_entry(),
    };
    Trak {
        tkhd: Tkhd {
            track_id: t.id,
            enabled: true,
            in_movie: true,
            volume: if video { 0.into() } else { 1.into() },
            width: (width.min(u32::from(u16::MAX)) as u16).into(),
            height: (height.min(u32::from(u16::MAX)) as u16).into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: t.config.timescale(),
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(handler),
                name: name.into(),
            },
            minf: Minf {
                vmhd: video.then(Vmhd::default),
                smhd: (!video).then(Smhd::default),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![codec],
                    },
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

/// An init segment: `ftyp` and a `moov` with one `trak` per track (no
/// samples, durations 0) and an `mvex` with a `trex` for each.
pub fn init_segment(tracks: &[InitTrack]) -> Result<Vec<u8>, Error> {
    let next_track_id = tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1;
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: tracks
                .iter()
                .map(|t| Trex {
                    track_id: t.id,
                    default_sample_description_index: 1,
                    ..Default::default()
                })
                .collect(),
        }),
        trak: tracks.iter().map(trak).collect(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(1024);
    encode(&ftyp(tracks.len()), &mut out, "ftyp")?;
    encode(&moov, &mut out, "moov")?;
    Ok(out)
}

/// One stored sample of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleMeta {
    /// In the track's timescale.
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
    /// Composition time minus decode time, in the track's timescale.
    pub composition_offset: i32,
}

/// One track's run of samples in a media segment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    pub samples: &'a [SampleMeta],
    /// The samples' bytes, one after another.
    pub data: &'a [u8],
    /// Video: composition offsets and per-sample flags are written. Audio:
    /// every sample is a sync sample without offset.
    pub video: bool,
}

fn traf(run: &TrackRun, data_offset: i32) -> Traf {
    let entries = run
        .samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.size),
            flags: run.video.then_some(s.flags),
            cts: run.video.then_some(i64::from(s.composition_offset)),
        })
        .collect::<Vec<_>>();
    Traf {
        tfhd: Tfhd {
            track_id: run.track_id,
            default_base_is_moof: true,
            // audio: all samples sync; video says per sample
            default_sample_flags: (!run.video).then_some(SYNC),
            ..Default::default()
        },
        tfdt: Some(Tfdt {
            base_media_decode_time: run.base_decode_time,
        }),
        trun: vec![Trun {
            data_offset: Some(data_offset),
            samples: entries.into(),
        }],
        ..Default::default()
    }
}

/// A media segment: one `moof` (an `mfhd` and one `traf` per run, each with
/// `tfhd` default-base-is-moof, a version 1 `tfdt` and a `trun` whose data
/// offset points into the `mdat`), then one `mdat` with the runs' bytes in
/// the same order. Runs without samples are left out.
pub fn media_segment(sequence: u32, runs: &[TrackRun]) -> Result<Vec<u8>, Error> {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: runs.iter().map(|r| traf(r, 0)).collect(),
    };
    // a data offset is a fixed-size field: measure the moof once, then fill them in
    let mut probe = Vec::new();
    encode(&moof, &mut probe, "moof")?;
    let data_len: usize = runs.iter().map(|r| r.data.len()).sum();
    let mut offset = probe.len() + 8;
    for (traf, run) in moof.traf.iter_mut().zip(&runs) {
        let value = i32::try_from(offset).map_err(|_| Error::Encode("trun data offset"))?;
        traf.trun[0].data_offset = Some(value);
        offset += run.data.len();
    }
    let mut out = Vec::with_capacity(probe.len() + 16 + data_len);
    encode(&moof, &mut out, "moof")?;
    debug_assert_eq!(out.len(), probe.len());
    // the mdat's header, then the bytes straight from the runs (an Mdat
    // value would be one more copy of them)
    encode(
        &Header {
            kind: Mdat::KIND,
            size: Some(data_len),
        },
        &mut out,
        "mdat",
    )?;
    if out.len() != probe.len() + 8 {
        return Err(Error::Encode("mdat larger than 4 GiB"));
    }
    for run in &runs {
        out.extend_from_slice(run.data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::fmp4::aac::AacConfig;
    use mp4_atom::{Any, Decode, TrunSamples};

    fn aac() -> TrackConfig {
        TrackConfig::Aac(AacConfig {
            object_type: 2,
            rate_index: 3,
            sample_rate: 48_000,
            channel_config: 2,
            channels: 2,
        })
    }

    #[test]
    fn init_reads_back() {
        let config = aac();
        let bytes = init_segment(&[InitTrack {
            id: 1,
            config: &config,
        }])
        .unwrap();
        let mut buf = bytes.as_slice();
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(
            ftyp.compatible_brands,
            [b"iso6".into(), b"cmfc".into(), b"mp41".into()]
        );
        let moov = Moov::decode(&mut buf).unwrap();
        assert!(buf.is_empty());
        assert_eq!(moov.mvhd.next_track_id, 2);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, 1);
        assert_eq!(trak.mdia.mdhd.timescale, 48_000);
        assert_eq!(trak.mdia.hdlr.handler, FourCC::new(b"soun"));
        assert_eq!(moov.mvex.unwrap().trex[0].track_id, 1);
        assert_eq!(ftyp_of_two().compatible_brands.len(), 2);
    }

    fn ftyp_of_two() -> Ftyp {
        ftyp(2)
    }

    #[test]
    fn data_offsets_point_at_each_runs_bytes() {
        let video = [
            SampleMeta {
                duration: 3000,
                size: 3,
                flags: SYNC,
                composition_offset: 6000,
            },
            SampleMeta {
                duration: 3000,
                size: 2,
                flags: NON_SYNC | NOT_DEPENDED_ON,
                composition_offset: -3000,
            },
        ];
        let audio = [SampleMeta {
            duration: 1024,
            size: 4,
            flags: 0,
            composition_offset: 0,
        }];
        let bytes = media_segment(
            7,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: 1 << 40,
                    samples: &video,
                    data: b"vvvww",
                    video: true,
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: 5,
                    samples: &[],
                    data: b"",
                    video: false,
                },
                TrackRun {
                    track_id: 3,
                    base_decode_time: 48_000,
                    samples: &audio,
                    data: b"aaaa",
                    video: false,
                },
            ],
        )
        .unwrap();
        let mut buf = bytes.as_slice();
        let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
            panic!("no moof first")
        };
        let Any::Mdat(mdat) = Any::decode(&mut buf).unwrap() else {
            panic!("no mdat second")
        };
        assert_eq!(mdat.data, b"vvvwwaaaa");
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf.len(), 2, "the empty run is left out");
        let v = &moof.traf[0];
        assert_eq!(v.tfdt.as_ref().unwrap().base_media_decode_time, 1 << 40);
        assert!(v.tfhd.default_base_is_moof);
        let offset = v.trun[0].data_offset.unwrap() as usize;
        assert_eq!(&bytes[offset..offset + 5], b"vvvww");
        let TrunSamples::Explicit(entries) = &v.trun[0].samples else {
            panic!()
        };
        assert_eq!(entries[1].cts, Some(-3000));
        assert_eq!(entries[1].flags, Some(NON_SYNC | NOT_DEPENDED_ON));
        let a = &moof.traf[1];
        assert_eq!(a.tfhd.track_id, 3);
        assert_eq!(a.tfhd.default_sample_flags, Some(SYNC));
        let offset = a.trun[0].data_offset.unwrap() as usize;
        assert_eq!(&bytes[offset..offset + 4], b"aaaa");
    }
}
