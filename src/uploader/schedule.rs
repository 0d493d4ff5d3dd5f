//! What the uploader does next, decided without I/O.
//!
//! The [`Schedule`] is told what happened (a segment arrived, was stored,
//! failed for good; a playlist or archive version landed; time passed) and
//! answers with [`Action`]s: which uploads to start, which playlist and
//! archive versions to publish, which keys to delete, when to stop the
//! input and when to give up. It holds the rolling playlist and the
//! archive, so what it renders is what gets published. Times are plain
//! [`Instant`]s passed in by the caller, so tests drive it with explicit
//! times and no runtime.
//!
//! The rules it keeps:
//! - at most `concurrency` uploads at once, in arrival order, init segments
//!   (fMP4) before the media segments waiting with them; an init whose name
//!   was already announced in this run is not stored again (names come from
//!   the bytes);
//! - nothing is listed before it is stored: a segment is listed only once
//!   it, the init segment it needs (its EXT-X-MAP) and every segment that
//!   arrived before it are stored; one that failed for good, or whose init
//!   failed for good, is never listed, nor anything after it;
//! - one playlist version in flight at a time; changes made meanwhile go up
//!   together as the next one;
//! - the archive goes up with its first segment, then once `every` of
//!   media was added, and at the end;
//! - with `delete_old` (and no archive), a segment that left the playlist
//!   is deleted once the version without it has been published and its own
//!   duration plus that of the longest playlist that held it have passed
//!   (RFC 8216 §6.2.2);
//! - spool files go once a published version lists their segment (with an
//!   archive, once the archive does); those of init segments once the run
//!   has ended with everything published (a restart may need them before);
//! - init segments are never deleted, not even with `delete_old`: a listed
//!   segment, in the rolling playlist or the archive, may need one, and a
//!   restart that makes the same init reuses its name;
//! - more than `max_spool` bytes not yet stored stop the input; once input
//!   has ended, what is left must be stored within `flush_timeout`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{object_key, UploaderConfig};
use crate::media::{InitReady, MediaDuration, Packaging, SegmentReady};
use crate::playlist::{Entry, Playlist};
use crate::resume::{ArchivePlan, Published};

/// Something for the uploader to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store a segment's or an init segment's spool file; report with
    /// [`Schedule::stored`] or [`Schedule::store_failed`] (a segment),
    /// [`Schedule::init_stored`] or [`Schedule::init_store_failed`] (an
    /// init).
    Upload(Upload),
    /// Publish a version of the rolling playlist; report with
    /// [`Schedule::playlist_published`].
    Publish(Version),
    /// Publish a version of the archive; report with
    /// [`Schedule::archive_published`].
    PublishArchive(Version),
    /// Delete this key: no player can need it any more.
    Delete(String),
    /// Stop reading input: more bytes wait in the spool than allowed.
    StopInput { held: u64, limit: u64 },
    /// Input ended, and what is left was not stored in time.
    GiveUp { remaining: usize },
}

/// What an upload stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The media segment of this sequence number.
    Segment(u64),
    /// The init segment of this name.
    Init(String),
}

/// A segment or an init segment to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub item: Item,
    pub key: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Its Content-Type: from its packaging, and for fMP4 whether its init
    /// has video (`video/mp4`) or not (`audio/mp4`).
    pub content_type: &'static str,
}

/// A playlist version to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub text: Arc<Vec<u8>>,
    pub target_duration: u64,
    /// The sequence numbers it lists, in order.
    pub sequences: Vec<u64>,
    /// Segments added since the version before.
    pub added: usize,
}

impl Version {
    fn of(playlist: &Playlist, added: usize) -> Self {
        Version {
            text: Arc::new(playlist.render().into_bytes()),
            target_duration: playlist.target_duration(),
            sequences: playlist.entries().map(|e| e.sequence).collect(),
            added,
        }
    }
}

/// What was listed over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub segments: u64,
    pub bytes: u64,
    pub media: MediaDuration,
    /// The longest a segment waited between arriving and being stored.
    pub longest_wait: Duration,
}

/// What the schedule keeps beside each entry of the rolling playlist.
#[derive(Debug, Clone)]
struct Listed {
    /// Its object key; `None` for a restored entry whose URI names none.
    key: Option<String>,
    /// The longest total duration of a playlist that held it.
    longest: MediaDuration,
}

/// What depends on a version in flight: keys that left the playlist in it
/// (with how long they must stay available once it has landed) and spool
/// files it makes removable.
#[derive(Debug, Default)]
struct Landing {
    leaving: Vec<(String, MediaDuration)>,
    spool: Vec<PathBuf>,
}

/// How far an init segment announced in this run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitStatus {
    Waiting,
    Uploading,
    Stored,
    Failed,
}

/// An init segment announced in this run.
#[derive(Debug)]
struct Init {
    init: InitReady,
    status: InitStatus,
}

/// The archive beside the rolling playlist.
#[derive(Debug)]
struct ArchiveState {
    every: MediaDuration,
    playlist: Playlist,
    /// Entries added since the last version was sent, and their duration.
    added: usize,
    added_media: MediaDuration,
    sent_once: bool,
    /// The stream ended; the final version (VOD) is still to be sent.
    end_pending: bool,
    /// Spool files of segments the next version adds: with an archive they
    /// stay until it lists them, so that a restart can add them.
    spool: Vec<PathBuf>,
    /// Spool files of the version in flight, if one is.
    in_flight: Option<Vec<PathBuf>>,
}

impl ArchiveState {
    fn add(&mut self, entry: Entry, spool: Option<PathBuf>) {
        self.added += 1;
        self.added_media += entry.duration;
        self.playlist.push(entry);
        self.spool.extend(spool);
    }

