//! Packagers: what the segmenter makes of each demuxed packet once the
//! cutter has decided where segments start. The cut decision is made once,
//! by the segmenter's cutter; a packager follows it.
//!
//! - [`TsPackager`]: the input's own transport stream bytes, routed PID by
//!   PID into segment files by the [`Router`];
//! - [`Fmp4Packager`](fmp4::Fmp4Packager) behind [`Fmp4Files`]: CMAF
//!   init and media segments made from the packets' elementary streams.
//!
//! Both hand back [`Finished`] files in the spool directory, in the order
//! to publish them.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::input::{lock, InputBuffer};

pub mod fmp4;
pub mod mux;
pub mod ts;

use crate::media::cut::{Cut, PacketInfo, SegmentTiming};
use crate::media::segment::init_name;
use crate::media::InitReady;
use fmp4::{Fmp4Packager, Output};
use ts::router::{ClosedSegment, Router, RouterStats};

/// One demuxed packet, as a packager sees it.
pub struct Demuxed<'a> {
    pub info: &'a PacketInfo,
    /// Unwrapped (decode, presentation) time, from the cutter.
    pub times: Option<(i64, i64)>,
    pub data: &'a [u8],
    /// The stream whose packets decide the cuts.
    pub anchor: bool,
    /// A cut the cutter may still make before this position (see
    /// the cutter's `hold`): nothing from there on may be
    /// committed to a segment yet.
    pub hold: Option<u64>,
}

/// A file a packager finished in the spool directory.
#[derive(Debug)]
pub enum Finished {
    /// An fMP4 init segment, still `.part` until the segmenter finalizes
    /// it.
    Init { part: PathBuf, init: InitReady },
    /// A media segment, still `.part` until the segmenter finalizes it.
    Segment(ClosedSegment),
}

/// What every packager does; see the module documentation.
pub trait Packager {
    /// A new segment starts at `cut`, decided at the packet that follows.
    fn on_cut(&mut self, cut: Cut) -> io::Result<()>;
    /// A demuxed packet, after the cutter saw it.
    fn on_packet(&mut self, pkt: &Demuxed<'_>) -> io::Result<()>;
    /// What was finished since the last call.
    fn take_finished(&mut self) -> io::Result<Vec<Finished>>;
    /// The input ended: `last` is the timing of the segment still open.
    fn finish(&mut self, last: Option<SegmentTiming>) -> io::Result<Vec<Finished>>;
    /// An error ended the run: remove unfinished files.
    fn abandon(&mut self);
    /// Counters of input the packager skipped.
    fn stats(&self) -> RouterStats {
        RouterStats::default()
    }
}

/// MPEG-TS: the [`Router`] cuts the input's own bytes at the cut positions.
pub struct TsPackager {
    router: Router,
}

impl TsPackager {
    pub fn new(router: Router) -> Self {
        TsPackager { router }
    }
}

fn closed(segments: Vec<ClosedSegment>) -> Vec<Finished> {
    segments.into_iter().map(Finished::Segment).collect()
}

impl Packager for TsPackager {
    fn on_cut(&mut self, cut: Cut) -> io::Result<()> {
        self.router.add_cut(cut);
        Ok(())
    }

    fn on_packet(&mut self, pkt: &Demuxed<'_>) -> io::Result<()> {
        // the anchor's packets move the routing on; a cut not decided yet
        // may still come before the held position
        match pkt.info.pos.filter(|_| pkt.anchor) {
            Some(pos) => self
                .router
                .route_until(pkt.hold.map_or(pos, |held| held.min(pos))),
            None => Ok(()),
        }
    }

    fn take_finished(&mut self) -> io::Result<Vec<Finished>> {
        Ok(closed(self.router.take_closed()))
    }

    fn finish(&mut self, last: Option<SegmentTiming>) -> io::Result<Vec<Finished>> {
        self.router.finish(last).map(closed)
    }

    fn abandon(&mut self) {
        self.router.abandon();
    }

    fn stats(&self) -> RouterStats {
        self.router.stats()
    }
}

/// A packet kept while the cutter holds a cut it may still make before it.
struct Queued {
    info: PacketInfo,
    times: Option<(i64, i64)>,
    data: Vec<u8>,
}

/// fMP4/CMAF: the pure [`Fmp4Packager`] makes the bytes; this writes them
/// to the spool directory and pairs each media segment with the timing the
/// cutter gave it.
pub struct Fmp4Files {
    packager: Fmp4Packager,
    /// The input's bytes, let go as packets arrive: nothing is cut from
    /// them.
    input: Arc<Mutex<InputBuffer>>,
    spool: PathBuf,
    prefix: String,
    name: Box<dyn Fn(u64) -> String + Send>,
    audio_only: bool,
    /// The cutter's timing of each segment not yet finished.
    timings: BTreeMap<u64, SegmentTiming>,
    /// Init segment names by the packager's init ids.
    inits: BTreeMap<u64, String>,
    /// Segments whose bytes are written but whose timing is not known yet.
    waiting: VecDeque<ClosedSegment>,
    /// Packets behind a held cut.
    queue: Vec<Queued>,
    /// `.part` files written and not handed over yet.
    parts: Vec<PathBuf>,
    /// Packets the packager refused, logged once.
    refused: u64,
}

impl Fmp4Files {
    /// `name` gives a media segment's file name from its number.
    pub fn new(
        packager: Fmp4Packager,
        input: Arc<Mutex<InputBuffer>>,
        spool: &Path,
        prefix: &str,
        name: Box<dyn Fn(u64) -> String + Send>,
        audio_only: bool,
    ) -> Self {
        Fmp4Files {
            packager,
            input,
            spool: spool.to_path_buf(),
            prefix: prefix.to_string(),
            name,
            audio_only,
            timings: BTreeMap::new(),
            inits: BTreeMap::new(),
            waiting: VecDeque::new(),
            queue: Vec::new(),
            parts: Vec::new(),
            refused: 0,
        }
    }

