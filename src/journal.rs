//! The event journal (`--events PATH`): one JSON object per line for each
//! thing a run does, for programs (monitoring, a dashboard, the tests)
//! where the log is for people. The log keeps saying the same things in
//! its own words; the journal's event names and fields are an interface,
//! listed in the README ("Event journal") and below:
//!
//! - `segment`: a media segment is finished in the spool ([`segment`]);
//! - `init`: an fMP4 init segment is finished in the spool ([`init`]);
//! - `stored`: an object is stored at the destination ([`stored`]);
//! - `published`: a playlist version (rolling or archive) is stored, with
//!   its text ([`published`]);
//! - `deleted`: a segment is deleted with --delete-old ([`deleted`]);
//! - `resumed`: a playlist an earlier run published is continued
//!   ([`resumed`], [`resumed_archive`]);
//! - `warning`: one of the warnings in [`warning`], when the log warns;
//! - `end`: the run's outcome and totals ([`end`]).
//!
//! Every line starts with `"t"`, the wall-clock time (RFC 3339, UTC, with
//! microseconds), and `"event"`. Times and durations of the media are
//! ticks of the 90 kHz clock.
//!
//! The journal is process-wide, opened once at start like the logger
//! ([`open`]); without one, an event costs one check. Writing it never
//! fails the run: the first error is logged as a warning and the journal
//! stops there.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use chrono::{SecondsFormat, Utc};

use crate::media::{InitReady, MediaDuration, MediaTime, SegmentReady};

static JOURNAL: OnceLock<Journal> = OnceLock::new();

/// Opens `path` (created, or truncated) as the journal of this process.
/// A second call fails: the journal is set once.
pub fn open(path: &Path) -> io::Result<()> {
    let journal = Journal::create(path)?;
    JOURNAL
        .set(journal)
        .map_err(|_| io::Error::other("the event journal is already open"))
}

/// Writes one event to the journal, if one is open: `fields` adds the
/// event's fields after `t` and `event`, and is not called without one.
#[inline]
pub fn record(event: &str, fields: impl FnOnce(&mut Fields)) {
    if let Some(journal) = JOURNAL.get() {
        journal.write(event, fields);
    }
}

/// A time or span of the 90 kHz timeline, as ticks, from whichever type
/// holds it.
pub trait Ticks {
    fn to_ticks(self) -> i64;
}

impl Ticks for i64 {
    fn to_ticks(self) -> i64 {
        self
    }
}

impl Ticks for MediaTime {
    fn to_ticks(self) -> i64 {
        self.ticks()
    }
}

impl Ticks for MediaDuration {
    fn to_ticks(self) -> i64 {
        self.ticks()
    }
}

/// `segment`: `name`, `sequence`, `start` and `duration` (ticks),
/// `discontinuity` (it follows a timestamp reset or a restart), `forced`
/// (it does not start on a keyframe), `bytes`, `program_date_time`, and
/// `init` (the fMP4 init segment it needs, `null` for TS).
pub fn segment(seg: &SegmentReady, forced: bool) {
    record("segment", |r| {
        r.str("name", &seg.name)
            .u64("sequence", seg.sequence)
            .ticks("start", seg.start)
            .ticks("duration", seg.duration)
            .bool("discontinuity", seg.discontinuity)
            .bool("forced", forced)
            .u64("bytes", seg.bytes)
            .str(
                "program_date_time",
                &seg.program_date_time
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            )
            .opt_str("init", seg.init.as_deref());
    });
}

/// `init`: `name`, `codecs` (RFC 6381), `bytes`, `audio_only`.
pub fn init(init: &InitReady) {
    record("init", |r| {
        r.str("name", &init.name)
            .str("codecs", &init.codecs)
            .u64("bytes", init.bytes)
            .bool("audio_only", init.audio_only);
    });
}

/// `stored`: `key`, `bytes`.
pub fn stored(key: &str, bytes: u64) {
    record("stored", |r| {
        r.str("key", key).u64("bytes", bytes);
    });
}

/// `published`: `key`, `version` (1 for the first this run published of
/// that key), `text` (the whole playlist).
pub fn published(key: &str, version: u64, text: &[u8]) {
    record("published", |r| {
        r.str("key", key)
            .u64("version", version)
            .str("text", &String::from_utf8_lossy(text));
    });
}

/// `deleted`: `key`.
pub fn deleted(key: &str) {
    record("deleted", |r| {
        r.str("key", key);
    });
}

