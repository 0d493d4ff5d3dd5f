//! The spool directory's layout, which a restart reads back.
//!
//! A segment being written is `<name>.part`. When it is complete, its
//! metadata goes to `<name>.meta` and only then is the segment renamed to
//! `<name>`, so a segment file that exists always has its metadata beside
//! it. Both stay until the playlist that lists the segment is published.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::SegmentReady;

/// The metadata file of a segment file.
pub fn meta_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// Makes a finished `.part` file a complete spool segment: writes its
/// metadata, then renames it into place.
pub fn finalize(part: &Path, seg: &SegmentReady) -> io::Result<()> {
    let meta = meta_path(&seg.path);
    let mut tmp = meta.clone().into_os_string();
    tmp.push(".tmp");
    let text = format!(
        "sequence={}\nstart={}\nduration={}\nbytes={}\ndiscontinuity={}\nprogram_date_time={}\n",
        seg.sequence,
        seg.start,
        seg.duration,
        seg.bytes,
        u8::from(seg.discontinuity),
        seg.program_date_time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    );
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &meta)?;
    fs::rename(part, &seg.path)
}

/// Removes a segment and its metadata from the spool.
pub fn remove(segment: &Path) -> io::Result<()> {
    fs::remove_file(segment)?;
    match fs::remove_file(meta_path(segment)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn parse_meta(text: &str, path: &Path, name: &str) -> Option<SegmentReady> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    Some(SegmentReady {
        sequence: field("sequence")?.parse().ok()?,
        name: name.to_string(),
        path: path.to_path_buf(),
        bytes: field("bytes")?.parse().ok()?,
        start: field("start")?.parse().ok()?,
        duration: field("duration")?.parse().ok()?,
        discontinuity: field("discontinuity")? == "1",
        program_date_time: DateTime::parse_from_rfc3339(field("program_date_time")?)
            .ok()?
            .with_timezone(&Utc),
        // the spool holds the segments of this packaging only (see scan)
        packaging: crate::media::Packaging::Ts,
        init: None,
    })
}

/// What a previous run left in the spool directory.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Complete segments, in sequence order.
    pub complete: Vec<SegmentReady>,
    /// Segment files that were still being written (`.part`), or whose
    /// metadata is missing or unreadable.
    pub incomplete: Vec<PathBuf>,
}

/// Finds the segments named `<prefix>-<N>.ts` in `dir`.
pub fn scan(dir: &Path, prefix: &str) -> io::Result<Leftovers> {
    let mut found = Leftovers::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let part_of = name.strip_suffix(".part");
        if part_of.is_some_and(|n| super::segment_number(n, prefix).is_some()) {
            found.incomplete.push(entry.path());
            continue;
        }
        if super::segment_number(&name, prefix).is_none() {
            continue;
        }
        let path = entry.path();
        let meta = fs::read_to_string(meta_path(&path)).ok();
        let seg = meta.as_deref().and_then(|m| parse_meta(m, &path, &name));
        let size = entry.metadata()?.len();
        match seg {
            Some(seg) if seg.bytes == size => found.complete.push(seg),
            _ => found.incomplete.push(path),
        }
    }
    found.complete.sort_by_key(|s| s.sequence);
    found.incomplete.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn seg(dir: &Path, n: u64, bytes: &[u8]) -> SegmentReady {
        let name = format!("live-{n:05}.ts");
        SegmentReady {
            sequence: n,
            path: dir.join(&name),
            name,
            bytes: bytes.len() as u64,
            start: 90_000 * n as i64,
            duration: 180_180,
            discontinuity: n == 3,
            program_date_time: Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, n as u32).unwrap(),
            packaging: crate::media::Packaging::Ts,
            init: None,
        }
    }

    #[test]
    fn finalized_segments_are_found_again_and_partial_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        for n in [3, 1, 2] {
            let s = seg(dir.path(), n, b"abcdef");
            let part = dir.path().join(format!("{}.part", s.name));
            fs::write(&part, b"abcdef").unwrap();
            finalize(&part, &s).unwrap();
            assert!(!part.exists());
        }
        fs::write(dir.path().join("live-00004.ts.part"), b"half").unwrap();
        fs::write(dir.path().join("live-00005.ts"), b"no meta").unwrap();
        fs::write(dir.path().join("other-00001.ts"), b"not ours").unwrap();
        let found = scan(dir.path(), "live").unwrap();
        let numbers: Vec<u64> = found.complete.iter().map(|s| s.sequence).collect();
        assert_eq!(numbers, vec![1, 2, 3]);
        assert_eq!(found.complete[2], seg(dir.path(), 3, b"abcdef"));
        assert_eq!(found.incomplete.len(), 2);
        remove(&found.complete[0].path).unwrap();
        assert!(!dir.path().join("live-00001.ts").exists());
        assert!(!dir.path().join("live-00001.ts.meta").exists());
    }

    #[test]
    fn a_segment_whose_size_does_not_match_its_metadata_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let s = seg(dir.path(), 1, b"abcdef");
        let part = dir.path().join("live-00001.ts.part");
        fs::write(&part, b"abcdef").unwrap();
        finalize(&part, &s).unwrap();
        fs::write(&s.path, b"abc").unwrap();
        let found = scan(dir.path(), "live").unwrap();
        assert!(found.complete.is_empty());
        assert_eq!(found.incomplete, vec![s.path]);
    }
}
