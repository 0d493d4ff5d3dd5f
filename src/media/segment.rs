//! The record of a finished segment, from the segmenter to the publisher.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::packaging::Packaging;

/// A segment file that is complete in the spool directory.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentReady {
    pub sequence: u64,
    /// File name, also the last part of its object key.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Start on the unwrapped 90 kHz timeline.
    pub start: i64,
    /// Duration in 90 kHz ticks.
    pub duration: i64,
    pub discontinuity: bool,
    pub program_date_time: DateTime<Utc>,
    /// TS or fMP4: its extension and Content-Type.
    pub packaging: Packaging,
}
