//! Taking, keeping and giving back a run's lease on its stream (the rules
//! are in [`crate::lease`]), and [`LeasedStore`], the store every
//! publishing request of the run goes through while it holds the lease.
//!
//! Where the store honours conditional writes (a local directory always;
//! S3-compatible stores are asked at start), the lease is taken with
//! `If-None-Match: *` or `If-Match` on the expired one's entity tag, renewed
//! and released with `If-Match`, and segments are stored create-only.
//! Elsewhere a run writes its record, waits [`SETTLE`], reads it back and
//! takes the lease only if its own run id is still there.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::retry::Retrier;
use super::store::{Body, BoxFuture, Condition, ErrorKind, ObjectMeta, Store, StoreError, Tagged};
use crate::journal;
use crate::lease::{judge, new_run_id, reserve_ahead, Fence, LeaseRecord, LeaseTiming, Verdict};
use crate::media::segment::segment_number;

/// How long a run on a store without conditional writes waits between
/// writing its record and reading it back.
pub const SETTLE: Duration = Duration::from_secs(1);

/// How long the end of a run waits to give its lease back.
pub const RELEASE_WITHIN: Duration = Duration::from_secs(5);

/// How often a standby looks at the lease, and a holder that could not
/// renew tries again.
const POLL: Duration = Duration::from_millis(500);

/// What the run asks for.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The lease object's key.
    pub key: String,
    pub timing: LeaseTiming,
    /// The target segment duration (how far ahead numbers are reserved).
    pub target: Duration,
    /// Wait for a held lease instead of giving up.
    pub standby: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("{key} is held by {holder} until {until}: another run publishes this stream")]
    Held {
        key: String,
        holder: String,
        until: String,
    },
    #[error("cannot take the lease {key}: {source}")]
    Store { key: String, source: StoreError },
    /// A standby stopped waiting (a signal, or its input ended).
    #[error("{0}")]
    Stopped(String),
}

/// A lease this run holds; clones share it.
#[derive(Clone)]
pub struct Lease {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    retrier: Retrier,
    key: String,
    timing: LeaseTiming,
    /// Numbers reserved past the highest asked for.
    ahead: u64,
    /// The store honours conditional writes.
    atomic: bool,
    state: Mutex<State>,
    /// Rung whenever the state changes.
    changed: Notify,
    /// Asks the keeper for a renewal now.
    renew_now: Notify,
    /// Held by a renewal while it writes, and by the release: a release
    /// waits for a renewal in flight (whose answer moves the ETag, and
    /// whose PUT would otherwise land after the DELETE and put the lease
    /// back).
    writing: tokio::sync::Mutex<()>,
    /// Rung when a renewal ends a pause: publishers' requests waiting to
    /// retry (their attempts timed out while paused) go at once.
    wake: Mutex<Vec<Arc<Notify>>>,
}

struct State {
    record: LeaseRecord,
    etag: Option<String>,
    fence: Fence,
    /// The highest segment number asked for.
    wanted: u64,
    /// Another run holds the lease now (described, where it can be).
    lost: Option<Option<String>>,
    released: bool,
    /// Publishing is paused for want of a renewal (logged once a pause).
    paused: bool,
}

/// What [`Lease::acquire`] gives.
pub struct Acquired {
    pub lease: Lease,
    /// Segment numbers below this one may still come from the run that
    /// held the lease before (its reservation): this run numbers from here.
    pub first_number: u64,
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        content_type: "text/plain; charset=utf-8".into(),
        cache_control: "no-store".into(),
    }
}

fn body(record: &LeaseRecord) -> Body {
    Body::Bytes(Arc::new(record.render().into_bytes()))
}

/// This machine's name, for the record.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "unknown-host".to_string(),
    }
}