/// `lease` taken: `key`, `run` (this run's id), `atomic` (the store
/// honours conditional writes).
pub fn lease_taken(key: &str, run: &str, atomic: bool) {
    record("lease", |r| {
        r.str("state", "taken")
            .str("key", key)
            .str("run", run)
            .bool("atomic", atomic);
    });
}

/// `lease` waiting (a standby): `key`, `holder`, `until` (RFC 3339).
pub fn lease_waiting(key: &str, holder: &str, until: &str) {
    record("lease", |r| {
        r.str("state", "waiting")
            .str("key", key)
            .str("holder", holder)
            .str("until", until);
    });
}

/// `lease` lost: `key`, `holder` (the run that has it now, `null` when
/// none can be named).
pub fn lease_lost(key: &str, holder: Option<&str>) {
    record("lease", |r| {
        r.str("state", "lost")
            .str("key", key)
            .opt_str("holder", holder);
    });
}

/// `lease` released: `key`.
pub fn lease_released(key: &str) {
    record("lease", |r| {
        r.str("state", "released").str("key", key);
    });
}

/// `resumed` for the rolling playlist: `key`, `media_sequence`, `listed`
/// (segments it lists), `ended` (it had EXT-X-ENDLIST, now removed).
pub fn resumed(key: &str, media_sequence: u64, listed: usize, ended: bool) {
    record("resumed", |r| {
        r.str("key", key)
            .u64("media_sequence", media_sequence)
            .u64("listed", listed as u64)
            .bool("ended", ended);
    });
}

/// `resumed` for the archive: `key`, `listed`, `ended`, `backfill`
/// (stored segments it did not list yet, appended first) and `missing`
/// (segments published before that it skips after a discontinuity).
pub fn resumed_archive(key: &str, listed: usize, ended: bool, backfill: usize, missing: u64) {
    record("resumed", |r| {
        r.str("key", key)
            .u64("listed", listed as u64)
            .bool("ended", ended)
            .u64("backfill", backfill as u64)
            .u64("missing", missing);
    });
}

/// `end`: `code` (the exit code), `error` (its one-line message, `null`
/// for 0); from the segmenter `segments_cut` and `bytes_in`; from the
/// publisher `segments`, `bytes`, `inits`, `playlist_versions`,
/// `playlist_bytes`, `archive_versions`, `archive_bytes`, `media` (ticks),
/// `deleted`, `attempts`, `retries` and `longest_wait_ms`. Totals of a
/// part that did not finish (the destination failed, or the run stopped
/// before the input was read) are `null`.
pub fn end(code: u8, error: Option<&str>, totals: &EndTotals) {
    record("end", |r| {
        r.u64("code", code.into())
            .opt_str("error", error)
            .opt_u64("segments_cut", totals.segments_cut)
            .opt_u64("bytes_in", totals.bytes_in)
            .opt_u64("segments", totals.segments)
            .opt_u64("bytes", totals.bytes)
            .opt_u64("inits", totals.inits)
            .opt_u64("playlist_versions", totals.playlist_versions)
            .opt_u64("playlist_bytes", totals.playlist_bytes)
            .opt_u64("archive_versions", totals.archive_versions)
            .opt_u64("archive_bytes", totals.archive_bytes);
        match totals.media {
            Some(m) => r.ticks("media", m),
            None => r.null("media"),
        };
        r.opt_u64("deleted", totals.deleted)
            .opt_u64("attempts", totals.attempts)
            .opt_u64("retries", totals.retries)
            .opt_u64("longest_wait_ms", totals.longest_wait_ms);
    });
}

/// The totals of the `end` event, as plain values (the binary takes them
/// from the segmenter's and the uploader's summaries; `None`: that part did
/// not finish).
#[derive(Debug, Clone, Default)]
pub struct EndTotals {
    pub segments_cut: Option<u64>,
    pub bytes_in: Option<u64>,
    pub segments: Option<u64>,
    pub bytes: Option<u64>,
    pub inits: Option<u64>,
    pub playlist_versions: Option<u64>,
    pub playlist_bytes: Option<u64>,
    pub archive_versions: Option<u64>,
    pub archive_bytes: Option<u64>,
    pub media: Option<MediaDuration>,
    pub deleted: Option<u64>,
    pub attempts: Option<u64>,
    pub retries: Option<u64>,
    pub longest_wait_ms: Option<u64>,
}

