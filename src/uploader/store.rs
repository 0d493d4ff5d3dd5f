//! Storage backends behind one small trait: S3 ([`super::s3`]), a local
//! directory, and an in-memory store for tests.
//!
//! Methods take owned arguments and return boxed futures, so the uploader
//! can run several requests at once on its single-threaded runtime.

use std::collections::BTreeMap;
use std::fs;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The content of an object to store.
#[derive(Debug, Clone)]
pub enum Body {
    File(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

impl Body {
    pub fn read(&self) -> io::Result<Vec<u8>> {
        match self {
            Body::File(p) => fs::read(p),
            Body::Bytes(b) => Ok(b.to_vec()),
        }
    }
}

/// HTTP metadata stored with an object (where the backend can keep it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: String,
    pub cache_control: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying: the store answered with a temporary failure (5xx,
    /// SlowDown) or cut its answer off.
    Transient,
    /// No answer: connection refused or reset, no route, DNS failure, or no
    /// response in time. Also retried.
    Unreachable,
    /// Retrying will not help (bad credentials, no such bucket, ...).
    Permanent,
    /// A conditional write's condition did not hold (HTTP 412): the key
    /// exists, or holds other content than the writer expected. Another run
    /// writes here.
    Conflict,
    /// This run no longer holds the lease on its stream (see
    /// [`crate::uploader::lease`]): it must publish nothing more.
    Fenced,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    /// Retrying will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Permanent | ErrorKind::Conflict | ErrorKind::Fenced
        )
    }

    /// Another run writes this stream: a conflict or a lost lease.
    pub fn is_contested(&self) -> bool {
        matches!(self.kind, ErrorKind::Conflict | ErrorKind::Fenced)
    }

    fn from_io(what: &str, key: &str, e: io::Error) -> Self {
        let kind = match e.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                ErrorKind::Transient
            }
            _ => ErrorKind::Permanent,
        };
        StoreError::new(kind, format!("{what} {key}: {e}"))
    }
}

/// What a conditional write requires of the object it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// No object at the key (`If-None-Match: *`).
    Absent,
    /// The object at the key has this entity tag (`If-Match`).
    Matches(String),
}

impl Condition {
    /// Whether the condition holds of an object with `current` bytes (or
    /// none), its tag a [`content_tag`]: for stores that keep no tags.
    fn held_by(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Condition::Absent, current) => current.is_none(),
            (Condition::Matches(tag), Some(bytes)) => content_tag(bytes) == *tag,
            (Condition::Matches(_), None) => false,
        }
    }
}

/// An object read with its entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
}

/// Where segments and playlists are published.
pub trait Store: Send + Sync {
    /// A description for log lines, without secrets.
    fn describe(&self) -> String;
    /// Stores an object so that readers see either the old or the whole new
    /// content, never a part.
    fn put(&self, key: String, body: Body, meta: ObjectMeta) -> BoxFuture<Result<(), StoreError>>;
    /// Reads an object; `None` when it does not exist.
    fn get(&self, key: String) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>>;
    fn delete(&self, key: String) -> BoxFuture<Result<(), StoreError>>;
    /// Whether an object exists, without reading it.
    fn exists(&self, key: String) -> BoxFuture<Result<bool, StoreError>>;

    /// Stores an object that no other content may replace: a segment or an
    /// init segment. A store that can refuse to overwrite a key answers
    /// [`ErrorKind::Conflict`] where the key exists; by default a plain put.
    fn put_new(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
    ) -> BoxFuture<Result<(), StoreError>> {
        self.put(key, body, meta)
    }

    /// Stores an object only if `condition` holds ([`ErrorKind::Conflict`]
    /// otherwise), returning its new entity tag where the store gives one.
    /// Whether a store honours the condition is for the caller to find out
    /// ([`Store::conditions_native`]); some accept it and ignore it.
    fn put_if(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
        condition: Condition,
    ) -> BoxFuture<Result<Option<String>, StoreError>>;

