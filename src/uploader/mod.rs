//! The storage side: store each segment, then publish the playlist that
//! lists it.
//!
//! Segments upload concurrently (up to `concurrency` at once), but enter the
//! playlist strictly in sequence order, and only after they are stored.
//! Playlist versions are published one at a time, so an older version can
//! never land after a newer one; while one is in flight, newer changes wait
//! and go up together as the next version.

pub mod retry;
pub mod s3;
pub mod schedule;
pub mod store;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::channel::{Inbox, Received};
use crate::playlist::{Entry, Playlist};
use crate::segmenter::SegmentReady;
use crate::timeline::{format_secs, TICKS_PER_SECOND};
use retry::{Retrier, RetryPolicy};
use schedule::restored_key;
use store::{Body, ObjectMeta, Store, StoreError};

pub const SEGMENT_CONTENT_TYPE: &str = "video/mp2t";
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
pub const DEFAULT_SEGMENT_CACHE_CONTROL: &str = "public, max-age=86400";

/// Opens a destination: a local directory, or an S3 bucket through the
/// standard credential chain (checked, but the bucket is not contacted).
pub async fn open_store(
    destination: &crate::cli::Destination,
    s3: &crate::cli::S3Args,
    acl: Option<String>,
    connect_timeout: Duration,
) -> Result<Arc<dyn Store>, String> {
    match destination {
        crate::cli::Destination::Local(dir) => match store::LocalDirStore::open(dir) {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => Err(format!("cannot open destination {}: {e}", dir.display())),
        },
        crate::cli::Destination::S3 { bucket } => {
            let store = connect_s3(bucket, s3, acl, connect_timeout).await?;
            Ok(Arc::new(store))
        }
    }
}

/// An S3 bucket through the standard credential chain and the command
/// line's S3 options (see [`s3::S3Store::connect`]).
pub async fn connect_s3(
    bucket: &str,
    s3: &crate::cli::S3Args,
    acl: Option<String>,
    connect_timeout: Duration,
) -> Result<s3::S3Store, String> {
    let opts = s3::S3Options {
        bucket: bucket.to_string(),
        region: s3.region.clone(),
        endpoint_url: s3.endpoint_url.clone(),
        path_style: s3.path_style,
        acl,
        connect_timeout,
    };
    s3::S3Store::connect(&opts)
        .await
        .map_err(|e| format!("S3 destination {bucket}: {e}"))
}

pub struct UploaderConfig {
    /// Prefix of every key, already normalized (no leading or trailing `/`).
    pub key_prefix: String,
    pub index_name: String,
    /// Written before each segment name in the playlist.
    pub http_prefix: String,
    /// Target segment duration in ticks.
    pub target: i64,
    pub window: usize,
    pub program_date_time: bool,
    pub keep_spool: bool,
    pub segment_cache_control: String,
    /// `None`: `max-age=` half the target duration, at least 1 s.
    pub playlist_cache_control: Option<String>,
    /// Segment uploads at once.
    pub concurrency: usize,
    /// Bytes of segments not yet stored that may wait in the spool.
    pub max_spool: u64,
    /// Delete segments some time after they leave the playlist.
    pub delete_old: bool,
    pub retry: RetryPolicy,
    /// How long to keep trying to store what is left once input has ended.
    pub flush_timeout: Duration,
    /// Also keep an archive playlist of the whole event.
    pub archive: Option<ArchiveConfig>,
}

/// The archive playlist: every segment of the event.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Its object name beside the rolling playlist.
    pub name: String,
    /// Publish a new version once this many ticks of media were added since
    /// the last one (and always at the end).
    pub every: i64,
}

impl UploaderConfig {
    /// A configuration with the command line's defaults.
    pub fn new(key_prefix: &str, index_name: &str, target: i64) -> Self {
        UploaderConfig {
            key_prefix: key_prefix.to_string(),
            index_name: index_name.to_string(),
            http_prefix: String::new(),
            target,
            window: 5,
            program_date_time: true,
            keep_spool: false,
            segment_cache_control: DEFAULT_SEGMENT_CACHE_CONTROL.to_string(),
            playlist_cache_control: None,
            concurrency: 4,
            max_spool: 1 << 30,
            delete_old: false,
            retry: RetryPolicy::default(),
            flush_timeout: Duration::from_secs(60),
            archive: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{destination}: {source}")]
    Store {
        key: String,
        destination: String,
        #[source]
        source: StoreError,
    },
    #[error(
        "{held} bytes of segments wait in the spool, more than --max-spool {limit}: \
         the destination has been failing for too long"
    )]
    SpoolFull { held: u64, limit: u64 },
    #[error("gave up storing after {secs} s once input had ended: {count} segment(s) remain in the spool")]
    FlushTimeout { count: usize, secs: u64 },
}

