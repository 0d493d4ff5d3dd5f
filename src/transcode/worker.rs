//! One rung's libx264 on a thread of its own.
//!
//! libx264 runs with one thread per encoder (no frame threads: they cost
//! about 8 % more CPU for the same pictures, and hold more pictures back),
//! and the rungs run beside each other instead: the transcoder decodes and
//! scales, hands each rung's picture to its worker, and goes on with the
//! next source picture while the workers encode. At most [`QUEUE`]
//! pictures wait for a worker, so a slow encoder holds the input back
//! instead of piling pictures up in memory.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, JoinHandle};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::codec::encoder;
use ffmpeg_next::util::frame;
use ffmpeg_next::Packet;

use super::{Encoded, RungSpec, TranscodeError};

/// Pictures that may wait for one rung's encoder.
pub(super) const QUEUE: usize = 4;

enum Job {
    /// A scaled picture, its pts and picture type set.
    Picture(frame::Video),
    /// The input has ended: drain the encoder.
    End,
}

/// The transcoder's side of one rung's encoder thread.
pub(super) struct Worker {
    spec: RungSpec,
    /// `None` once the end was sent or the thread was found gone.
    jobs: Option<SyncSender<Job>>,
    /// Pictures libx264 has copied, for the scaler to write again.
    spare: Receiver<frame::Video>,
    thread: Option<JoinHandle<Result<(), TranscodeError>>>,
    /// Why the thread ended early, told on every later picture.
    failed: Option<String>,
}

impl Worker {
    /// Starts the thread that encodes rung `index`; its packets go to
    /// `out`, in decode order.
    pub(super) fn start(
        index: usize,
        spec: RungSpec,
        encoder: encoder::video::Encoder,
        out: Sender<Encoded>,
    ) -> Result<Worker, TranscodeError> {
        let (jobs, inbox) = mpsc::sync_channel(QUEUE);
        let (give_back, spare) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(format!("x264 {}p", spec.height))
            .spawn(move || encode(index, spec, encoder, &inbox, &out, &give_back))
            .map_err(|e| TranscodeError::Encode {
                rung: spec,
                reason: format!("cannot start its thread: {e}"),
            })?;
        Ok(Worker {
            spec,
            jobs: Some(jobs),
            spare,
            thread: Some(thread),
            failed: None,
        })
    }

    /// A picture to scale into: one libx264 is done with, or an empty one
    /// (the scaler allocates it).
    pub(super) fn picture(&self) -> frame::Video {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| frame::Video::empty())
    }

    /// Queues a picture; waits while [`QUEUE`] pictures wait already.
    /// Fails if the thread has ended (an encoder error, told once in full
    /// and then named again on every picture).
    pub(super) fn encode(&mut self, picture: frame::Video) -> Result<(), TranscodeError> {
        if let Some(reason) = &self.failed {
            return Err(self.error(reason.clone()));
        }
        let Some(jobs) = &self.jobs else {
            return Err(TranscodeError::Finished);
        };
        if jobs.send(Job::Picture(picture)).is_ok() {
            return Ok(());
        }
        self.jobs = None;
        let reason = match self.join() {
            Err(TranscodeError::Encode { reason, .. }) => reason,
            Err(e) => e.to_string(),
            Ok(()) => "its thread ended".to_string(),
        };
        self.failed = Some(reason.clone());
        Err(self.error(reason))
    }

    /// Tells the encoder the input has ended and waits until it has made
    /// its last packets.
    pub(super) fn finish(&mut self) -> Result<(), TranscodeError> {
        if let Some(jobs) = self.jobs.take() {
            // a thread that has ended already tells why when joined
            let _ = jobs.send(Job::End);
        }
        match &self.failed {
            Some(reason) => Err(self.error(reason.clone())),
            None => self.join(),
        }
    }

    fn join(&mut self) -> Result<(), TranscodeError> {
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(self.error("its thread panicked".to_string())),
        }
    }

    fn error(&self, reason: String) -> TranscodeError {
        TranscodeError::Encode {
            rung: self.spec,
            reason,
        }
    }
}

impl Drop for Worker {
    /// A transcoder dropped before its end: the thread sees its queue
    /// closed, stops without draining, and is waited for.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: encodes every picture it is given, gives each back, and at
/// the end drains the encoder. Returns when the queue closes.
fn encode(
    index: usize,
    spec: RungSpec,
    mut encoder: encoder::video::Encoder,
    inbox: &Receiver<Job>,
    out: &Sender<Encoded>,
    give_back: &Sender<frame::Video>,
) -> Result<(), TranscodeError> {
    let mut packet = Packet::empty();
    let fail = |e: ffmpeg::Error| TranscodeError::Encode {
        rung: spec,
        reason: e.to_string(),
    };
    while let Ok(job) = inbox.recv() {
        match job {
            Job::Picture(picture) => {
                let sent = match encoder.send_frame(&picture) {
                    Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => {
                        drain(index, spec, &mut encoder, &mut packet, out)?;
                        encoder.send_frame(&picture)
                    }
                    other => other,
                };
                sent.map_err(fail)?;
                // libx264 has copied it; a transcoder gone takes none back
                let _ = give_back.send(picture);
                drain(index, spec, &mut encoder, &mut packet, out)?;
            }
            Job::End => {
                if let Err(e) = encoder.send_eof() {
                    log::debug!("transcode: rung {spec}: end of input refused: {e}");
                }
                return drain(index, spec, &mut encoder, &mut packet, out);
            }
        }
    }
    Ok(())
}

/// Sends every packet the encoder has ready to `out`.
fn drain(
    index: usize,
    spec: RungSpec,
    encoder: &mut encoder::video::Encoder,
    packet: &mut Packet,
    out: &Sender<Encoded>,
) -> Result<(), TranscodeError> {
    loop {
        match encoder.receive_packet(packet) {
            Ok(()) => {
                let (Some(pts), Some(dts)) =
                    (packet.pts().or(packet.dts()), packet.dts().or(packet.pts()))
                else {
                    log::warn!("transcode: rung {spec}: a packet without timestamps");
                    continue;
                };
                // a transcoder gone wants no more packets
                let _ = out.send(Encoded {
                    rung: index,
                    pts,
                    dts,
                    key: packet.is_key(),
                    data: packet.data().unwrap_or_default().to_vec(),
                });
            }
            Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(()),
            Err(e) => {
                return Err(TranscodeError::Encode {
                    rung: spec,
                    reason: e.to_string(),
                })
            }
        }
    }
}
