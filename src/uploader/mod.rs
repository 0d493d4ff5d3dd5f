//! The storage side: store each segment (and, for fMP4, the init segment
//! it needs), then publish the playlist that lists it.
//!
//! Segments upload concurrently (up to `concurrency` at once), but enter the
//! playlist strictly in sequence order, and only after they are stored.
//! Playlist versions are published one at a time, so an older version can
//! never land after a newer one; while one is in flight, newer changes wait
//! and go up together as the next version.
//!
//! Those decisions are [`schedule::Schedule`]'s, without I/O; the
//! [`Uploader`] runs the requests it asks for on the store and tells it what
//! finished.

pub mod defaults;
pub mod lease;
pub mod master;
mod open;
pub mod retry;
pub mod s3;
pub mod schedule;
pub mod store;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::channel::{Inbox, Received};
use crate::journal;
use crate::media::{InitReady, MediaDuration, SegmentReady};
use retry::{Retrier, RetryPolicy};
use schedule::{Action, Item, Schedule, Upload, Version};
use store::{Body, ErrorKind, ObjectMeta, Store, StoreError};

pub use crate::media::packaging::{
    PLAYLIST_CONTENT_TYPE, SEGMENT_CACHE_CONTROL as DEFAULT_SEGMENT_CACHE_CONTROL,
};
pub use open::{connect_s3, open_store, Destination, S3Settings};

pub struct UploaderConfig {
    /// Prefix of every key, already normalized (no leading or trailing `/`).
    pub key_prefix: String,
    pub index_name: String,
    /// Written before each segment name in the playlist.
    pub http_prefix: String,
    /// Target segment duration.
    pub target: MediaDuration,
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
    /// Called once each playlist version is stored (with --ladder, the
    /// master waits for every variant's first).
    pub on_published: Option<PublishedHook>,
}

/// See [`UploaderConfig::on_published`]: called with `true` for a version
/// of the archive.
pub type PublishedHook = Arc<dyn Fn(bool) + Send + Sync>;

/// The archive playlist: every segment of the event.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Its object name beside the rolling playlist.
    pub name: String,
    /// Publish a new version once this much media was added since the last
    /// one (and always at the end).
    pub every: MediaDuration,
}

