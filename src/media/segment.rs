//! The records of finished files, from the segmenter to the publisher, and
//! how those files are named.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::packaging::Packaging;
use super::time::{MediaDuration, MediaTime};

/// A media segment file that is complete in the spool directory.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentReady {
    pub sequence: u64,
    /// File name, also the last part of its object key.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Start on the unwrapped 90 kHz timeline.
    pub start: MediaTime,
    pub duration: MediaDuration,
    pub discontinuity: bool,
    pub program_date_time: DateTime<Utc>,
    /// TS or fMP4: its extension and Content-Type.
    pub packaging: Packaging,
    /// fMP4: the file name of the init segment it needs (its EXT-X-MAP),
    /// announced on the channel before it. `None` for TS.
    pub init: Option<String>,
}

/// An fMP4 init segment file that is complete in the spool directory. Its
/// name is made from its bytes ([`init_name`]), so a name never stands for
/// other bytes, in this run or a later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReady {
    /// File name, also the last part of its object key.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// RFC 6381 codec strings of its tracks (`avc1.64001f,mp4a.40.2`).
    pub codecs: String,
    /// It has no video track (Content-Type `audio/mp4`).
    pub audio_only: bool,
}

/// The file name of a media segment: `<prefix>-<NNNNN>.ts` or `.m4s`.
pub fn segment_name(prefix: &str, sequence: u64, packaging: Packaging) -> String {
    format!("{prefix}-{sequence:05}.{}", packaging.extension())
}

/// The number in a media segment file name made by [`segment_name`], of
/// either packaging.
pub fn segment_number(name: &str, prefix: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let digits = [Packaging::Ts, Packaging::Fmp4]
        .iter()
        .find_map(|p| rest.strip_suffix(p.extension())?.strip_suffix('.'))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name of an init segment: `<prefix>-init-<16 hex digits>.mp4`,
/// the digits a 64-bit FNV-1a hash of its bytes. The same bytes always get
/// the same name (a restarted run that makes the same init reuses it);
/// different bytes get a different name.
pub fn init_name(prefix: &str, bytes: &[u8]) -> String {
    format!("{prefix}-init-{:016x}.mp4", fnv1a(bytes))
}

/// True for a name made by [`init_name`] with `prefix`.
pub fn is_init_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix("-init-"))
        .and_then(|r| r.strip_suffix(".mp4"))
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// 64-bit FNV-1a over `bytes`: names init segments and tags local objects.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(segment_name("live", 7, Packaging::Ts), "live-00007.ts");
        assert_eq!(segment_name("live", 7, Packaging::Fmp4), "live-00007.m4s");
        assert_eq!(segment_number("live-00007.m4s", "live"), Some(7));
        assert_eq!(segment_number("live-123456.ts", "live"), Some(123_456));
        assert_eq!(segment_number("live-00007.mp4", "live"), None);
        assert_eq!(segment_number("live-.ts", "live"), None);
        assert_eq!(segment_number("other-00007.ts", "live"), None);
    }

    #[test]
    fn init_names_follow_the_bytes() {
        let a = init_name("live", b"ftyp moov one");
        assert_eq!(a, init_name("live", b"ftyp moov one"));
        assert_ne!(a, init_name("live", b"ftyp moov two"));
        assert!(is_init_name(&a, "live"));
        assert!(!is_init_name(&a, "other"));
        assert!(!is_init_name("live-00001.m4s", "live"));
        // the FNV-1a reference value of the empty input
        assert_eq!(init_name("x", b""), "x-init-cbf29ce484222325.mp4");
    }
}