    fn is_due(&self) -> bool {
        self.end_pending || (self.added > 0 && (!self.sent_once || self.added_media >= self.every))
    }

    fn send(&mut self) -> Version {
        let version = Version::of(&self.playlist, self.added);
        self.added = 0;
        self.added_media = MediaDuration::ZERO;
        self.sent_once = true;
        self.end_pending = false;
        self.in_flight = Some(std::mem::take(&mut self.spool));
        version
    }
}

/// The uploader's decisions; see the module documentation.
#[derive(Debug)]
pub struct Schedule {
    key_prefix: String,
    http_prefix: String,
    dated: bool,
    keep_spool: bool,
    concurrency: usize,
    max_spool: u64,
    delete_old: bool,
    flush_timeout: Duration,

    /// Segments arrived, not yet being uploaded, with their arrival time.
    waiting: VecDeque<(Instant, SegmentReady)>,
    uploading: BTreeMap<u64, (Instant, SegmentReady)>,
    /// Sequence numbers in the order they arrived, not yet listed: the
    /// order of listing.
    order: VecDeque<u64>,
    /// Segments stored but waiting for an earlier one, or for their init,
    /// before being listed.
    stored: BTreeMap<u64, SegmentReady>,
    /// Init segments announced in this run, by name.
    inits: BTreeMap<String, Init>,
    /// Names of announced inits not yet being uploaded, in arrival order.
    init_queue: VecDeque<String>,
    /// Bytes of segments arrived and not yet stored.
    spool_bytes: u64,
    input_stopped: bool,
    /// A segment or an init failed for good: nothing more is uploaded or
    /// listed.
    failed: bool,
    /// When input ended, if it has.
    input_ended: Option<Instant>,

    playlist: Playlist,
    /// Beside each playlist entry, in the same order.
    listed: VecDeque<Listed>,
    /// The playlist changed since the last version was sent.
    dirty: bool,
    added: usize,
    /// What the next version makes happen once it lands.
    next_landing: Landing,
    in_flight: Option<Landing>,
    /// Keys to delete, by the time they are due (ties in order).
    deletions: Vec<(Instant, String)>,
    archive: Option<ArchiveState>,
    totals: Totals,
}

impl Schedule {
    pub fn new(cfg: &UploaderConfig) -> Self {
        Schedule {
            key_prefix: cfg.key_prefix.clone(),
            http_prefix: cfg.http_prefix.clone(),
            dated: cfg.program_date_time,
            keep_spool: cfg.keep_spool,
            concurrency: cfg.concurrency.max(1),
            max_spool: cfg.max_spool,
            delete_old: cfg.delete_old,
            flush_timeout: cfg.flush_timeout,
            waiting: VecDeque::new(),
            uploading: BTreeMap::new(),
            order: VecDeque::new(),
            stored: BTreeMap::new(),
            inits: BTreeMap::new(),
            init_queue: VecDeque::new(),
            spool_bytes: 0,
            input_stopped: false,
            failed: false,
            input_ended: None,
            playlist: Playlist::new(cfg.target, cfg.window),
            listed: VecDeque::new(),
            dirty: false,
            added: 0,
            next_landing: Landing::default(),
            in_flight: None,
            deletions: Vec::new(),
            archive: cfg.archive.as_ref().map(|a| ArchiveState {
                every: a.every,
                playlist: Playlist::archive(cfg.target),
                added: 0,
                added_media: MediaDuration::ZERO,
                sent_once: false,
                end_pending: false,
                spool: Vec::new(),
                in_flight: None,
            }),
            totals: Totals::default(),
        }
    }

    /// Continues a playlist an earlier run published. Its entries' keys
    /// come from their names (see [`restored_key`]).
    pub fn restore(&mut self, published: &Published) {
        self.playlist.restore(
            published.entries.clone(),
            published.media_sequence,
            published.discontinuity_sequence,
            published.target_duration,
        );
        // that playlist was published: it held every one of them
        let total = self.playlist.total();
        self.listed = published
            .entries
            .iter()
            .map(|e| Listed {
                key: restored_key(&self.key_prefix, &e.uri),
                longest: total,
            })
            .collect();
    }

    /// Continues the archive from what an earlier run published, first
    /// appending the segments it did not list yet (see
    /// [`crate::resume::plan_archive`]). Without an archive, does nothing.
    pub fn restore_archive(&mut self, plan: ArchivePlan) {
        let Some(a) = &mut self.archive else { return };
        if let Some(p) = &plan.restored {
            a.playlist.restore(
                p.entries.clone(),
                p.media_sequence,
                p.discontinuity_sequence,
                p.target_duration,
            );
        }
        for e in plan.backfill {
            a.add(e, None);
        }
        if !self.keep_spool {
            a.spool.extend(plan.spool);
        }
    }

    /// A segment arrived (from the segmenter, or left in the spool by an
    /// earlier run). An fMP4 segment's init is announced before it (see
    /// [`Schedule::init_arrived`]); until that init is stored it is not
    /// listed.
    pub fn arrived(&mut self, seg: SegmentReady, now: Instant) {
        if let Some(init) = seg.init.as_ref().filter(|n| !self.inits.contains_key(*n)) {
            log::warn!(
                "segment {} needs init segment {init}, which was not announced: \
                 it is not listed before that init is stored",
                seg.name
            );
        }
        self.order.push_back(seg.sequence);
        self.spool_bytes += seg.bytes;
        self.waiting.push_back((now, seg));
    }

