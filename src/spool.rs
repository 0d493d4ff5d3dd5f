//! The spool directory's layout, which a restart reads back.
//!
//! A segment being written is `<name>.part`. When it is complete, its
//! metadata goes to `<name>.meta` and only then is the segment renamed to
//! `<name>`, so a segment file that exists always has its metadata beside
//! it. Both stay until the playlist that lists the segment is published.
//!
//! The metadata is `key=value` lines: `sequence`, `start`, `duration`,
//! `bytes`, `discontinuity` (0 or 1), `program_date_time` (RFC 3339),
//! `packaging` (`ts` or `fmp4`; missing in files of earlier versions, which
//! are TS) and, for fMP4, `init`: the name of the init segment it needs.
//!
//! An fMP4 init segment (`<prefix>-init-<hash>.mp4`, see
//! [`crate::media::segment::init_name`]) is finalized the same way with
//! [`finalize_init`]; its metadata is `bytes`, `codecs` and `audio_only`.
//! It stays until the run has published everything, so that segments left
//! after a crash still find it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::media::segment::is_init_name;
use crate::media::{InitReady, MediaDuration, MediaTime, Packaging, SegmentReady};

/// The lock a run holds on its spool directory (`.lock` in it, with the
/// holder's pid): a second run given the same directory would take the
/// first one's leftovers. The file is removed when the lock is dropped, so
/// a run that ends leaves an empty spool directory.
#[derive(Debug)]
pub struct SpoolLock {
    path: PathBuf,
    _file: fs::File,
}

impl Drop for SpoolLock {
    fn drop(&mut self) {
        // removed while still locked: a run that opened the old file and
        // locks it after this finds it unlinked and opens the new one
        let _ = fs::remove_file(&self.path);
    }
}

/// Why the spool directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the spool directory {dir} is in use by another run (pid {pid})")]
    InUse { dir: String, pid: String },
    #[error("cannot lock the spool directory {dir}: {source}")]
    Io { dir: String, source: io::Error },
}

/// Locks `dir` for this process (released when the lock is dropped or the
/// process ends, however it ends).
pub fn lock(dir: &Path) -> Result<SpoolLock, LockError> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let shown = || dir.display().to_string();
    let io_err = |source| LockError::Io {
        dir: shown(),
        source,
    };
    let path = dir.join(".lock");
    loop {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(io_err(e));
            }
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = match pid.trim() {
                "" => "unknown".to_string(),
                p => p.to_string(),
            };
            return Err(LockError::InUse { dir: shown(), pid });
        }
        // the holder before may have removed the file between our open and
        // our lock: then the lock is on a file nobody else will open
        let held = file.metadata().map_err(io_err)?;
        match fs::metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io_err)?;
        return Ok(SpoolLock { path, _file: file });
    }
}

/// The metadata file of a segment file.
pub fn meta_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// Makes a finished `.part` file a complete spool segment: writes its
/// metadata, then renames it into place.
pub fn finalize(part: &Path, seg: &SegmentReady) -> io::Result<()> {
    let mut text = format!(
        "sequence={}\nstart={}\nduration={}\nbytes={}\ndiscontinuity={}\nprogram_date_time={}\n\
         packaging={}\n",
        seg.sequence,
        seg.start.ticks(),
        seg.duration.ticks(),
        seg.bytes,
        u8::from(seg.discontinuity),
        seg.program_date_time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        packaging_name(seg.packaging),
    );
    if let Some(init) = &seg.init {
        text += &format!("init={init}\n");
    }
    write_meta(&seg.path, &text)?;
    fs::rename(part, &seg.path)
}

/// Makes a finished `.part` file a complete spool init segment: writes
/// its metadata, then renames it into place (over the same file of an
/// earlier run, which has the same bytes since its name comes from them).
pub fn finalize_init(part: &Path, init: &InitReady) -> io::Result<()> {
    let text = format!(
        "bytes={}\ncodecs={}\naudio_only={}\n",
        init.bytes,
        init.codecs,
        u8::from(init.audio_only)
    );
    write_meta(&init.path, &text)?;
    fs::rename(part, &init.path)
}