    /// Reads an object with its entity tag; `None` when it does not exist.
    fn get_tagged(&self, key: String) -> BoxFuture<Result<Option<Tagged>, StoreError>>;

    /// Deletes an object only if it still has entity tag `etag`.
    fn delete_if(&self, key: String, etag: String) -> BoxFuture<Result<(), StoreError>>;

    /// Whether the store is known to honour conditions without a probe
    /// (a local directory does; S3-compatible stores must be asked).
    fn conditions_native(&self) -> bool {
        false
    }
}

/// The entity tag of a local or in-memory object: FNV-1a over its bytes,
/// in quotes as HTTP writes them.
fn content_tag(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", crate::media::segment::fnv1a(bytes))
}

/// Checks that a key cannot leave the destination: relative, no empty,
/// `.` or `..` components, no control characters.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.starts_with('/') {
        return Err(format!("object key {key:?} is empty or absolute"));
    }
    if key.chars().any(char::is_control) {
        return Err(format!("object key {key:?} contains a control character"));
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "object key {key:?} has an empty, '.' or '..' component"
        ));
    }
    Ok(())
}

/// A directory on the local file system. Objects are written to a
/// temporary file in the same directory and renamed into place.
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: Arc<PathBuf>,
}

impl LocalDirStore {
    /// Opens (creating if needed) the directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(LocalDirStore {
            root: Arc::new(root.canonicalize()?),
        })
    }

    /// The file path of a key, refusing keys that could leave the root or
    /// pass through a symbolic link.
    fn path_of(root: &Path, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key).map_err(StoreError::permanent)?;
        let path = root.join(key);
        let mut at = root.to_path_buf();
        for part in Path::new(key).components() {
            at.push(part);
            if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(StoreError::permanent(format!(
                    "refusing {key}: {} is a symbolic link",
                    at.display()
                )));
            }
        }
        Ok(path)
    }

    fn put_sync(root: &Path, key: &str, body: &Body) -> Result<(), StoreError> {
        Self::place(root, key, body, |tmp, path| fs::rename(tmp, path))
    }

    /// Stores `body` only where `key` has no file yet: a second name for
    /// the complete temporary file, which the file system refuses to give
    /// where the name exists.
    fn put_new_sync(root: &Path, key: &str, body: &Body) -> Result<(), StoreError> {
        Self::place(root, key, body, |tmp, path| {
            let linked = fs::hard_link(tmp, path);
            let _ = fs::remove_file(tmp);
            linked
        })
    }

    /// Writes `body` to a temporary file beside `key`'s and hands both
    /// paths to `finish`, which puts it in place.
    fn place(
        root: &Path,
        key: &str,
        body: &Body,
        finish: impl FnOnce(&Path, &Path) -> io::Result<()>,
    ) -> Result<(), StoreError> {
        let path = Self::path_of(root, key)?;
        let dir = path.parent().expect("a key has a parent in the root");
        fs::create_dir_all(dir)
            .map_err(|e| StoreError::from_io("creating directory for", key, e))?;
        let name = path
            .file_name()
            .expect("keys end in a name")
            .to_string_lossy();
        // an attempt that timed out may still be writing its own temporary
        // file: each attempt has one of its own, renamed only when complete
        static ATTEMPT: AtomicU64 = AtomicU64::new(0);
        let attempt = ATTEMPT.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp); // left by a crash
        let written = match body {
            // a spool file is never changed once complete: on the same file
            // system, a second name for it costs no copy
            Body::File(src) => fs::hard_link(src, &tmp).or_else(|_| copy(src, &tmp)),
            Body::Bytes(b) => fs::write(&tmp, b.as_slice()),
        };
        if let Err(e) = written.and_then(|_| finish(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            if e.kind() == io::ErrorKind::AlreadyExists {
                return Err(StoreError::new(
                    ErrorKind::Conflict,
                    format!("writing {key}: it exists already"),
                ));
            }
            return Err(StoreError::from_io("writing", key, e));
        }
        Ok(())
    }

    /// Runs `work` holding the lock that makes this directory's conditional
    /// writes atomic (`.live_upload.lock` in the root, with flock): runs on
    /// other machines share a local destination only through a file system
    /// that locks for them.
    fn locked<T>(
        root: &Path,
        key: &str,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(".live_upload.lock"))
            .map_err(|e| StoreError::from_io("locking for", key, e))?;
        // SAFETY: flock(2) on a descriptor this function owns; the lock goes
        // with the descriptor when `file` is dropped.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(StoreError::from_io(
                "locking for",
                key,
                io::Error::last_os_error(),
            ));
        }
        work()
    }

    fn put_if_sync(
        root: &Path,
        key: &str,
        body: &Body,
        condition: &Condition,
    ) -> Result<Option<String>, StoreError> {
        Self::locked(root, key, || {
            let found = Self::get_sync(root, key)?;
            if !condition.held_by(found.as_deref()) {
                return Err(StoreError::new(
                    ErrorKind::Conflict,
                    format!("writing {key}: it is not as expected ({condition:?})"),
                ));
            }
            Self::put_sync(root, key, body)?;
            let bytes = body
                .read()
                .map_err(|e| StoreError::from_io("reading body of", key, e))?;
            Ok(Some(content_tag(&bytes)))
        })
    }

    fn delete_if_sync(root: &Path, key: &str, tag: &str) -> Result<(), StoreError> {
        Self::locked(root, key, || {
            let found = Self::get_sync(root, key)?;
            if !Condition::Matches(tag.to_string()).held_by(found.as_deref()) {
                return Err(StoreError::new(
                    ErrorKind::Conflict,
                    format!("deleting {key}: it is not as expected"),
                ));
            }
            Self::delete_sync(root, key)
        })
    }

    fn get_sync(root: &Path, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = Self::path_of(root, key)?;
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::from_io("reading", key, e)),
        }
    }

    fn delete_sync(root: &Path, key: &str) -> Result<(), StoreError> {
        let path = Self::path_of(root, key)?;
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::from_io("deleting", key, e)),
        }
    }

    /// Runs `work` on the root and key on the runtime's blocking pool: a
    /// copy across file systems, a slow disk or a stalled network mount
    /// then holds up only this request, not the uploader's (current-thread)
    /// runtime and its other uploads, timers and playlist versions.
    fn blocking<T: Send + 'static>(
        &self,
        key: String,
        work: impl FnOnce(&Path, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<Result<T, StoreError>> {
        let root = self.root.clone();
        Box::pin(async move {
            let what = key.clone();
            tokio::task::spawn_blocking(move || work(&root, &key))
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::permanent(format!(
                        "file work for {what} did not finish: {e}"
                    )))
                })
        })
    }
}

