//! The main command with `--ladder`: the segmenter lays the ladder out
//! from the input, then each rendition gets its own publisher (its folder,
//! spool folder, playlist, archive) and the masters their own; restarts
//! continue every rendition at the same segment number.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use futures_util::future::join_all;

use live_upload::channel;
use live_upload::cli::{Config, LadderConfig};
use live_upload::media::{LadderEvent, RenditionLayout};
use live_upload::segmenter::ladder::{run_ladder, LadderRun, Start};
use live_upload::uploader::master::{publish_masters, MasterState, MasterTarget};
use live_upload::uploader::retry::Retrier;
use live_upload::uploader::store::Store;
use live_upload::uploader::{object_key, UploadSummary, Uploader};

use super::{
    apply_resume, first_unused, outcome, plan_resume, segmenter_config, uploader_config, Failure,
    Outcome, Totals, CHANNEL_CAPACITY,
};

/// Runs the ladder on the destination and spool directory that
/// `super::segment_and_publish` opened.
pub(super) fn segment_and_publish(
    cfg: &Config,
    ladder: &LadderConfig,
    totals: &mut Totals,
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    stop: Arc<AtomicBool>,
    begin: super::lease::Begin,
) -> Outcome {
    let (layout_tx, layout_rx) = mpsc::channel();
    let (start_tx, start_rx) = mpsc::channel();
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let run = LadderRun {
        spec: ladder.spec.clone(),
        preset: ladder.preset.clone(),
        layout: layout_tx,
        start: start_rx,
        events: events_tx.clone(),
    };
    let mut seg_cfg = segmenter_config(cfg, 1, false);
    seg_cfg.opened = begin.opened;
    let seg_stop = stop.clone();
    let segmenter = thread::Builder::new()
        .name("segmenter".into())
        .spawn(move || run_ladder(seg_cfg, run, seg_stop))
        .map_err(|e| Failure::Internal(format!("cannot start the segmenter thread: {e}")))?;
    let join = |segmenter: thread::JoinHandle<_>| {
        segmenter
            .join()
            .map_err(|_| Failure::Internal("internal error: the segmenter thread panicked".into()))
    };
    let Ok(layout) = layout_rx.recv() else {
        // the input could not give a ladder: the segmenter says why
        drop(events_tx);
        let segmented = join(segmenter)?;
        return outcome(cfg, Ok(UploadSummary::default()), segmented);
    };
    let configs: Vec<Config> = layout.iter().map(|r| rendition_config(cfg, r)).collect();
    let mut uploaders = Vec::new();
    for (i, rcfg) in configs.iter().enumerate() {
        let mut ucfg = uploader_config(rcfg);
        let tx = events_tx.clone();
        ucfg.on_published = Some(Arc::new(move |archive| {
            let _ = tx.send(LadderEvent::Published {
                rendition: i,
                archive,
            });
        }));
        let uploader = Uploader::new(store.clone(), ucfg, stop.clone());
        begin.lease.wake_on_renewal(uploader.retry_wakeup());
        uploaders.push(uploader);
    }
    drop(events_tx);
    let (first, discontinuity) =
        match runtime.block_on(resume_all(&configs, &mut uploaders, begin.first_number)) {
            Ok(start) => start,
            Err(f) => {
                stop.store(true, Ordering::Relaxed);
                drop(start_tx);
                let _ = join(segmenter)?;
                return Err(f);
            }
        };
    let mut outboxes = Vec::new();
    let mut inboxes = Vec::new();
    for _ in &layout {
        let (outbox, inbox) = channel::bounded(CHANNEL_CAPACITY);
        outboxes.push(outbox);
        inboxes.push(inbox);
    }
    let _ = start_tx.send(Start {
        first_sequence: first,
        first_discontinuity: discontinuity,
        outboxes,
    });
    let mut state = MasterState::new(
        layout.clone(),
        cfg.format,
        &cfg.index_name,
        cfg.archive.as_ref().map(|(name, _)| name.as_str()),
    );
    if !cfg.fresh {
        carry_over(cfg, &ladder.master, &*store, runtime, &mut state);
    }
    let target = MasterTarget {
        store: store.clone(),
        retrier: Retrier::new(cfg.retry_policy()),
        key_prefix: cfg.key_prefix.clone(),
        master_name: ladder.master.clone(),
        archive_name: cfg.archive.as_ref().map(|(name, _)| name.clone()),
        cache_control: cfg
            .playlist_cache_control
            .clone()
            .unwrap_or_else(|| format!("max-age={}", (cfg.target.rounded_secs() / 2).max(1))),
    };
    let stop_all = stop.clone();
    let (uploaded, masters) = runtime.block_on(async move {
        let runs = uploaders.into_iter().zip(inboxes).map(|(u, inbox)| {
            let stop = stop_all.clone();
            async move {
                let r = u.run(inbox).await;
                if r.is_err() {
                    // one rendition can publish no more: stop the input
                    stop.store(true, Ordering::Relaxed);
                }
                r
            }
        });
        tokio::join!(join_all(runs), publish_masters(state, events_rx, target))
    });
    let segmented = join(segmenter)?;
    let mut total = UploadSummary::default();
    let mut first_error = None;
    for r in uploaded {
        match r {
            Ok(s) => add(&mut total, &s),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let uploaded = match (first_error, masters) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(m)) => {
            total.playlist_versions += m.versions;
            total.archive_versions += m.archive_versions;
            Ok(total)
        }
    };
    totals.uploaded = uploaded.as_ref().ok().cloned();
    totals.segmented = Some(match &segmented {
        Ok(s) | Err((_, s)) => s.clone(),
    });
    outcome(cfg, uploaded, segmented)
}

