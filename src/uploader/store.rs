//! Storage backends behind one small trait: a local directory, an in-memory
//! store for tests, and (later) S3.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The content of an object to store.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl Body<'_> {
    fn read(&self) -> io::Result<Vec<u8>> {
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: the store may accept the same request later.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (bad credentials, no such bucket, ...).
    #[error("{0}")]
    Permanent(String),
}

impl StoreError {
    fn from_io(what: &str, key: &str, e: io::Error) -> Self {
        let msg = format!("{what} {key}: {e}");
        match e.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                StoreError::Transient(msg)
            }
            _ => StoreError::Permanent(msg),
        }
    }
}

/// Where segments and playlists are published.
pub trait Store: Send {
    /// A description for log lines, without secrets.
    fn describe(&self) -> String;
    /// Stores an object so that readers see either the old or the whole new
    /// content, never a part.
    fn put(&mut self, key: &str, body: Body<'_>, meta: &ObjectMeta) -> Result<(), StoreError>;
    /// Reads an object; `None` when it does not exist.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn delete(&mut self, key: &str) -> Result<(), StoreError>;
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
pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    /// Opens (creating if needed) the directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(LocalDirStore {
            root: root.canonicalize()?,
        })
    }

    /// The file path of a key, refusing keys that could leave the root or
    /// pass through a symbolic link.
    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key).map_err(StoreError::Permanent)?;
        let path = self.root.join(key);
        let mut dir = self.root.clone();
        for part in Path::new(key)
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
        {
            dir.push(part);
            if fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(StoreError::Permanent(format!(
                    "refusing to write {key}: {} is a symbolic link",
                    dir.display()
                )));
            }
        }
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(StoreError::Permanent(format!(
                "refusing to write {key}: it is a symbolic link"
            )));
        }
        Ok(path)
    }
}

impl Store for LocalDirStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn put(&mut self, key: &str, body: Body<'_>, _meta: &ObjectMeta) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let dir = path.parent().expect("a key has a parent in the root");
        fs::create_dir_all(dir)
            .map_err(|e| StoreError::from_io("creating directory for", key, e))?;
        let name = path
            .file_name()
            .expect("keys end in a name")
            .to_string_lossy();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = match body {
            Body::File(src) => fs::copy(src, &tmp).map(|_| ()),
            Body::Bytes(b) => fs::write(&tmp, b),
        };
        if let Err(e) = written.and_then(|_| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::from_io("writing", key, e));
        }
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::from_io("reading", key, e)),
        }
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::from_io("deleting", key, e)),
        }
    }
}

/// One request a [`MemoryStore`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, body: Vec<u8> },
    Delete { key: String },
}

#[derive(Debug, Default)]
pub struct MemoryState {
    pub objects: BTreeMap<String, (Vec<u8>, ObjectMeta)>,
    /// Every put and delete, in order.
    pub log: Vec<Op>,
    /// Keys whose next put fails (once each), for failure tests.
    pub fail_next_put: Vec<String>,
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

    fn put(&mut self, key: &str, body: Body<'_>, meta: &ObjectMeta) -> Result<(), StoreError> {
        check_key(key).map_err(StoreError::Permanent)?;
        let bytes = body
            .read()
            .map_err(|e| StoreError::from_io("reading body of", key, e))?;
        let mut state = self.lock();
        if let Some(i) = state.fail_next_put.iter().position(|k| k == key) {
            state.fail_next_put.remove(i);
            return Err(StoreError::Permanent(format!("injected failure for {key}")));
        }
        state.log.push(Op::Put {
            key: key.to_string(),
            body: bytes.clone(),
        });
        state.objects.insert(key.to_string(), (bytes, meta.clone()));
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().objects.get(key).map(|(b, _)| b.clone()))
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.log.push(Op::Delete {
            key: key.to_string(),
        });
        state.objects.remove(key);
        Ok(())
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
        let mut s = LocalDirStore::open(&dir.path().join("out")).unwrap();
        s.put("live/x.ts", Body::Bytes(b"abc"), &meta()).unwrap();
        assert_eq!(s.get("live/x.ts").unwrap().unwrap(), b"abc");
        assert_eq!(s.get("live/none.ts").unwrap(), None);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("out/live"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["x.ts"], "no temporary file left behind");
        assert!(s.put("../escape.ts", Body::Bytes(b"x"), &meta()).is_err());
        assert!(!dir.path().join("escape.ts").exists());
        s.delete("live/x.ts").unwrap();
        assert_eq!(s.get("live/x.ts").unwrap(), None);
    }

    #[test]
    fn local_store_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut s = LocalDirStore::open(dir.path()).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let err = s.put("link/x.ts", Body::Bytes(b"x"), &meta()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