/// A holder on this machine whose process no longer exists (killed, or
/// crashed): its lease need not be waited out. Holders elsewhere are
/// judged by their expiry alone.
fn gone(holder: &LeaseRecord) -> bool {
    if holder.host != hostname() || holder.pid == 0 {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(holder.pid) else {
        return false;
    };
    // SAFETY: signal 0 only asks whether the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    !exists
}

fn parse(found: &Option<Tagged>) -> Option<LeaseRecord> {
    found
        .as_ref()
        .and_then(|t| LeaseRecord::parse(&String::from_utf8_lossy(&t.bytes)).ok())
}

impl Lease {
    /// Takes the lease at `settings.key`: at once where there is none or it
    /// expired; a live one held by another run is [`LeaseError::Held`], or
    /// with `standby` waited for, `keep_waiting` telling when to give up.
    /// Nothing is written before the lease is found free.
    pub async fn acquire(
        store: Arc<dyn Store>,
        retrier: Retrier,
        settings: LeaseSettings,
        keep_waiting: impl Fn() -> Result<(), String>,
    ) -> Result<Acquired, LeaseError> {
        let key = settings.key.clone();
        let store_err = |source| LeaseError::Store {
            key: key.clone(),
            source,
        };
        let run = new_run_id();
        let started = Utc::now();
        let mut atomic: Option<bool> = None;
        let mut announced = false;
        loop {
            let found = retrier
                .run(&format!("GET {key}"), || store.get_tagged(key.clone()))
                .await
                .map_err(store_err)?;
            let text = found
                .as_ref()
                .map(|t| String::from_utf8_lossy(&t.bytes).into_owned());
            if let Verdict::Held(holder) = judge(text.as_deref(), &run, Utc::now(), gone) {
                let until = holder
                    .expires
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                if !settings.standby {
                    return Err(LeaseError::Held {
                        key,
                        holder: holder.holder(),
                        until,
                    });
                }
                if !announced {
                    log::info!(
                        "standing by: {key} is held by {} until {until}",
                        holder.holder()
                    );
                    journal::lease_waiting(&key, &holder.holder(), &until);
                    announced = true;
                }
                let left = (holder.expires - Utc::now()).to_std().unwrap_or_default();
                wait_a_while(left.min(POLL), &keep_waiting).await?;
                continue;
            }
            let atomic = match atomic {
                Some(a) => a,
                None => {
                    let a = store.conditions_native()
                        || probe(&*store, &retrier, &key, &run)
                            .await
                            .map_err(store_err)?;
                    atomic = Some(a);
                    a
                }
            };
            // a reservation is handed on until a run releases the lease
            let before = parse(&found).map_or(0, |r| r.reserved);
            let now = Utc::now();
            let record = LeaseRecord {
                host: hostname(),
                pid: std::process::id(),
                run: run.clone(),
                started,
                expires: now + settings.timing.lease,
                reserved: before,
            };
            let began = Instant::now();
            let taken = take(&*store, &retrier, &key, &record, &found, atomic)
                .await
                .map_err(store_err)?;
            let Some(etag) = taken else {
                log::warn!("another run wrote {key} at the same time; looking again");
                continue;
            };
            let fence = Fence::taken(settings.timing, began.into_std());
            log::info!(
                "took the lease {key} for {} s ({})",
                settings.timing.lease.as_secs_f64(),
                if atomic {
                    "conditional writes"
                } else {
                    "the store ignores conditional writes: write, wait, read back"
                }
            );
            journal::lease_taken(&key, &run, atomic);
            let shared = Shared {
                store,
                retrier,
                key,
                timing: settings.timing,
                ahead: reserve_ahead(settings.timing.lease, settings.target),
                atomic,
                state: Mutex::new(State {
                    record,
                    etag,
                    fence,
                    wanted: 0,
                    lost: None,
                    released: false,
                    paused: false,
                }),
                changed: Notify::new(),
                renew_now: Notify::new(),
                writing: tokio::sync::Mutex::new(()),
                wake: Mutex::default(),
            };
            return Ok(Acquired {
                lease: Lease {
                    shared: Arc::new(shared),
                },
                first_number: before + 1,
            });
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The store honours conditional writes.
    pub fn is_atomic(&self) -> bool {
        self.shared.atomic
    }

    /// Whether another run took the lease.
    pub fn is_lost(&self) -> bool {
        self.state().lost.is_some()
    }

    /// Has `wake` rung whenever a renewal ends a pause in publishing.
    pub fn wake_on_renewal(&self, wake: Arc<Notify>) {
        self.shared
            .wake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(wake);
    }

    /// Renews the lease until it is released or lost; spawn it beside the
    /// publishing.
    pub async fn keep(self) {
        loop {
            let wait = {
                let st = self.state();
                if st.released || st.lost.is_some() {
                    return;
                }
                let now = Instant::now().into_std();
                if st.wanted > st.record.reserved {
                    Duration::ZERO
                } else if !st.fence.may_publish(now) {
                    // late: a failed try has waited already
                    Duration::ZERO
                } else {
                    self.shared
                        .timing
                        .renew_every()
                        .saturating_sub(st.fence.since_renewal(now))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.shared.renew_now.notified() => {}
            }
            let writing = self.shared.writing.lock().await;
            // (checked with the lock held: a release that has it first
            // has deleted the lease, which a renewal now would put back)
            if self.state().released {
                return;
            }
            let began = Instant::now();
            let attempt = tokio::time::timeout(self.shared.timing.renew_every(), self.renew());
            let attempt = attempt.await;
            drop(writing);
            match attempt {
                Ok(Ok(())) => {
                    let mut st = self.state();
                    st.fence.renewed(began.into_std());
                    if st.paused {
                        st.paused = false;
                        drop(st);
                        log::info!("renewed the lease {}: publishing goes on", self.shared.key);
                        let wake = self.shared.wake.lock().unwrap_or_else(|e| e.into_inner());
                        for w in wake.iter() {
                            w.notify_waiters();
                        }
                    }
                }
                Ok(Err(e)) if e.kind == ErrorKind::Fenced => {}
                Ok(Err(e)) => {
                    log::debug!("renewing {}: {e}", self.shared.key);
                    tokio::time::sleep(POLL).await;
                }
                Err(_) => log::debug!("renewing {}: no answer in time", self.shared.key),
            }
            self.shared.changed.notify_waiters();
        }
    }

    /// One renewal: the record with a later expiry and a reservation ahead
    /// of the highest number asked for. Finding another run's record (or
    /// none) loses the lease ([`ErrorKind::Fenced`]).
    async fn renew(&self) -> Result<(), StoreError> {
        let s = &self.shared;
        let (record, etag) = {
            let st = self.state();
            let mut r = st.record.clone();
            r.expires = Utc::now() + s.timing.lease;
            r.reserved = r.reserved.max(st.wanted + s.ahead);
            (r, st.etag.clone())
        };
        let key = s.key.clone();
        if s.atomic {
            let condition = Condition::Matches(etag.unwrap_or_default());
            match s
                .store
                .put_if(key.clone(), body(&record), meta(), condition)
                .await
            {
                Ok(etag) => {
                    let mut st = self.state();
                    st.etag = etag;
                    st.record = record;
                    return Ok(());
                }
                Err(e) if e.kind != ErrorKind::Conflict => return Err(e),
                Err(_) => {}
            }
            // the tag changed: an earlier renewal of ours that landed
            // without its answer, or another run
            let found = s.store.get_tagged(key).await?;
            return match parse(&found) {
                Some(r) if r.run == record.run => {
                    self.state().etag = found.and_then(|t| t.etag);
                    Err(StoreError::new(ErrorKind::Transient, "lease tag moved"))
                }
                other => Err(self.lose(other)),
            };
        }
        let found = s.store.get_tagged(key.clone()).await?;
        match parse(&found) {
            Some(r) if r.run == record.run => {}
            other => return Err(self.lose(other)),
        }
        s.store.put(key, body(&record), meta()).await?;
        self.state().record = record;
        Ok(())
    }

    /// Another run holds the lease (`found` is its record, if readable):
    /// this run publishes nothing more.
    fn lose(&self, found: Option<LeaseRecord>) -> StoreError {
        let holder = found.map(|r| r.holder());
        {
            let mut st = self.state();
            st.fence.lose();
            st.lost = Some(holder.clone());
        }
        // a warning: the run's one error line comes from the write it stops
        log::warn!(
            "the lease {} was taken over by {}: this run publishes nothing more",
            self.shared.key,
            holder.as_deref().unwrap_or("another run")
        );
        journal::lease_lost(&self.shared.key, holder.as_deref());
        self.shared.changed.notify_waiters();
        self.fenced()
    }

    fn fenced(&self) -> StoreError {
        let st = self.state();
        let by = match &st.lost {
            Some(Some(h)) => format!(" by {h}"),
            _ => String::new(),
        };
        StoreError::new(
            ErrorKind::Fenced,
            format!(
                "the lease {} was taken over{by}: another run publishes this stream now",
                self.shared.key
            ),
        )
    }

    /// Waits until `ready` holds of the state, asking the keeper for a
    /// renewal meanwhile; fails once the lease is lost.
    async fn wait_for(&self, mut ready: impl FnMut(&mut State) -> bool) -> Result<(), StoreError> {
        loop {
            let changed = self.shared.changed.notified();
            {
                let mut st = self.state();
                if st.lost.is_some() {
                    drop(st);
                    return Err(self.fenced());
                }
                if ready(&mut st) {
                    return Ok(());
                }
            }
            self.shared.renew_now.notify_one();
            let _ = tokio::time::timeout(POLL, changed).await;
        }
    }

    /// Waits until this run may publish: its last renewal is recent enough
    /// that no other run can have taken the lease. Fails once it is lost.
    pub async fn publishable(&self) -> Result<(), StoreError> {
        let key = &self.shared.key;
        self.wait_for(|st| {
            if st.fence.may_publish(Instant::now().into_std()) {
                return true;
            }
            if !st.paused {
                st.paused = true;
                log::warn!(
                    "the lease {key} was not renewed in time: publishing pauses until it is"
                );
            }
            false
        })
        .await
    }

    /// Waits until segment number `n` is within this run's reservation.
    pub async fn reserve(&self, n: u64) -> Result<(), StoreError> {
        self.wait_for(|st| {
            st.wanted = st.wanted.max(n);
            n <= st.record.reserved
        })
        .await
    }

    /// Gives the lease back (deletes the record, if it is still ours) at
    /// the end of the run; a lost lease is left alone. A store that does not
    /// answer within [`RELEASE_WITHIN`] is left to let it run out.
    pub async fn release(&self) {
        if tokio::time::timeout(RELEASE_WITHIN, self.give_back())
            .await
            .is_err()
        {
            log::warn!(
                "cannot release the lease {} in time (it runs out by itself)",
                self.shared.key
            );
        }
    }

    async fn give_back(&self) {
        self.state().released = true;
        // the keeper stops; a renewal it has begun ends first
        self.shared.renew_now.notify_one();
        let _writing = self.shared.writing.lock().await;
        let (etag, run) = {
            let st = self.state();
            if st.lost.is_some() {
                return;
            }
            (st.etag.clone(), st.record.run.clone())
        };
        let s = &self.shared;
        let key = s.key.clone();
        let released = if s.atomic {
            let etag = etag.unwrap_or_default();
            s.retrier
                .run(&format!("DELETE {key}"), || {
                    s.store.delete_if(key.clone(), etag.clone())
                })
                .await
        } else {
            match s.store.get_tagged(key.clone()).await.map(|f| parse(&f)) {
                Ok(Some(r)) if r.run == run => {
                    s.retrier
                        .run(&format!("DELETE {key}"), || s.store.delete(key.clone()))
                        .await
                }
                Ok(_) => Err(StoreError::new(ErrorKind::Conflict, "it is not ours")),
                Err(e) => Err(e),
            }
        };
        match released {
            Ok(()) => {
                log::info!("released the lease {key}");
                journal::lease_released(&key);
            }
            Err(e) => log::warn!("cannot release the lease {key} (it runs out by itself): {e}"),
        }
    }
}

/// Sleeps `d` in short steps, giving up when `keep_waiting` says so.
async fn wait_a_while(
    d: Duration,
    keep_waiting: &impl Fn() -> Result<(), String>,
) -> Result<(), LeaseError> {
    let end = Instant::now() + d;
    loop {
        keep_waiting().map_err(LeaseError::Stopped)?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(100))).await;
    }
}

/// Writes `record`: conditionally where the store honours it, otherwise
/// write, wait, read back. `Some(etag)` when this run holds the lease,
/// `None` when another run wrote first.
async fn take(
    store: &dyn Store,
    retrier: &Retrier,
    key: &str,
    record: &LeaseRecord,
    found: &Option<Tagged>,
    atomic: bool,
) -> Result<Option<Option<String>>, StoreError> {
    let what = format!("PUT {key}");
    if atomic {
        let condition = match found {
            None => Condition::Absent,
            Some(t) => Condition::Matches(t.etag.clone().unwrap_or_default()),
        };
        let put = retrier
            .run(&what, || {
                store.put_if(key.to_string(), body(record), meta(), condition.clone())
            })
            .await;
        return match put {
            Ok(etag) => Ok(Some(etag)),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(None),
            Err(e) => Err(e),
        };
    }
    retrier
        .run(&what, || store.put(key.to_string(), body(record), meta()))
        .await?;
    tokio::time::sleep(SETTLE).await;
    let back = retrier
        .run(&format!("GET {key}"), || store.get_tagged(key.to_string()))
        .await?;
    Ok(match parse(&back) {
        Some(r) if r.run == record.run => Some(back.and_then(|t| t.etag)),
        _ => None,
    })
}

/// Whether the store honours `If-None-Match: *` and `If-Match`: a probe
/// object beside the lease is written twice create-only and once with a
/// tag it cannot have; a store that honours both refuses the last two.
async fn probe(
    store: &dyn Store,
    retrier: &Retrier,
    key: &str,
    run: &str,
) -> Result<bool, StoreError> {
    let probe = format!("{key}.probe-{run}");
    let what = format!("PUT {probe}");
    let put = |condition: Condition| {
        let probe = probe.clone();
        retrier.run(&what, move || {
            let text = Body::Bytes(Arc::new(b"probe\n".to_vec()));
            store.put_if(probe.clone(), text, meta(), condition.clone())
        })
    };
    let refused = |r: Result<Option<String>, StoreError>| match r {
        Ok(_) => Ok(false),
        Err(e) if e.kind == ErrorKind::Conflict => Ok(true),
        Err(e) => Err(e),
    };
    let created = put(Condition::Absent).await;
    let result = async {
        created?;
        let none_match = refused(put(Condition::Absent).await)?;
        let if_match = refused(put(Condition::Matches("\"0\"".into())).await)?;
        Ok(none_match && if_match)
    }
    .await;
    if let Err(e) = retrier
        .run(&format!("DELETE {probe}"), || store.delete(probe.clone()))
        .await
    {
        log::warn!("cannot delete {probe}: {e}");
    }
    result
}

/// The store a run publishes through while it holds its lease: every
/// write waits until the lease is known to be held and fails once it is
/// lost; segments are stored create-only where the store can refuse, and
/// only within the lease's reservation of numbers.
pub struct LeasedStore {
    inner: Arc<dyn Store>,
    lease: Lease,
    /// Segment names are `<prefix>-<number>`: how reservations are read.
    segment_prefix: String,
}

impl LeasedStore {
    pub fn new(inner: Arc<dyn Store>, lease: Lease, segment_prefix: &str) -> Self {
        LeasedStore {
            inner,
            lease,
            segment_prefix: segment_prefix.to_string(),
        }
    }

    /// `request` once this run may publish.
    fn guarded<T: Send + 'static>(
        &self,
        request: impl FnOnce(Arc<dyn Store>) -> BoxFuture<Result<T, StoreError>> + Send + 'static,
    ) -> BoxFuture<Result<T, StoreError>> {
        let (lease, inner) = (self.lease.clone(), self.inner.clone());
        Box::pin(async move {
            lease.publishable().await?;
            request(inner).await
        })
    }
}

impl Store for LeasedStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn put(&self, key: String, body: Body, meta: ObjectMeta) -> BoxFuture<Result<(), StoreError>> {
        self.guarded(move |s| s.put(key, body, meta))
    }

    fn get(&self, key: String) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        self.inner.get(key)
    }

    fn delete(&self, key: String) -> BoxFuture<Result<(), StoreError>> {
        self.guarded(move |s| s.delete(key))
    }

    fn exists(&self, key: String) -> BoxFuture<Result<bool, StoreError>> {
        self.inner.exists(key)
    }

    fn put_new(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
    ) -> BoxFuture<Result<(), StoreError>> {
        let name = key.rsplit('/').next().unwrap_or(&key);
        let number = segment_number(name, &self.segment_prefix);
        let (lease, inner) = (self.lease.clone(), self.inner.clone());
        Box::pin(async move {
            if let Some(n) = number {
                lease.reserve(n).await?;
            }
            lease.publishable().await?;
            if inner.conditions_native() {
                inner.put_new(key, body, meta).await
            } else if lease.is_atomic() {
                inner
                    .put_if(key, body, meta, Condition::Absent)
                    .await
                    .map(|_| ())
            } else {
                inner.put(key, body, meta).await
            }
        })
    }

    fn put_if(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
        condition: Condition,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        self.guarded(move |s| s.put_if(key, body, meta, condition))
    }

    fn get_tagged(&self, key: String) -> BoxFuture<Result<Option<Tagged>, StoreError>> {
        self.inner.get_tagged(key)
    }

    fn delete_if(&self, key: String, etag: String) -> BoxFuture<Result<(), StoreError>> {
        self.guarded(move |s| s.delete_if(key, etag))
    }

    fn conditions_native(&self) -> bool {
        self.inner.conditions_native()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uploader::retry::RetryPolicy;
    use crate::uploader::store::MemoryStore;

    const KEY: &str = "live/index.m3u8.lease";

    fn settings(standby: bool) -> LeaseSettings {
        LeaseSettings {
            key: KEY.into(),
            timing: LeaseTiming {
                lease: Duration::from_secs(10),
            },
            target: Duration::from_secs(2),
            standby,
        }
    }

    fn retrier() -> Retrier {
        Retrier::new(RetryPolicy::default())
    }

    async fn acquire(store: &Arc<dyn Store>, standby: bool) -> Result<Acquired, LeaseError> {
        Lease::acquire(store.clone(), retrier(), settings(standby), || Ok(())).await
    }

    fn record(store: &MemoryStore) -> LeaseRecord {
        let bytes = store.lock().objects.get(KEY).expect("a lease").0.clone();
        LeaseRecord::parse(&String::from_utf8(bytes).unwrap()).unwrap()
    }

    fn segment() -> Body {
        Body::Bytes(Arc::new(b"segment".to_vec()))
    }

    fn seg_meta() -> ObjectMeta {
        ObjectMeta {
            content_type: "video/mp2t".into(),
            cache_control: "max-age=60".into(),
        }
    }

    /// A memory store seen through one of these.
    enum Twist {
        /// It accepts conditions and ignores them, as Garage does.
        IgnoresConditions,
        /// A conditional PUT lands at once and is answered 500 ms later;
        /// the flag is set once one has landed.
        SlowAnswers(Arc<std::sync::atomic::AtomicBool>),
    }

    struct Wrapped(MemoryStore, Twist);

    impl Store for Wrapped {
        fn describe(&self) -> String {
            "wrapped".into()
        }
        fn conditions_native(&self) -> bool {
            matches!(self.1, Twist::SlowAnswers(_))
        }
        fn put(
            &self,
            key: String,
            body: Body,
            meta: ObjectMeta,
        ) -> BoxFuture<Result<(), StoreError>> {
            self.0.put(key, body, meta)
        }
        fn get(&self, key: String) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
            self.0.get(key)
        }
        fn delete(&self, key: String) -> BoxFuture<Result<(), StoreError>> {
            self.0.delete(key)
        }
        fn exists(&self, key: String) -> BoxFuture<Result<bool, StoreError>> {
            self.0.exists(key)
        }
        fn put_if(
            &self,
            key: String,
            body: Body,
            meta: ObjectMeta,
            condition: Condition,
        ) -> BoxFuture<Result<Option<String>, StoreError>> {
            match &self.1 {
                Twist::IgnoresConditions => {
                    let put = self.0.put(key, body, meta);
                    Box::pin(async move { put.await.map(|_| None) })
                }
                Twist::SlowAnswers(landed) => {
                    let put = self.0.put_if(key, body, meta, condition);
                    let landed = landed.clone();
                    Box::pin(async move {
                        let answer = put.await;
                        landed.store(true, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        answer
                    })
                }
            }
        }
        fn get_tagged(&self, key: String) -> BoxFuture<Result<Option<Tagged>, StoreError>> {
            self.0.get_tagged(key)
        }
        fn delete_if(&self, key: String, etag: String) -> BoxFuture<Result<(), StoreError>> {
            match self.1 {
                Twist::IgnoresConditions => self.0.delete(key),
                Twist::SlowAnswers(_) => self.0.delete_if(key, etag),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_lease_refuses_a_second_run_until_it_is_released() {
        let mem = MemoryStore::new();
        let store: Arc<dyn Store> = Arc::new(mem.clone());
        let first = acquire(&store, false).await.unwrap();
        assert_eq!(first.first_number, 1);
        assert!(first.lease.is_atomic(), "a native store needs no probe");
        let mine = record(&mem);
        assert_eq!(mine.pid, std::process::id());
        let held_before = mem.lock().log.len();
        match acquire(&store, false).await {
            Err(LeaseError::Held { key, holder, .. }) => {
                assert_eq!(key, KEY);
                assert_eq!(holder, mine.holder());
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("taken twice"),
        }
        assert_eq!(
            mem.lock().log.len(),
            held_before,
            "the refused run wrote nothing"
        );
        first.lease.release().await;
        assert!(!mem.lock().objects.contains_key(KEY));
        assert_eq!(acquire(&store, false).await.unwrap().first_number, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_is_taken_over_above_its_reservation() {
        let mem = MemoryStore::new();
        let store: Arc<dyn Store> = Arc::new(mem.clone());
        let old = LeaseRecord {
            host: "elsewhere".into(),
            pid: 1,
            run: "0123456789abcdef".into(),
            started: Utc::now() - chrono::Duration::seconds(60),
            expires: Utc::now() - chrono::Duration::seconds(1),
            reserved: 41,
        };
        store.put(KEY.into(), body(&old), meta()).await.unwrap();
        let taken = acquire(&store, false).await.unwrap();
        assert_eq!(taken.first_number, 42);
        let now = record(&mem);
        assert_ne!(now.run, old.run);
        assert_eq!(now.reserved, 41, "the reservation is handed on");
    }

    #[tokio::test(start_paused = true)]
    async fn segments_are_written_within_the_reservation_and_create_only() {
        let mem = MemoryStore::new();
        let store: Arc<dyn Store> = Arc::new(mem.clone());
        let lease = acquire(&store, false).await.unwrap().lease;
        let keeper = tokio::spawn(lease.clone().keep());
        let leased = LeasedStore::new(store.clone(), lease.clone(), "live");
        leased
            .put_new("live/live-00003.ts".into(), segment(), seg_meta())
            .await
            .unwrap();
        let ahead = reserve_ahead(Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(record(&mem).reserved, 3 + ahead);
        let again = leased
            .put_new("live/live-00003.ts".into(), segment(), seg_meta())
            .await
            .unwrap_err();
        assert_eq!(again.kind, ErrorKind::Conflict);
        // renewals keep it: a minute later it still publishes
        tokio::time::sleep(Duration::from_secs(60)).await;
        leased
            .put("live/index.m3u8".into(), segment(), seg_meta())
            .await
            .unwrap();
        assert!(record(&mem).expires > Utc::now());
        lease.release().await;
        keeper.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_taken_over_fences_the_old_holder() {
        let mem = MemoryStore::new();
        let store: Arc<dyn Store> = Arc::new(mem.clone());
        let lease = acquire(&store, false).await.unwrap().lease;
        let keeper = tokio::spawn(lease.clone().keep());
        let leased = LeasedStore::new(store.clone(), lease.clone(), "live");
        // another run writes its own record over this one's
        let mut other = record(&mem);
        other.run = "ffffffffffffffff".into();
        mem.lock()
            .objects
            .insert(KEY.into(), (other.render().into_bytes(), meta()));
        let err = leased
            .put("live/index.m3u8".into(), segment(), seg_meta())
            .await;
        // the next renewal finds it
        let err = match err {
            Err(e) => e,
            Ok(()) => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                leased
                    .put("live/index.m3u8".into(), segment(), seg_meta())
                    .await
                    .unwrap_err()
            }
        };
        assert_eq!(err.kind, ErrorKind::Fenced, "{err}");
        assert!(err.message.contains("ffffffffffffffff"), "{err}");
        assert!(lease.is_lost());
        keeper.await.unwrap();
        // a lost lease is not released: the other run's record stays
        lease.release().await;
        assert_eq!(record(&mem).run, "ffffffffffffffff");
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_ignores_conditions_is_found_out_and_read_back() {
        let mem = MemoryStore::new();
        let store: Arc<dyn Store> = Arc::new(Wrapped(mem.clone(), Twist::IgnoresConditions));
        let acquired = acquire(&store, false).await.unwrap();
        assert!(!acquired.lease.is_atomic());
        assert!(
            mem.lock().objects.keys().all(|k| !k.contains(".probe-")),
            "the probe is deleted"
        );
        assert_eq!(record(&mem).pid, std::process::id());
        // segments go as plain PUTs: the store could not refuse anyway
        let keeper = tokio::spawn(acquired.lease.clone().keep());
        let leased = LeasedStore::new(store.clone(), acquired.lease.clone(), "live");
        for _ in 0..2 {
            leased
                .put_new("live/live-00001.ts".into(), segment(), seg_meta())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        acquired.lease.release().await;
        keeper.await.unwrap();
        assert!(!mem.lock().objects.contains_key(KEY), "released");
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_waits_for_a_renewal_in_flight() {
        let mem = MemoryStore::new();
        let landed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store: Arc<dyn Store> =
            Arc::new(Wrapped(mem.clone(), Twist::SlowAnswers(landed.clone())));
        let acquired = acquire(&store, false).await.unwrap();
        assert!(acquired.lease.is_atomic());
        landed.store(false, std::sync::atomic::Ordering::SeqCst);
        let keeper = tokio::spawn(acquired.lease.clone().keep());
        // a renewal has landed and waits for its answer (and its new ETag)
        acquired.lease.shared.renew_now.notify_one();
        while !landed.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        acquired.lease.release().await;
        keeper.await.unwrap();
        assert!(
            !mem.lock().objects.contains_key(KEY),
            "released with the renewal's ETag, and not put back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_waits_for_the_holder_to_expire() {
        let mem = MemoryStore::new();
        let store: Arc<dyn Store> = Arc::new(mem.clone());
        let first = acquire(&store, false).await.unwrap();
        let expires = record(&mem).expires;
        // the holder dies without releasing: nothing renews
        drop(first);
        let began = Utc::now();
        let standby = acquire(&store, true).await.unwrap();
        assert!(
            Utc::now() >= expires,
            "waited until {expires}, began {began}"
        );
        assert!(standby.first_number >= 1);
        // a standby told to stop gives up
        let other: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let _held = acquire(&other, false).await.unwrap();
        let stopped = Lease::acquire(other.clone(), retrier(), settings(true), || {
            Err("stopped".to_string())
        })
        .await;
        assert!(matches!(stopped, Err(LeaseError::Stopped(_))));
    }
}