/// Keeps the BANDWIDTH of the master an earlier run published (see
/// [`MasterState::carry_over`]); one that cannot be read is passed over
/// with a line.
fn carry_over(
    cfg: &Config,
    master: &str,
    store: &dyn Store,
    runtime: &tokio::runtime::Runtime,
    state: &mut MasterState,
) {
    let key = object_key(&cfg.key_prefix, master);
    let retrier = Retrier::new(cfg.retry_policy());
    let found = runtime.block_on(retrier.run(&format!("GET {key}"), || store.get(key.clone())));
    let parsed = match found {
        Ok(Some(text)) => live_upload::master::parse(&String::from_utf8_lossy(&text))
            .map_err(|e| format!("{e:?}")),
        Ok(None) => return,
        Err(e) => Err(e.to_string()),
    };
    match parsed {
        Ok(previous) => state.carry_over(&previous),
        Err(e) => log::warn!(
            "cannot read {key} of an earlier run ({e}): BANDWIDTH counts this run's segments only"
        ),
    }
}

/// A rendition's configuration: its folder below the key prefix, in the
/// spool directory and in the URL prefix.
fn rendition_config(cfg: &Config, r: &RenditionLayout) -> Config {
    let mut c = cfg.clone();
    c.key_prefix = object_key(&cfg.key_prefix, &r.folder);
    c.spool_dir = cfg.spool_dir.join(&r.folder);
    if !cfg.http_prefix.is_empty() {
        let sep = if cfg.http_prefix.ends_with('/') {
            ""
        } else {
            "/"
        };
        c.http_prefix = format!("{}{sep}{}/", cfg.http_prefix, r.folder);
    }
    c
}

/// Plans every rendition's restart and brings them to one first number:
/// the lowest any rendition that published before would continue at (a
/// rendition's complete spool segments from there on were never announced:
/// the segmenter announces a number only once every rendition finished
/// it), raised to `lowest` (the lease's reservation) and past any key that
/// already exists in any rendition.
async fn resume_all(
    configs: &[Config],
    uploaders: &mut [Uploader],
    lowest: u64,
) -> Result<(u64, bool), Failure> {
    let mut plans = Vec::new();
    for (cfg, up) in configs.iter().zip(uploaders.iter()) {
        plans.push(plan_resume(cfg, up).await?);
    }
    let known = |p: &live_upload::resume::Plan| p.restored.is_some() || !p.leftovers.is_empty();
    let target = plans
        .iter()
        .filter(|p| known(p))
        .map(|p| p.first_sequence)
        .min()
        .unwrap_or(1);
    for (cfg, plan) in configs.iter().zip(plans.iter_mut()) {
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.leftovers)
            .into_iter()
            .partition(|s| s.sequence < target);
        if !drop.is_empty() {
            log::info!(
                "{}: {} segment(s) from {target} on, which not every rendition finished, are \
                 not published",
                cfg.key_prefix,
                drop.len()
            );
        }
        for seg in drop {
            let _ = live_upload::spool::remove(&seg.path);
        }
        plan.leftovers = keep;
        plan.first_sequence = target;
    }
    let mut first = target;
    for (cfg, up) in configs.iter().zip(uploaders.iter()) {
        first = first.max(first_unused(cfg, up, target.max(lowest)).await?);
    }
    let mut discontinuity = false;
    for (up, plan) in uploaders.iter_mut().zip(plans) {
        discontinuity |= apply_resume(up, plan, first).1;
    }
    Ok((first, discontinuity))
}

fn add(total: &mut UploadSummary, s: &UploadSummary) {
    total.segments += s.segments;
    total.bytes += s.bytes;
    total.inits += s.inits;
    total.playlist_versions += s.playlist_versions;
    total.playlist_bytes += s.playlist_bytes;
    total.archive_versions += s.archive_versions;
    total.archive_bytes += s.archive_bytes;
    total.media = total.media.max(s.media);
    total.deleted += s.deleted;
    total.attempts += s.attempts;
    total.retries += s.retries;
    total.longest_wait = total.longest_wait.max(s.longest_wait);
}
