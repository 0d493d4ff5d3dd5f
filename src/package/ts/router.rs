//! Cutting the input's own bytes into segment files.
//!
//! The [`Router`] receives the raw transport stream and the cut positions
//! decided by the cutter, and writes every TS packet of the selected program
//! into exactly one segment file, unchanged but for two exceptions below.
//! Each elementary stream switches to the new segment at its first PES start
//! at or after the cut: a PES that is still incomplete at the cut is
//! finished in the old segment (whose file stays open until then).
//!
//! ADTS AAC audio is divided by time instead (see [`super::audio_split`]):
//! after a cut, its PES packets that end before the cut's time still go to
//! the old segment, and the one that straddles it is split at a frame
//! boundary, so each segment's audio starts with its video. Such a split can
//! take one packet more than the original, so the continuity counters of that
//! PID's later packets are renumbered.
//!
//! Every segment starts with a copy of the latest PAT and PMT; the continuity
//! counters of those tables are renumbered so that the segments concatenate
//! into a valid stream.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::audio_split::{self, Split};
pub use super::writer::ClosedSegment;
use super::writer::SegmentFile;
use crate::input::{lock, InputBuffer};
use crate::media::cut::{Cut, SegmentTiming};
use crate::ts::{self, Header, SectionCollector, PACKET_SIZE, PAT_PID};

const PIDS: usize = 8192;
/// Packets routed after a cut before the old segment is closed even if some
/// stream's PES is still unfinished.
const MAX_LAG_PACKETS: u32 = 8192;

/// Whether `rest` starts with a packet in sync (and the next, if there).
fn in_sync(rest: &[u8]) -> bool {
    rest[0] == ts::SYNC_BYTE && (rest.len() < 2 * PACKET_SIZE || rest[PACKET_SIZE] == ts::SYNC_BYTE)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PidKind {
    Drop,
    Pat,
    Pmt,
    /// An elementary stream of the selected program.
    Es,
    /// The program's PCR PID when it carries no elementary stream.
    Pcr,
}

#[derive(Debug, Clone, Copy, Default)]
struct PidState {
    /// Segment this PID writes to.
    segment: Option<u64>,
    /// Bytes left in the current PES; `None` when unknown.
    pes_remaining: Option<usize>,
    /// Output continuity counter for PSI PIDs.
    out_cc: u8,
    /// ADTS AAC audio (stream type 0x0F), divided at cuts by time.
    timed: bool,
    /// Added to the continuity counter of this PID's packets (after splits).
    cc_shift: u8,
}

impl PidState {
    /// Counts down the bytes left in the current PES with one more packet.
    fn track_pes(&mut self, pkt: &[u8; PACKET_SIZE], hdr: &Header) {
        let payload = hdr.payload_start.map_or(&[][..], |s| &pkt[s..]);
        self.pes_remaining = if hdr.pusi {
            ts::pes_remaining_after_start(payload)
        } else {
            self.pes_remaining.map(|r| r.saturating_sub(payload.len()))
        };
    }
}

/// A timed audio PID after a cut, until its frames reach the cut's time: the
/// packets of its current PES packet, held until it is whole.
struct Held {
    pid: u16,
    /// The cut's 33-bit PTS, as [`audio_split::split`] compares it.
    cut_pts: i64,
    packets: Vec<[u8; PACKET_SIZE]>,
}

/// Counters of what the router did not write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouterStats {
    /// Bytes skipped while looking for packet sync.
    pub unsynced_bytes: u64,
    /// Packets with the transport error indicator set.
    pub error_packets: u64,
    /// Packets before the first segment or of PIDs outside the program.
    pub dropped_packets: u64,
    /// Segments closed while a stream's PES was still unfinished.
    pub forced_closes: u64,
    /// Bytes of an incomplete last packet when the input ended.
    pub truncated_bytes: u64,
    /// Audio PES packets split between two segments at a frame boundary.
    pub split_pes: u64,
}

