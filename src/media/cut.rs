//! The cut decision as the packagers follow it: what the cutter knows of a
//! demuxed packet, where a segment starts, and the timing of a finished one.
//! Made once by `segmenter::cutter`, for every packager and rendition.

use chrono::{DateTime, Utc};

use super::time::{MediaDuration, MediaTime, RawPts};

/// What the cutter needs to know about one demuxed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    pub stream: usize,
    /// Byte offset in the input of the TS packet where this packet's PES starts.
    pub pos: Option<u64>,
    /// The timestamps as the input carries them (33 bits).
    pub pts: Option<RawPts>,
    pub dts: Option<RawPts>,
    /// Zero when the demuxer knows none: the cutter then takes the step
    /// from the stream's packet before.
    pub duration: MediaDuration,
    pub key: bool,
}

/// The timing of a finished segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentTiming {
    pub sequence: u64,
    /// Start on the unwrapped timeline.
    pub start: MediaTime,
    pub duration: MediaDuration,
    /// The segment starts after a timestamp reset.
    pub discontinuity: bool,
    pub program_date_time: DateTime<Utc>,
    /// The segment did not start on a keyframe (forced cut).
    pub forced: bool,
}

/// A decision to start segment `sequence` at byte `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub pos: u64,
    pub sequence: u64,
    /// The PTS (33 bits, as in the input) of the anchor packet that starts
    /// the segment, when other streams' timestamps can be compared with it
    /// (not after a reset): the router gives audio frames from this time on
    /// to the new segment.
    pub pts: Option<RawPts>,
    /// Where the new segment starts on the unwrapped timeline.
    pub start: MediaTime,
    /// The new segment starts after a timestamp reset.
    pub discontinuity: bool,
    /// The timing of the segment that this cut ends, if one was open.
    pub closed: Option<SegmentTiming>,
}
