//! live_upload: cut a live MPEG-TS stream into HLS segments on keyframes and
//! publish them, with a rolling RFC 8216 playlist, to object storage.
//!
//! Two threads joined by one bounded channel: the [`segmenter`] (libav)
//! writes segment files to a spool directory and sends a
//! [`media::SegmentReady`] for each; the [`uploader`] stores each one and
//! then publishes the [`playlist`] that lists it. [`media`] holds the types
//! they share; [`fmp4`] is the pure fMP4/CMAF packager (not yet wired into
//! the segmenter).

pub mod channel;
pub mod cli;
pub mod clip;
pub mod fmp4;
pub mod media;
pub mod playlist;
pub mod resume;
pub mod segmenter;
pub mod serve;
pub mod timeline;
pub mod uploader;

/// Re-exported for callers that set up logging (the fuzz target).
pub use log::LevelFilter as LogLevelFilter;
