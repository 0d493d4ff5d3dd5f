//! The bottom floor: the types every part of live_upload shares. Nothing
//! here depends on another module of the crate, on libav or on a runtime.
//!
//! - [`time`]: media time on the 90 kHz MPEG clock, raw 33-bit PTS and
//!   durations as newtypes;
//! - [`packaging`]: how segments are packaged (TS or fMP4/CMAF): file
//!   extensions and content types, and the playlist's content type and
//!   cache headers shared by publishing and `serve`;
//! - [`cut`]: the cut decision the packagers follow;
//! - [`segment`]: the record of a finished segment that travels from the
//!   segmenter to the publisher;
//! - [`rendition`]: which rendition a segment belongs to;
//! - [`event`]: what the channel carries.

pub mod cut;
pub mod event;
pub mod packaging;
pub mod rendition;
pub mod segment;
pub mod time;

pub use event::Event;
pub use packaging::Packaging;
pub use rendition::{LadderEvent, LadderSpec, RenditionId, RenditionLayout, Rung};
pub use segment::{InitReady, SegmentReady};
pub use time::{MediaDuration, MediaTime, RawPts};
