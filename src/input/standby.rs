//! A hot standby's input while it waits for the lease: read all the time
//! (so that the source is never held up and the run starts from the
//! present), keeping only the last [`WINDOW`] bytes.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// The most a waiting standby keeps: a few seconds of a typical live
/// stream (4 s at 8 Mbit/s), so that it starts at a recent keyframe.
pub const WINDOW: usize = 4 << 20;

/// What the reading thread has so far.
#[derive(Default)]
struct Kept {
    bytes: Vec<u8>,
    /// The input ended (or failed) while waiting.
    ended: Option<String>,
}

/// The input of a waiting standby, read on a thread of its own.
pub struct Standby {
    kept: Arc<Mutex<Kept>>,
    done: Arc<AtomicBool>,
    reader: thread::JoinHandle<Box<dyn Read + Send>>,
}

impl Standby {
    /// Starts reading `source`, keeping at most `window` bytes.
    pub fn start(mut source: Box<dyn Read + Send>, window: usize) -> io::Result<Standby> {
        let kept = Arc::new(Mutex::new(Kept::default()));
        let done = Arc::new(AtomicBool::new(false));
        let (k, d) = (kept.clone(), done.clone());
        let reader = thread::Builder::new()
            .name("standby input".into())
            .spawn(move || {
                let mut chunk = vec![0u8; 64 << 10];
                while !d.load(Ordering::Relaxed) {
                    let got = source.read(&mut chunk);
                    let mut kept = k.lock().unwrap_or_else(|e| e.into_inner());
                    match got {
                        Ok(0) => kept.ended = Some("the input ended".into()),
                        Ok(n) => keep_last(&mut kept.bytes, &chunk[..n], window),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => kept.ended = Some(format!("reading the input failed: {e}")),
                    }
                    if kept.ended.is_some() {
                        break;
                    }
                }
                source
            })?;
        Ok(Standby { kept, done, reader })
    }

    /// Why the input is over, if it ended while waiting.
    pub fn ended(&self) -> Option<String> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ended
            .clone()
    }

    /// Stops waiting: the input as it goes on, starting with the bytes kept
    /// (from the first whole transport stream packet among them).
    pub fn into_input(self) -> Box<dyn Read + Send> {
        self.done.store(true, Ordering::Relaxed);
        // the thread ends after its read under way, which a live input
        // answers soon
        let source = self
            .reader
            .join()
            .unwrap_or_else(|_| Box::new(io::empty()) as Box<dyn Read + Send>);
        let mut kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()));
        let from = packet_start(&kept.bytes);
        kept.bytes.drain(..from);
        Box::new(io::Cursor::new(kept.bytes).chain(source))
    }
}

/// Appends `new` to `kept` and drops the oldest bytes past `window`
/// (moving the rest only when twice the window has gathered).
fn keep_last(kept: &mut Vec<u8>, new: &[u8], window: usize) {
    kept.extend_from_slice(new);
    if kept.len() > window * 2 {
        let cut = kept.len() - window;
        kept.drain(..cut);
    }
}

/// Where the first transport stream packet starts in `bytes`: a sync byte
/// (0x47) with two more at 188-byte steps; 0 when none is found.
fn packet_start(bytes: &[u8]) -> usize {
    const TS: usize = 188;
    (0..TS.min(bytes.len()))
        .find(|&i| (0..3).all(|k| bytes.get(i + k * TS).is_none_or(|b| *b == 0x47)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_latest_bytes_from_a_packet_start() {
        let mut kept = Vec::new();
        for i in 0..10u8 {
            keep_last(&mut kept, &[i; 100], 250);
        }
        assert!(kept.len() <= 500 && kept.len() >= 250);
        assert_eq!(*kept.last().unwrap(), 9);
        // three packets with a torn one before them
        let mut ts = vec![0xAAu8; 50];
        for _ in 0..3 {
            let mut p = vec![0u8; 188];
            p[0] = 0x47;
            ts.extend(p);
        }
        assert_eq!(packet_start(&ts), 50);
    }

    #[test]
    fn a_standby_reads_on_and_hands_over_the_window_and_the_rest() {
        // 1000 packets, numbered in their second byte, through a pipe
        let (reader, mut writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let standby = Standby::start(Box::new(reader), 188 * 10).unwrap();
        let packet = |n: u8| {
            let mut p = vec![0u8; 188];
            p[0] = 0x47;
            p[1] = n;
            p
        };
        use std::io::Write;
        for n in 0..200u8 {
            writer.write_all(&packet(n)).unwrap();
        }
        // the window is bounded and the writer never blocked
        while standby.kept.lock().unwrap().bytes.len() < 188 * 10 {
            thread::sleep(std::time::Duration::from_millis(5));
        }
        thread::sleep(std::time::Duration::from_millis(50));
        assert!(standby.ended().is_none());
        let writer_thread = thread::spawn(move || {
            thread::sleep(std::time::Duration::from_millis(50));
            writer.write_all(&packet(200)).unwrap();
        });
        let mut input = standby.into_input();
        writer_thread.join().unwrap();
        let mut all = Vec::new();
        input.read_to_end(&mut all).unwrap();
        assert_eq!(all.len() % 188, 0);
        let numbers: Vec<u8> = all.chunks(188).map(|p| p[1]).collect();
        assert!(numbers.len() <= 21, "{numbers:?}");
        assert_eq!(
            *numbers.last().unwrap(),
            200,
            "what came after the handover"
        );
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    }
}
