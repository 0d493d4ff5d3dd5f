//! The one channel between the segmenter thread and the uploader thread: a
//! bounded crossbeam channel of [`Event`]s (init segments and media
//! segments, in the order the segmenter finished them), plus a doorbell that
//! wakes the uploader's async loop whenever one arrives or the segmenter
//! goes away.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::Notify;

use crate::media::{Event, InitReady, SegmentReady};

/// Creates the channel with room for `capacity` waiting events.
pub fn bounded(capacity: usize) -> (Outbox, Inbox) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let bell = Arc::new(Notify::new());
    (
        Outbox {
            tx: Some(tx),
            bell: bell.clone(),
        },
        Inbox { rx, bell },
    )
}

/// The segmenter's end.
pub struct Outbox {
    tx: Option<Sender<Event>>,
    bell: Arc<Notify>,
}

/// The receiver is gone: the uploader stopped.
#[derive(Debug)]
pub struct Closed;

impl Outbox {
    /// Sends an event, waiting while the channel is full: an
    /// [`Event`], or a [`SegmentReady`] or [`InitReady`] as one. An init
    /// segment goes before the first segment that names it.
    pub fn send(&self, event: impl Into<Event>) -> Result<(), Closed> {
        let tx = self.tx.as_ref().ok_or(Closed)?;
        tx.send(event.into()).map_err(|_| Closed)?;
        self.bell.notify_one();
        Ok(())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // disconnect first, then ring, so the uploader sees the end
        drop(self.tx.take());
        self.bell.notify_one();
    }
}

/// What the uploader finds in its inbox.
#[derive(Debug)]
pub enum Received {
    /// An fMP4 init segment, before the segments that need it.
    Init(InitReady),
    Segment(SegmentReady),
    Empty,
    /// The segmenter finished: no more segments will come.
    Ended,
}

/// The uploader's end.
pub struct Inbox {
    rx: Receiver<Event>,
    bell: Arc<Notify>,
}

impl Inbox {
    pub fn try_recv(&self) -> Received {
        match self.rx.try_recv() {
            Ok(Event::Segment(seg)) => Received::Segment(seg),
            Ok(Event::Init(init)) => Received::Init(init),
            Err(TryRecvError::Empty) => Received::Empty,
            Err(TryRecvError::Disconnected) => Received::Ended,
        }
    }

    /// Resolves after the next send or disconnect (or at once if one
    /// happened since the last wait).
    pub async fn ring(&self) {
        self.bell.notified().await;
    }
}
