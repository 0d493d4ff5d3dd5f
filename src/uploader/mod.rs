//! The storage side: store each segment, then publish the playlist that
//! lists it. A published playlist never lists a segment that is not stored.

pub mod store;

use std::fs;

use crossbeam_channel::Receiver;

use crate::playlist::{Entry, Playlist};
use crate::segmenter::SegmentReady;
use crate::timeline::format_secs;
use store::{Body, ObjectMeta, Store, StoreError};

pub const SEGMENT_CONTENT_TYPE: &str = "video/mp2t";
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";

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
    /// Cache-Control for segments; for playlists `None` means half the
    /// target duration.
    pub segment_cache_control: String,
    pub playlist_cache_control: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot store {key} in {destination}: {source}")]
pub struct UploadError {
    pub key: String,
    pub destination: String,
    #[source]
    pub source: StoreError,
}

/// What a finished run published.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    pub segments: u64,
    pub bytes: u64,
    pub playlist_versions: u64,
    pub media_ticks: i64,
}

/// Joins a key prefix and a name without producing `//` or a leading `/`.
pub fn object_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

pub struct Uploader {
    store: Box<dyn Store>,
    cfg: UploaderConfig,
    playlist: Playlist,
    summary: UploadSummary,
}

impl Uploader {
    pub fn new(store: Box<dyn Store>, cfg: UploaderConfig) -> Self {
        Uploader {
            playlist: Playlist::new(cfg.target, cfg.window),
            store,
            cfg,
            summary: UploadSummary::default(),
        }
    }

    pub fn index_key(&self) -> String {
        object_key(&self.cfg.key_prefix, &self.cfg.index_name)
    }

    /// Publishes every segment that arrives until the channel closes, then
    /// the final playlist with EXT-X-ENDLIST.
    pub fn run(mut self, rx: Receiver<SegmentReady>) -> Result<UploadSummary, UploadError> {
        for seg in rx.iter() {
            self.publish_segment(&seg)?;
        }
        self.finish()
    }

    /// Stores one segment and publishes the playlist that lists it.
    pub fn publish_segment(&mut self, seg: &SegmentReady) -> Result<(), UploadError> {
        let key = object_key(&self.cfg.key_prefix, &seg.name);
        let meta = ObjectMeta {
            content_type: SEGMENT_CONTENT_TYPE.to_string(),
            cache_control: self.cfg.segment_cache_control.clone(),
        };
        self.store
            .put(&key, Body::File(&seg.path), &meta)
            .map_err(|source| self.error(&key, source))?;
        log::debug!("stored {key} ({} bytes)", seg.bytes);
        if !self.cfg.keep_spool {
            if let Err(e) = fs::remove_file(&seg.path) {
                log::warn!("cannot remove spool file {}: {e}", seg.path.display());
            }
        }
        self.summary.segments += 1;
        self.summary.bytes += seg.bytes;
        self.summary.media_ticks += seg.duration;
        self.playlist.push(Entry {
            sequence: seg.sequence,
            uri: format!("{}{}", self.cfg.http_prefix, seg.name),
            duration: seg.duration,
            discontinuity: seg.discontinuity,
            program_date_time: self.cfg.program_date_time.then_some(seg.program_date_time),
        });
        self.publish_playlist()
    }

    /// Publishes the final playlist (with EXT-X-ENDLIST) and returns the
    /// summary.
    pub fn finish(mut self) -> Result<UploadSummary, UploadError> {
        self.playlist.end();
        if !self.playlist.is_empty() {
            self.publish_playlist()?;
        }
        log::info!(
            "published {} segment(s), {} s of media, {} bytes, {} playlist version(s) to {}",
            self.summary.segments,
            format_secs(self.summary.media_ticks),
            self.summary.bytes,
            self.summary.playlist_versions,
            self.store.describe()
        );
        Ok(self.summary)
    }

