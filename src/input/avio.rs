//! Opening the input with libav through our own AVIO read callback.
//!
//! The callback reads from the source straight into the router's
//! [`InputBuffer`] and copies the bytes once into libav's buffer, so the
//! router can cut the very bytes libav demuxed without a second copy.

use std::io::{ErrorKind, Read};
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;

use super::buffer::{lock, InputBuffer};

/// libav's read buffer.
const AVIO_BUFFER: usize = 64 * 1024;

struct Reader {
    source: Box<dyn Read + Send>,
    input: Arc<Mutex<InputBuffer>>,
    stop: Arc<AtomicBool>,
}

unsafe extern "C" fn read_packet(
    opaque: *mut libc::c_void,
    buf: *mut u8,
    size: libc::c_int,
) -> libc::c_int {
    if size <= 0 {
        return ffi::AVERROR(libc::EINVAL);
    }
    // SAFETY: opaque is the Reader that OpenedInput keeps alive while libav
    // may call back, and only libav's calls on this thread use it.
    let reader = unsafe { &mut *(opaque as *mut Reader) };
    let Reader { source, input, .. } = reader;
    let mut input = lock(input);
    loop {
        let spare = &mut input.spare(size as usize)[..size as usize];
        match source.read(spare) {
            Ok(0) => return ffi::AVERROR_EOF,
            Ok(n) => {
                let n = n.min(spare.len());
                // SAFETY: libav's buffer holds `size` >= n bytes; the regions
                // do not overlap.
                unsafe { ptr::copy_nonoverlapping(spare.as_ptr(), buf, n) };
                input.commit(n);
                return n as libc::c_int;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                input.error = Some(e);
                return ffi::AVERROR(libc::EIO);
            }
        }
    }
}

unsafe extern "C" fn interrupted(opaque: *mut libc::c_void) -> libc::c_int {
    // SAFETY: opaque is the Reader, alive as long as the format context.
    let reader = unsafe { &*(opaque as *const Reader) };
    reader.stop.load(Ordering::Relaxed) as libc::c_int
}

/// An input opened by libav over our reader. Dropping it closes the format
/// context first, then frees the AVIO context and the reader.
pub struct OpenedInput {
    input: ManuallyDrop<Input>,
    avio: *mut ffi::AVIOContext,
    reader: *mut Reader,
}

// SAFETY: everything here is used only from the thread that owns it.
unsafe impl Send for OpenedInput {}

impl OpenedInput {
    pub fn input(&mut self) -> &mut Input {
        &mut self.input
    }
}

impl Drop for OpenedInput {
    fn drop(&mut self) {
        // SAFETY: the format context (opened with AVFMT_FLAG_CUSTOM_IO, so it
        // leaves the AVIO context alone) is closed before the AVIO context,
        // its buffer and the reader are freed, each once.
        unsafe {
            ManuallyDrop::drop(&mut self.input);
            free_avio(self.avio, self.reader);
        }
    }
}

/// # Safety
/// `avio` and `reader` come from [`open`] and are no longer used.
unsafe fn free_avio(mut avio: *mut ffi::AVIOContext, reader: *mut Reader) {
    unsafe {
        if !avio.is_null() {
            ffi::av_freep(ptr::addr_of_mut!((*avio).buffer).cast());
            ffi::avio_context_free(&mut avio);
        }
        drop(Box::from_raw(reader));
    }
}

/// Opens `source` with libav (probing its format and streams). Bytes read go
/// to `input` as well as to libav.
pub fn open(
    source: Box<dyn Read + Send>,
    input: Arc<Mutex<InputBuffer>>,
    stop: Arc<AtomicBool>,
) -> Result<OpenedInput, ffmpeg::Error> {
    let reader = Box::into_raw(Box::new(Reader {
        source,
        input,
        stop,
    }));
    // SAFETY: plain libav allocation and open calls; every pointer is checked
    // and, on each failure path, freed exactly once.
    unsafe {
        let buffer = ffi::av_malloc(AVIO_BUFFER).cast::<u8>();
        let avio = if buffer.is_null() {
            ptr::null_mut()
        } else {
            ffi::avio_alloc_context(
                buffer,
                AVIO_BUFFER as libc::c_int,
                0,
                reader.cast(),
                Some(read_packet),
                None,
                None,
            )
        };
        let mut ctx = if avio.is_null() {
            ptr::null_mut()
        } else {
            ffi::avformat_alloc_context()
        };
        if ctx.is_null() {
            if avio.is_null() {
                ffi::av_free(buffer.cast());
            }
            free_avio(avio, reader);
            return Err(ffmpeg::Error::Other {
                errno: libc::ENOMEM,
            });
        }
        (*ctx).pb = avio;
        // no parsers: PES packets are whole access units, keyframes are read
        // from their first bytes (see keyframe.rs), and the parsers would
        // cost about a third of the demuxing. libav's fill-in of missing
        // values stays on (AVFMT_FLAG_NOFILLIN would leave every packet
        // without a duration, and avformat_find_stream_info would then read
        // its whole probe size, seconds of a live input, before returning)
        (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO | ffi::AVFMT_FLAG_NOPARSE;
        (*ctx).interrupt_callback = ffi::AVIOInterruptCB {
            callback: Some(interrupted),
            opaque: reader.cast(),
        };
        // frees the context itself when it fails
        let r = ffi::avformat_open_input(&mut ctx, ptr::null(), ptr::null(), ptr::null_mut());
        if r < 0 {
            free_avio(avio, reader);
            return Err(ffmpeg::Error::from(r));
        }
        let r = ffi::avformat_find_stream_info(ctx, ptr::null_mut());
        if r < 0 {
            ffi::avformat_close_input(&mut ctx);
            free_avio(avio, reader);
            return Err(ffmpeg::Error::from(r));
        }
        Ok(OpenedInput {
            input: ManuallyDrop::new(Input::wrap(ctx)),
            avio,
            reader,
        })
    }
}