    /// Audio frames the packager dropped (late for a segment already made).
    pub fn dropped_frames(&self) -> u64 {
        self.packager.dropped_frames()
    }

    fn feed(&mut self, info: &PacketInfo, times: Option<(i64, i64)>, data: &[u8]) {
        let Some((dts, pts)) = times else {
            return;
        };
        let packet = fmp4::Packet {
            stream: info.stream,
            dts,
            pts,
            key: info.key,
            data,
        };
        if let Err(e) = self.packager.on_packet(packet) {
            self.refused += 1;
            if self.refused == 1 {
                log::warn!("fMP4: a packet was not packaged: {e} (later ones at debug level)");
            } else {
                log::debug!("fMP4: a packet was not packaged: {e}");
            }
        }
    }

    fn cut(&mut self, cut: &Cut) {
        let next = fmp4::Cut {
            pts: cut.start.ticks(),
            sequence: cut.sequence,
            discontinuity: cut.discontinuity,
        };
        if let Err(e) = self.packager.on_cut(next) {
            log::warn!("fMP4: cut {} not made: {e}", cut.sequence);
        }
    }

    fn flush_queue(&mut self) {
        for q in std::mem::take(&mut self.queue) {
            self.feed(&q.info, q.times, &q.data);
        }
    }

    /// Writes `bytes` to the `.part` file of `name` in the spool; the
    /// segmenter finalizes it.
    fn write(&mut self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let part = self.spool.join(format!("{name}.part"));
        // like the TS writer's files, not synced: a crash loses the spool's
        // unfinished files either way, and a restart republishes what is whole
        fs::File::create(&part)?.write_all(bytes)?;
        self.parts.push(part.clone());
        Ok(part)
    }

    fn collect(&mut self) -> io::Result<Vec<Finished>> {
        let mut out = Vec::new();
        for output in self.packager.take_ready() {
            match output {
                Output::Init(init) => {
                    let name = init_name(&self.prefix, &init.bytes);
                    let part = self.write(&name, &init.bytes)?;
                    self.inits.insert(init.id, name.clone());
                    self.parts.retain(|p| p != &part);
                    out.push(Finished::Init {
                        part,
                        init: InitReady {
                            path: self.spool.join(&name),
                            name,
                            bytes: init.bytes.len() as u64,
                            codecs: init.codecs,
                            audio_only: self.audio_only,
                        },
                    });
                }
                Output::Segment(seg) => {
                    let name = (self.name)(seg.sequence);
                    let part = self.write(&name, &seg.bytes)?;
                    self.waiting.push_back(ClosedSegment {
                        sequence: seg.sequence,
                        part,
                        path: self.spool.join(&name),
                        bytes: seg.bytes.len() as u64,
                        timing: None,
                        init: self.inits.get(&seg.init_id).cloned(),
                    });
                }
                Output::Empty { sequence } => {
                    log::debug!("fMP4: segment {sequence} got no sample");
                    self.timings.remove(&sequence);
                }
            }
        }
        // a segment goes once the cutter has timed it, in order
        while let Some(front) = self.waiting.front() {
            let Some(timing) = self.timings.remove(&front.sequence) else {
                break;
            };
            let mut seg = self.waiting.pop_front().expect("front exists");
            seg.timing = Some(timing);
            self.parts.retain(|p| p != &seg.part);
            out.push(Finished::Segment(seg));
        }
        Ok(out)
    }
}

impl Packager for Fmp4Files {
    fn on_cut(&mut self, cut: Cut) -> io::Result<()> {
        if let Some(t) = cut.closed {
            self.timings.insert(t.sequence, t);
        }
        // a cut made back at a held position: the packets from there on
        // belong to the new segment
        let queued = std::mem::take(&mut self.queue);
        let (before, after): (Vec<_>, Vec<_>) = queued
            .into_iter()
            .partition(|q| q.info.pos.is_some_and(|p| p < cut.pos));
        for q in before {
            self.feed(&q.info, q.times, &q.data);
        }
        self.cut(&cut);
        self.queue = after;
        Ok(())
    }

    fn on_packet(&mut self, pkt: &Demuxed<'_>) -> io::Result<()> {
        if let Some(pos) = pkt.info.pos {
            lock(&self.input).release_before(pos);
        }
        if pkt.hold.is_some() {
            self.queue.push(Queued {
                info: *pkt.info,
                times: pkt.times,
                data: pkt.data.to_vec(),
            });
            return Ok(());
        }
        self.flush_queue();
        self.feed(pkt.info, pkt.times, pkt.data);
        Ok(())
    }

    fn take_finished(&mut self) -> io::Result<Vec<Finished>> {
        self.collect()
    }

    fn finish(&mut self, last: Option<SegmentTiming>) -> io::Result<Vec<Finished>> {
        self.flush_queue();
        if let Some(t) = last {
            self.timings.insert(t.sequence, t);
        }
        if let Err(e) = self.packager.finish() {
            log::warn!("fMP4: the last segment was not finished: {e}");
        }
        let out = self.collect()?;
        // segments the cutter never timed (none should be) are not published
        for seg in self.waiting.drain(..) {
            log::warn!(
                "fMP4: segment {} has no timing; not published",
                seg.sequence
            );
            let _ = fs::remove_file(&seg.part);
        }
        Ok(out)
    }

    fn abandon(&mut self) {
        for part in self.parts.drain(..) {
            let _ = fs::remove_file(part);
        }
    }
}