/// What a run published.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    pub segments: u64,
    pub bytes: u64,
    pub playlist_versions: u64,
    /// Bytes of all playlist versions published.
    pub playlist_bytes: u64,
    pub archive_versions: u64,
    pub archive_bytes: u64,
    pub media_ticks: i64,
    pub deleted: u64,
    /// Store requests sent, and how many of them were retries.
    pub attempts: u64,
    pub retries: u64,
    /// The longest a segment waited between being cut and being stored.
    pub longest_wait: Duration,
}

/// Joins a key prefix and a name without producing `//` or a leading `/`.
pub fn object_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Content type and Cache-Control of a playlist: --playlist-cache-control,
/// or `max-age=` half its target duration (at least 1 s), so that a CDN
/// never serves one staler than that.
fn playlist_meta(cfg: &UploaderConfig, playlist: &Playlist) -> ObjectMeta {
    ObjectMeta {
        content_type: PLAYLIST_CONTENT_TYPE.to_string(),
        cache_control: cfg
            .playlist_cache_control
            .clone()
            .unwrap_or_else(|| format!("max-age={}", (playlist.target_duration() / 2).max(1))),
    }
}

/// Logs a published playlist version: a summary at debug level, the whole
/// text at trace level (the tests read it back).
fn log_version(key: &str, version: u64, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    log::debug!(
        "published {key} version {version} ({} segment(s){})",
        text.matches("#EXTINF").count(),
        if text.contains("#EXT-X-ENDLIST") {
            ", ended"
        } else {
            ""
        }
    );
    log::trace!("playlist {key} version {version}:\n{text}");
}

type SegmentResult = (Instant, SegmentReady, Result<(), StoreError>);
/// The outcome of a playlist PUT, with what depends on it: keys to delete
/// later and spool files to remove.
type PlaylistResult = (
    Result<(), StoreError>,
    Vec<(String, i64)>,
    Vec<std::path::PathBuf>,
    Arc<Vec<u8>>,
);

pub struct Uploader {
    store: Arc<dyn Store>,
    retrier: Retrier,
    cfg: UploaderConfig,
    playlist: Playlist,
    summary: UploadSummary,
    stop: Arc<AtomicBool>,
    /// Segments received, not yet being uploaded, with their arrival time.
    waiting: VecDeque<(Instant, SegmentReady)>,
    /// Sequence numbers in the order they arrived: the order of listing.
    order: VecDeque<u64>,
    /// Segments stored but waiting for an earlier one before being listed.
    stored: BTreeMap<u64, SegmentReady>,
    /// Spool files of listed segments, removed once a playlist that lists
    /// them is published.
    listed_spool: Vec<std::path::PathBuf>,
    spool_bytes: u64,
    /// The playlist changed since the last version was sent.
    dirty: bool,
    /// The object key of each playlist entry, in the same order (`None` for
    /// a restored entry whose URI names no object).
    listed_keys: VecDeque<Option<String>>,
    /// Keys that left the playlist in a version not yet published, with the
    /// ticks they must stay available once it is.
    leaving: Vec<(String, i64)>,
    deletions: VecDeque<(Instant, String)>,
    archive: Option<Archive>,
}

/// The archive's state beside the rolling playlist.
struct Archive {
    key: String,
    every: i64,
    playlist: Playlist,
    /// Entries added since the last version was sent, and their ticks.
    added: usize,
    added_ticks: i64,
    sent_once: bool,
    /// The stream ended; the final version (VOD) is still to be sent.
    end_pending: bool,
    /// Spool files of segments in a version not yet published: with an
    /// archive they stay until it lists them, so a restart can add them.
    spool: Vec<std::path::PathBuf>,
}

/// The outcome of an archive PUT: spool files it made removable.
type ArchiveResult = (
    Result<(), StoreError>,
    Vec<std::path::PathBuf>,
    Arc<Vec<u8>>,
);

impl Uploader {
    /// `stop` is raised when the uploader can take no more segments (the
    /// spool limit was reached), so that the segmenter stops reading.
    pub fn new(store: Arc<dyn Store>, cfg: UploaderConfig, stop: Arc<AtomicBool>) -> Self {
        let archive = cfg.archive.as_ref().map(|a| Archive {
            key: object_key(&cfg.key_prefix, &a.name),
            every: a.every,
            playlist: Playlist::archive(cfg.target),
            added: 0,
            added_ticks: 0,
            sent_once: false,
            end_pending: false,
            spool: Vec::new(),
        });
        Uploader {
            archive,
            playlist: Playlist::new(cfg.target, cfg.window),
            retrier: Retrier::new(cfg.retry.clone()),
            store,
            cfg,
            summary: UploadSummary::default(),
            stop,
            waiting: VecDeque::new(),
            order: VecDeque::new(),
            stored: BTreeMap::new(),
            listed_spool: Vec::new(),
            spool_bytes: 0,
            dirty: false,
            listed_keys: VecDeque::new(),
            leaving: Vec::new(),
            deletions: VecDeque::new(),
        }
    }