pub struct Router {
    spool: PathBuf,
    name: Box<dyn Fn(u64) -> String + Send>,
    program: Option<u16>,
    input: Arc<Mutex<InputBuffer>>,
    kinds: Vec<PidKind>,
    pids: Vec<PidState>,
    pat: SectionCollector,
    pmt: SectionCollector,
    pmt_pid: Option<u16>,
    pat_packets: Vec<[u8; PACKET_SIZE]>,
    pmt_packets: Vec<[u8; PACKET_SIZE]>,
    cuts: VecDeque<Cut>,
    current: Option<SegmentFile>,
    old: Option<SegmentFile>,
    /// PIDs whose PES is still unfinished in `old`, or whose audio has not
    /// reached the cut's time.
    laggards: Vec<u16>,
    held: Vec<Held>,
    since_cut: u32,
    closed: Vec<ClosedSegment>,
    stats: RouterStats,
    program_numbers: Vec<u16>,
}

impl Router {
    /// `name` gives a segment's file name from its sequence number;
    /// `program` selects a program number (default: the first in the PAT).
    pub fn new(
        spool: &Path,
        name: Box<dyn Fn(u64) -> String + Send>,
        program: Option<u16>,
        input: Arc<Mutex<InputBuffer>>,
    ) -> Self {
        let mut kinds = vec![PidKind::Drop; PIDS];
        kinds[usize::from(PAT_PID)] = PidKind::Pat;
        Router {
            spool: spool.to_path_buf(),
            name,
            program,
            input,
            kinds,
            pids: vec![PidState::default(); PIDS],
            pat: SectionCollector::default(),
            pmt: SectionCollector::default(),
            pmt_pid: None,
            pat_packets: Vec::new(),
            pmt_packets: Vec::new(),
            cuts: VecDeque::new(),
            current: None,
            old: None,
            laggards: Vec::new(),
            held: Vec::new(),
            since_cut: 0,
            closed: Vec::new(),
            stats: RouterStats::default(),
            program_numbers: Vec::new(),
        }
    }

