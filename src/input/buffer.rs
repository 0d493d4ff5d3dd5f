//! The input's bytes as they arrive: libav reads them through this buffer
//! (see [`super::avio`]), and the TS packager writes segments from it.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ts::{self, PACKET_SIZE};

/// The raw input: bytes are read straight into it, routed where they lie,
/// and written from it to the segment files, so each byte is copied once in
/// user space (into libav's buffer). Bytes before `keep` are no longer
/// needed, and the space they took is reused.
#[derive(Default)]
pub struct InputBuffer {
    pub(crate) data: Vec<u8>,
    pub(crate) filled: usize,
    /// Where the router has got to.
    pub(crate) read: usize,
    /// The oldest byte still needed (`read`, or the start of a run not yet
    /// written).
    pub(crate) keep: usize,
    /// Input offset of `data[0]`.
    pub(crate) base: u64,
    /// Bytes received in all.
    pub total: u64,
    /// The read error that ended the input, if any.
    pub error: Option<io::Error>,
}

impl InputBuffer {
    pub fn shared() -> Arc<Mutex<InputBuffer>> {
        Arc::new(Mutex::new(InputBuffer::default()))
    }

    /// Whether the TS packet at input offset `pos` carries the random
    /// access indicator (ISO 13818-1 adaptation field); `None` when that
    /// packet is no longer (or not yet) in the buffer.
    pub fn random_access_at(&self, pos: u64) -> Option<bool> {
        let at = usize::try_from(pos.checked_sub(self.base)?).ok()?;
        let packet = self.data.get(at..(at + PACKET_SIZE).min(self.filled))?;
        let [ts::SYNC_BYTE, _, _, flags, length, af, ..] = *packet else {
            return None;
        };
        Some(flags & 0x20 != 0 && length > 0 && af & 0x40 != 0)
    }

    /// Room for at least `min` more bytes, to fill and then [`commit`](Self::commit).
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.data.len() - self.filled < min && self.keep > 0 {
            self.data.copy_within(self.keep..self.filled, 0);
            self.base += self.keep as u64;
            self.filled -= self.keep;
            self.read -= self.keep;
            self.keep = 0;
        }
        if self.data.len() - self.filled < min {
            // large beside what is kept (pending writes, unrouted bytes), so that
            // compacting moves little
            let size = (self.filled + min).max(2 * self.data.len()).max(4 << 20);
            self.data.resize(size, 0);
        }
        &mut self.data[self.filled..]
    }

    /// Counts `n` bytes written into [`spare`](Self::spare) as received.
    pub fn commit(&mut self, n: usize) {
        self.filled += n;
        self.total += n as u64;
    }

    /// Lets the bytes before input offset `pos` go: for a packager that
    /// takes its data from the demuxed packets, not from these bytes.
    pub fn release_before(&mut self, pos: u64) {
        let at = usize::try_from(pos.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.filled);
        self.read = self.read.max(at);
        self.keep = self.keep.max(at);
    }

    /// Appends bytes (for tests and in-memory callers).
    pub fn push(&mut self, bytes: &[u8]) {
        self.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.commit(bytes.len());
    }

    pub(crate) fn unread(&self) -> &[u8] {
        &self.data[self.read..self.filled]
    }

    pub(crate) fn offset(&self) -> u64 {
        self.base + self.read as u64
    }

    /// The bytes at input offsets `start..end`.
    pub(crate) fn slice(&self, start: u64, end: u64) -> &[u8] {
        &self.data[(start - self.base) as usize..(end - self.base) as usize]
    }
}

/// The buffer, also after a thread panicked holding it.
pub fn lock(input: &Mutex<InputBuffer>) -> MutexGuard<'_, InputBuffer> {
    input.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_access_indicator_is_read_where_the_packet_lies() {
        let mut input = InputBuffer::default();
        let mut keyframe = [0xffu8; 188];
        keyframe[..6].copy_from_slice(&[0x47, 0x41, 0x00, 0x30, 0x07, 0x50]);
        let mut other = keyframe;
        other[5] = 0x10;
        let mut no_field = keyframe;
        no_field[3] = 0x10;
        for p in [keyframe, other, no_field] {
            input.push(&p);
        }
        assert_eq!(input.random_access_at(0), Some(true));
        assert_eq!(input.random_access_at(188), Some(false));
        assert_eq!(input.random_access_at(376), Some(false));
        assert_eq!(input.random_access_at(564), None, "not received yet");
        assert_eq!(input.random_access_at(1), None, "not a packet start");
    }
}