impl UploaderConfig {
    /// A configuration with the command line's defaults.
    pub fn new(key_prefix: &str, index_name: &str, target: MediaDuration) -> Self {
        UploaderConfig {
            key_prefix: key_prefix.to_string(),
            index_name: index_name.to_string(),
            http_prefix: String::new(),
            target,
            window: defaults::WINDOW,
            program_date_time: true,
            keep_spool: false,
            segment_cache_control: DEFAULT_SEGMENT_CACHE_CONTROL.to_string(),
            playlist_cache_control: None,
            concurrency: defaults::CONCURRENCY,
            max_spool: defaults::MAX_SPOOL_BYTES,
            delete_old: false,
            retry: RetryPolicy::default(),
            flush_timeout: defaults::flush_timeout(),
            archive: None,
            on_published: None,
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
    /// fMP4 init segments stored.
    pub inits: u64,
    pub playlist_versions: u64,
    /// Bytes of all playlist versions published.
    pub playlist_bytes: u64,
    pub archive_versions: u64,
    pub archive_bytes: u64,
    /// The duration of the segments listed.
    pub media: MediaDuration,
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
fn playlist_meta(cfg: &UploaderConfig, target_duration: u64) -> ObjectMeta {
    ObjectMeta {
        content_type: PLAYLIST_CONTENT_TYPE.to_string(),
        cache_control: cfg
            .playlist_cache_control
            .clone()
            .unwrap_or_else(|| format!("max-age={}", (target_duration / 2).max(1))),
    }
}

/// Logs a published playlist version: a summary at debug level, the whole
/// text at trace level; and records it in the event journal.
fn log_version(key: &str, version: u64, text: &[u8]) {
    journal::published(key, version, text);
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

/// Now, as the schedule counts time (tokio's clock, paused in tests).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The outcome of a playlist or archive PUT, with the text it sent.
type VersionResult = (Result<(), StoreError>, Arc<Vec<u8>>);

/// The requests in flight, one set for each kind.
#[derive(Default)]
struct Requests {
    uploads: JoinSet<(Upload, Result<(), StoreError>)>,
    /// At most one version of the playlist, and one of the archive.
    playlist: JoinSet<VersionResult>,
    archive: JoinSet<VersionResult>,
    deletes: JoinSet<(String, Result<(), StoreError>)>,
    /// Spool files being removed, on the blocking pool.
    removals: JoinSet<()>,
}

pub struct Uploader {
    store: Arc<dyn Store>,
    retrier: Retrier,
    cfg: UploaderConfig,
    /// Decides what to do; the uploader does the I/O.
    schedule: Schedule,
    summary: UploadSummary,
    stop: Arc<AtomicBool>,
    /// Set once the spool limit was passed: the run's outcome.
    spool_full: Option<UploadError>,
}

impl Uploader {
    /// `stop` is raised when the uploader can take no more segments (the
    /// spool limit was reached), so that the segmenter stops reading.
    pub fn new(store: Arc<dyn Store>, cfg: UploaderConfig, stop: Arc<AtomicBool>) -> Self {
        Uploader {
            schedule: Schedule::new(&cfg),
            retrier: Retrier::new(cfg.retry.clone()),
            store,
            cfg,
            summary: UploadSummary::default(),
            stop,
            spool_full: None,
        }
    }

    /// Rung, the requests waiting to retry go at once (see
    /// [`Retrier::wakeup`]).
    pub fn retry_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.retrier.wakeup()
    }

    pub fn index_key(&self) -> String {
        object_key(&self.cfg.key_prefix, &self.cfg.index_name)
    }

    /// The archive playlist's key, with --archive.
    pub fn archive_key(&self) -> Option<String> {
        let a = self.cfg.archive.as_ref()?;
        Some(object_key(&self.cfg.key_prefix, &a.name))
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

    /// Queues a segment for publishing (the segmenter's, or one an earlier
    /// run left in the spool).
    pub fn queue(&mut self, seg: SegmentReady) {
        self.schedule.arrived(seg, now());
    }

    /// Queues an init segment for storing, before the segments that need
    /// it (the segmenter's, or one an earlier run left in the spool). A
    /// name already queued in this run is stored once.
    pub fn queue_init(&mut self, init: InitReady) {
        self.schedule.init_arrived(init);
    }

    /// Continues a playlist an earlier run published.
    pub fn restore(&mut self, published: &crate::resume::Published) {
        self.schedule.restore(published);
    }

    /// Continues the archive from what an earlier run published, first
    /// appending the segments it did not list yet (see
    /// [`crate::resume::plan_archive`]).
    pub fn restore_archive(&mut self, plan: crate::resume::ArchivePlan) {
        self.schedule.restore_archive(plan);
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

    /// Publishes every segment that arrives until the segmenter ends, then
    /// the final playlist with EXT-X-ENDLIST. The schedule decides; this
    /// loop starts what it asks for and tells it what finished.
    pub async fn run(mut self, inbox: Inbox) -> Result<UploadSummary, UploadError> {
        let mut requests = Requests::default();
        let mut ended = false;
        loop {
            if !ended {
                ended = self.receive(&inbox);
            }
            for action in self.schedule.next(now()) {
                self.start(action, &mut requests)?;
            }
            if self.schedule.is_done() {
                break;
            }
            let wake = self.schedule.wake_at().map(Instant::from_std);
            tokio::select! {
                _ = inbox.ring(), if !ended => {}
                Some(done) = requests.uploads.join_next() => {
                    let (upload, result) = done.expect("upload tasks do not panic");
                    self.upload_done(upload, result)?;
                }
                Some(done) = requests.playlist.join_next() => {
                    let (result, text) = done.expect("publish tasks do not panic");
                    self.playlist_done(result, &text)?;
                    let spool = self.schedule.playlist_published(now());
                    remove_spool(spool, &mut requests);
                }
                Some(done) = requests.archive.join_next() => {
                    let (result, text) = done.expect("publish tasks do not panic");
                    self.archive_done(result, &text)?;
                    remove_spool(self.schedule.archive_published(), &mut requests);
                }
                Some(done) = requests.deletes.join_next() => {
                    let (key, result) = done.expect("delete tasks do not panic");
                    self.delete_done(&key, result);
                }
                Some(_) = requests.removals.join_next() => {}
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)),
                    if wake.is_some() => {}
            }
        }
        remove_spool(self.schedule.finished_spool(), &mut requests);
        while requests.removals.join_next().await.is_some() {}
        self.finish()
    }

    /// Takes every segment and init waiting in the inbox; true once the
    /// segmenter has ended.
    fn receive(&mut self, inbox: &Inbox) -> bool {
        loop {
            match inbox.try_recv() {
                Received::Init(init) => self.queue_init(init),
                Received::Segment(seg) => self.queue(seg),
                Received::Empty => return false,
                Received::Ended => {
                    self.schedule.input_ended(now());
                    return true;
                }
            }
        }
    }

    /// Starts what the schedule asked for.
    fn start(&mut self, action: Action, requests: &mut Requests) -> Result<(), UploadError> {
        match action {
            Action::Upload(upload) => {
                requests.uploads.spawn(self.upload(upload));
            }
            Action::Publish(version) => {
                requests
                    .playlist
                    .spawn(self.publish(self.index_key(), version));
            }
            Action::PublishArchive(version) => {
                log::debug!(
                    "sending archive version with {} new segment(s)",
                    version.added
                );
                let key = self
                    .archive_key()
                    .expect("an archive version with --archive");
                requests.archive.spawn(self.publish(key, version));
            }
            Action::Delete(key) => {
                requests.deletes.spawn(self.delete(key));
            }
            Action::StopInput { held, limit } => {
                let err = UploadError::SpoolFull { held, limit };
                log::error!("{err}; stopping input and trying to store what is left");
                self.stop.store(true, Ordering::Relaxed);
                self.spool_full = Some(err);
            }
            Action::GiveUp { remaining } => {
                return Err(self.spool_full.take().unwrap_or(UploadError::FlushTimeout {
                    count: remaining,
                    secs: self.cfg.flush_timeout.as_secs(),
                }));
            }
        }
        Ok(())
    }

    /// A segment or init PUT, create-only where the store can refuse to
    /// overwrite: finding the key taken by the same bytes (an attempt whose
    /// answer was lost, an init or a leftover stored before) is success;
    /// by other bytes, a [`ErrorKind::Conflict`] that ends the run.
    fn upload(&self, upload: Upload) -> impl Future<Output = (Upload, Result<(), StoreError>)> {
        let meta = ObjectMeta {
            content_type: upload.content_type.to_string(),
            cache_control: self.cfg.segment_cache_control.clone(),
        };
        let (store, retrier) = (self.store.clone(), self.retrier.clone());
        let (key, body) = (upload.key.clone(), Body::File(upload.path.clone()));
        async move {
            let what = format!("PUT {key}");
            let put = retrier
                .run(&what, || {
                    store.put_new(key.clone(), body.clone(), meta.clone())
                })
                .await;
            let result = match put {
                Err(e) if e.kind == ErrorKind::Conflict => {
                    already_stored(&*store, &retrier, &key, &body).await
                }
                other => other,
            };
            (upload, result)
        }
    }

    fn publish(&self, key: String, version: Version) -> impl Future<Output = VersionResult> {
        let meta = playlist_meta(&self.cfg, version.target_duration);
        let put = self.put(key, Body::Bytes(version.text.clone()), meta);
        async move { (put.await, version.text) }
    }

    fn delete(&self, key: String) -> impl Future<Output = (String, Result<(), StoreError>)> {
        let (store, retrier) = (self.store.clone(), self.retrier.clone());
        async move {
            let what = format!("DELETE {key}");
            let r = retrier.run(&what, || store.delete(key.clone())).await;
            (key, r)
        }
    }

    /// A PUT, retried under the policy.
    fn put(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
    ) -> impl Future<Output = Result<(), StoreError>> {
        let (store, retrier) = (self.store.clone(), self.retrier.clone());
        async move {
            let what = format!("PUT {key}");
            retrier
                .run(&what, || store.put(key.clone(), body.clone(), meta.clone()))
                .await
        }
    }

    /// A segment or init upload finished; a failure ends the run.
    fn upload_done(
        &mut self,
        upload: Upload,
        result: Result<(), StoreError>,
    ) -> Result<(), UploadError> {
        if let Err(source) = result {
            match &upload.item {
                Item::Segment(n) => self.schedule.store_failed(*n),
                Item::Init(name) => self.schedule.init_store_failed(name),
            }
            return Err(self.error(&upload.key, source));
        }
        log::debug!("stored {} ({} bytes)", upload.key, upload.bytes);
        journal::stored(&upload.key, upload.bytes);
        match &upload.item {
            Item::Segment(n) => self.schedule.stored(*n, now()),
            Item::Init(name) => {
                self.summary.inits += 1;
                self.schedule.init_stored(name);
            }
        }
        Ok(())
    }

    /// A playlist version's PUT finished; a failure ends the run.
    fn playlist_done(
        &mut self,
        result: Result<(), StoreError>,
        text: &[u8],
    ) -> Result<(), UploadError> {
        let key = self.index_key();
        result.map_err(|source| self.error(&key, source))?;
        self.summary.playlist_versions += 1;
        self.summary.playlist_bytes += text.len() as u64;
        log_version(&key, self.summary.playlist_versions, text);
        if let Some(hook) = &self.cfg.on_published {
            hook(false);
        }
        Ok(())
    }

    /// An archive version's PUT finished; a failure ends the run.
    fn archive_done(
        &mut self,
        result: Result<(), StoreError>,
        text: &[u8],
    ) -> Result<(), UploadError> {
        let key = self
            .archive_key()
            .expect("an archive version with --archive");
        result.map_err(|source| self.error(&key, source))?;
        self.summary.archive_versions += 1;
        self.summary.archive_bytes += text.len() as u64;
        log_version(&key, self.summary.archive_versions, text);
        if let Some(hook) = &self.cfg.on_published {
            hook(true);
        }
        Ok(())
    }

    fn delete_done(&mut self, key: &str, result: Result<(), StoreError>) {
        match result {
            Ok(()) => {
                self.summary.deleted += 1;
                log::debug!("deleted {key}");
                journal::deleted(key);
            }
            Err(e) => log::warn!("cannot delete {key}: {e}"),
        }
    }

    /// Everything is published: the summary, or the spool limit's error.
    fn finish(mut self) -> Result<UploadSummary, UploadError> {
        let pending = self.schedule.pending_deletions();
        if pending > 0 {
            log::info!(
                "{pending} segment(s) that left the playlist were not deleted yet (they must stay \
                 available a while longer); a bucket lifecycle rule can remove them"
            );
        }
        let totals = self.schedule.totals();
        self.summary.segments = totals.segments;
        self.summary.bytes = totals.bytes;
        self.summary.media = totals.media;
        self.summary.longest_wait = totals.longest_wait;
        self.summary.attempts = self.retrier.stats().attempts.load(Ordering::Relaxed);
        self.summary.retries = self.retrier.stats().retries.load(Ordering::Relaxed);
        if let Some(err) = self.spool_full {
            return Err(err);
        }
        log::info!(
            "published {} segment(s){}, {} s of media, {} bytes, {} playlist version(s) ({} bytes){} to {}{}",
            self.summary.segments,
            match self.summary.inits {
                0 => String::new(),
                n => format!(" and {n} init segment(s)"),
            },
            self.summary.media,
            self.summary.bytes,
            self.summary.playlist_versions,
            self.summary.playlist_bytes,
            match &self.cfg.archive {
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

    fn error(&self, key: &str, source: StoreError) -> UploadError {
        UploadError::Store {
            key: key.to_string(),
            destination: self.store.describe(),
            source,
        }
    }
}

/// After a create-only PUT found `key` taken: success when it holds
/// `body`'s bytes, a conflict otherwise.
async fn already_stored(
    store: &dyn Store,
    retrier: &Retrier,
    key: &str,
    body: &Body,
) -> Result<(), StoreError> {
    let theirs = retrier
        .run(&format!("GET {key}"), || store.get(key.to_string()))
        .await?;
    let ours = body
        .read()
        .map_err(|e| StoreError::permanent(format!("reading the spool copy of {key}: {e}")))?;
    if theirs.as_deref() == Some(ours.as_slice()) {
        log::debug!("{key} was stored already with the same bytes");
        return Ok(());
    }
    Err(StoreError::new(
        ErrorKind::Conflict,
        format!("{key} exists with other content: another run publishes this stream"),
    ))
}

/// Removes spool files that published versions no longer need, on the
/// blocking pool.
fn remove_spool(paths: Vec<std::path::PathBuf>, requests: &mut Requests) {
    if paths.is_empty() {
        return;
    }
    requests.removals.spawn_blocking(move || {
        for path in paths {
            if let Err(e) = crate::spool::remove(&path) {
                log::warn!("cannot remove spool file {}: {e}", path.display());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::store::{Fault, MemoryStore, Op};
    use super::*;
    use crate::channel;
    use crate::media::MediaTime;
    use crate::timeline::TICKS_PER_SECOND;
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
            ..UploaderConfig::new("live/event", "index.m3u8", MediaDuration(4 * S))
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
            start: MediaTime(0),
            duration: MediaDuration(4 * S),
            discontinuity: false,
            program_date_time: Utc::now(),
            packaging: crate::media::Packaging::Ts,
            init: None,
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
    /// segments and init segments (EXT-X-MAP) already stored, and versions
    /// only move forward.
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
                let maps = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"")?.strip_suffix('"'));
                let uris: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .chain(maps)
                    .collect();
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
                every: MediaDuration(every),
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
        // coalescing may merge steps while a PUT is in flight, never skip the
        // last; when the version with the last segment went up before the
        // end of input was seen, the final (VOD) version repeats its count
        let (last, growing) = counts.split_last().unwrap();
        assert!(growing.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        assert!(growing.last().is_some_and(|p| p <= last), "{counts:?}");
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

    /// An fMP4 init segment file in `dir`, named from its bytes.
    fn init_file(dir: &std::path::Path, bytes: &[u8], audio_only: bool) -> InitReady {
        let name = crate::media::segment::init_name("s", bytes);
        let path = dir.join(&name);
        fs::write(&path, bytes).unwrap();
        InitReady {
            name,
            path,
            bytes: bytes.len() as u64,
            codecs: "avc1.64001f".into(),
            audio_only,
        }
    }

    fn fmp4_segment(dir: &std::path::Path, n: u64, init: &InitReady) -> SegmentReady {
        let name = format!("s-{n:05}.m4s");
        let path = dir.join(&name);
        fs::write(&path, format!("segment {n}")).unwrap();
        SegmentReady {
            sequence: n,
            name,
            path,
            bytes: 9,
            start: MediaTime(0),
            duration: MediaDuration(4 * S),
            discontinuity: false,
            program_date_time: Utc::now(),
            packaging: crate::media::Packaging::Fmp4,
            init: Some(init.name.clone()),
        }
    }

    #[test]
    fn fmp4_inits_are_stored_once_before_the_versions_that_name_them() {
        let store = MemoryStore::new();
        // the inits take longer than the segments that need them
        store
            .lock()
            .delays
            .push(("mp4".into(), Duration::from_millis(150)));
        let dir = tempfile::tempdir().unwrap();
        let a = init_file(dir.path(), b"ftyp moov 1280x720", false);
        let b = init_file(dir.path(), b"ftyp moov 1920x1080", false);
        // and the first is refused twice before it is stored
        store.lock().faults.push(Fault {
            suffix: a.name.clone(),
            kind: ErrorKind::Transient,
            times: 2,
        });
        let (outbox, inbox) = channel::bounded(4);
        let feeder = {
            let (dir, a, b) = (dir.path().to_path_buf(), a.clone(), b.clone());
            std::thread::spawn(move || {
                outbox.send(a.clone()).unwrap();
                for n in 1..=3 {
                    outbox.send(fmp4_segment(&dir, n, &a)).unwrap();
                }
                // announced again (as after a restart): stored once
                outbox.send(a.clone()).unwrap();
                outbox.send(b.clone()).unwrap();
                for n in 4..=6 {
                    outbox.send(fmp4_segment(&dir, n, &b)).unwrap();
                }
            })
        };
        let up = Uploader::new(
            Arc::new(store.clone()),
            archive_config(8 * S),
            Arc::default(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let summary = rt.block_on(up.run(inbox)).unwrap();
        feeder.join().unwrap();
        assert_eq!((summary.segments, summary.inits), (6, 2));
        assert_eq!(summary.retries, 2);
        let versions = check_order(&store);
        let archive = check_versions(&store, "archive.m3u8");
        let map = |i: &InitReady| format!("#EXT-X-MAP:URI=\"{}\"\n", i.name);
        let last = versions.last().unwrap();
        assert!(last.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n"));
        assert!(
            last.contains(&format!("{}#EXTINF:4.000,\ns-00004.m4s\n", map(&b))),
            "{last}"
        );
        let whole = archive.last().unwrap();
        assert!(whole.contains(&format!("{}#EXTINF:4.000,\ns-00001.m4s\n", map(&a))));
        assert!(whole.contains(&format!("s-00003.m4s\n{}#EXTINF", map(&b))));
        let state = store.lock();
        let puts: Vec<&str> = state
            .log
            .iter()
            .filter_map(|op| match op {
                Op::Put { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        for (i, bytes) in [
            (&a, &b"ftyp moov 1280x720"[..]),
            (&b, b"ftyp moov 1920x1080"),
        ] {
            let key = format!("live/event/{}", i.name);
            assert_eq!(puts.iter().filter(|k| **k == key).count(), 1, "{puts:?}");
            let (body, meta) = &state.objects[&key];
            assert_eq!(body, bytes);
            assert_eq!(meta.content_type, "video/mp4");
            assert_eq!(meta.cache_control, DEFAULT_SEGMENT_CACHE_CONTROL);
        }
        assert_eq!(
            state.objects["live/event/s-00005.m4s"].1.content_type,
            "video/mp4"
        );
        drop(state);
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "segments and inits removed from the spool: {left:?}"
        );
    }

    #[test]
    fn a_restart_stores_the_spool_init_again_before_the_leftovers_and_keeps_the_maps() {
        use crate::spool;
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        // an earlier run published 1-3 with init a, and left 4 and 5 (which
        // need a) and a itself in the spool
        let a = init_file(dir.path(), b"ftyp moov 1280x720", false);
        let part = dir.path().join("init.part");
        fs::write(&part, b"ftyp moov 1280x720").unwrap();
        spool::finalize_init(&part, &a).unwrap();
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MAP:URI=\"{}\"\n",
            a.name
        );
        for n in 1..=3 {
            text += &format!("#EXTINF:4.000,\ns-{n:05}.m4s\n");
        }
        for n in 4..=5 {
            let seg = fmp4_segment(dir.path(), n, &a);
            let part = dir.path().join("seg.part");
            fs::write(&part, fs::read(&seg.path).unwrap()).unwrap();
            spool::finalize(&part, &seg).unwrap();
        }
        let published = crate::resume::parse_published(text.as_bytes(), "", "s").unwrap();
        let leftovers = spool::scan(dir.path(), "s").unwrap();
        let plan = crate::resume::plan(Some(published), leftovers, false);
        assert_eq!(plan.inits.len(), 1);
        let cfg = UploaderConfig {
            window: 5,
            ..config()
        };
        let mut up = Uploader::new(Arc::new(store.clone()), cfg, Arc::default());
        up.restore(plan.restored.as_ref().unwrap());
        for init in plan.inits {
            up.queue_init(init);
        }
        for seg in plan.leftovers {
            up.queue(seg);
        }
        // this run makes the same init again, and a segment with it
        let (outbox, inbox) = channel::bounded(4);
        outbox.send(a.clone()).unwrap();
        outbox.send(fmp4_segment(dir.path(), 6, &a)).unwrap();
        drop(outbox);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let summary = rt.block_on(up.run(inbox)).unwrap();
        assert_eq!((summary.segments, summary.inits), (3, 1));
        // the init is stored again before the first version (1-3 were
        // stored by the earlier run)
        let state = store.lock();
        let puts: Vec<&str> = state
            .log
            .iter()
            .filter_map(|op| match op {
                Op::Put { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        let at = |key: &str| puts.iter().position(|k| *k == key);
        let init_key = format!("live/event/{}", a.name);
        assert!(at(&init_key) < at("live/event/index.m3u8"), "{puts:?}");
        assert_eq!(puts.iter().filter(|k| **k == init_key).count(), 1);
        let versions: Vec<String> = state
            .log
            .iter()
            .filter_map(|op| match op {
                Op::Put { key, body } if key.ends_with("index.m3u8") => {
                    Some(String::from_utf8(body.clone()).unwrap())
                }
                _ => None,
            })
            .collect();
        drop(state);
        let last = versions.last().unwrap();
        let map = format!("#EXT-X-MAP:URI=\"{}\"\n", a.name);
        assert!(
            last.starts_with(&format!(
                "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:2\n{map}#EXTINF:4.000,\ns-00002.m4s\n"
            )),
            "{last}"
        );
        // the leftovers follow 3 directly, and their map is the same: it is
        // not repeated
        assert!(
            last.contains("s-00003.m4s\n#EXTINF:4.000,\ns-00004.m4s\n"),
            "{last}"
        );
        assert_eq!(last.matches("#EXT-X-MAP:").count(), 1);
        assert!(last.ends_with("s-00006.m4s\n#EXT-X-ENDLIST\n"));
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_audio_only_fmp4_run_is_stored_as_audio_mp4() {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let radio = init_file(dir.path(), b"ftyp moov mp4a", true);
        let (outbox, inbox) = channel::bounded(4);
        outbox.send(radio.clone()).unwrap();
        outbox.send(fmp4_segment(dir.path(), 1, &radio)).unwrap();
        drop(outbox);
        let cfg = UploaderConfig {
            keep_spool: true,
            ..config()
        };
        let up = Uploader::new(Arc::new(store.clone()), cfg, Arc::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(up.run(inbox)).unwrap();
        check_order(&store);
        let state = store.lock();
        let key = format!("live/event/{}", radio.name);
        assert_eq!(state.objects[&key].0, b"ftyp moov mp4a");
        assert_eq!(state.objects[&key].1.content_type, "audio/mp4");
        assert_eq!(
            state.objects["live/event/s-00001.m4s"].1.content_type,
            "audio/mp4"
        );
        assert!(radio.path.exists(), "--keep-spool keeps the init");
    }

    #[test]
    fn a_permanent_failure_of_an_init_lists_none_of_its_segments() {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let a = init_file(dir.path(), b"ftyp moov", false);
        store.lock().faults.push(Fault {
            suffix: a.name.clone(),
            kind: ErrorKind::Permanent,
            times: 1,
        });
        let (outbox, inbox) = channel::bounded(8);
        outbox.send(a.clone()).unwrap();
        for n in 1..=3 {
            outbox.send(fmp4_segment(dir.path(), n, &a)).unwrap();
        }
        drop(outbox);
        let up = Uploader::new(Arc::new(store.clone()), config(), Arc::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match rt.block_on(up.run(inbox)) {
            Err(UploadError::Store { key, .. }) => {
                assert_eq!(key, format!("live/event/{}", a.name))
            }
            other => panic!("{other:?}"),
        }
        assert!(!store.lock().objects.contains_key("live/event/index.m3u8"));
        assert!(a.path.exists(), "the init stays in the spool");
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
        assert_eq!(seg_meta.content_type, "video/mp2t");
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
                        content_type: crate::media::Packaging::Ts.content_type(false).into(),
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