/// Copies a file that cannot be linked (it is on another file system),
/// reading it as a stream.
fn copy(src: &Path, dst: &Path) -> io::Result<()> {
    let mut from = fs::File::open(src)?;
    let mut to = fs::File::create(dst)?;
    io::copy(&mut from, &mut to)?;
    Ok(())
}

impl Store for LocalDirStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn put(&self, key: String, body: Body, _meta: ObjectMeta) -> BoxFuture<Result<(), StoreError>> {
        self.blocking(key, move |root, key| Self::put_sync(root, key, &body))
    }

    fn get(&self, key: String) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        self.blocking(key, Self::get_sync)
    }

    fn exists(&self, key: String) -> BoxFuture<Result<bool, StoreError>> {
        self.blocking(key, |root, key| Ok(Self::path_of(root, key)?.exists()))
    }

    fn delete(&self, key: String) -> BoxFuture<Result<(), StoreError>> {
        self.blocking(key, Self::delete_sync)
    }

    fn put_new(
        &self,
        key: String,
        body: Body,
        _meta: ObjectMeta,
    ) -> BoxFuture<Result<(), StoreError>> {
        self.blocking(key, move |root, key| Self::put_new_sync(root, key, &body))
    }

    fn put_if(
        &self,
        key: String,
        body: Body,
        _meta: ObjectMeta,
        condition: Condition,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        self.blocking(key, move |root, key| {
            Self::put_if_sync(root, key, &body, &condition)
        })
    }

    fn get_tagged(&self, key: String) -> BoxFuture<Result<Option<Tagged>, StoreError>> {
        self.blocking(key, |root, key| {
            Ok(Self::get_sync(root, key)?.map(|bytes| Tagged {
                etag: Some(content_tag(&bytes)),
                bytes,
            }))
        })
    }

    fn delete_if(&self, key: String, etag: String) -> BoxFuture<Result<(), StoreError>> {
        self.blocking(key, move |root, key| Self::delete_if_sync(root, key, &etag))
    }

    fn conditions_native(&self) -> bool {
        true
    }
}

