//! Retrying store requests: exponential backoff with jitter and a timeout
//! per attempt. Transient failures are retried until they stop; a store that
//! has never answered at all is given up on after a few attempts, since that
//! is a wrong endpoint rather than an outage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::store::{BoxFuture, ErrorKind, StoreError};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubled after each failure.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Time allowed for one attempt.
    pub attempt_timeout: Duration,
    /// Attempts after which a store that has never answered is given up.
    pub unreachable_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            attempt_timeout: super::defaults::request_timeout(),
            unreachable_attempts: 4,
        }
    }
}

/// Counters over all requests of a run.
#[derive(Debug, Default)]
pub struct RetryStats {
    pub attempts: AtomicU64,
    pub retries: AtomicU64,
    pub timeouts: AtomicU64,
}

/// Runs store requests under a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct Retrier {
    policy: RetryPolicy,
    stats: Arc<RetryStats>,
    /// Set once the store has given any answer.
    reached: Arc<AtomicBool>,
    /// Rung when a request succeeds: the store is back, so requests waiting
    /// to retry go at once instead of sleeping out their backoff.
    recovered: Arc<Notify>,
}

impl Retrier {
    pub fn new(policy: RetryPolicy) -> Self {
        Retrier {
            policy,
            stats: Arc::default(),
            reached: Arc::default(),
            recovered: Arc::default(),
        }
    }

    pub fn stats(&self) -> &RetryStats {
        &self.stats
    }

    /// What wakes the requests waiting to retry, as a success does: for
    /// news that the store can be written again (a lease renewed after a
    /// pause).
    pub fn wakeup(&self) -> Arc<Notify> {
        self.recovered.clone()
    }

    /// Runs `op` until it succeeds, fails permanently, or the store proves
    /// unreachable. `what` names the request in log lines.
    pub async fn run<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> BoxFuture<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut delay = self.policy.base_delay;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.stats.attempts.fetch_add(1, Ordering::Relaxed);
            let result = match tokio::time::timeout(self.policy.attempt_timeout, op()).await {
                Ok(r) => r,
                Err(_) => {
                    self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    Err(StoreError::new(
                        ErrorKind::Unreachable,
                        format!(
                            "no answer within {} s",
                            self.policy.attempt_timeout.as_secs_f64()
                        ),
                    ))
                }
            };
            let err = match result {
                Ok(v) => {
                    self.reached.store(true, Ordering::Relaxed);
                    self.recovered.notify_waiters();
                    if attempt > 1 {
                        log::info!("{what}: done after {attempt} attempts");
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            if err.kind == ErrorKind::Transient {
                // the store answered, if only with an error
                self.reached.store(true, Ordering::Relaxed);
            }
            if err.is_permanent() {
                return Err(err);
            }
            if !self.reached.load(Ordering::Relaxed) && attempt >= self.policy.unreachable_attempts
            {
                return Err(StoreError::permanent(format!(
                    "cannot reach the store ({attempt} attempts): {err}"
                )));
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let wait = jitter(delay);
            if attempt == 1 {
                log::warn!("{err}; retrying");
            } else {
                log::debug!("{what}: attempt {attempt} failed: {err}; retrying in {wait:?}");
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => delay = (delay * 2).min(self.policy.max_delay),
                // another request just succeeded: retry now, backoff reset
                _ = self.recovered.notified() => delay = self.policy.base_delay,
            }
        }
    }
}

/// A delay between half and all of `d`, so that many clients retrying at
/// once spread out.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(5),
            unreachable_attempts: 3,
        }
    }

    fn failing(kinds: Vec<ErrorKind>) -> impl FnMut() -> BoxFuture<Result<u32, StoreError>> {
        let calls = Arc::new(AtomicU32::new(0));
        move || {
            let n = calls.fetch_add(1, Ordering::Relaxed) as usize;
            let kind = kinds.get(n).copied();
            Box::pin(async move {
                match kind {
                    Some(k) => Err(StoreError::new(k, format!("failure {n}"))),
                    None => Ok(n as u32),
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays() {
        let r = Retrier::new(policy());
        let start = tokio::time::Instant::now();
        let op = failing(vec![ErrorKind::Transient; 5]);
        assert_eq!(r.run("put x", op).await.unwrap(), 5);
        // delays 100, 200, 400, 800, 1000 ms, each jittered to at least half
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1250) && waited <= Duration::from_millis(2500),
            "{waited:?}"
        );
        assert_eq!(r.stats().retries.load(Ordering::Relaxed), 5);
        assert_eq!(r.stats().attempts.load(Ordering::Relaxed), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_stop_at_once() {
        let r = Retrier::new(policy());
        let err = r
            .run("put x", failing(vec![ErrorKind::Permanent]))
            .await
            .unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(r.stats().attempts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_never_reached_is_given_up() {
        let r = Retrier::new(policy());
        let err = r
            .run("put x", failing(vec![ErrorKind::Unreachable; 10]))
            .await
            .unwrap_err();
        assert!(err.is_permanent());
        assert!(err.message.contains("cannot reach"), "{err}");
        assert_eq!(r.stats().attempts.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_after_the_store_answered_is_waited_out() {
        let r = Retrier::new(policy());
        r.run("put a", failing(vec![])).await.unwrap();
        let op = failing(vec![ErrorKind::Unreachable; 10]);
        assert_eq!(r.run("put b", op).await.unwrap(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_elsewhere_wakes_requests_waiting_to_retry() {
        let r = Retrier::new(RetryPolicy {
            max_delay: Duration::from_secs(60),
            ..policy()
        });
        r.run("warm up", failing(vec![])).await.unwrap();
        let start = tokio::time::Instant::now();
        // fails long enough to be sleeping for seconds between attempts
        let slow = r.run("long outage", failing(vec![ErrorKind::Unreachable; 8]));
        let other = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            r.run("recovered", failing(vec![])).await.unwrap();
            start.elapsed()
        };
        let (result, recovered_at) = tokio::join!(slow, other);
        assert_eq!(result.unwrap(), 8);
        let done = start.elapsed();
        // without the wake-up the 8th retry alone would wait 6.4 to 12.8 s
        assert!(
            done < recovered_at + Duration::from_secs(2),
            "{done:?} vs {recovered_at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_time_out() {
        let r = Retrier::new(RetryPolicy {
            attempt_timeout: Duration::from_secs(2),
            ..policy()
        });
        r.run("warm up", failing(vec![])).await.unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let op = move || -> BoxFuture<Result<(), StoreError>> {
            let first = c.fetch_add(1, Ordering::Relaxed) == 0;
            Box::pin(async move {
                if first {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok(())
            })
        };
        r.run("slow", op).await.unwrap();
        assert_eq!(r.stats().timeouts.load(Ordering::Relaxed), 1);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}
