//! A hot standby's input while it waits for the lease: read all the time
//! (so that the source is never held up and the run starts from the
//! present), keeping only what arrived in the last moments.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The most a waiting standby keeps, whatever the window's time: 8 s of
/// an 8 Mbit/s stream.
pub const MAX_BYTES: usize = 8 << 20;

/// How much of the input a waiting standby keeps.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// What arrived this recently (a live input arrives at its own pace);
    /// enough to hold a keyframe to start from.
    pub time: Duration,
    pub max_bytes: usize,
}

/// What the reading thread has so far: chunks with their arrival times.
#[derive(Default)]
struct Kept {
    chunks: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
    /// The input ended (or failed) while waiting.
    ended: Option<String>,
}

impl Kept {
    /// Adds `chunk` and lets go of what is older than the window or past
    /// its size (the newest chunk always stays).
    fn push(&mut self, chunk: &[u8], now: Instant, window: Window) {
        self.bytes += chunk.len();
        self.chunks.push_back((now, chunk.to_vec()));
        while self.chunks.len() > 1 {
            let (at, oldest) = &self.chunks[0];
            if now.duration_since(*at) <= window.time && self.bytes <= window.max_bytes {
                break;
            }
            self.bytes -= oldest.len();
            self.chunks.pop_front();
        }
    }
}

/// The input of a waiting standby, read on a thread of its own.
pub struct Standby {
    kept: Arc<Mutex<Kept>>,
    done: Arc<AtomicBool>,
    reader: thread::JoinHandle<Box<dyn Read + Send>>,
}

impl Standby {
    /// Starts reading `source`, keeping `window` of it.
    pub fn start(mut source: Box<dyn Read + Send>, window: Window) -> io::Result<Standby> {
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
                        Ok(n) => kept.push(&chunk[..n], Instant::now(), window),
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
        let kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()));
        let mut bytes: Vec<u8> = kept.chunks.into_iter().flat_map(|(_, c)| c).collect();
        bytes.drain(..packet_start(&bytes));
        Box::new(io::Cursor::new(bytes).chain(source))
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
        let window = Window {
            time: Duration::from_secs(2),
            max_bytes: 250,
        };
        let t0 = Instant::now();
        let mut kept = Kept::default();
        for i in 0..10u8 {
            kept.push(&[i; 100], t0, window);
        }
        assert_eq!(kept.bytes, 200, "bounded by its size");
        assert_eq!(kept.chunks.back().unwrap().1[0], 9);
        kept.push(&[10; 10], t0 + Duration::from_secs(3), window);
        assert_eq!(kept.bytes, 10, "and by its time");
        kept.push(&[11; 1000], t0 + Duration::from_secs(3), window);
        assert_eq!(kept.bytes, 1000, "the newest chunk stays");
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
        let window = Window {
            time: Duration::from_secs(60),
            max_bytes: 188 * 10,
        };
        let standby = Standby::start(Box::new(reader), window).unwrap();
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
        while standby.kept.lock().unwrap().bytes < 188 * 9 {
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
        assert!(numbers.len() <= 12, "{numbers:?}");
        assert_eq!(
            *numbers.last().unwrap(),
            200,
            "what came after the handover"
        );
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    }
}
