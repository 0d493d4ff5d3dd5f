//! The main command's lease on its stream: the key it lives at, taking it
//! (a standby waits for it, reading its input meanwhile), and where a run
//! that holds it starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use live_upload::cli::Config;
use live_upload::input::standby::{Standby, Window};
use live_upload::uploader::lease::{Acquired, Lease, LeaseError, LeaseSettings};
use live_upload::uploader::retry::Retrier;
use live_upload::uploader::store::Store;

use super::Failure;

/// Where a run that holds the lease starts: its input as a standby kept
/// it, and the lowest segment number it may use.
pub(super) struct Begin {
    /// The lease held, for publishers to hear of its renewals.
    pub(super) lease: Lease,
    pub(super) opened: Option<Box<dyn std::io::Read + Send>>,
    pub(super) first_number: u64,
}

pub(super) fn open_standby(cfg: &Config, stop: &Arc<AtomicBool>) -> Result<Standby, Failure> {
    let source = live_upload::input::source::open(&cfg.input, stop.clone(), cfg.input_timeout)
        .map_err(|e| Failure::Input(format!("cannot open input {}: {e}", cfg.input)))?;
    // a keyframe to start from: two target durations, at least 2 s
    let window = Window {
        time: (cfg.target.to_std() * 2).max(Duration::from_secs(2)),
        max_bytes: live_upload::input::standby::MAX_BYTES,
    };
    Standby::start(source, window)
        .map_err(|e| Failure::Internal(format!("cannot start reading the input: {e}")))
}

/// The lease object's key: beside the playlist, or the ladder's master.
fn lease_key(cfg: &Config) -> String {
    let name = cfg.ladder.as_ref().map_or(&cfg.index_name, |l| &l.master);
    live_upload::uploader::object_key(&cfg.key_prefix, &live_upload::lease::lease_name(name))
}

/// Takes the stream's lease (a standby waits for it); `None` when a standby
/// stopped waiting: a signal, or its input ended.
pub(super) fn take(
    cfg: &Config,
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    stop: &Arc<AtomicBool>,
    standby: Option<&Standby>,
) -> Result<Option<Acquired>, Failure> {
    let settings = LeaseSettings {
        key: lease_key(cfg),
        timing: cfg.lease,
        target: cfg.target.to_std(),
        standby: cfg.standby,
    };
    let retrier = Retrier::new(cfg.retry_policy());
    let keep_waiting = || {
        if stop.load(Ordering::Relaxed) {
            return Err("stopped by a signal while standing by".to_string());
        }
        match standby.and_then(Standby::ended) {
            Some(why) => Err(format!("{why} while standing by")),
            None => Ok(()),
        }
    };
    match runtime.block_on(Lease::acquire(store, retrier, settings, keep_waiting)) {
        Ok(acquired) => Ok(Some(acquired)),
        Err(e @ LeaseError::Held { .. }) => Err(Failure::Lease(e.to_string())),
        Err(e @ LeaseError::Store { .. }) => Err(Failure::Storage(e.to_string())),
        Err(LeaseError::Stopped(why)) => {
            log::info!("{why}; nothing was published");
            Ok(None)
        }
    }
}