/// One request a [`MemoryStore`] completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, body: Vec<u8> },
    Delete { key: String },
}

/// A failure a [`MemoryStore`] returns for a put whose key ends with `suffix`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub suffix: String,
    pub kind: ErrorKind,
    /// How many puts fail before the key is accepted.
    pub times: u32,
}

#[derive(Debug, Default)]
pub struct MemoryState {
    pub objects: BTreeMap<String, (Vec<u8>, ObjectMeta)>,
    /// Every completed put and delete, in completion order.
    pub log: Vec<Op>,
    pub faults: Vec<Fault>,
    /// Puts of keys ending with the suffix take this long.
    pub delays: Vec<(String, Duration)>,
}

/// An in-memory store whose state a test can inspect through a clone.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    pub state: Arc<Mutex<MemoryState>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory".to_string()
    }

    fn put(&self, key: String, body: Body, meta: ObjectMeta) -> BoxFuture<Result<(), StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            check_key(&key).map_err(StoreError::permanent)?;
            let bytes = body
                .read()
                .map_err(|e| StoreError::from_io("reading body of", &key, e))?;
            let delay = {
                let mut state = me.lock();
                if let Some(f) = state
                    .faults
                    .iter_mut()
                    .find(|f| f.times > 0 && key.ends_with(&f.suffix))
                {
                    f.times -= 1;
                    return Err(StoreError::new(
                        f.kind,
                        format!("injected failure for {key}"),
                    ));
                }
                state
                    .delays
                    .iter()
                    .find(|(s, _)| key.ends_with(s.as_str()))
                    .map(|d| d.1)
            };
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut state = me.lock();
            state.log.push(Op::Put {
                key: key.clone(),
                body: bytes.clone(),
            });
            state.objects.insert(key, (bytes, meta));
            Ok(())
        })
    }

    fn get(&self, key: String) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        let me = self.clone();
        Box::pin(async move { Ok(me.lock().objects.get(&key).map(|(b, _)| b.clone())) })
    }

    fn exists(&self, key: String) -> BoxFuture<Result<bool, StoreError>> {
        let me = self.clone();
        Box::pin(async move { Ok(me.lock().objects.contains_key(&key)) })
    }

    fn delete(&self, key: String) -> BoxFuture<Result<(), StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            let mut state = me.lock();
            state.log.push(Op::Delete { key: key.clone() });
            state.objects.remove(&key);
            Ok(())
        })
    }

    fn put_new(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
    ) -> BoxFuture<Result<(), StoreError>> {
        let put = self.put_if(key, body, meta, Condition::Absent);
        Box::pin(async move { put.await.map(|_| ()) })
    }

    fn put_if(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
        condition: Condition,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            let holds = {
                let state = me.lock();
                condition.held_by(state.objects.get(&key).map(|(b, _)| b.as_slice()))
            };
            if !holds {
                return Err(StoreError::new(
                    ErrorKind::Conflict,
                    format!("PUT {key}: precondition failed"),
                ));
            }
            let bytes = body
                .read()
                .map_err(|e| StoreError::from_io("reading body of", &key, e))?;
            let tag = content_tag(&bytes);
            me.put(key, body, meta).await?;
            Ok(Some(tag))
        })
    }

    fn get_tagged(&self, key: String) -> BoxFuture<Result<Option<Tagged>, StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            Ok(me.lock().objects.get(&key).map(|(b, _)| Tagged {
                bytes: b.clone(),
                etag: Some(content_tag(b)),
            }))
        })
    }

    fn delete_if(&self, key: String, etag: String) -> BoxFuture<Result<(), StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            let holds = {
                let state = me.lock();
                Condition::Matches(etag).held_by(state.objects.get(&key).map(|(b, _)| b.as_slice()))
            };
            if !holds {
                return Err(StoreError::new(
                    ErrorKind::Conflict,
                    format!("DELETE {key}: precondition failed"),
                ));
            }
            me.delete(key).await
        })
    }

    fn conditions_native(&self) -> bool {
        true
    }
}

