//! MPEG-TS renditions made from elementary-stream samples, for the
//! renditions of an ABR ladder that cannot reuse the input's own transport
//! stream: an encoded rung (its video from the encoder) and each video
//! stream of a multi-stream input, each with the input's audio unchanged.
//!
//! Two pure parts, no I/O:
//! - [`TimedSegments`] decides which samples make each segment: it follows
//!   the source's cuts by time, since the rendition's video and audio
//!   arrive late and not in step with them;
//! - [`TsMuxer::segment`] makes the bytes of each [`Ready`] segment
//!   (through [`Ready::mux_samples`]), one muxer per rendition so that its
//!   continuity counters run on across segments.

pub mod timed;
pub mod ts_mux;

pub use timed::{Ready, Sample, TimedCut, TimedSegments};
pub use ts_mux::{MuxSample, Track, TsMuxer, VideoCodec};
