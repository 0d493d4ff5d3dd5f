//! libav's log messages, routed into the `log` crate (target `libav`) so
//! that they follow `-v`/`-q`/`RUST_LOG` instead of going to stderr on
//! their own. libav reports damaged input loudly and often; live_upload
//! passes the bytes through and reports what matters itself, so libav's
//! errors are debug messages here and its warnings trace messages.

use std::ffi::CStr;

use ffmpeg_next::ffi;

unsafe extern "C" fn callback(
    avcl: *mut libc::c_void,
    level: libc::c_int,
    fmt: *const libc::c_char,
    vl: *mut ffi::__va_list_tag,
) {
    let target = if level <= ffi::AV_LOG_ERROR {
        log::Level::Debug
    } else {
        log::Level::Trace
    };
    if !log::log_enabled!(target: "libav", target) {
        return;
    }
    let mut line = [0 as libc::c_char; 1024];
    let mut print_prefix: libc::c_int = 1;
    // SAFETY: libav hands us a valid format and argument list; the buffer
    // and its size match, and av_log_format_line2 always NUL-terminates.
    unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            line.as_mut_ptr(),
            line.len() as libc::c_int,
            &mut print_prefix,
        );
    }
    // SAFETY: NUL-terminated by av_log_format_line2.
    let text = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    let text = text.trim_end();
    if !text.is_empty() {
        log::log!(target: "libav", target, "{text}");
    }
}

/// Installs the callback, and lets libav format only what would be logged.
pub fn install(level: log::LevelFilter) {
    let av_level = match level {
        log::LevelFilter::Trace => ffi::AV_LOG_VERBOSE,
        log::LevelFilter::Debug => ffi::AV_LOG_ERROR,
        _ => ffi::AV_LOG_QUIET,
    };
    // SAFETY: sets libav's global log level and a callback with the
    // signature libav expects; both are process-wide and thread-safe.
    unsafe {
        ffi::av_log_set_level(av_level);
        ffi::av_log_set_callback(Some(callback));
    }
}
