//! What the channel from the segmenter to the publisher carries.

use super::segment::{InitReady, SegmentReady};

/// One message on the channel. The end of the stream is the channel's
/// closing.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An init segment, sent before the first segment that needs it.
    Init(InitReady),
    /// A finished media segment.
    Segment(SegmentReady),
}

impl From<SegmentReady> for Event {
    fn from(seg: SegmentReady) -> Event {
        Event::Segment(seg)
    }
}

impl From<InitReady> for Event {
    fn from(init: InitReady) -> Event {
        Event::Init(init)
    }
}
