//! `live_upload clip`: reads an archive playlist, or a ladder's archive
//! master, and stores a VOD playlist of the range beside it (for a master:
//! a clip per rendition, beside that rendition's archive, and a clip master
//! naming them).

use std::sync::Arc;

use live_upload::cli::ClipConfig;
use live_upload::clip;
use live_upload::media::MediaDuration;
use live_upload::playlist::Entry;
use live_upload::resume::{self, Published};
use live_upload::uploader::retry::{Retrier, RetryPolicy};
use live_upload::uploader::store::{Body, ObjectMeta, Store};
use live_upload::uploader::{object_key, open_store, Destination, PLAYLIST_CONTENT_TYPE};

use super::{connect_timeout, Failure};

/// Stores the clip; returns its key (the clip master's, for a ladder) and
/// URL.
pub(super) async fn clip(cfg: &ClipConfig) -> Result<(String, Option<String>), Failure> {
    if let Destination::Local(dir) = &cfg.destination {
        if !dir.is_dir() {
            return Err(Failure::Storage(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
    }
    let store = open_store(
        &cfg.destination,
        &cfg.s3,
        None,
        connect_timeout(cfg.request_timeout),
    )
    .await
    .map_err(Failure::Storage)?;
    let io = Io {
        store,
        retrier: Retrier::new(RetryPolicy {
            attempt_timeout: cfg.request_timeout,
            ..RetryPolicy::default()
        }),
        meta: ObjectMeta {
            content_type: PLAYLIST_CONTENT_TYPE.to_string(),
            cache_control: cfg.cache_control.clone(),
        },
    };
    let key = object_key(&cfg.key_prefix, &cfg.archive);
    let text = io
        .get(&key)
        .await?
        .ok_or_else(|| Failure::Storage(format!("{}: there is no archive {key}", io.describe())))?;
    let master = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| live_upload::master::parse(t).ok());
    let (name, chosen) = match master {
        None => {
            let archive = read_archive(&key, &text)?;
            let chosen = choose(cfg, &key, &archive)?;
            let name = name_of(cfg, &chosen);
            let clip_key = object_key(&cfg.key_prefix, &name);
            io.put(&clip_key, clip::render(&archive, &chosen)).await?;
            (name, chosen)
        }
        Some(master) => {
            // a ladder: every rendition's clip, then the master naming them
            let mut choices = Vec::new();
            for uri in clip::renditions(&master) {
                let rkey = object_key(&cfg.key_prefix, &uri);
                let text = io.get(&rkey).await?.ok_or_else(|| {
                    Failure::Storage(format!(
                        "{}: the archive master {key} names {rkey}, which is not there",
                        io.describe()
                    ))
                })?;
                let archive = read_archive(&rkey, &text)?;
                let chosen = choose(cfg, &rkey, &archive)?;
                choices.push((uri, archive, chosen));
            }
            let pairs: Vec<(String, Vec<Entry>)> = choices
                .iter()
                .map(|(uri, _, chosen)| (uri.clone(), chosen.clone()))
                .collect();
            clip::check_aligned(&pairs).map_err(|e| Failure::Usage(format!("{key}: {e}")))?;
            let Some((_, _, first)) = choices.first() else {
                return Err(Failure::Usage(format!(
                    "{key}: the master names no playlist"
                )));
            };
            let name = name_of(cfg, first);
            let first = first.clone();
            for (uri, archive, chosen) in &choices {
                let rkey = object_key(&cfg.key_prefix, &clip::beside(uri, &name));
                io.put(&rkey, clip::render(archive, chosen)).await?;
            }
            let clip_key = object_key(&cfg.key_prefix, &name);
            io.put(&clip_key, clip::clip_master(&master, &name).render())
                .await?;
            log::info!("clip master of {} rendition(s)", choices.len());
            (name, first)
        }
    };
    let media: MediaDuration = chosen.iter().map(|e| e.duration).sum();
    let clip_key = object_key(&cfg.key_prefix, &name);
    log::info!(
        "clip of {} segment(s), {} s, written to {clip_key}",
        chosen.len(),
        media
    );
    let url = cfg.http_prefix.as_ref().map(|p| format!("{p}{name}"));
    Ok((clip_key, url))
}

fn read_archive(key: &str, text: &[u8]) -> Result<Published, Failure> {
    resume::parse_published(text, "", "").map_err(|e| Failure::Storage(format!("{key}: {e}")))
}

fn choose(cfg: &ClipConfig, key: &str, archive: &Published) -> Result<Vec<Entry>, Failure> {
    clip::select(archive, cfg.from, cfg.to).map_err(|e| Failure::Usage(format!("{key}: {e}")))
}

fn name_of(cfg: &ClipConfig, chosen: &[Entry]) -> String {
    cfg.name
        .clone()
        .unwrap_or_else(|| clip::default_name(chosen))
}

/// The store, its retries and the playlists' metadata.
struct Io {
    store: Arc<dyn Store>,
    retrier: Retrier,
    meta: ObjectMeta,
}

impl Io {
    fn describe(&self) -> String {
        self.store.describe()
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.retrier
            .run(&format!("GET {key}"), || self.store.get(key.to_string()))
            .await
            .map_err(|e| Failure::Storage(format!("{}: cannot read {key}: {e}", self.describe())))
    }

    async fn put(&self, key: &str, text: String) -> Result<(), Failure> {
        let body = Body::Bytes(Arc::new(text.into_bytes()));
        self.retrier
            .run(&format!("PUT {key}"), || {
                self.store
                    .put(key.to_string(), body.clone(), self.meta.clone())
            })
            .await
            .map_err(|e| Failure::Storage(format!("{}: cannot store {key}: {e}", self.describe())))
    }
}
