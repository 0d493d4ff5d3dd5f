//! What the channel from the segmenter to the publisher carries.

use super::rendition::RenditionId;
use super::segment::SegmentReady;

/// One message on the channel, tagged by rendition.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A finished media segment in the spool directory.
    Segment(SegmentReady),
    /// No more segments will come for this rendition.
    End(RenditionId),
}