/// The warnings the journal carries, `{"event":"warning","kind":...}`:
/// each is written where the log warns of the same thing (once where the
/// log warns once).
pub mod warning {
    use super::{record, Ticks};

    /// `keyframes_far_apart`: segment `uri` lasts `duration` (ticks)
    /// because the input's keyframes are that far apart, and
    /// EXT-X-TARGETDURATION is raised from `from` to `to` (seconds).
    pub fn keyframes_far_apart(uri: &str, duration: impl Ticks, from: u64, to: u64) {
        record("warning", |r| {
            r.str("kind", "keyframes_far_apart")
                .str("uri", uri)
                .ticks("duration", duration)
                .u64("from", from)
                .u64("to", to);
        });
    }

    /// `no_keyframe`: no keyframe came for `after` ticks, and the segment
    /// was cut without one. Written for the first such cut of a run; the
    /// later ones show as segments with `forced`.
    pub fn no_keyframe(after: impl Ticks) {
        record("warning", |r| {
            r.str("kind", "no_keyframe").ticks("after", after);
        });
    }

    /// `no_keyframe_at_start`: the input had no keyframe in its first
    /// `after` ticks, and the first segment starts without one.
    pub fn no_keyframe_at_start(after: impl Ticks) {
        record("warning", |r| {
            r.str("kind", "no_keyframe_at_start").ticks("after", after);
        });
    }

    /// `timestamp_jump`: the timestamps jumped from `from` to `to` (ticks
    /// on the unwrapped timeline), and a segment after a discontinuity
    /// starts there; `keyframe` says whether it starts on one.
    pub fn timestamp_jump(from: impl Ticks, to: impl Ticks, keyframe: bool) {
        record("warning", |r| {
            r.str("kind", "timestamp_jump")
                .ticks("from", from)
                .ticks("to", to)
                .bool("keyframe", keyframe);
        });
    }

    /// `truncated_packet`: the input ended in the middle of a TS packet,
    /// `bytes` short of its end.
    pub fn truncated_packet(bytes: u64) {
        record("warning", |r| {
            r.str("kind", "truncated_packet").u64("bytes", bytes);
        });
    }

    /// `damaged_input`: over the run, `unsynced_bytes` were skipped out of
    /// packet sync and `error_packets` flagged with the transport error
    /// indicator were dropped.
    pub fn damaged_input(unsynced_bytes: u64, error_packets: u64) {
        record("warning", |r| {
            r.str("kind", "damaged_input")
                .u64("unsynced_bytes", unsynced_bytes)
                .u64("error_packets", error_packets);
        });
    }

    /// `input_timeout`: no input arrived for `seconds` (--input-timeout),
    /// which ends the run.
    pub fn input_timeout(limit: std::time::Duration) {
        record("warning", |r| {
            r.str("kind", "input_timeout")
                .f64("seconds", limit.as_secs_f64());
        });
    }
}

/// A journal file. Each line is written whole, in one call, under a lock
/// that the run's threads share.
struct Journal {
    path: PathBuf,
    /// `None` once a write failed.
    file: Mutex<Option<File>>,
}

impl Journal {
    fn create(path: &Path) -> io::Result<Journal> {
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(Some(File::create(path)?)),
        })
    }

    fn write(&self, event: &str, fields: impl FnOnce(&mut Fields)) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(out) = file.as_mut() else {
            return;
        };
        let mut f = Fields::default();
        fields(&mut f);
        // the time is taken under the lock, so that it grows line by line
        let t = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        if let Err(e) = out.write_all(f.line(&t, event).as_bytes()) {
            log::warn!(
                "cannot write the event journal {}: {e}; no further events are written to it",
                self.path.display()
            );
            *file = None;
        }
    }
}

/// The fields of one event, as JSON (`,"key":value` each).
#[derive(Default)]
pub struct Fields {
    json: String,
}