    pub fn index_key(&self) -> String {
        object_key(&self.cfg.key_prefix, &self.cfg.index_name)
    }

    /// The archive playlist's key, with --archive.
    pub fn archive_key(&self) -> Option<String> {
        self.archive.as_ref().map(|a| a.key.clone())
    }

    /// Reads a playlist object at the destination, if it exists.
    pub async fn fetch(&self, key: &str) -> Result<Option<Vec<u8>>, UploadError> {
        let store = self.store.clone();
        let what = format!("GET {key}");
        self.retrier
            .run(&what, || store.get(key.to_string()))
            .await
            .map_err(|source| self.error(key, source))
    }

    /// Reads the playlist already at the destination, if any. This is the
    /// first contact with the store, so wrong credentials, a missing bucket
    /// or an unreachable endpoint fail here, before any input is read.
    pub async fn existing_playlist(&self) -> Result<Option<Vec<u8>>, UploadError> {
        self.fetch(&self.index_key()).await
    }

    /// Publishes every segment that arrives until the segmenter ends, then
    /// the final playlist with EXT-X-ENDLIST.
    pub async fn run(mut self, inbox: Inbox) -> Result<UploadSummary, UploadError> {
        let mut uploads: JoinSet<SegmentResult> = JoinSet::new();
        let mut publishing: JoinSet<PlaylistResult> = JoinSet::new();
        let mut deleting: JoinSet<(String, Result<(), StoreError>)> = JoinSet::new();
        let mut archiving: JoinSet<ArchiveResult> = JoinSet::new();
        let mut ended = false;
        let mut flush_deadline: Option<Instant> = None;
        let mut spool_full: Option<UploadError> = None;
        loop {
            while !ended {
                match inbox.try_recv() {
                    Received::Segment(seg) => self.queue(seg),
                    Received::Empty => break,
                    Received::Ended => {
                        ended = true;
                        flush_deadline = Some(Instant::now() + self.cfg.flush_timeout);
                    }
                }
            }
            if self.spool_bytes > self.cfg.max_spool && spool_full.is_none() {
                let err = UploadError::SpoolFull {
                    held: self.spool_bytes,
                    limit: self.cfg.max_spool,
                };
                log::error!("{err}; stopping input and trying to store what is left");
                self.stop.store(true, Ordering::Relaxed);
                spool_full = Some(err);
            }
            while uploads.len() < self.cfg.concurrency.max(1) {
                let Some((arrived, seg)) = self.waiting.pop_front() else {
                    break;
                };
                uploads.spawn(self.upload(arrived, seg));
            }
            let drained = ended && self.waiting.is_empty() && uploads.is_empty();
            if drained && !self.playlist.has_ended() {
                self.playlist.end();
                self.dirty = !self.playlist.is_empty();
                if let Some(a) = &mut self.archive {
                    a.playlist.end();
                    // the final version, even when nothing was added
                    a.end_pending = !a.playlist.is_empty();
                }
            }
            if self.dirty && publishing.is_empty() {
                publishing.spawn(self.publish());
                self.dirty = false;
            }
            let archive_due = self.archive.as_ref().is_some_and(|a| {
                a.end_pending || (a.added > 0 && (!a.sent_once || a.added_ticks >= a.every))
            });
            if archive_due && archiving.is_empty() {
                archiving.spawn(self.publish_archive());
            }
            let archive_pending = self.archive.as_ref().is_some_and(|a| a.end_pending);
            if drained
                && publishing.is_empty()
                && !self.dirty
                && archiving.is_empty()
                && !archive_pending
            {
                break;
            }
            let next_deletion = self.deletions.front().map(|d| d.0);
            tokio::select! {
                _ = inbox.ring(), if !ended => {}
                Some(done) = uploads.join_next() => {
                    let (arrived, seg, result) = done.expect("upload tasks do not panic");
                    self.stored(arrived, seg, result)?;
                }
                Some(done) = publishing.join_next() => {
                    let (result, leaving, spool, text) = done.expect("publish tasks do not panic");
                    self.published(result, leaving, &text)?;
                    for path in spool {
                        if let Err(e) = crate::segmenter::spool::remove(&path) {
                            log::warn!("cannot remove spool file {}: {e}", path.display());
                        }
                    }
                }
                Some(done) = archiving.join_next() => {
                    let (result, spool, text) = done.expect("publish tasks do not panic");
                    self.archived(result, &text)?;
                    for path in spool {
                        if let Err(e) = crate::segmenter::spool::remove(&path) {
                            log::warn!("cannot remove spool file {}: {e}", path.display());
                        }
                    }
                }
                Some(done) = deleting.join_next() => {
                    let (key, result) = done.expect("delete tasks do not panic");
                    match result {
                        Ok(()) => {
                            self.summary.deleted += 1;
                            log::debug!("deleted {key}");
                        }
                        Err(e) => log::warn!("cannot delete {key}: {e}"),
                    }
                }
                _ = tokio::time::sleep_until(next_deletion.unwrap_or_else(Instant::now)),
                    if next_deletion.is_some() => {
                    while self.deletions.front().is_some_and(|d| d.0 <= Instant::now()) {
                        let (_, key) = self.deletions.pop_front().expect("checked");
                        let (store, retrier) = (self.store.clone(), self.retrier.clone());
                        deleting.spawn(async move {
                            let what = format!("DELETE {key}");
                            let r = retrier.run(&what, || store.delete(key.clone())).await;
                            (key, r)
                        });
                    }
                }
                _ = tokio::time::sleep_until(flush_deadline.unwrap_or_else(Instant::now)),
                    if flush_deadline.is_some() => {
                    let count = self.waiting.len() + uploads.len();
                    return Err(spool_full.unwrap_or(UploadError::FlushTimeout {
                        count,
                        secs: self.cfg.flush_timeout.as_secs(),
                    }));
                }
            }
        }
        if !self.deletions.is_empty() {
            log::info!(
                "{} segment(s) that left the playlist were not deleted yet (they must stay \
                 available a while longer); a bucket lifecycle rule can remove them",
                self.deletions.len()
            );
        }
        self.summary.attempts = self.retrier.stats().attempts.load(Ordering::Relaxed);
        self.summary.retries = self.retrier.stats().retries.load(Ordering::Relaxed);
        if let Some(err) = spool_full {
            return Err(err);
        }
        log::info!(
            "published {} segment(s), {} s of media, {} bytes, {} playlist version(s) ({} bytes){} to {}{}",
            self.summary.segments,
            format_secs(self.summary.media_ticks),
            self.summary.bytes,
            self.summary.playlist_versions,
            self.summary.playlist_bytes,
            match &self.archive {
                Some(_) => format!(
                    ", {} archive version(s) ({} bytes)",
                    self.summary.archive_versions, self.summary.archive_bytes
                ),
                None => String::new(),
            },
            self.store.describe(),
            if self.summary.retries > 0 {
                format!(
                    " ({} retries; longest wait for a segment {:.1} s)",
                    self.summary.retries,
                    self.summary.longest_wait.as_secs_f64()
                )
            } else {
                String::new()
            }
        );
        Ok(self.summary)
    }