    fn publish_playlist(&mut self) -> Result<(), UploadError> {
        let key = self.index_key();
        let text = self.playlist.render();
        let cache_control =
            self.cfg.playlist_cache_control.clone().unwrap_or_else(|| {
                format!("max-age={}", (self.playlist.target_duration() / 2).max(1))
            });
        let meta = ObjectMeta {
            content_type: PLAYLIST_CONTENT_TYPE.to_string(),
            cache_control,
        };
        self.store
            .put(&key, Body::Bytes(text.as_bytes()), &meta)
            .map_err(|source| self.error(&key, source))?;
        self.summary.playlist_versions += 1;
        log::debug!(
            "published {key} version {} (media sequence {}, {} segment(s){})",
            self.summary.playlist_versions,
            self.playlist.media_sequence(),
            self.playlist.entries().count(),
            if text.contains("#EXT-X-ENDLIST") {
                ", ended"
            } else {
                ""
            }
        );
        log::trace!(
            "playlist {key} version {}:\n{text}",
            self.summary.playlist_versions
        );
        Ok(())
    }

    fn error(&self, key: &str, source: StoreError) -> UploadError {
        UploadError {
            key: key.to_string(),
            destination: self.store.describe(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store::{MemoryStore, Op};
    use super::*;
    use crate::timeline::TICKS_PER_SECOND;
    use chrono::Utc;

    fn config(keep_spool: bool) -> UploaderConfig {
        UploaderConfig {
            key_prefix: "live/event".into(),
            index_name: "index.m3u8".into(),
            http_prefix: String::new(),
            target: 4 * TICKS_PER_SECOND,
            window: 3,
            program_date_time: false,
            keep_spool,
            segment_cache_control: "max-age=86400".into(),
            playlist_cache_control: None,
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
            duration: 4 * TICKS_PER_SECOND,
            discontinuity: false,
            program_date_time: Utc::now(),
        }
    }

    #[test]
    fn every_playlist_lists_only_stored_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let up = Uploader::new(Box::new(store.clone()), config(false));
        let (tx, rx) = crossbeam_channel::bounded(4);
        let feeder = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for n in 1..=6 {
                    tx.send(segment(&dir, n)).unwrap();
                }
            })
        };
        let summary = up.run(rx).unwrap();
        feeder.join().unwrap();
        assert_eq!(summary.segments, 6);
        assert_eq!(
            summary.playlist_versions, 7,
            "one per segment and the final one"
        );
        let state = store.lock();
        let mut stored = std::collections::HashSet::new();
        let mut versions = Vec::new();
        for op in &state.log {
            let Op::Put { key, body } = op else {
                panic!("no deletes expected")
            };
            if key.ends_with(".m3u8") {
                let text = String::from_utf8(body.clone()).unwrap();
                for uri in text.lines().filter(|l| !l.starts_with('#')) {
                    assert!(
                        stored.contains(&format!("live/event/{uri}")),
                        "{uri} listed before stored"
                    );
                }
                versions.push(text);
            } else {
                stored.insert(key.clone());
            }
        }
        assert!(versions.last().unwrap().ends_with("#EXT-X-ENDLIST\n"));
        assert!(versions[..6].iter().all(|v| !v.contains("ENDLIST")));
        let (_, meta) = &state.objects["live/event/index.m3u8"];
        assert_eq!(meta.content_type, PLAYLIST_CONTENT_TYPE);
        assert_eq!(meta.cache_control, "max-age=2");
        assert_eq!(
            state.objects["live/event/s-00003.ts"].1.content_type,
            SEGMENT_CONTENT_TYPE
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "spool emptied"
        );
    }

    #[test]
    fn a_failed_store_stops_before_the_playlist_and_keeps_the_spool_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        store
            .lock()
            .fail_next_put
            .push("live/event/s-00002.ts".into());
        let mut up = Uploader::new(Box::new(store.clone()), config(false));
        up.publish_segment(&segment(dir.path(), 1)).unwrap();
        let err = up.publish_segment(&segment(dir.path(), 2)).unwrap_err();
        assert_eq!(err.key, "live/event/s-00002.ts");
        assert!(dir.path().join("s-00002.ts").exists());
        let state = store.lock();
        let (playlist, _) = &state.objects["live/event/index.m3u8"];
        assert!(!String::from_utf8_lossy(playlist).contains("s-00002.ts"));
    }

    #[test]
    fn keys_never_double_slash() {
        assert_eq!(object_key("", "index.m3u8"), "index.m3u8");
        assert_eq!(object_key("live", "a.ts"), "live/a.ts");
    }
}