    /// An init segment arrived (from the segmenter, or left in the spool by
    /// an earlier run): it is stored before anything else waiting. A name
    /// already announced in this run stands for the same bytes and is not
    /// stored again.
    pub fn init_arrived(&mut self, init: InitReady) {
        if self.inits.contains_key(&init.name) {
            log::debug!("init segment {} is stored once", init.name);
            return;
        }
        self.init_queue.push_back(init.name.clone());
        self.inits.insert(
            init.name.clone(),
            Init {
                init,
                status: InitStatus::Waiting,
            },
        );
    }

    /// No more segments will arrive.
    pub fn input_ended(&mut self, now: Instant) {
        self.input_ended.get_or_insert(now);
    }

    /// A segment's upload succeeded: list it, and the stored segments
    /// waiting behind it, in order.
    pub fn stored(&mut self, sequence: u64, now: Instant) {
        let Some((arrived, seg)) = self.uploading.remove(&sequence) else {
            return;
        };
        self.totals.longest_wait = self
            .totals
            .longest_wait
            .max(now.saturating_duration_since(arrived));
        self.spool_bytes -= seg.bytes;
        self.stored.insert(seg.sequence, seg);
        self.list_ready();
    }

    /// A segment's upload failed for good: it stays in the spool, and
    /// neither it nor any later segment is listed.
    pub fn store_failed(&mut self, sequence: u64) {
        self.uploading.remove(&sequence);
        self.failed = true;
    }

    /// An init segment's upload succeeded: list the stored segments that
    /// waited for it.
    pub fn init_stored(&mut self, name: &str) {
        if let Some(i) = self.inits.get_mut(name) {
            i.status = InitStatus::Stored;
        }
        self.list_ready();
    }

    /// An init segment's upload failed for good: no segment that needs it
    /// is listed, nor anything after it.
    pub fn init_store_failed(&mut self, name: &str) {
        if let Some(i) = self.inits.get_mut(name) {
            i.status = InitStatus::Failed;
        }
        self.failed = true;
    }

    /// The spool files of init segments, to remove once the run is done
    /// (each is returned once; none with `keep_spool`). Until then a
    /// segment left in the spool may still need one after a restart.
    pub fn finished_spool(&mut self) -> Vec<PathBuf> {
        if !self.is_done() || self.keep_spool {
            return Vec::new();
        }
        std::mem::take(&mut self.inits)
            .into_values()
            .map(|i| i.init.path)
            .collect()
    }

    /// The playlist version sent last has landed at `now`. Returns the
    /// spool files it made removable.
    pub fn playlist_published(&mut self, now: Instant) -> Vec<PathBuf> {
        let Some(landing) = self.in_flight.take() else {
            return Vec::new();
        };
        for (key, available) in landing.leaving {
            let due = now + available.to_std();
            let at = self.deletions.partition_point(|(t, _)| *t <= due);
            self.deletions.insert(at, (due, key));
        }
        landing.spool
    }

    /// The archive version sent last has landed. Returns the spool files
    /// it made removable.
    pub fn archive_published(&mut self) -> Vec<PathBuf> {
        self.archive
            .as_mut()
            .and_then(|a| a.in_flight.take())
            .unwrap_or_default()
    }

    /// What to do now, in order: stop the input, start uploads, publish a
    /// playlist version and an archive version, delete what is due, or
    /// give up.
    pub fn next(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.spool_bytes > self.max_spool && !self.input_stopped {
            self.input_stopped = true;
            actions.push(Action::StopInput {
                held: self.spool_bytes,
                limit: self.max_spool,
            });
        }
        actions.extend(self.start_uploads().into_iter().map(Action::Upload));
        self.end_when_drained();
        actions.extend(self.send_playlist().map(Action::Publish));
        actions.extend(self.send_archive().map(Action::PublishArchive));
        actions.extend(self.due_deletions(now).into_iter().map(Action::Delete));
        if self.flush_deadline().is_some_and(|d| now >= d) && !self.is_done() {
            actions.push(Action::GiveUp {
                remaining: self.order.len(),
            });
        }
        actions
    }