    /// Queues a segment for publishing (the segmenter's, or one an earlier
    /// run left in the spool).
    pub fn queue(&mut self, seg: SegmentReady) {
        self.order.push_back(seg.sequence);
        self.spool_bytes += seg.bytes;
        self.waiting.push_back((Instant::now(), seg));
    }

    /// Continues a playlist an earlier run published.
    pub fn restore(&mut self, published: &crate::resume::Published) {
        self.listed_keys = published
            .entries
            .iter()
            .map(|e| restored_key(&self.cfg.key_prefix, &e.uri))
            .collect();
        self.playlist.restore(
            published.entries.clone(),
            published.media_sequence,
            published.discontinuity_sequence,
            published.target_duration,
        );
    }

    /// Continues the archive from what an earlier run published, first
    /// appending the segments it did not list yet (see
    /// [`crate::resume::plan_archive`]).
    pub fn restore_archive(&mut self, plan: crate::resume::ArchivePlan) {
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
            a.added += 1;
            a.added_ticks += e.duration;
            a.playlist.push(e);
        }
        if !self.cfg.keep_spool {
            a.spool.extend(plan.spool);
        }
    }

    /// The first number from `from` on whose segment key does not exist
    /// yet, so that no key is ever overwritten. `name` gives a segment's
    /// file name from its number.
    pub async fn first_unused(
        &self,
        name: impl Fn(u64) -> String,
        from: u64,
    ) -> Result<u64, UploadError> {
        let mut n = from;
        loop {
            let key = object_key(&self.cfg.key_prefix, &name(n));
            let store = self.store.clone();
            let what = format!("HEAD {key}");
            let exists = self
                .retrier
                .run(&what, || store.exists(key.clone()))
                .await
                .map_err(|source| self.error(&key, source))?;
            if !exists {
                if n > from {
                    log::warn!(
                        "segment keys {from} to {} already exist: numbering continues after them",
                        n - 1
                    );
                }
                return Ok(n);
            }
            n += 1;
        }
    }

    fn upload(
        &self,
        arrived: Instant,
        seg: SegmentReady,
    ) -> impl std::future::Future<Output = SegmentResult> {
        let key = object_key(&self.cfg.key_prefix, &seg.name);
        let meta = ObjectMeta {
            content_type: SEGMENT_CONTENT_TYPE.to_string(),
            cache_control: self.cfg.segment_cache_control.clone(),
        };
        let put = self.put(key, Body::File(seg.path.clone()), meta);
        async move { (arrived, seg, put.await) }
    }

    /// A PUT, retried under the policy.
    fn put(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let (store, retrier) = (self.store.clone(), self.retrier.clone());
        async move {
            let what = format!("PUT {key}");
            retrier
                .run(&what, || store.put(key.clone(), body.clone(), meta.clone()))
                .await
        }
    }

    /// A segment upload finished: list it, and any stored segments waiting
    /// behind it, in sequence order.
    fn stored(
        &mut self,
        arrived: Instant,
        seg: SegmentReady,
        result: Result<(), StoreError>,
    ) -> Result<(), UploadError> {
        let key = object_key(&self.cfg.key_prefix, &seg.name);
        result.map_err(|source| self.error(&key, source))?;
        log::debug!("stored {key} ({} bytes)", seg.bytes);
        self.summary.longest_wait = self.summary.longest_wait.max(arrived.elapsed());
        self.spool_bytes -= seg.bytes;
        self.stored.insert(seg.sequence, seg);
        while let Some(seg) = self.order.front().and_then(|n| self.stored.remove(n)) {
            self.order.pop_front();
            self.list(seg);
        }
        Ok(())
    }

    fn list(&mut self, seg: SegmentReady) {
        let entry = Entry::of_segment(&seg, &self.cfg.http_prefix, self.cfg.program_date_time);
        let spool = if self.cfg.keep_spool {
            None
        } else {
            Some(seg.path.clone())
        };
        match &mut self.archive {
            Some(a) => {
                a.spool.extend(spool);
                a.added += 1;
                a.added_ticks += seg.duration;
                a.playlist.push(entry.clone());
            }
            None => self.listed_spool.extend(spool),
        }
        self.summary.segments += 1;
        self.summary.bytes += seg.bytes;
        self.summary.media_ticks += seg.duration;
        // RFC 8216 §6.2.2: a segment that leaves the playlist stays available
        // for its duration plus that of the last playlist that listed it
        let last_listing = self.playlist.total_ticks();
        self.listed_keys
            .push_back(Some(object_key(&self.cfg.key_prefix, &seg.name)));
        let removed = self.playlist.push(entry);
        let keys: Vec<Option<String>> = self.listed_keys.drain(..removed.len()).collect();
        // with an archive every segment stays listed: nothing is deleted
        if self.cfg.delete_old && self.archive.is_none() {
            for (gone, key) in removed.iter().zip(keys) {
                match key {
                    Some(key) => self.leaving.push((key, gone.duration + last_listing)),
                    None => log::debug!("{} names no object to delete", gone.uri),
                }
            }
        }
        self.dirty = true;
    }

    fn publish(&mut self) -> impl std::future::Future<Output = PlaylistResult> {
        let key = self.index_key();
        let text = Arc::new(self.playlist.render().into_bytes());
        let meta = playlist_meta(&self.cfg, &self.playlist);
        let leaving = std::mem::take(&mut self.leaving);
        let spool = std::mem::take(&mut self.listed_spool);
        let put = self.put(key, Body::Bytes(text.clone()), meta);
        async move { (put.await, leaving, spool, text) }
    }

    fn publish_archive(&mut self) -> impl std::future::Future<Output = ArchiveResult> {
        let a = self.archive.as_mut().expect("called with an archive");
        let text = Arc::new(a.playlist.render().into_bytes());
        let count = a.added;
        a.added = 0;
        a.added_ticks = 0;
        a.sent_once = true;
        a.end_pending = false;
        let spool = std::mem::take(&mut a.spool);
        let meta = playlist_meta(&self.cfg, &a.playlist);
        log::debug!("sending archive version with {count} new segment(s)");
        let key = a.key.clone();
        let put = self.put(key, Body::Bytes(text.clone()), meta);
        async move { (put.await, spool, text) }
    }

    fn archived(&mut self, result: Result<(), StoreError>, text: &[u8]) -> Result<(), UploadError> {
        let key = self.archive_key().expect("called with an archive");
        result.map_err(|source| self.error(&key, source))?;
        self.summary.archive_versions += 1;
        self.summary.archive_bytes += text.len() as u64;
        log_version(&key, self.summary.archive_versions, text);
        Ok(())
    }

    fn published(
        &mut self,
        result: Result<(), StoreError>,
        leaving: Vec<(String, i64)>,
        text: &[u8],
    ) -> Result<(), UploadError> {
        let key = self.index_key();
        result.map_err(|source| self.error(&key, source))?;
        self.summary.playlist_versions += 1;
        self.summary.playlist_bytes += text.len() as u64;
        log_version(&key, self.summary.playlist_versions, text);
        let now = Instant::now();
        for (key, ticks) in leaving {
            let due = now
                + Duration::from_micros(
                    (ticks.max(0) as u64) * 1_000_000 / TICKS_PER_SECOND as u64,
                );
            self.deletions.push_back((due, key));
        }
        Ok(())
    }

    fn error(&self, key: &str, source: StoreError) -> UploadError {
        UploadError::Store {
            key: key.to_string(),
            destination: self.store.describe(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store::{ErrorKind, Fault, MemoryStore, Op};
    use super::*;
    use crate::channel;
    use chrono::Utc;
    use std::fs;

    const S: i64 = TICKS_PER_SECOND;

    fn config() -> UploaderConfig {
        UploaderConfig {
            window: 3,
            program_date_time: false,
            retry: RetryPolicy {
                base_delay: Duration::from_millis(10),
                ..RetryPolicy::default()
            },
            ..UploaderConfig::new("live/event", "index.m3u8", 4 * S)
        }
    }

    fn segment(dir: &std::path::Path, n: u64) -> SegmentReady {
        let name = format!("s-{n:05}.ts");
        let path = dir.join(&name);
        fs::write(&path, format!("segment {n}")).unwrap();
        SegmentReady {
            sequence: n,
            name,
            path,
            bytes: 9,
            start: 0,
            duration: 4 * S,
            discontinuity: false,
            program_date_time: Utc::now(),
        }
    }

    /// Runs an uploader over `count` segments fed through the channel.
    fn run(
        store: &MemoryStore,
        cfg: UploaderConfig,
        count: u64,
    ) -> (Result<UploadSummary, UploadError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, inbox) = channel::bounded(4);
        let feeder = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for n in 1..=count {
                    // the uploader may stop early on a permanent failure
                    if outbox.send(segment(&dir, n)).is_err() {
                        break;
                    }
                }
            })
        };
        let up = Uploader::new(Arc::new(store.clone()), cfg, Arc::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(up.run(inbox));
        feeder.join().unwrap();
        (result, dir)
    }

    /// Checks the completed-request log: every playlist version lists only
    /// segments already stored, and versions only move forward.
    fn check_order(store: &MemoryStore) -> Vec<String> {
        check_versions(store, "index.m3u8")
    }

    /// The same for the playlist whose key ends with `name`.
    fn check_versions(store: &MemoryStore, name: &str) -> Vec<String> {
        let state = store.lock();
        let mut stored = std::collections::HashSet::new();
        let mut versions: Vec<String> = Vec::new();
        for op in &state.log {
            let Op::Put { key, body } = op else { continue };
            if key.ends_with(".m3u8") && !key.ends_with(name) {
                continue;
            }
            if key.ends_with(".m3u8") {
                let text = String::from_utf8(body.clone()).unwrap();
                let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
                for uri in &uris {
                    assert!(
                        stored.contains(&format!("live/event/{uri}")),
                        "{uri} listed before stored"
                    );
                }
                if let Some(prev) = versions.last() {
                    let last =
                        |t: &str| t.lines().rfind(|l| !l.starts_with('#')).map(str::to_string);
                    assert!(
                        last(&text) >= last(prev),
                        "an older version landed after a newer one"
                    );
                }
                versions.push(text);
            } else {
                stored.insert(key.clone());
            }
        }
        versions
    }

    fn archive_config(every: i64) -> UploaderConfig {
        UploaderConfig {
            archive: Some(ArchiveConfig {
                name: "archive.m3u8".into(),
                every,
            }),
            delete_old: true,
            ..config()
        }
    }

    #[test]
    fn the_archive_is_published_every_interval_and_ends_as_vod() {
        let store = MemoryStore::new();
        // 4 s segments, a version at least every 12 s of media: the first
        // segment, then after 3 more, and so on; the last one at the end
        let (result, dir) = run(&store, archive_config(12 * S), 11);
        let summary = result.unwrap();
        let versions = check_versions(&store, "archive.m3u8");
        check_order(&store);
        let counts: Vec<usize> = versions
            .iter()
            .map(|v| v.matches("#EXTINF").count())
            .collect();
        // coalescing may merge steps while a PUT is in flight, never skip the last
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        assert!(counts.len() <= 5, "{counts:?}");
        assert_eq!(*counts.last().unwrap(), 11);
        assert_eq!(summary.archive_versions, versions.len() as u64);
        assert_eq!(
            summary.archive_bytes,
            versions.iter().map(|v| v.len() as u64).sum::<u64>()
        );
        for v in &versions[..versions.len() - 1] {
            assert!(v.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n") && !v.contains("ENDLIST"));
        }
        let last = versions.last().unwrap();
        assert!(last.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(last.ends_with("s-00011.ts\n#EXT-X-ENDLIST\n"));
        assert!(last.contains("#EXT-X-MEDIA-SEQUENCE:1\n"));
        // --delete-old deletes nothing that the archive lists
        let state = store.lock();
        assert!(!state.log.iter().any(|op| matches!(op, Op::Delete { .. })));
        assert_eq!(
            state.objects["live/event/archive.m3u8"].1.content_type,
            PLAYLIST_CONTENT_TYPE
        );
        drop(state);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "spool emptied"
        );
    }

    #[test]
    fn every_playlist_lists_only_stored_segments() {
        let store = MemoryStore::new();
        let (result, dir) = run(&store, config(), 6);
        let summary = result.unwrap();
        assert_eq!(summary.segments, 6);
        let versions = check_order(&store);
        assert_eq!(versions.len() as u64, summary.playlist_versions);
        assert!(versions.last().unwrap().ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(versions.iter().filter(|v| v.contains("ENDLIST")).count(), 1);
        let state = store.lock();
        let (_, meta) = &state.objects["live/event/index.m3u8"];
        assert_eq!(meta.content_type, PLAYLIST_CONTENT_TYPE);
        assert_eq!(meta.cache_control, "max-age=2");
        let seg_meta = &state.objects["live/event/s-00003.ts"].1;
        assert_eq!(seg_meta.content_type, SEGMENT_CONTENT_TYPE);
        assert_eq!(seg_meta.cache_control, DEFAULT_SEGMENT_CACHE_CONTROL);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "spool emptied"
        );
    }

    #[test]
    fn out_of_order_uploads_are_listed_in_order() {
        let store = MemoryStore::new();
        // segment 2 takes much longer than 3, 4 and 5
        store
            .lock()
            .delays
            .push(("s-00002.ts".into(), Duration::from_millis(300)));
        store
            .lock()
            .delays
            .push(("m3u8".into(), Duration::from_millis(20)));
        let (result, _dir) = run(&store, config(), 8);
        result.unwrap();
        let state = store.lock();
        let order: Vec<&str> = state
            .log
            .iter()
            .filter_map(|op| match op {
                Op::Put { key, .. } if key.ends_with(".ts") => Some(key.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            order.iter().position(|k| k.ends_with("s-00002.ts"))
                > order.iter().position(|k| k.ends_with("s-00004.ts")),
            "the slow segment finished after later ones: {order:?}"
        );
        drop(state);
        check_order(&store);
    }

    #[test]
    fn transient_failures_are_retried_and_nothing_is_lost() {
        let store = MemoryStore::new();
        store.lock().faults.push(Fault {
            suffix: "s-00002.ts".into(),
            kind: ErrorKind::Transient,
            times: 3,
        });
        store.lock().faults.push(Fault {
            suffix: "index.m3u8".into(),
            kind: ErrorKind::Unreachable,
            times: 2,
        });
        let (result, _dir) = run(&store, config(), 5);
        let summary = result.unwrap();
        assert_eq!(summary.segments, 5);
        assert_eq!(summary.retries, 5);
        check_order(&store);
    }

    #[test]
    fn a_permanent_failure_stops_before_the_playlist_lists_it() {
        let store = MemoryStore::new();
        store.lock().faults.push(Fault {
            suffix: "s-00003.ts".into(),
            kind: ErrorKind::Permanent,
            times: 1,
        });
        let (result, dir) = run(
            &store,
            UploaderConfig {
                concurrency: 1,
                ..config()
            },
            5,
        );
        match result {
            Err(UploadError::Store { key, .. }) => assert_eq!(key, "live/event/s-00003.ts"),
            other => panic!("{other:?}"),
        }
        assert!(dir.path().join("s-00003.ts").exists(), "kept in the spool");
        for v in check_order(&store) {
            assert!(!v.contains("s-00003.ts"));
        }
    }

    #[test]
    fn a_full_spool_stops_the_input() {
        let store = MemoryStore::new();
        store.lock().faults.push(Fault {
            suffix: "s-00001.ts".into(),
            kind: ErrorKind::Transient,
            times: 1_000_000,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let dir = tempfile::tempdir().unwrap();
        let (outbox, inbox) = channel::bounded(64);
        for n in 1..=5 {
            outbox.send(segment(dir.path(), n)).unwrap();
        }
        drop(outbox);
        let cfg = UploaderConfig {
            max_spool: 30,
            flush_timeout: Duration::from_millis(500),
            ..config()
        };
        let up = Uploader::new(Arc::new(store.clone()), cfg, stop.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(up.run(inbox)).unwrap_err();
        assert!(stop.load(Ordering::Relaxed), "input asked to stop");
        assert!(
            matches!(
                err,
                UploadError::SpoolFull {
                    held: 45,
                    limit: 30
                }
            ),
            "{err}"
        );
        let mut kept: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".ts"))
            .collect();
        kept.sort();
        // 2 to 5 are stored but not listed (1 is missing): a restart lists them
        assert_eq!(
            kept.len(),
            5,
            "every segment not yet listed stays in the spool: {kept:?}"
        );
        let state = store.lock();
        assert!(
            !state.objects.contains_key("live/event/index.m3u8"),
            "nothing listed past the gap"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_an_archive_delete_old_deletes_nothing() {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let (outbox, inbox) = channel::bounded(64);
        let up = Uploader::new(
            Arc::new(store.clone()),
            archive_config(60 * S),
            Arc::default(),
        );
        let task = tokio::spawn(up.run(inbox));
        for n in 1..=6 {
            outbox.send(segment(dir.path(), n)).unwrap();
        }
        // well past the time segments 1-3 would have been deleted without it
        tokio::time::sleep(Duration::from_secs(40)).await;
        drop(outbox);
        let summary = task.await.unwrap().unwrap();
        assert_eq!(summary.deleted, 0);
        let state = store.lock();
        assert!((1..=6).all(|n| state
            .objects
            .contains_key(&format!("live/event/s-{n:05}.ts"))));
        assert!(!state.objects["live/event/index.m3u8"]
            .0
            .windows(11)
            .any(|w| w == b"s-00001.ts\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn delete_old_waits_for_the_segment_and_the_last_playlist_to_expire() {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let (outbox, inbox) = channel::bounded(64);
        let cfg = UploaderConfig {
            delete_old: true,
            ..config()
        };
        let up = Uploader::new(Arc::new(store.clone()), cfg, Arc::default());
        let task = tokio::spawn(up.run(inbox));
        // window 3 of 4 s segments: segment 1 leaves with segment 4
        for n in 1..=4 {
            outbox.send(segment(dir.path(), n)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.lock().objects.contains_key("live/event/s-00001.ts"));
        // it must stay for its 4 s plus the 12 s of the playlist that last listed it
        tokio::time::sleep(Duration::from_millis(15_800)).await;
        assert!(
            store.lock().objects.contains_key("live/event/s-00001.ts"),
            "still available at 15.9 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !store.lock().objects.contains_key("live/event/s-00001.ts"),
            "deleted after 16 s"
        );
        assert!(store.lock().objects.contains_key("live/event/s-00002.ts"));
        drop(outbox);
        let summary = task.await.unwrap().unwrap();
        assert_eq!(summary.deleted, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delete_old_deletes_restored_segments_by_their_keys_after_the_http_prefix_changed() {
        let store = MemoryStore::new();
        // an earlier run published three segments under another http prefix
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n",
        );
        for n in 1..=3 {
            text += &format!("#EXTINF:4.000,\nhttps://old.example/live/s-{n:05}.ts\n");
            store.lock().objects.insert(
                format!("live/event/s-{n:05}.ts"),
                (
                    b"old".to_vec(),
                    ObjectMeta {
                        content_type: SEGMENT_CONTENT_TYPE.into(),
                        cache_control: DEFAULT_SEGMENT_CACHE_CONTROL.into(),
                    },
                ),
            );
        }
        let cfg = UploaderConfig {
            delete_old: true,
            http_prefix: "https://new.example/event/".into(),
            ..config()
        };
        // as main.rs reads it back: with this run's http prefix
        let published =
            crate::resume::parse_published(text.as_bytes(), &cfg.http_prefix, "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (outbox, inbox) = channel::bounded(64);
        let mut up = Uploader::new(Arc::new(store.clone()), cfg, Arc::default());
        up.restore(&published);
        let task = tokio::spawn(up.run(inbox));
        // window 3: segments 4, 5 and 6 push out the three restored ones
        for n in 4..=6 {
            outbox.send(segment(dir.path(), n)).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(40)).await;
        drop(outbox);
        let summary = task.await.unwrap().unwrap();
        let state = store.lock();
        let mut deleted: Vec<&str> = state
            .log
            .iter()
            .filter_map(|op| match op {
                Op::Delete { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        deleted.sort();
        assert_eq!(
            deleted,
            [
                "live/event/s-00001.ts",
                "live/event/s-00002.ts",
                "live/event/s-00003.ts"
            ]
        );
        assert_eq!(summary.deleted, 3);
        assert!((1..=3).all(|n| !state
            .objects
            .contains_key(&format!("live/event/s-{n:05}.ts"))));
    }

    #[test]
    fn keys_never_double_slash() {
        assert_eq!(object_key("", "index.m3u8"), "index.m3u8");
        assert_eq!(object_key("live", "a.ts"), "live/a.ts");
    }
}