impl Fields {
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_json_string(&mut self.json, value);
        self
    }

    /// A string, or `null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.json, "{value}");
        self
    }

    /// A count, or `null`.
    pub fn opt_u64(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.u64(key, v),
            None => self.null(key),
        }
    }

    pub fn i64(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        let _ = write!(self.json, "{value}");
        self
    }

    /// A time or span of the media, in ticks.
    pub fn ticks(&mut self, key: &str, value: impl Ticks) -> &mut Self {
        self.i64(key, value.to_ticks())
    }

    /// A number; `null` if it is not finite (JSON has no NaN).
    pub fn f64(&mut self, key: &str, value: f64) -> &mut Self {
        if !value.is_finite() {
            return self.null(key);
        }
        self.key(key);
        let _ = write!(self.json, "{value}");
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.json.push_str(if value { "true" } else { "false" });
        self
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.json.push_str("null");
        self
    }

    fn key(&mut self, key: &str) {
        self.json.push(',');
        push_json_string(&mut self.json, key);
        self.json.push(':');
    }

    /// The whole line: `{"t":...,"event":...` and the fields, `}`, newline.
    fn line(&self, t: &str, event: &str) -> String {
        let mut line = String::with_capacity(self.json.len() + t.len() + event.len() + 24);
        line.push_str("{\"t\":");
        push_json_string(&mut line, t);
        line.push_str(",\"event\":");
        push_json_string(&mut line, event);
        line.push_str(&self.json);
        line.push_str("}\n");
        line
    }
}

/// Appends `s` as a JSON string (RFC 8259 §7): quotes, backslashes and
/// control characters escaped, and U+2028 and U+2029 too, which
/// JavaScript once did not allow in a string.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, s);
        out
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json("plain"), r#""plain""#);
        assert_eq!(json(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(json(r"C:\dir\"), r#""C:\\dir\\""#);
        assert_eq!(
            json("#EXTM3U\n#EXT-X-VERSION:3\r\n\tx"),
            r##""#EXTM3U\n#EXT-X-VERSION:3\r\n\tx""##
        );
        assert_eq!(
            json("\u{0}\u{1}\u{1b}\u{1f}"),
            r#""\u0000\u0001\u001b\u001f""#
        );
        assert_eq!(json("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        // other characters stay as they are, in UTF-8
        assert_eq!(json(" ~\u{7f}é€😀/"), "\" ~\u{7f}é€😀/\"");
    }

    #[test]
    fn a_line_is_one_json_object() {
        let mut f = Fields::default();
        f.str("name", "live-00001.ts")
            .u64("sequence", 1)
            .i64("start", -3)
            .ticks("duration", MediaDuration(180_000))
            .bool("forced", false)
            .f64("seconds", 1.5)
            .f64("nan", f64::NAN)
            .opt_str("init", None)
            .opt_u64("bytes", Some(7));
        assert_eq!(
            f.line("2026-01-02T03:04:05.000006Z", "segment"),
            "{\"t\":\"2026-01-02T03:04:05.000006Z\",\"event\":\"segment\",\
             \"name\":\"live-00001.ts\",\"sequence\":1,\"start\":-3,\"duration\":180000,\
             \"forced\":false,\"seconds\":1.5,\"nan\":null,\"init\":null,\"bytes\":7}\n"
        );
    }

    #[test]
    fn lines_go_to_the_file_whole_with_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "left by an earlier run\n").unwrap();
        let journal = Journal::create(&path).unwrap();
        journal.write("stored", |r| {
            r.str("key", "ev/live-00001.ts");
        });
        journal.write("published", |r| {
            r.str("text", "#EXTM3U\n\"x\"\n");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "truncated at start: {text}");
        let t = lines[0]
            .strip_prefix("{\"t\":\"")
            .and_then(|l| l.split_once('"'))
            .unwrap()
            .0;
        // RFC 3339 in UTC with microseconds
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
        assert_eq!(t.len(), "2026-01-02T03:04:05.000006Z".len(), "{t}");
        assert!(lines[0].ends_with(",\"event\":\"stored\",\"key\":\"ev/live-00001.ts\"}"));
        assert!(lines[1].ends_with(",\"text\":\"#EXTM3U\\n\\\"x\\\"\\n\"}"));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn a_failing_journal_stops_without_failing_the_caller() {
        // every write to /dev/full fails with ENOSPC
        let journal = Journal::create(Path::new("/dev/full")).unwrap();
        journal.write("stored", |r| {
            r.str("key", "a");
        });
        assert!(journal.file.lock().unwrap().is_none(), "stopped");
        let mut called = false;
        journal.write("stored", |_| called = true);
        assert!(!called, "nothing more is built or written");
    }

    #[test]
    fn without_a_journal_nothing_is_built() {
        // the tests of this crate never open the process's journal
        let mut called = false;
        record("stored", |_| called = true);
        assert!(!called);
    }
}