    /// When [`Schedule::next`] has something to do without any other
    /// event: the next deletion, or the flush deadline.
    pub fn wake_at(&self) -> Option<Instant> {
        let deletion = self.deletions.first().map(|d| d.0);
        [deletion, self.flush_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Input ended and everything is stored, listed and published.
    pub fn is_done(&self) -> bool {
        self.drained()
            && self.in_flight.is_none()
            && !self.dirty
            && self
                .archive
                .as_ref()
                .is_none_or(|a| a.in_flight.is_none() && !a.end_pending)
    }

    /// Keys left the playlist but not deleted yet.
    pub fn pending_deletions(&self) -> usize {
        self.deletions.len()
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.input_ended.map(|t| t + self.flush_timeout)
    }

    /// Input ended, and every segment that arrived is listed and every init
    /// stored.
    fn drained(&self) -> bool {
        self.input_ended.is_some()
            && self.waiting.is_empty()
            && self.uploading.is_empty()
            && self.order.is_empty()
            && self.init_queue.is_empty()
            && self.uploading_inits() == 0
    }

    fn uploading_inits(&self) -> usize {
        self.inits
            .values()
            .filter(|i| i.status == InitStatus::Uploading)
            .count()
    }

    /// Whether the init a segment needs (if any) is stored.
    fn init_ready(&self, seg: &SegmentReady) -> bool {
        seg.init.as_ref().is_none_or(|name| {
            self.inits
                .get(name)
                .is_some_and(|i| i.status == InitStatus::Stored)
        })
    }

    /// Lists the stored segments at the front of the order, as long as
    /// their inits are stored too.
    fn list_ready(&mut self) {
        if self.failed {
            return;
        }
        while let Some(&n) = self.order.front() {
            match self.stored.get(&n) {
                Some(seg) if self.init_ready(seg) => {}
                _ => break,
            }
            let seg = self.stored.remove(&n).expect("just found");
            self.order.pop_front();
            self.list(seg);
        }
    }

    fn start_uploads(&mut self) -> Vec<Upload> {
        let mut started = Vec::new();
        let mut busy = self.uploading.len() + self.uploading_inits();
        while !self.failed && busy < self.concurrency {
            if let Some(name) = self.init_queue.pop_front() {
                let i = self.inits.get_mut(&name).expect("queued inits are known");
                i.status = InitStatus::Uploading;
                started.push(Upload {
                    item: Item::Init(name),
                    key: object_key(&self.key_prefix, &i.init.name),
                    path: i.init.path.clone(),
                    bytes: i.init.bytes,
                    content_type: Packaging::Fmp4.content_type(i.init.audio_only),
                });
                busy += 1;
                continue;
            }
            let Some((arrived, seg)) = self.waiting.pop_front() else {
                break;
            };
            started.push(Upload {
                item: Item::Segment(seg.sequence),
                key: object_key(&self.key_prefix, &seg.name),
                path: seg.path.clone(),
                bytes: seg.bytes,
                content_type: seg.packaging.content_type(self.audio_only(&seg)),
            });
            self.uploading.insert(seg.sequence, (arrived, seg));
            busy += 1;
        }
        started
    }

    /// An fMP4 segment has no video when its init has none.
    fn audio_only(&self, seg: &SegmentReady) -> bool {
        seg.init
            .as_ref()
            .and_then(|name| self.inits.get(name))
            .is_some_and(|i| i.init.audio_only)
    }

    /// Once everything is stored, the playlists end: a final version of
    /// each (with EXT-X-ENDLIST) unless it is empty.
    fn end_when_drained(&mut self) {
        if !self.drained() || self.failed || self.playlist.has_ended() {
            return;
        }
        self.playlist.end();
        self.dirty = !self.playlist.is_empty();
        if let Some(a) = &mut self.archive {
            a.playlist.end();
            // the final version, even when nothing was added
            a.end_pending = !a.playlist.is_empty();
        }
    }

    fn send_playlist(&mut self) -> Option<Version> {
        if !self.dirty || self.in_flight.is_some() {
            return None;
        }
        self.dirty = false;
        self.in_flight = Some(std::mem::take(&mut self.next_landing));
        Some(Version::of(&self.playlist, std::mem::take(&mut self.added)))
    }

    fn send_archive(&mut self) -> Option<Version> {
        let a = self.archive.as_mut()?;
        (a.in_flight.is_none() && a.is_due()).then(|| a.send())
    }

    fn due_deletions(&mut self, now: Instant) -> Vec<String> {
        let due = self.deletions.partition_point(|(t, _)| *t <= now);
        self.deletions.drain(..due).map(|(_, key)| key).collect()
    }

    /// Lists a stored segment: in the archive, and in the rolling playlist,
    /// where it may push older entries out.
    fn list(&mut self, seg: SegmentReady) {
        let entry = Entry::of_segment(&seg, &self.http_prefix, self.dated);
        let spool = (!self.keep_spool).then(|| seg.path.clone());
        match &mut self.archive {
            Some(a) => a.add(entry.clone(), spool),
            None => self.next_landing.spool.extend(spool),
        }
        self.totals.segments += 1;
        self.totals.bytes += seg.bytes;
        self.totals.media += seg.duration;
        let key = object_key(&self.key_prefix, &seg.name);
        self.push(entry, Some(key));
        self.added += 1;
        self.dirty = true;
    }

    /// Appends to the rolling playlist; entries that leave it are deleted
    /// later with `delete_old` (never with an archive, which lists them all).
    /// Only the media segment is deleted, never the init segment of its
    /// EXT-X-MAP: later entries (or the archive) may need the same init, and
    /// a restart that makes the same bytes names it the same. Inits are a
    /// few hundred bytes; a bucket lifecycle rule can remove them after the
    /// event.
    fn push(&mut self, entry: Entry, key: Option<String>) {
        let removed = self.playlist.push(entry);
        self.listed.push_back(Listed {
            key,
            longest: MediaDuration::ZERO,
        });
        let gone: Vec<Listed> = self.listed.drain(..removed.len()).collect();
        let total = self.playlist.total();
        for l in &mut self.listed {
            l.longest = l.longest.max(total);
        }
        if !self.delete_old || self.archive.is_some() {
            return;
        }
        for (entry, listed) in removed.iter().zip(gone) {
            match listed.key {
                // RFC 8216 §6.2.2: available for its duration plus that of
                // the longest playlist that held it
                Some(key) => self
                    .next_landing
                    .leaving
                    .push((key, entry.duration + listed.longest)),
                None => log::debug!("{} names no object to delete", entry.uri),
            }
        }
    }
}

/// The object key of a segment in a playlist an earlier run published: its
/// name (the last part of its URI; segment names hold no `/`) under the key
/// prefix, whatever http prefix that run wrote before it. `None` when the
/// URI ends without a name.
pub fn restored_key(key_prefix: &str, uri: &str) -> Option<String> {
    let name = uri.rsplit('/').next().unwrap_or(uri);
    (!name.is_empty() && name != "." && name != "..").then(|| object_key(key_prefix, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaTime;
    use crate::timeline::TICKS_PER_SECOND;
    use crate::uploader::ArchiveConfig;
    use chrono::{TimeZone, Utc};

    const S: i64 = TICKS_PER_SECOND;

    /// Window 3 of 4 s segments.
    fn config() -> UploaderConfig {
        UploaderConfig {
            window: 3,
            program_date_time: false,
            ..UploaderConfig::new("live/event", "index.m3u8", MediaDuration(4 * S))
        }
    }

    fn segment(n: u64, secs: i64) -> SegmentReady {
        SegmentReady {
            sequence: n,
            name: format!("s-{n:05}.ts"),
            path: PathBuf::from(format!("/spool/s-{n:05}.ts")),
            bytes: 10,
            start: MediaTime(0),
            duration: MediaDuration(secs * S),
            discontinuity: false,
            program_date_time: Utc.with_ymd_and_hms(2026, 11, 21, 20, 0, 0).unwrap(),
            packaging: crate::media::Packaging::Ts,
            init: None,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn uploads(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Upload(Upload {
                    item: Item::Segment(n),
                    ..
                }) => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// What the playlist version among `actions` lists, if there is one.
    fn listed(actions: &[Action]) -> Option<Vec<u64>> {
        actions.iter().find_map(|a| match a {
            Action::Publish(v) => Some(v.sequences.clone()),
            _ => None,
        })
    }

    fn archived(actions: &[Action]) -> Option<&Version> {
        actions.iter().find_map(|a| match a {
            Action::PublishArchive(v) => Some(v),
            _ => None,
        })
    }

    fn deleted(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete(k) => Some(k.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Segment `n` arrives, is stored, and the version that lists it lands,
    /// all at `at`.
    fn publish_one(s: &mut Schedule, seg: SegmentReady, at: Instant) -> Vec<Action> {
        let n = seg.sequence;
        s.arrived(seg, at);
        assert_eq!(uploads(&s.next(at)), [n]);
        s.stored(n, at);
        let actions = s.next(at);
        assert!(listed(&actions).is_some_and(|l| l.ends_with(&[n])));
        s.playlist_published(at);
        actions
    }

    #[test]
    fn uploads_start_in_arrival_order_up_to_the_concurrency() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            concurrency: 2,
            ..config()
        });
        for n in 1..=5 {
            s.arrived(segment(n, 4), t0);
        }
        let first = s.next(t0);
        assert_eq!(uploads(&first), [1, 2]);
        assert_eq!(listed(&first), None, "nothing is stored yet");
        s.stored(2, t0 + ms(10));
        let second = s.next(t0 + ms(10));
        assert_eq!(uploads(&second), [3]);
        assert_eq!(listed(&second), None, "2 waits for 1");
        s.stored(1, t0 + ms(20));
        let third = s.next(t0 + ms(20));
        assert_eq!(uploads(&third), [4]);
        assert_eq!(listed(&third), Some(vec![1, 2]));
        assert_eq!(s.totals().longest_wait, ms(20));
    }

    #[test]
    fn out_of_order_stores_are_listed_in_order_one_version_at_a_time() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            window: 5,
            ..config()
        });
        for n in 1..=4 {
            s.arrived(segment(n, 4), t0);
        }
        assert_eq!(uploads(&s.next(t0)), [1, 2, 3, 4]);
        s.stored(4, t0);
        s.stored(3, t0);
        assert_eq!(listed(&s.next(t0)), None, "3 and 4 wait for 1 and 2");
        s.stored(1, t0);
        assert_eq!(listed(&s.next(t0)), Some(vec![1]));
        s.stored(2, t0);
        assert_eq!(listed(&s.next(t0)), None, "one version in flight at a time");
        s.playlist_published(t0);
        let caught_up = s.next(t0);
        assert_eq!(listed(&caught_up), Some(vec![1, 2, 3, 4]));
        let Some(Action::Publish(v)) = caught_up.first() else {
            panic!("{caught_up:?}")
        };
        assert_eq!(v.added, 3);
        assert!(String::from_utf8_lossy(&v.text).ends_with("s-00004.ts\n"));
        assert_eq!(v.target_duration, 4);
    }

    #[test]
    fn a_segment_that_failed_stops_the_listing() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&config());
        for n in 1..=3 {
            s.arrived(segment(n, 4), t0);
        }
        assert_eq!(uploads(&s.next(t0)), [1, 2, 3]);
        s.stored(1, t0);
        assert_eq!(listed(&s.next(t0)), Some(vec![1]));
        s.playlist_published(t0);
        s.store_failed(2);
        s.stored(3, t0);
        s.arrived(segment(4, 4), t0);
        s.input_ended(t0);
        let after = s.next(t0);
        assert_eq!(listed(&after), None, "3 is never listed past the failed 2");
        assert_eq!(uploads(&after), Vec::<u64>::new(), "nothing more starts");
        assert!(!s.is_done(), "the playlist is never ended over a gap");
        assert_eq!(s.totals().segments, 1);
    }

    fn init(hex: char, audio_only: bool) -> InitReady {
        let name = format!("s-init-{}.mp4", hex.to_string().repeat(16));
        InitReady {
            path: PathBuf::from(format!("/spool/{name}")),
            name,
            bytes: 700,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            audio_only,
        }
    }

    /// An fMP4 segment of 4 s that needs `init`.
    fn fmp4(n: u64, init: &InitReady) -> SegmentReady {
        SegmentReady {
            name: format!("s-{n:05}.m4s"),
            path: PathBuf::from(format!("/spool/s-{n:05}.m4s")),
            packaging: Packaging::Fmp4,
            init: Some(init.name.clone()),
            ..segment(n, 4)
        }
    }

    fn started(actions: &[Action]) -> Vec<&Upload> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Upload(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    fn text(actions: &[Action]) -> String {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Publish(v) => Some(String::from_utf8_lossy(&v.text).into_owned()),
                _ => None,
            })
            .expect("a playlist version")
    }