/// Test helpers for blocking file work.
#[cfg(test)]
pub(crate) mod testing {
    use std::ffi::CString;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    /// Creates a FIFO at `path`: reading it blocks until a thread writes
    /// `data` into it once `go` is sent. Returns `go` and that thread, which
    /// answers whether `go` came. Every wait is bounded: without `go` it
    /// writes after 10 s anyway (so that a test whose runtime thread is
    /// blocked reading the FIFO fails instead of hanging), and it gives up
    /// after 10 s more without a reader.
    pub fn fifo(path: &Path, data: &'static [u8]) -> (mpsc::Sender<()>, thread::JoinHandle<bool>) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path
        let made = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(made, 0, "mkfifo: {}", std::io::Error::last_os_error());
        let (go, rx) = mpsc::channel();
        let path: PathBuf = path.to_path_buf();
        let writer = thread::spawn(move || {
            let signalled = rx.recv_timeout(Duration::from_secs(10)).is_ok();
            // opening the write end without blocking fails until a reader
            // has the FIFO open (or is waiting in open)
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut file = loop {
                match OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&path)
                {
                    Ok(f) => break Some(f),
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(_) => break None,
                }
            };
            if let Some(f) = &mut file {
                f.write_all(data).unwrap();
            }
            signalled
        });
        (go, writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            content_type: "video/mp2t".into(),
            cache_control: "max-age=1".into(),
        }
    }

    fn bytes(b: &[u8]) -> Body {
        Body::Bytes(Arc::new(b.to_vec()))
    }

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("live/a-00001.ts").is_ok());
        assert!(check_key("a.m3u8").is_ok());
        for bad in ["", "/abs", "a//b", "../x", "a/../b", "a/./b", "a\nb", "x/"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_store_writes_atomically_inside_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDirStore::open(&dir.path().join("out")).unwrap();
        block_on(async {
            s.put("live/x.ts".into(), bytes(b"abc"), meta())
                .await
                .unwrap();
            assert_eq!(s.get("live/x.ts".into()).await.unwrap().unwrap(), b"abc");
            assert_eq!(s.get("live/none.ts".into()).await.unwrap(), None);
            let leftovers: Vec<_> = fs::read_dir(dir.path().join("out/live"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(leftovers, vec!["x.ts"], "no temporary file left behind");
            let err = s
                .put("../escape.ts".into(), bytes(b"x"), meta())
                .await
                .unwrap_err();
            assert!(err.is_permanent());
            assert!(!dir.path().join("escape.ts").exists());
            assert!(s.put("/etc/x".into(), bytes(b"x"), meta()).await.is_err());
            s.delete("live/x.ts".into()).await.unwrap();
            assert_eq!(s.get("live/x.ts".into()).await.unwrap(), None);
        });
    }

    #[test]
    fn local_conditional_writes_refuse_what_they_must() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        let put_new = |key: &str, b: &[u8]| block_on(store.put_new(key.into(), bytes(b), meta()));
        put_new("ev/s-00001.ts", b"one").unwrap();
        let again = put_new("ev/s-00001.ts", b"two").unwrap_err();
        assert_eq!(again.kind, ErrorKind::Conflict, "{again}");
        assert_eq!(
            std::fs::read(dir.path().join("ev/s-00001.ts")).unwrap(),
            b"one"
        );
        let tmp_left = std::fs::read_dir(dir.path().join("ev")).unwrap().count();
        assert_eq!(tmp_left, 1, "no temporary file is left");

        let put_if = |b: &[u8], c: Condition| {
            block_on(store.put_if("ev/x.lease".into(), bytes(b), meta(), c))
        };
        let tag = put_if(b"a", Condition::Absent).unwrap().unwrap();
        assert_eq!(
            put_if(b"b", Condition::Absent).unwrap_err().kind,
            ErrorKind::Conflict
        );
        let wrong = Condition::Matches("\"0\"".into());
        assert_eq!(put_if(b"b", wrong).unwrap_err().kind, ErrorKind::Conflict);
        let tag2 = put_if(b"b", Condition::Matches(tag.clone()))
            .unwrap()
            .unwrap();
        let read = block_on(store.get_tagged("ev/x.lease".into()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (read.bytes.as_slice(), read.etag),
            (&b"b"[..], Some(tag2.clone()))
        );
        let stale = block_on(store.delete_if("ev/x.lease".into(), tag)).unwrap_err();
        assert_eq!(stale.kind, ErrorKind::Conflict);
        block_on(store.delete_if("ev/x.lease".into(), tag2)).unwrap();
        assert!(!dir.path().join("ev/x.lease").exists());
    }

    #[test]
    fn local_store_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let s = LocalDirStore::open(dir.path()).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), dir.path().join("file.ts")).unwrap();
        block_on(async {
            let err = s
                .put("link/x.ts".into(), bytes(b"x"), meta())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
            let err = s
                .put("file.ts".into(), bytes(b"x"), meta())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
            assert!(s.get("link/x.ts".into()).await.is_err());
        });
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_copy_that_waits_for_its_source_leaves_the_runtime_free() {
        use std::future::poll_fn;
        use std::os::unix::fs::MetadataExt;
        // the spool on tmpfs, the destination on another file system: no
        // hard link, the segment is copied
        let spool = tempfile::tempdir_in("/dev/shm").unwrap();
        let dest = tempfile::tempdir().unwrap();
        assert_ne!(
            fs::metadata(spool.path()).unwrap().dev(),
            fs::metadata(dest.path()).unwrap().dev(),
            "the test needs /dev/shm and the temporary directory on different file systems"
        );
        // a source whose reading blocks until another task has run
        let source = spool.path().join("s-00001.ts");
        let (go, writer) = testing::fifo(&source, b"segment 1");
        let s = LocalDirStore::open(dest.path()).unwrap();
        let mut put = s.put("live/s-00001.ts".into(), Body::File(source), meta());
        block_on(async {
            let first = poll_fn(|cx| std::task::Poll::Ready(put.as_mut().poll(cx))).await;
            assert!(
                first.is_pending(),
                "the put returned only once its source could be read: it held the runtime thread"
            );
            // another task on this current-thread runtime gets to run
            tokio::spawn(async move { go.send(()).is_ok() })
                .await
                .unwrap();
            put.await.unwrap();
        });
        assert!(
            writer.join().unwrap(),
            "the source was written only after the other task ran"
        );
        assert_eq!(
            fs::read(dest.path().join("live/s-00001.ts")).unwrap(),
            b"segment 1"
        );
    }
}