    /// Appends raw input bytes (the segmenter reads them into the shared
    /// [`InputBuffer`] instead).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        lock(&self.input).push(bytes);
    }

    /// Queues a cut; cuts must come in increasing position order.
    pub fn add_cut(&mut self, cut: Cut) {
        self.cuts.push_back(cut);
    }

    /// Routes every complete packet that starts before input offset `limit`.
    pub fn route_until(&mut self, limit: u64) -> io::Result<()> {
        let shared = self.input.clone();
        let mut input = lock(&shared);
        let result = self.route_while(&mut input, |input| input.offset() < limit, false);
        self.release(&mut input);
        result
    }

    /// Routes packets while `more` holds and whole packets are there.
    fn route_while(
        &mut self,
        input: &mut InputBuffer,
        more: impl Fn(&InputBuffer) -> bool,
        at_end: bool,
    ) -> io::Result<()> {
        loop {
            if !more(input) || input.unread().len() < PACKET_SIZE {
                return Ok(());
            }
            if !in_sync(input.unread()) {
                if !self.resync(input, at_end) {
                    return Ok(());
                }
                continue;
            }
            self.route_one(input)?;
        }
    }

    /// Tells the input buffer which bytes are still needed.
    fn release(&self, input: &mut InputBuffer) {
        let pending = [&self.current, &self.old]
            .into_iter()
            .flatten()
            .filter_map(|f| f.first_pending().map(|start| (start - input.base) as usize));
        input.keep = pending.fold(input.read, usize::min);
    }

    /// Skips to the next position where packets are in sync. Returns false
    /// when more data is needed to find it.
    fn resync(&mut self, input: &mut InputBuffer, at_end: bool) -> bool {
        let rest = input.unread();
        let skip = match ts::find_sync(&rest[1..], 3) {
            Some(i) => i + 1,
            None if at_end => rest.len(),
            // keep a tail that may hold the start of the next packet
            None if rest.len() > 3 * PACKET_SIZE => rest.len() - 3 * PACKET_SIZE,
            None => return false,
        };
        if self.stats.unsynced_bytes == 0 {
            log::warn!(
                "input is out of packet sync at byte {}: skipping to the next sync byte",
                input.offset()
            );
        }
        self.stats.unsynced_bytes += skip as u64;
        input.read += skip;
        true
    }

    fn route_one(&mut self, input: &mut InputBuffer) -> io::Result<()> {
        let offset = input.offset();
        while self.cuts.front().is_some_and(|c| c.pos <= offset) {
            let cut = self.cuts.pop_front().expect("checked");
            self.apply_cut(cut, input)?;
        }
        let mut pkt = [0u8; PACKET_SIZE];
        pkt.copy_from_slice(&input.unread()[..PACKET_SIZE]);
        input.read += PACKET_SIZE;
        let input = &*input;
        let Some(hdr) = ts::parse_header(&pkt) else {
            self.stats.error_packets += 1;
            if self.stats.error_packets == 1 {
                log::warn!("dropping a TS packet with the transport error flag at byte {offset}");
            }
            return Ok(());
        };
        if self.old.is_some() {
            self.since_cut += 1;
        }
        match self.kinds[usize::from(hdr.pid)] {
            PidKind::Drop => self.stats.dropped_packets += 1,
            PidKind::Pat => {
                // the PAT is written as the router keeps it (rewritten when the
                // input has several programs), once per complete section
                if let Some((section, packets)) = self.pat.push(&pkt, &hdr) {
                    self.on_pat(&section, packets);
                    for mut p in self.pat_packets.clone() {
                        self.write_psi(&mut p, hdr.pid, input)?;
                    }
                }
            }
            PidKind::Pmt => {
                if let Some((section, packets)) = self.pmt.push(&pkt, &hdr) {
                    self.on_pmt(&section, packets);
                }
                self.write_psi(&mut pkt, hdr.pid, input)?;
            }
            PidKind::Pcr => match self.current.as_mut() {
                Some(cur) => cur.write_input(offset, input)?,
                None => self.stats.dropped_packets += 1,
            },
            PidKind::Es => self.write_es(&pkt, &hdr, offset, input)?,
        }
        if self.old.is_some() && (self.laggards.is_empty() || self.since_cut > MAX_LAG_PACKETS) {
            self.close_old(input)?;
        }
        Ok(())
    }

    fn on_pat(&mut self, section: &[u8], packets: Vec<[u8; PACKET_SIZE]>) {
        let Some(programs) = ts::parse_pat(section) else {
            return;
        };
        self.program_numbers = programs.iter().map(|p| p.program_number).collect();
        let chosen = match self.program {
            Some(n) => programs.iter().find(|p| p.program_number == n),
            None => programs.first(),
        };
        let Some(chosen) = chosen.copied() else {
            return;
        };
        // segments carry only the chosen program
        let packets = if programs.len() > 1 {
            vec![ts::single_program_pat(
                section,
                chosen.program_number,
                chosen.pmt_pid,
            )]
        } else {
            packets
        };
        if self.pmt_pid != Some(chosen.pmt_pid) {
            if let Some(old) = self.pmt_pid {
                self.kinds[usize::from(old)] = PidKind::Drop;
            }
            self.pmt_pid = Some(chosen.pmt_pid);
            self.kinds[usize::from(chosen.pmt_pid)] = PidKind::Pmt;
            self.pmt = SectionCollector::default();
        }
        self.pat_packets = packets;
    }

    fn on_pmt(&mut self, section: &[u8], packets: Vec<[u8; PACKET_SIZE]>) {
        let Some(pmt) = ts::parse_pmt(section) else {
            return;
        };
        for kind in self.kinds.iter_mut() {
            if matches!(kind, PidKind::Es | PidKind::Pcr) {
                *kind = PidKind::Drop;
            }
        }
        for &(stream_type, pid) in &pmt.streams {
            self.kinds[usize::from(pid)] = PidKind::Es;
            self.pids[usize::from(pid)].timed = stream_type == ts::STREAM_TYPE_ADTS;
        }
        let pcr = usize::from(pmt.pcr_pid);
        if self.kinds[pcr] == PidKind::Drop && pmt.pcr_pid != ts::NULL_PID {
            self.kinds[pcr] = PidKind::Pcr;
        }
        self.pmt_packets = packets;
    }

    fn write_psi(
        &mut self,
        pkt: &mut [u8; PACKET_SIZE],
        pid: u16,
        input: &InputBuffer,
    ) -> io::Result<()> {
        let Some(cur) = self.current.as_mut() else {
            self.stats.dropped_packets += 1;
            return Ok(());
        };
        let state = &mut self.pids[usize::from(pid)];
        ts::set_continuity(pkt, state.out_cc);
        state.out_cc = (state.out_cc + 1) & 0x0f;
        cur.write_packet(pkt, input)
    }

    fn write_es(
        &mut self,
        pkt: &[u8; PACKET_SIZE],
        hdr: &Header,
        offset: u64,
        input: &InputBuffer,
    ) -> io::Result<()> {
        let Some(current) = self.current.as_ref().map(|c| c.sequence) else {
            self.stats.dropped_packets += 1;
            return Ok(());
        };
        if let Some(i) = self.held.iter().position(|h| h.pid == hdr.pid) {
            if self.hold(i, pkt, hdr, offset, input)? {
                return Ok(());
            }
        }
        let state = &mut self.pids[usize::from(hdr.pid)];
        let shift = state.cc_shift;
        state.track_pes(pkt, hdr);
        let lagging = if hdr.pusi {
            state.segment = Some(current);
            false
        } else {
            match state.segment {
                None => {
                    // the middle of a PES whose start was not kept
                    self.stats.dropped_packets += 1;
                    return Ok(());
                }
                Some(s) => s != current,
            }
        };
        let old = self
            .old
            .as_mut()
            .filter(|o| lagging && state.segment == Some(o.sequence));
        match old {
            Some(old) => {
                old.write_es(pkt, offset, shift, input)?;
                if state.pes_remaining == Some(0) {
                    state.segment = Some(current);
                    self.laggards.retain(|&p| p != hdr.pid);
                }
            }
            None => {
                if lagging {
                    // its old segment is gone: the rest goes to the new one
                    state.segment = Some(current);
                }
                if hdr.pusi {
                    self.laggards.retain(|&p| p != hdr.pid);
                }
                self.current
                    .as_mut()
                    .expect("checked")
                    .write_es(pkt, offset, shift, input)?;
            }
        }
        Ok(())
    }

    /// Routes a packet of a timed audio PID that is held after a cut
    /// (`self.held[i]`). Returns false when the packet is not taken: the
    /// PID has reached the cut's time and routes on as any other.
    fn hold(
        &mut self,
        i: usize,
        pkt: &[u8; PACKET_SIZE],
        hdr: &Header,
        offset: u64,
        input: &InputBuffer,
    ) -> io::Result<bool> {
        if hdr.pusi {
            // a PES of unknown length ends where the next one starts
            if !self.held[i].packets.is_empty() && !self.settle(i, input)? {
                return Ok(false);
            }
        } else if self.held[i].packets.is_empty() {
            // the rest of the PES that was under way at the cut
            let state = self.pids[usize::from(hdr.pid)];
            match (state.segment, self.old.as_mut()) {
                (Some(_), Some(old)) => old.write_es(pkt, offset, state.cc_shift, input)?,
                _ => self.stats.dropped_packets += 1,
            }
            return Ok(true);
        }
        self.held[i].packets.push(*pkt);
        let state = &mut self.pids[usize::from(hdr.pid)];
        state.track_pes(pkt, hdr);
        if state.pes_remaining == Some(0) {
            self.settle(i, input)?;
        }
        Ok(true)
    }

    /// Sends the whole PES held for `self.held[i]` where its frames belong.
    /// Returns whether the PID is still held (all of it was before the cut).
    fn settle(&mut self, i: usize, input: &InputBuffer) -> io::Result<bool> {
        let packets = std::mem::take(&mut self.held[i].packets);
        let pid = self.held[i].pid;
        let state = &mut self.pids[usize::from(pid)];
        let shift = state.cc_shift;
        let (old, new) = match audio_split::split(&packets, self.held[i].cut_pts) {
            Split::Before => (packets, Vec::new()),
            Split::After => (Vec::new(), packets),
            Split::Parts { old, new } => {
                // usually one more packet, but fewer when the original
                // packets carried adaptation fields
                let added = (old.len() + new.len()).wrapping_sub(packets.len());
                state.cc_shift = shift.wrapping_add(added as u8) & 0x0f;
                self.stats.split_pes += 1;
                (old, new)
            }
        };
        let still_held = new.is_empty();
        for (target, packets) in [(self.old.as_mut(), old), (self.current.as_mut(), new)] {
            // a PID is held only while both segments are open
            let Some(target) = target else {
                self.stats.dropped_packets += packets.len() as u64;
                continue;
            };
            for p in packets {
                target.write_shifted(p, shift, input)?;
            }
        }
        if !still_held {
            self.release_held(i);
        }
        Ok(still_held)
    }

    /// The PID of `self.held[i]` routes on in the current segment.
    fn release_held(&mut self, i: usize) {
        let held = self.held.swap_remove(i);
        let current = self.current.as_ref().map(|c| c.sequence);
        let state = &mut self.pids[usize::from(held.pid)];
        state.segment = current;
        state.pes_remaining = Some(0);
        self.laggards.retain(|&p| p != held.pid);
    }

    /// Writes what is still held into the current segment (the old one is
    /// closing before its audio reached the cut's time).
    fn flush_held(&mut self, input: &InputBuffer) -> io::Result<()> {
        while let Some(held) = self.held.last_mut() {
            let packets = std::mem::take(&mut held.packets);
            let shift = self.pids[usize::from(held.pid)].cc_shift;
            if let Some(cur) = self.current.as_mut() {
                for p in packets {
                    cur.write_shifted(p, shift, input)?;
                }
            }
            self.release_held(self.held.len() - 1);
        }
        Ok(())
    }

    fn apply_cut(&mut self, cut: Cut, input: &InputBuffer) -> io::Result<()> {
        if self.old.is_some() {
            self.close_old(input)?;
        }
        let name = (self.name)(cut.sequence);
        let mut next = SegmentFile::create(&self.spool, &name, cut.sequence)?;
        // the first segment may start before the tables, which then follow in it
        if self.current.is_some() && (self.pat_packets.is_empty() || self.pmt_packets.is_empty()) {
            log::warn!(
                "segment {} starts before the program tables were seen",
                cut.sequence
            );
        }
        for mut pkt in self
            .pat_packets
            .clone()
            .into_iter()
            .chain(self.pmt_packets.clone())
        {
            let pid = ts::parse_header(&pkt).map_or(PAT_PID, |h| h.pid);
            let state = &mut self.pids[usize::from(pid)];
            ts::set_continuity(&mut pkt, state.out_cc);
            state.out_cc = (state.out_cc + 1) & 0x0f;
            next.write_packet(&pkt, input)?;
        }
        // the stream that the cut is on starts the new segment at once
        let anchor = input
            .unread()
            .get(..PACKET_SIZE)
            .and_then(ts::parse_header)
            .map(|h| h.pid);
        if let Some(mut prev) = self.current.take() {
            prev.timing = cut.closed;
            self.laggards.clear();
            for (pid, state) in self.pids.iter_mut().enumerate() {
                if self.kinds[pid] != PidKind::Es {
                    continue;
                }
                let timed = state.timed && anchor.is_some_and(|a| usize::from(a) != pid);
                // timed audio not seen yet may still have frames for the old segment
                let in_prev = state.segment == Some(prev.sequence);
                if in_prev || (timed && state.segment.is_none()) {
                    if let (true, Some(cut_pts)) = (timed, cut.pts) {
                        self.held.push(Held {
                            pid: pid as u16,
                            cut_pts: cut_pts.get(),
                            packets: Vec::new(),
                        });
                        self.laggards.push(pid as u16);
                    } else if state.pes_remaining == Some(0) {
                        state.segment = Some(cut.sequence);
                    } else {
                        self.laggards.push(pid as u16);
                    }
                }
            }
            self.old = Some(prev);
            self.since_cut = 0;
        }
        self.current = Some(next);
        if self.laggards.is_empty() {
            self.close_old(input)?;
        }
        Ok(())
    }

    fn close_old(&mut self, input: &InputBuffer) -> io::Result<()> {
        self.flush_held(input)?;
        if let Some(old) = self.old.take() {
            if !self.laggards.is_empty() {
                self.stats.forced_closes += 1;
                log::debug!(
                    "closing segment {} with unfinished PES on PIDs {:?}",
                    old.sequence,
                    self.laggards
                );
                self.laggards.clear();
            }
            self.closed.push(old.close(input)?);
        }
        Ok(())
    }

    /// Segments finished since the last call, in order.
    pub fn take_closed(&mut self) -> Vec<ClosedSegment> {
        std::mem::take(&mut self.closed)
    }

    /// Routes everything left and closes the open segments; `last` is the
    /// timing of the segment that was open at the end.
    pub fn finish(&mut self, last: Option<SegmentTiming>) -> io::Result<Vec<ClosedSegment>> {
        let shared = self.input.clone();
        let mut input = lock(&shared);
        self.route_while(&mut input, |_| true, true)?;
        let rest = input.unread().len();
        if rest > 0 {
            self.stats.truncated_bytes = rest as u64;
            input.read = input.filled;
        }
        // cuts past the end of the data still open their segments
        while let Some(cut) = self.cuts.pop_front() {
            self.apply_cut(cut, &input)?;
        }
        self.close_old(&input)?;
        if let Some(mut cur) = self.current.take() {
            cur.timing = last;
            self.closed.push(cur.close(&input)?);
        }
        self.release(&mut input);
        Ok(self.take_closed())
    }

    /// Removes the partial file of a segment still open (after a failure).
    pub fn abandon(&mut self) {
        for seg in [self.old.take(), self.current.take()].into_iter().flatten() {
            seg.remove();
        }
    }

    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// Program numbers listed in the last PAT.
    pub fn program_numbers(&self) -> &[u16] {
        &self.program_numbers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaTime, RawPts};
    use crate::ts::tests::{packet, pat, pmt, psi_packet};
    use std::fs;

    fn router(dir: &Path) -> Router {
        Router::new(
            dir,
            Box::new(|n| format!("seg-{n:05}.ts")),
            None,
            InputBuffer::shared(),
        )
    }

    fn cut(pos: u64, sequence: u64) -> Cut {
        Cut {
            pos,
            sequence,
            pts: None,
            start: MediaTime(0),
            discontinuity: false,
            closed: None,
        }
    }

    /// A PES start packet with a given PES length (0 = unbounded) and a tag byte.
    fn pes_start(pid: u16, cc: u8, len: u16, tag: u8) -> [u8; PACKET_SIZE] {
        let [hi, lo] = len.to_be_bytes();
        let mut p = packet(pid, true, cc, &[0, 0, 1, 0xe0, hi, lo, tag]);
        p[4 + 7..].fill(tag);
        p
    }

    fn cont(pid: u16, cc: u8, tag: u8) -> [u8; PACKET_SIZE] {
        packet(pid, false, cc, &[tag; 184])
    }

    fn tables() -> Vec<[u8; PACKET_SIZE]> {
        vec![
            psi_packet(0, 5, &pat(&[(1, 0x1000)])),
            psi_packet(0x1000, 9, &pmt(1, 0x100, &[(0x1b, 0x100), (0x0f, 0x101)])),
        ]
    }

    fn packets_of(path: &Path) -> Vec<(u16, u8, u8)> {
        let data = fs::read(path).unwrap();
        assert_eq!(data.len() % PACKET_SIZE, 0);
        data.chunks(PACKET_SIZE)
            .map(|p| {
                let h = ts::parse_header(p).unwrap();
                (h.pid, h.continuity, p[PACKET_SIZE - 1])
            })
            .collect()
    }

    #[test]
    fn audio_pes_spanning_the_cut_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = router(dir.path());
        let mut input: Vec<[u8; PACKET_SIZE]> = tables();
        input.push(pes_start(0x100, 0, 0, 1)); // video keyframe, offset 376
        input.push(pes_start(0x101, 0, 184 * 2 - 6, 2)); // audio PES of two packets
        input.push(pes_start(0x100, 1, 0, 3)); // video keyframe at 752: the cut
        input.push(cont(0x101, 1, 2)); // audio continuation: belongs to segment 1
        input.push(pes_start(0x101, 2, 184 - 6, 4)); // next audio PES: segment 2
        input.push(cont(0x100, 2, 3));
        let bytes: Vec<u8> = input.concat();
        r.push_bytes(&bytes);
        r.add_cut(cut(0, 1));
        r.add_cut(cut(4 * 188, 2));
        r.route_until(6 * 188).unwrap();
        // segment 1 stays open until the audio PES is finished
        let closed = r.take_closed();
        assert_eq!(
            closed.len(),
            1,
            "closed once the audio continuation was routed"
        );
        let last = r.finish(None).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(closed[0].path, dir.path().join("seg-00001.ts"));
        let one = packets_of(&closed[0].part);
        let two = packets_of(&last[0].part);
        assert_eq!(
            one,
            vec![
                (0, 0, 0xff),
                (0x1000, 0, 0xff),
                (0x100, 0, 1),
                (0x101, 0, 2),
                (0x101, 1, 2)
            ]
        );
        // PAT/PMT renumbered to continue, elementary streams unchanged
        assert_eq!(
            two,
            vec![
                (0, 1, 0xff),
                (0x1000, 1, 0xff),
                (0x100, 1, 3),
                (0x101, 2, 4),
                (0x100, 2, 3)
            ]
        );
        assert_eq!(closed[0].bytes, 5 * 188);
    }

    #[test]
    fn aac_frames_go_to_the_segment_of_their_time() {
        use super::super::audio_split::tests::{adts, continuity, pes_packets, reassemble};
        let dir = tempfile::tempdir().unwrap();
        let mut r = router(dir.path());
        // 12 frames of 1920 ticks from 90_000, in three PES packets that the
        // muxer wrote after the video of their time
        let frames: Vec<Vec<u8>> = (0..12).map(|i| adts(200, i)).collect();
        // (14 + 4 * 200 bytes take 5 transport packets)
        let pes =
            |n: usize| pes_packets(90_000 + n as i64 * 1920, &frames[n..n + 4], n as u8 / 4 * 5);
        let (a, b, c) = (pes(0), pes(4), pes(8));
        assert_eq!((a.len(), b.len(), c.len()), (5, 5, 5));
        let mut input: Vec<[u8; PACKET_SIZE]> = tables();
        input.push(pes_start(0x100, 0, 0, 1));
        let cut_at = input.len() as u64 * 188;
        input.push(pes_start(0x100, 1, 0, 2));
        input.extend(a.iter().chain(&b).chain(&c));
        input.push(cont(0x100, 2, 2));
        r.push_bytes(&input.concat());
        r.add_cut(cut(0, 1));
        // the new segment starts inside frame 6, before its middle
        r.add_cut(Cut {
            pts: Some(RawPts::new(90_000 + 6 * 1920 + 500)),
            ..cut(cut_at, 2)
        });
        let mut closed = r.finish(None).unwrap();
        assert_eq!(closed.len(), 2);
        let two = fs::read(&closed.pop().unwrap().part).unwrap();
        let one = fs::read(&closed.pop().unwrap().part).unwrap();
        let audio = |data: &[u8]| -> Vec<[u8; PACKET_SIZE]> {
            data.chunks(PACKET_SIZE)
                .filter(|p| ts::parse_header(p).unwrap().pid == 0x101)
                .map(|p| p.try_into().unwrap())
                .collect()
        };
        let (one, two) = (audio(&one), audio(&two));
        assert_eq!(
            reassemble(&one),
            vec![
                (90_000, frames[..4].concat()),
                (97_680, frames[4..6].concat())
            ]
        );
        assert_eq!(
            reassemble(&two),
            vec![
                (101_520, frames[6..8].concat()),
                (105_360, frames[8..].concat())
            ]
        );
        // one packet more than the input: the later ones are renumbered
        let all: Vec<_> = one.iter().chain(&two).copied().collect();
        assert_eq!(all.len(), 16);
        let expect: Vec<u8> = (0..16).map(|i| i & 0x0f).collect();
        assert_eq!(continuity(&all), expect);
        assert_eq!(r.stats().split_pes, 1);
        assert_eq!(r.stats().forced_closes, 0);
    }

    #[test]
    fn packets_before_the_first_cut_and_other_programs_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = router(dir.path());
        let mut input = vec![
            psi_packet(0, 0, &pat(&[(1, 0x1000), (2, 0x1100)])),
            psi_packet(0x1000, 0, &pmt(1, 0x100, &[(0x1b, 0x100)])),
            psi_packet(0x1100, 0, &pmt(2, 0x200, &[(0x1b, 0x200)])),
        ];
        input.push(cont(0x100, 0, 7)); // middle of a PES: dropped
        input.push(pes_start(0x200, 0, 0, 8)); // other program
        input.push(pes_start(0x100, 1, 0, 9)); // the cut, at 5 * 188
        input.push(pes_start(0x200, 1, 0, 8));
        input.push(packet(ts::NULL_PID, false, 0, &[]));
        let mut bytes: Vec<u8> = vec![0x12, 0x34]; // garbage before sync
        bytes.extend(input.concat());
        r.push_bytes(&bytes);
        r.add_cut(cut(2 + 5 * 188, 1));
        let closed = r.finish(None).unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            packets_of(&closed[0].part),
            vec![(0, 0, 0xff), (0x1000, 0, 0xff), (0x100, 1, 9)]
        );
        assert_eq!(r.program_numbers(), &[1, 2]);
        let stats = r.stats();
        assert_eq!(stats.unsynced_bytes, 2);
        assert_eq!(
            stats.dropped_packets, 7,
            "4 before the cut, 2 of program 2, 1 null"
        );
    }

    #[test]
    fn a_truncated_last_packet_is_reported_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = router(dir.path());
        let mut bytes: Vec<u8> = tables().concat();
        bytes.extend_from_slice(&pes_start(0x100, 0, 0, 1));
        bytes.extend_from_slice(&pes_start(0x100, 1, 0, 1)[..100]);
        r.push_bytes(&bytes);
        r.add_cut(cut(0, 7));
        let closed = r.finish(None).unwrap();
        assert_eq!(closed[0].sequence, 7);
        assert_eq!(closed[0].bytes, 3 * 188);
        assert_eq!(r.stats().truncated_bytes, 100);
    }
}