    fn fmp4_config() -> UploaderConfig {
        UploaderConfig {
            http_prefix: "https://cdn.example/live/".into(),
            ..config()
        }
    }

    #[test]
    fn an_init_is_stored_before_the_first_version_that_lists_a_segment_needing_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&fmp4_config());
        let a = init('a', false);
        s.init_arrived(a.clone());
        s.arrived(fmp4(1, &a), t0);
        let first = s.next(t0);
        let ups = started(&first);
        assert_eq!(ups.len(), 2);
        assert_eq!(
            ups[0].item,
            Item::Init(a.name.clone()),
            "the init goes first"
        );
        assert_eq!(ups[0].key, format!("live/event/{}", a.name));
        assert_eq!(ups[0].path, a.path);
        assert_eq!(ups[0].content_type, "video/mp4");
        assert_eq!(ups[1].item, Item::Segment(1));
        assert_eq!(ups[1].key, "live/event/s-00001.m4s");
        assert_eq!(ups[1].content_type, "video/mp4");
        // the segment is stored first: it waits for its init
        s.stored(1, t0);
        assert_eq!(listed(&s.next(t0)), None, "its init is not stored yet");
        s.init_stored(&a.name);
        let version = s.next(t0);
        assert_eq!(listed(&version), Some(vec![1]));
        let text = text(&version);
        assert!(text.contains("#EXT-X-VERSION:6\n"), "{text}");
        assert!(text.contains(&format!(
            "#EXT-X-MAP:URI=\"https://cdn.example/live/{}\"\n#EXTINF:4.000,\n\
             https://cdn.example/live/s-00001.m4s\n",
            a.name
        )));
    }

    #[test]
    fn a_segment_whose_init_failed_for_good_is_never_listed() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&fmp4_config());
        let a = init('a', false);
        s.init_arrived(a.clone());
        s.arrived(fmp4(1, &a), t0);
        s.arrived(fmp4(2, &a), t0);
        assert_eq!(uploads(&s.next(t0)), [1, 2]);
        s.stored(1, t0);
        assert_eq!(listed(&s.next(t0)), None, "1 waits for its init");
        s.init_store_failed(&a.name);
        s.stored(2, t0);
        s.arrived(fmp4(3, &a), t0);
        s.input_ended(t0);
        let after = s.next(t0);
        assert_eq!(listed(&after), None, "nothing is listed without its init");
        assert!(started(&after).is_empty(), "nothing more starts");
        assert!(!s.is_done(), "the playlist is never ended without it");
        assert!(s.finished_spool().is_empty(), "the init stays in the spool");
        assert_eq!(s.totals().segments, 0);
    }

    #[test]
    fn an_init_announced_again_is_not_stored_again() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&fmp4_config());
        let a = init('a', false);
        s.init_arrived(a.clone());
        s.arrived(fmp4(1, &a), t0);
        let first = s.next(t0);
        assert_eq!(started(&first).len(), 2);
        s.init_stored(&a.name);
        s.stored(1, t0);
        assert_eq!(listed(&s.next(t0)), Some(vec![1]));
        s.playlist_published(t0);
        // the second segment of the same init, announced again (a leftover
        // of an earlier run and this run's segmenter both have it)
        s.init_arrived(a.clone());
        s.arrived(fmp4(2, &a), t0);
        let second = s.next(t0);
        let ups = started(&second);
        assert_eq!(ups.len(), 1, "{ups:?}");
        assert_eq!(ups[0].item, Item::Segment(2));
        s.stored(2, t0);
        let version = s.next(t0);
        assert_eq!(listed(&version), Some(vec![1, 2]));
        assert_eq!(text(&version).matches("#EXT-X-MAP:").count(), 1);
    }

    #[test]
    fn a_new_init_mid_run_is_stored_and_mapped_before_the_first_entry_that_needs_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            window: 5,
            ..fmp4_config()
        });
        let (a, b) = (init('a', false), init('b', false));
        s.init_arrived(a.clone());
        for n in 1..=2 {
            s.arrived(fmp4(n, &a), t0);
        }
        s.next(t0);
        s.init_stored(&a.name);
        s.stored(1, t0);
        s.stored(2, t0);
        assert_eq!(listed(&s.next(t0)), Some(vec![1, 2]));
        s.playlist_published(t0);
        // a new resolution: a new init, then the segments that need it
        s.init_arrived(b.clone());
        s.arrived(fmp4(3, &b), t0);
        s.arrived(fmp4(4, &b), t0);
        let ups = started(&s.next(t0))
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(
            ups.iter().map(|u| u.item.clone()).collect::<Vec<_>>(),
            [
                Item::Init(b.name.clone()),
                Item::Segment(3),
                Item::Segment(4)
            ]
        );
        s.stored(3, t0);
        s.stored(4, t0);
        assert_eq!(listed(&s.next(t0)), None, "3 and 4 wait for b");
        s.init_stored(&b.name);
        let version = s.next(t0);
        assert_eq!(listed(&version), Some(vec![1, 2, 3, 4]));
        let text = text(&version);
        let map =
            |i: &InitReady| format!("#EXT-X-MAP:URI=\"https://cdn.example/live/{}\"\n", i.name);
        assert!(text.contains(&format!(
            "{}#EXTINF:4.000,\nhttps://cdn.example/live/s-00001.m4s\n",
            map(&a)
        )));
        assert!(text.contains(&format!(
            "s-00002.m4s\n{}#EXTINF:4.000,\nhttps://cdn.example/live/s-00003.m4s\n",
            map(&b)
        )));
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
    }

    #[test]
    fn audio_only_inits_and_their_segments_are_audio_mp4() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&fmp4_config());
        let radio = init('c', true);
        s.init_arrived(radio.clone());
        s.arrived(fmp4(1, &radio), t0);
        let actions = s.next(t0);
        let types: Vec<&str> = started(&actions).iter().map(|u| u.content_type).collect();
        assert_eq!(types, ["audio/mp4", "audio/mp4"]);
    }

    #[test]
    fn init_spool_files_go_once_the_run_is_done_and_count_toward_the_concurrency() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            concurrency: 1,
            ..fmp4_config()
        });
        let a = init('a', false);
        s.init_arrived(a.clone());
        s.arrived(fmp4(1, &a), t0);
        let first = s.next(t0);
        assert_eq!(started(&first).len(), 1, "one upload at a time");
        assert_eq!(started(&first)[0].item, Item::Init(a.name.clone()));
        s.init_stored(&a.name);
        assert_eq!(uploads(&s.next(t0)), [1]);
        s.stored(1, t0);
        s.input_ended(t0);
        let end = s.next(t0);
        assert!(text(&end).ends_with("s-00001.m4s\n#EXT-X-ENDLIST\n"));
        assert!(
            s.finished_spool().is_empty(),
            "the final version is in flight"
        );
        assert_eq!(
            s.playlist_published(t0),
            [PathBuf::from("/spool/s-00001.m4s")]
        );
        assert!(s.is_done());
        assert_eq!(s.finished_spool(), vec![a.path.clone()]);
        assert!(s.finished_spool().is_empty(), "once");
        let mut kept = Schedule::new(&UploaderConfig {
            keep_spool: true,
            ..fmp4_config()
        });
        kept.init_arrived(a.clone());
        kept.input_ended(t0);
        kept.next(t0);
        kept.init_stored(&a.name);
        kept.next(t0);
        assert!(kept.is_done());
        assert!(kept.finished_spool().is_empty(), "--keep-spool keeps it");
    }

    #[test]
    fn delete_old_deletes_fmp4_segments_but_never_their_init() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            delete_old: true,
            ..fmp4_config()
        });
        let (a, b) = (init('a', false), init('b', false));
        let mut deletes = Vec::new();
        for n in 1..=8 {
            let i = if n <= 4 { &a } else { &b };
            if n == 1 || n == 5 {
                s.init_arrived(i.clone());
            }
            s.arrived(fmp4(n, i), t0);
            for action in s.next(t0) {
                if let Action::Upload(Upload {
                    item: Item::Init(name),
                    ..
                }) = action
                {
                    s.init_stored(&name);
                }
            }
            s.stored(n, t0);
            assert!(listed(&s.next(t0)).is_some_and(|l| l.ends_with(&[n])));
            s.playlist_published(t0);
            let later = t0 + Duration::from_secs(3600);
            deletes.extend(deleted(&s.next(later)).into_iter().map(String::from));
        }
        // window 3: 1 to 5 left, a among them; a and b stay
        assert_eq!(
            deletes,
            (1..=5)
                .map(|n| format!("live/event/s-{n:05}.m4s"))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_segment_is_deleted_once_the_version_without_it_landed_and_it_expired() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            delete_old: true,
            ..config()
        });
        for n in 1..=3 {
            publish_one(&mut s, segment(n, 4), t0);
        }
        // segment 1 leaves with segment 4; that version lands at t1
        s.arrived(segment(4, 4), t0);
        s.next(t0);
        s.stored(4, t0);
        assert_eq!(listed(&s.next(t0)), Some(vec![2, 3, 4]));
        assert_eq!(s.wake_at(), None, "no clock before the version lands");
        let t1 = t0 + Duration::from_secs(1);
        s.playlist_published(t1);
        // its 4 s plus the 12 s of the playlists that held it
        let due = t1 + Duration::from_secs(16);
        assert_eq!(s.wake_at(), Some(due));
        assert_eq!(deleted(&s.next(due - ms(1))), Vec::<&str>::new());
        assert_eq!(deleted(&s.next(due)), ["live/event/s-00001.ts"]);
        assert_eq!(s.wake_at(), None);
        assert_eq!(s.pending_deletions(), 0);
    }

    #[test]
    fn the_wait_is_for_the_longest_playlist_that_held_a_segment() {
        // 2 s segments and a window of 3, but a 7 s segment raises the
        // target to 7: the playlist grows to 3 x 7 s and shrinks again once
        // that segment leaves
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            delete_old: true,
            ..UploaderConfig::new("live/event", "index.m3u8", MediaDuration(2 * S))
        });
        for n in 1..=14 {
            publish_one(&mut s, segment(n, if n == 2 { 7 } else { 2 }), t0);
        }
        let secs = Duration::from_secs;
        // 1 (2 s) left at 21 s; 3 (2 s) left a playlist of 22 s, but an
        // earlier one that held it lasted 27 s; 2 (7 s) left after 27 s
        assert_eq!(s.wake_at(), Some(t0 + secs(23)));
        assert_eq!(deleted(&s.next(t0 + secs(23))), ["live/event/s-00001.ts"]);
        assert_eq!(
            deleted(&s.next(t0 + secs(28))),
            Vec::<&str>::new(),
            "3 is still needed by players that loaded the 27 s playlist"
        );
        assert_eq!(deleted(&s.next(t0 + secs(29))), ["live/event/s-00003.ts"]);
        assert_eq!(deleted(&s.next(t0 + secs(34))), ["live/event/s-00002.ts"]);
    }

    #[test]
    fn a_restored_entry_is_deleted_by_its_name_under_the_key_prefix() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            delete_old: true,
            http_prefix: "https://new.example/".into(),
            ..config()
        });
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n\
                    #EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:4.000,\n\
                    https://old.example/live/s-00001.ts\n#EXTINF:4.000,\n\
                    https://old.example/live/s-00002.ts\n#EXTINF:4.000,\n\
                    https://old.example/live/s-00003.ts\n";
        let published =
            crate::resume::parse_published(text.as_bytes(), "https://new.example/", "s").unwrap();
        s.restore(&published);
        publish_one(&mut s, segment(4, 4), t0);
        // restored: held by the 12 s playlist it was published in
        assert_eq!(
            deleted(&s.next(t0 + Duration::from_secs(16))),
            ["live/event/s-00001.ts"]
        );
    }

    #[test]
    fn a_restored_entry_is_keyed_by_its_name() {
        let key = |uri| restored_key("live/event", uri);
        assert_eq!(
            key("https://cdn.example/old/s-00001.ts").as_deref(),
            Some("live/event/s-00001.ts")
        );
        assert_eq!(key("s-00002.ts").as_deref(), Some("live/event/s-00002.ts"));
        assert_eq!(
            restored_key("", "a/s-00003.ts").as_deref(),
            Some("s-00003.ts")
        );
        assert_eq!(key("https://cdn.example/dir/"), None);
        assert_eq!(key(".."), None);
    }

    #[test]
    fn the_archive_is_due_with_its_first_segment_every_interval_and_at_the_end() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            archive: Some(ArchiveConfig {
                name: "archive.m3u8".into(),
                every: MediaDuration(12 * S),
            }),
            delete_old: true,
            ..config()
        });
        let first = publish_one(&mut s, segment(1, 4), t0);
        let v = archived(&first).expect("the first segment at once");
        assert_eq!((v.sequences.clone(), v.added), (vec![1], 1));
        let second = publish_one(&mut s, segment(2, 4), t0);
        assert!(
            archived(&second).is_none(),
            "one version in flight at a time"
        );
        assert_eq!(s.archive_published(), [PathBuf::from("/spool/s-00001.ts")]);
        assert!(archived(&s.next(t0)).is_none(), "4 s added, not 12");
        publish_one(&mut s, segment(3, 4), t0);
        let fourth = publish_one(&mut s, segment(4, 4), t0);
        let v = archived(&fourth).expect("12 s added");
        assert_eq!((v.sequences.clone(), v.added), (vec![1, 2, 3, 4], 3));
        assert_eq!(s.archive_published().len(), 3);
        // the last segment, then the end
        s.arrived(segment(5, 4), t0);
        s.input_ended(t0);
        s.next(t0);
        s.stored(5, t0);
        let end = s.next(t0);
        let rolling = listed(&end).unwrap();
        assert_eq!(rolling, [3, 4, 5]);
        let v = archived(&end).expect("the final archive");
        assert_eq!(v.sequences, [1, 2, 3, 4, 5]);
        let text = String::from_utf8_lossy(&v.text);
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && text.ends_with("#EXT-X-ENDLIST\n"));
        assert!(!s.is_done(), "both versions are in flight");
        // the rolling playlist deletes nothing: the archive lists it all
        assert!(
            s.playlist_published(t0).is_empty(),
            "spool files wait for the archive"
        );
        assert_eq!(s.archive_published(), [PathBuf::from("/spool/s-00005.ts")]);
        assert!(s.is_done());
        assert_eq!(s.pending_deletions(), 0, "no deletions with an archive");
        assert_eq!(s.next(t0 + Duration::from_secs(3600)), []);
    }

    #[test]
    fn the_end_publishes_a_final_version_and_removes_the_spool_after_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&config());
        publish_one(&mut s, segment(1, 4), t0);
        s.arrived(segment(2, 4), t0);
        s.next(t0);
        s.stored(2, t0);
        s.input_ended(t0);
        let end = s.next(t0);
        let Some(Action::Publish(v)) = end.first() else {
            panic!("{end:?}")
        };
        assert!(String::from_utf8_lossy(&v.text).ends_with("s-00002.ts\n#EXT-X-ENDLIST\n"));
        assert!(!s.is_done());
        assert_eq!(
            s.playlist_published(t0),
            [PathBuf::from("/spool/s-00002.ts")]
        );
        assert!(s.is_done());
        assert_eq!(s.totals().segments, 2);
        assert_eq!(s.totals().media, MediaDuration(8 * S));
    }

    #[test]
    fn too_many_bytes_waiting_stop_the_input_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            max_spool: 25,
            ..config()
        });
        s.arrived(segment(1, 4), t0);
        s.arrived(segment(2, 4), t0);
        assert!(!s
            .next(t0)
            .iter()
            .any(|a| matches!(a, Action::StopInput { .. })));
        s.arrived(segment(3, 4), t0);
        let full = s.next(t0);
        assert_eq!(
            full.first(),
            Some(&Action::StopInput {
                held: 30,
                limit: 25
            })
        );
        s.arrived(segment(4, 4), t0);
        assert!(!s
            .next(t0)
            .iter()
            .any(|a| matches!(a, Action::StopInput { .. })));
    }

    #[test]
    fn once_input_ended_what_is_left_must_be_stored_within_the_flush_timeout() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&UploaderConfig {
            flush_timeout: Duration::from_secs(60),
            concurrency: 1,
            ..config()
        });
        s.arrived(segment(1, 4), t0);
        s.arrived(segment(2, 4), t0);
        s.next(t0);
        s.input_ended(t0 + Duration::from_secs(5));
        let deadline = t0 + Duration::from_secs(65);
        assert_eq!(s.wake_at(), Some(deadline));
        assert!(!s
            .next(deadline - ms(1))
            .iter()
            .any(|a| matches!(a, Action::GiveUp { .. })));
        assert_eq!(
            s.next(deadline).last(),
            Some(&Action::GiveUp { remaining: 2 })
        );
    }
}
