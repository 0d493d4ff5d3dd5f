//! The files of the TS packager: the router decides which bytes go into
//! which segment; a [`SegmentFile`] holds them as ranges of the input (no
//! copy) and rewritten packets, and writes them with few vectored writes.

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};

use crate::input::InputBuffer;
use crate::media::cut::SegmentTiming;
use crate::ts::{self, PACKET_SIZE};

/// Bytes held back per segment file before they are written out together.
const MAX_PENDING: u64 = 256 << 10;

/// A finished segment file.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedSegment {
    pub sequence: u64,
    /// Where the data is now.
    pub part: PathBuf,
    /// Where it goes once finalized (the segmenter may give it a lower
    /// number, see `Announcer`).
    pub path: PathBuf,
    pub bytes: u64,
    pub timing: Option<SegmentTiming>,
    /// fMP4: the file name of the init segment it needs.
    pub init: Option<String>,
}

/// Bytes waiting to go into a segment file, in order.
enum Piece {
    /// Input bytes `start..end`, unchanged.
    Input(u64, u64),
    /// A packet that is not in the input as it is (a rewritten table).
    Packet([u8; PACKET_SIZE]),
}

/// One segment file being written: what the router decided goes into it,
/// kept as input ranges and rewritten packets and written out together.
pub(super) struct SegmentFile {
    pub(super) sequence: u64,
    pub(super) part: PathBuf,
    path: PathBuf,
    file: File,
    /// What goes next into this file, written together with one vectored
    /// write: no copy, and few system calls.
    pending: Vec<Piece>,
    pending_bytes: u64,
    bytes: u64,
    pub(super) timing: Option<SegmentTiming>,
}

impl SegmentFile {
    /// Creates `<name>.part` in `spool` for segment `sequence`.
    pub(super) fn create(spool: &Path, name: &str, sequence: u64) -> io::Result<SegmentFile> {
        let part = spool.join(format!("{name}.part"));
        let file = File::create(&part)?;
        Ok(SegmentFile {
            sequence,
            part,
            path: spool.join(name),
            file,
            pending: Vec::new(),
            pending_bytes: 0,
            bytes: 0,
            timing: None,
        })
    }

    /// Removes the partial file (after a failure).
    pub(super) fn remove(self) {
        let _ = fs::remove_file(&self.part);
    }

    /// Adds the input packet at `offset`, unchanged.
    pub(super) fn write_input(&mut self, offset: u64, input: &InputBuffer) -> io::Result<()> {
        let end = offset + PACKET_SIZE as u64;
        match self.pending.last_mut() {
            Some(Piece::Input(_, last)) if *last == offset => *last = end,
            _ => self.pending.push(Piece::Input(offset, end)),
        }
        self.added(input)
    }

    /// Adds an elementary stream's packet from the input at `offset`, with
    /// its continuity counter moved on by `shift`.
    pub(super) fn write_es(
        &mut self,
        pkt: &[u8; PACKET_SIZE],
        offset: u64,
        shift: u8,
        input: &InputBuffer,
    ) -> io::Result<()> {
        if shift == 0 {
            return self.write_input(offset, input);
        }
        self.write_shifted(*pkt, shift, input)
    }

    /// Adds a copy of a packet with its continuity counter moved on by `shift`.
    pub(super) fn write_shifted(
        &mut self,
        mut pkt: [u8; PACKET_SIZE],
        shift: u8,
        input: &InputBuffer,
    ) -> io::Result<()> {
        ts::shift_continuity(&mut pkt, shift);
        self.write_packet(&pkt, input)
    }

    /// Adds a packet that is not in the input as it is (rewritten tables).
    pub(super) fn write_packet(
        &mut self,
        pkt: &[u8; PACKET_SIZE],
        input: &InputBuffer,
    ) -> io::Result<()> {
        self.pending.push(Piece::Packet(*pkt));
        self.added(input)
    }

    fn added(&mut self, input: &InputBuffer) -> io::Result<()> {
        self.bytes += PACKET_SIZE as u64;
        self.pending_bytes += PACKET_SIZE as u64;
        if self.pending_bytes >= MAX_PENDING {
            self.flush(input)?;
        }
        Ok(())
    }

    /// The earliest input offset still waiting to be written.
    pub(super) fn first_pending(&self) -> Option<u64> {
        self.pending.iter().find_map(|p| match p {
            Piece::Input(start, _) => Some(*start),
            Piece::Packet(_) => None,
        })
    }

    pub(super) fn flush(&mut self, input: &InputBuffer) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = self
            .pending
            .iter()
            .map(|p| match p {
                Piece::Input(start, end) => IoSlice::new(input.slice(*start, *end)),
                Piece::Packet(pkt) => IoSlice::new(pkt),
            })
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.file.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Writes what is pending and closes the file; it stays `.part` until
    /// the segmenter finalizes it (see [`super::spool::finalize`]).
    pub(super) fn close(mut self, input: &InputBuffer) -> io::Result<ClosedSegment> {
        self.flush(input)?;
        drop(self.file);
        Ok(ClosedSegment {
            sequence: self.sequence,
            part: self.part,
            path: self.path,
            bytes: self.bytes,
            timing: self.timing,
            init: None,
        })
    }
}
