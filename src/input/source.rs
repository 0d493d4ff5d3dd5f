//! Where the input bytes come from: standard input, a file, or a URL.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ffmpeg_next::ffi;

/// How often a blocked read wakes up to check for a stop request.
const POLL_INTERVAL_MS: i32 = 200;

/// Opens the input named on the command line: `-` for standard input, a
/// `scheme://` URL through libav's protocols, anything else as a file.
pub fn open(
    input: &str,
    stop: Arc<AtomicBool>,
    timeout: Option<Duration>,
) -> io::Result<Box<dyn Read + Send>> {
    if input == "-" {
        return Ok(Box::new(FdSource::new(Fd::Stdin, stop, timeout)));
    }
    if input.contains("://") && !input.starts_with("file://") {
        return Ok(Box::new(UrlSource::open(input, stop, timeout)?));
    }
    let path = input.strip_prefix("file://").unwrap_or(input);
    let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    Ok(Box::new(FdSource::new(Fd::File(file), stop, timeout)))
}

enum Fd {
    Stdin,
    File(File),
}

impl Fd {
    fn raw(&self) -> RawFd {
        match self {
            Fd::Stdin => 0,
            Fd::File(f) => f.as_raw_fd(),
        }
    }
}

/// Reads a file descriptor (a pipe, a FIFO or a file), waking up regularly
/// so that a stop request or an input timeout ends a blocked read as a
/// clean end of input.
pub struct FdSource {
    fd: Fd,
    stop: Arc<AtomicBool>,
    timeout: Option<Duration>,
    last_data: Instant,
    /// The input timed out: every later read is the end of input too.
    timed_out: bool,
}

impl FdSource {
    fn new(fd: Fd, stop: Arc<AtomicBool>, timeout: Option<Duration>) -> Self {
        FdSource {
            fd,
            stop,
            timeout,
            last_data: Instant::now(),
            timed_out: false,
        }
    }
}

impl Read for FdSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.timed_out || self.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.raw(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL_MS) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if ready == 0 {
                if let Some(limit) = self.timeout {
                    if self.last_data.elapsed() >= limit {
                        log_timeout(limit);
                        self.timed_out = true;
                        return Ok(0);
                    }
                }
                continue;
            }
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let n = unsafe { libc::read(self.fd.raw(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            self.last_data = Instant::now();
            return Ok(n as usize);
        }
    }
}

fn log_timeout(limit: Duration) {
    log::warn!(
        "no input for {} s (--input-timeout): ending the run",
        limit.as_secs_f64()
    );
    crate::journal::warning::input_timeout(limit);
}

/// What ends a blocked read of a URL input, through libav's interrupt
/// callback: a stop request, or no bytes for the input timeout.
struct Interrupt {
    stop: Arc<AtomicBool>,
    timeout: Option<Duration>,
    /// When bytes last arrived (at first, when the input was opened).
    last_data: Mutex<Instant>,
    /// The input timed out: every later read is the end of input too.
    timed_out: AtomicBool,
}

impl Interrupt {
    fn check(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || self.timed_out.load(Ordering::Relaxed) {
            return true;
        }
        let Some(limit) = self.timeout else {
            return false;
        };
        let last = *self.last_data.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < limit {
            return false;
        }
        self.timed_out.store(true, Ordering::Relaxed);
        true
    }
}

/// An input opened through libav's URL protocols (http, udp, srt, ...).
pub struct UrlSource {
    ctx: *mut ffi::AVIOContext,
    interrupt: Box<Interrupt>,
}

// SAFETY: the AVIOContext is only used from the thread that owns the source.
unsafe impl Send for UrlSource {}

unsafe extern "C" fn interrupted(opaque: *mut libc::c_void) -> libc::c_int {
    // SAFETY: opaque points at the Interrupt that UrlSource keeps alive.
    let interrupt = unsafe { &*(opaque as *const Interrupt) };
    interrupt.check() as libc::c_int
}

impl UrlSource {
    fn open(url: &str, stop: Arc<AtomicBool>, timeout: Option<Duration>) -> io::Result<Self> {
        let c_url = CString::new(url)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "URL contains a NUL byte"))?;
        let interrupt = Box::new(Interrupt {
            stop,
            timeout,
            last_data: Mutex::new(Instant::now()),
            timed_out: AtomicBool::new(false),
        });
        let cb = ffi::AVIOInterruptCB {
            callback: Some(interrupted),
            opaque: std::ptr::from_ref::<Interrupt>(&interrupt)
                .cast_mut()
                .cast(),
        };
        let mut ctx = std::ptr::null_mut();
        // SAFETY: valid out pointer, NUL-terminated URL, and a callback whose
        // opaque outlives the context.
        let ret = unsafe {
            ffi::avio_open2(
                &mut ctx,
                c_url.as_ptr(),
                ffi::AVIO_FLAG_READ,
                &cb,
                std::ptr::null_mut(),
            )
        };
        if ret < 0 {
            let reason = match timeout {
                Some(limit) if interrupt.timed_out.load(Ordering::Relaxed) => {
                    format!("not open after {} s (--input-timeout)", limit.as_secs_f64())
                }
                _ => ffmpeg_next::Error::from(ret).to_string(),
            };
            return Err(io::Error::other(format!("{url}: {reason}")));
        }
        Ok(UrlSource { ctx, interrupt })
    }
}

impl Read for UrlSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt.timed_out.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let len = buf.len().min(i32::MAX as usize) as i32;
        // SAFETY: ctx is open; buf is valid for len bytes.
        let n = unsafe { ffi::avio_read_partial(self.ctx, buf.as_mut_ptr(), len) };
        if n == ffi::AVERROR_EXIT && self.interrupt.timed_out.load(Ordering::Relaxed) {
            log_timeout(self.interrupt.timeout.unwrap_or_default());
            return Ok(0);
        }
        if n == ffi::AVERROR_EOF || n == ffi::AVERROR_EXIT || n == 0 {
            return Ok(0);
        }
        if n < 0 {
            return Err(io::Error::other(ffmpeg_next::Error::from(n).to_string()));
        }
        *self
            .interrupt
            .last_data
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(n as usize)
    }
}

impl Drop for UrlSource {
    fn drop(&mut self) {
        // SAFETY: ctx was opened by avio_open2 and is closed once.
        unsafe { ffi::avio_closep(&mut self.ctx) };
    }
}
