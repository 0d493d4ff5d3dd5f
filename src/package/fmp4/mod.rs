//! fMP4 / CMAF packaging of demuxed elementary streams, pure: no libav, no
//! I/O, no runtime.
//!
//! The [`Fmp4Packager`] takes demuxed packets (H.264 or HEVC access units in
//! Annex B form, AAC as ADTS frames, timestamps on the unwrapped 90 kHz
//! timeline) and the cut decisions of the segmenter, and hands back init
//! segments (`ftyp` + `moov`) and media segments (`moof` + `mdat`) as bytes.
//! The codec configuration each init segment carries (avcC, hvcC,
//! AudioSpecificConfig) is read from the bitstream itself:
//! [`avc`], [`hevc`] and [`aac`] parse what is needed of it; [`boxes`] builds
//! the ISOBMFF boxes with the `mp4-atom` crate (its module docs give the
//! brands and why).
//!
//! # Call order
//! One [`Fmp4Packager`] per rendition. For each demuxed packet: if the
//! cutter starts a segment at it, [`Fmp4Packager::on_cut`] first (with the
//! packet's unwrapped PTS: the segmenter's `Cut::pts` is the raw 33-bit
//! value), then [`Fmp4Packager::on_packet`]; after either,
//! [`Fmp4Packager::take_ready`] hands over what is complete: store each
//! [`Output::Init`] before any playlist names it (`EXT-X-MAP`), then its
//! segments. At the end, [`Fmp4Packager::finish`] and a last `take_ready`.
//! Errors from `on_packet` concern that packet only (it is dropped); those
//! of `new` name a stream the caller must refuse or ignore.
//!
//! ```
//! use live_upload::package::fmp4::{Cut, Fmp4Packager, Output, Packet, StreamKind};
//!
//! let mut packager = Fmp4Packager::new(&[StreamKind::from_codec_name("aac")])?;
//! // a PES payload of two ADTS frames: 48 kHz stereo AAC LC, 4 bytes each
//! let frame = [0xff, 0xf1, 0x4c, 0x80, 0x01, 0x7f, 0xfc, 1, 2, 3, 4];
//! let pes = [frame, frame].concat();
//! let mut stored = Vec::new();
//! for (n, pts) in [900_000i64, 903_840, 907_680].into_iter().enumerate() {
//!     let sequence = n as u64 + 1;
//!     packager.on_cut(Cut { pts, sequence, discontinuity: false })?;
//!     packager.on_packet(Packet { stream: 0, dts: pts, pts, key: true, data: &pes })?;
//!     stored.extend(packager.take_ready());
//! }
//! packager.finish()?;
//! stored.extend(packager.take_ready());
//! assert!(matches!(&stored[0], Output::Init(init) if init.codecs == "mp4a.40.2"));
//! assert!(matches!(&stored[3], Output::Segment(s) if s.sequence == 3 && s.init_id == 1));
//! # Ok::<(), live_upload::package::fmp4::Error>(())
//! ```

pub mod aac;
pub mod avc;
mod bits;
pub mod boxes;
pub mod hevc;
pub(crate) mod nal;
pub mod packager;

pub use packager::{Cut, Fmp4Packager, InitOut, Output, Packet, SegmentOut, StreamKind};

/// Why a stream, a packet or a box could not be packaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A codec that fMP4 packaging here does not carry (MPEG-2 video, MP2,
    /// AC-3...): the caller refuses the input, or ignores that stream.
    #[error("stream {stream}: {codec} cannot be packaged as fMP4 (only H.264, HEVC and AAC can)")]
    UnsupportedCodec { stream: usize, codec: String },
    /// A second video stream: cuts follow one video stream.
    #[error("stream {stream}: a second video stream cannot be packaged (ignore it)")]
    SecondVideo { stream: usize },
    /// Nothing to package.
    #[error("no H.264, HEVC or AAC stream to package")]
    NoStreams,
    /// A packet for a stream index the packager was not set up with.
    #[error("stream {0} is unknown to the packager")]
    UnknownStream(usize),
    /// Bytes that do not parse as what they should be.
    #[error("malformed {what}: {why}")]
    Malformed {
        what: &'static str,
        why: &'static str,
    },
    /// A video picture before any SPS/PPS (VPS) of its stream was seen.
    #[error("stream {stream}: picture before the parameter sets it needs")]
    NoParameterSets { stream: usize },
    /// Well-formed input that this packager does not handle.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// mp4-atom refused to encode a box (a value out of its range).
    #[error("encoding {0} failed")]
    Encode(&'static str),
}

impl Error {
    pub(crate) fn malformed(what: &'static str, why: &'static str) -> Self {
        Error::Malformed { what, why }
    }
}

/// What a track's init segment needs to know of its codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackConfig {
    Avc(avc::AvcConfig),
    Hevc(hevc::HevcConfig),
    Aac(aac::AacConfig),
}

impl TrackConfig {
    /// Ticks per second of the track's media time: 90 kHz for video, the
    /// sample rate for audio.
    pub fn timescale(&self) -> u32 {
        match self {
            TrackConfig::Avc(_) | TrackConfig::Hevc(_) => 90_000,
            TrackConfig::Aac(a) => a.sample_rate,
        }
    }

    pub fn is_video(&self) -> bool {
        !matches!(self, TrackConfig::Aac(_))
    }

    /// The RFC 6381 codec string, as in a playlist's CODECS attribute.
    pub fn codec_string(&self) -> String {
        match self {
            TrackConfig::Avc(c) => c.codec_string(),
            TrackConfig::Hevc(c) => c.codec_string(),
            TrackConfig::Aac(c) => c.codec_string(),
        }
    }
}