/// Writes the metadata of `file` beside it, atomically.
fn write_meta(file: &Path, text: &str) -> io::Result<()> {
    let meta = meta_path(file);
    let mut tmp = meta.clone().into_os_string();
    tmp.push(".tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &meta)
}

fn packaging_name(p: Packaging) -> &'static str {
    match p {
        Packaging::Ts => "ts",
        Packaging::Fmp4 => "fmp4",
    }
}

/// Removes a segment and its metadata from the spool.
pub fn remove(segment: &Path) -> io::Result<()> {
    fs::remove_file(segment)?;
    match fs::remove_file(meta_path(segment)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The value of `key` in metadata text.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

fn parse_meta(text: &str, path: &Path, name: &str, prefix: &str) -> Option<SegmentReady> {
    let field = |key: &str| field(text, key);
    let packaging = match field("packaging") {
        None | Some("ts") => Packaging::Ts,
        Some("fmp4") => Packaging::Fmp4,
        Some(_) => return None,
    };
    // an fMP4 segment names its init; a TS one has none
    let init = match packaging {
        Packaging::Ts => None,
        Packaging::Fmp4 => Some(
            field("init")
                .filter(|i| is_init_name(i, prefix))?
                .to_string(),
        ),
    };
    Some(SegmentReady {
        sequence: field("sequence")?.parse().ok()?,
        name: name.to_string(),
        path: path.to_path_buf(),
        bytes: field("bytes")?.parse().ok()?,
        start: MediaTime(field("start")?.parse().ok()?),
        duration: MediaDuration(field("duration")?.parse().ok()?),
        discontinuity: field("discontinuity")? == "1",
        program_date_time: DateTime::parse_from_rfc3339(field("program_date_time")?)
            .ok()?
            .with_timezone(&Utc),
        packaging,
        init,
    })
}

fn parse_init_meta(text: &str, path: &Path, name: &str) -> Option<InitReady> {
    Some(InitReady {
        name: name.to_string(),
        path: path.to_path_buf(),
        bytes: field(text, "bytes")?.parse().ok()?,
        codecs: field(text, "codecs")?.to_string(),
        audio_only: field(text, "audio_only")? == "1",
    })
}

/// What a previous run left in the spool directory.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Complete segments, in sequence order.
    pub complete: Vec<SegmentReady>,
    /// Complete fMP4 init segments, by name.
    pub inits: Vec<InitReady>,
    /// Segment files that were still being written (`.part`), or whose
    /// metadata is missing or unreadable.
    pub incomplete: Vec<PathBuf>,
}

/// Finds the segments named `<prefix>-<N>.ts` or `.m4s`, and the init
/// segments named `<prefix>-init-<hash>.mp4`, in `dir`.
pub fn scan(dir: &Path, prefix: &str) -> io::Result<Leftovers> {
    let mut found = Leftovers::default();
    let ours = |n: &str| {
        crate::media::segment::segment_number(n, prefix).is_some() || is_init_name(n, prefix)
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_suffix(".part").is_some_and(ours) {
            found.incomplete.push(entry.path());
            continue;
        }
        if !ours(&name) {
            continue;
        }
        let path = entry.path();
        let meta = fs::read_to_string(meta_path(&path)).ok();
        let size = entry.metadata()?.len();
        if is_init_name(&name, prefix) {
            match meta
                .as_deref()
                .and_then(|m| parse_init_meta(m, &path, &name))
            {
                Some(init) if init.bytes == size => found.inits.push(init),
                _ => found.incomplete.push(path),
            }
            continue;
        }
        match meta
            .as_deref()
            .and_then(|m| parse_meta(m, &path, &name, prefix))
        {
            Some(seg) if seg.bytes == size => found.complete.push(seg),
            _ => found.incomplete.push(path),
        }
    }
    found.complete.sort_by_key(|s| s.sequence);
    found.inits.sort_by(|a, b| a.name.cmp(&b.name));
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
            start: MediaTime(90_000 * n as i64),
            duration: MediaDuration(180_180),
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
    fn metadata_carries_times_as_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let s = seg(dir.path(), 2, b"abc");
        let part = dir.path().join("live-00002.ts.part");
        fs::write(&part, b"abc").unwrap();
        finalize(&part, &s).unwrap();
        assert_eq!(
            fs::read_to_string(meta_path(&s.path)).unwrap(),
            "sequence=2\nstart=180000\nduration=180180\nbytes=3\ndiscontinuity=0\n\
             program_date_time=2026-11-21T12:00:02.000000Z\npackaging=ts\n"
        );
    }

    #[test]
    fn fmp4_segments_and_their_init_are_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"ftyp moov";
        let name = crate::media::segment::init_name("live", bytes);
        let init = InitReady {
            path: dir.path().join(&name),
            name: name.clone(),
            bytes: bytes.len() as u64,
            codecs: "mp4a.40.2".into(),
            audio_only: true,
        };
        let part = dir.path().join(format!("{name}.part"));
        fs::write(&part, bytes).unwrap();
        finalize_init(&part, &init).unwrap();
        for n in 1..=2 {
            let s = SegmentReady {
                name: format!("live-{n:05}.m4s"),
                path: dir.path().join(format!("live-{n:05}.m4s")),
                packaging: Packaging::Fmp4,
                init: Some(name.clone()),
                ..seg(dir.path(), n, b"moof mdat")
            };
            let part = dir.path().join(format!("{}.part", s.name));
            fs::write(&part, b"moof mdat").unwrap();
            finalize(&part, &s).unwrap();
        }
        // an earlier version's metadata has no packaging: TS
        fs::write(dir.path().join("live-00003.ts"), b"abc").unwrap();
        fs::write(
            dir.path().join("live-00003.ts.meta"),
            "sequence=3\nstart=0\nduration=90000\nbytes=3\ndiscontinuity=0\n\
             program_date_time=2026-11-21T12:00:03.000000Z\n",
        )
        .unwrap();
        // an fMP4 segment that names no init, an init without metadata and
        // one still being written are incomplete
        fs::write(dir.path().join("live-00004.m4s"), b"x").unwrap();
        fs::write(
            dir.path().join("live-00004.m4s.meta"),
            "sequence=4\nstart=0\nduration=90000\nbytes=1\ndiscontinuity=0\n\
             program_date_time=2026-11-21T12:00:04.000000Z\npackaging=fmp4\n",
        )
        .unwrap();
        let other = crate::media::segment::init_name("live", b"other");
        fs::write(dir.path().join(&other), b"other").unwrap();
        let writing = crate::media::segment::init_name("live", b"third");
        fs::write(dir.path().join(format!("{writing}.part")), b"thi").unwrap();
        let found = scan(dir.path(), "live").unwrap();
        assert_eq!(found.inits, vec![init]);
        let got: Vec<(u64, Packaging, Option<&str>)> = found
            .complete
            .iter()
            .map(|s| (s.sequence, s.packaging, s.init.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Packaging::Fmp4, Some(name.as_str())),
                (2, Packaging::Fmp4, Some(name.as_str())),
                (3, Packaging::Ts, None),
            ]
        );
        let mut incomplete: Vec<String> = found
            .incomplete
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        incomplete.sort();
        let mut expected = vec![
            "live-00004.m4s".to_string(),
            other,
            format!("{writing}.part"),
        ];
        expected.sort();
        assert_eq!(incomplete, expected);
        // an init is removed with its metadata
        remove(&found.inits[0].path).unwrap();
        assert!(!dir.path().join(&name).exists());
        assert!(!dir.path().join(format!("{name}.meta")).exists());
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

    #[test]
    fn a_spool_directory_is_locked_by_one_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let pid = std::process::id().to_string();
        // flock is per open file: a second open in this process conflicts
        // as another process's would
        match lock(dir.path()) {
            Err(LockError::InUse { pid: p, .. }) => assert_eq!(p, pid),
            other => panic!("{other:?}"),
        }
        drop(held);
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "the lock file goes with the lock"
        );
        let again = lock(dir.path()).unwrap();
        let found = scan(dir.path(), "live").unwrap();
        assert!(found.complete.is_empty() && found.incomplete.is_empty());
        drop(again);
    }
}
