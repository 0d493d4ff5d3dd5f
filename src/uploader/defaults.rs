//! The publishing defaults, each defined once: the command line shows them
//! as its defaults and [`super::UploaderConfig::new`] starts from them.

use std::time::Duration;

/// Segments in the rolling playlist.
pub const WINDOW: usize = 5;
/// Segment uploads in flight at once.
pub const CONCURRENCY: usize = 4;
/// Bytes of segments not yet stored that may wait in the spool, as the
/// command line writes it, and in bytes.
pub const MAX_SPOOL: &str = "1G";
pub const MAX_SPOOL_BYTES: u64 = 1 << 30;
/// Time allowed for each request to the destination, in seconds.
pub const REQUEST_TIMEOUT_SECS: f64 = 20.0;
/// How long to keep storing what is left once input has ended, in seconds.
pub const FLUSH_TIMEOUT_SECS: f64 = 60.0;
/// Seconds of media between two versions of the archive.
pub const ARCHIVE_EVERY_SECS: f64 = 60.0;

pub fn request_timeout() -> Duration {
    Duration::from_secs_f64(REQUEST_TIMEOUT_SECS)
}

pub fn flush_timeout() -> Duration {
    Duration::from_secs_f64(FLUSH_TIMEOUT_SECS)
}
