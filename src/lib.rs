//! live_upload: cut a live MPEG-TS stream into HLS segments on keyframes and
//! publish them, with a rolling RFC 8216 playlist, to object storage.
//!
//! Two threads joined by one bounded channel: the [`segmenter`] (libav)
//! writes segment files to a spool directory and sends a
//! [`media::SegmentReady`] for each; the [`uploader`] stores each one and
//! then publishes the [`playlist`] that lists it. [`media`] holds the types
//! they share; [`package`] turns what the
//! segmenter cut into TS or fMP4/CMAF files. With `--events`, [`journal`]
//! records what both do, one JSON object per line.

pub mod channel;
pub mod cli;
pub mod clip;
pub mod codec;
pub mod input;
pub mod journal;
pub mod lease;
pub mod master;
pub mod media;
pub mod package;
pub mod playlist;
pub mod resume;
pub mod segmenter;
pub mod serve;
pub mod spool;
pub mod timeline;
pub mod transcode;
pub mod ts;
pub mod uploader;

/// Re-exported for callers that set up logging (the fuzz target).
pub use log::LevelFilter as LogLevelFilter;
