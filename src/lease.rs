//! One writer per stream: the lease a run holds on its destination, pure
//! (the record, who may take it, when to renew, when a holder must stop).
//! The I/O that takes, renews and releases it is in `uploader::lease`.
//!
//! The lease is a small text object beside the playlist naming its holder
//! (host, pid, a random run id, when it started and when it expires). Its
//! times are wall-clock times, because the runs that read them may be on
//! other machines; a holder's own decision to stop publishing (fencing)
//! uses its monotonic clock only: the time since its last renewal began.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

/// The lease's object name beside the playlist: `<index>.lease`.
pub fn lease_name(playlist: &str) -> String {
    format!("{playlist}.lease")
}

/// What the lease object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub host: String,
    pub pid: u32,
    /// A random id of the run, unique across machines and restarts.
    pub run: String,
    pub started: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// Segment numbers up to this one may be written by the holder: a run
    /// that takes the lease over numbers its segments above it, so that no
    /// key of its can meet one the old holder still had on its way.
    pub reserved: u64,
}

impl LeaseRecord {
    /// The object's text: one `name: value` line per field.
    pub fn render(&self) -> String {
        let t = |d: &DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
        format!(
            "live_upload lease\nhost: {}\npid: {}\nrun: {}\nstarted: {}\nexpires: {}\nreserved: {}\n",
            self.host,
            self.pid,
            self.run,
            t(&self.started),
            t(&self.expires),
            self.reserved
        )
    }

    /// Reads what [`render`](Self::render) wrote.
    pub fn parse(text: &str) -> Result<LeaseRecord, String> {
        let mut lines = text.lines();
        if lines.next() != Some("live_upload lease") {
            return Err("it is not a live_upload lease".into());
        }
        let (mut host, mut pid, mut run, mut started, mut expires) = (None, None, None, None, None);
        let mut reserved = 0;
        for line in lines {
            let Some((name, value)) = line.split_once(": ") else {
                continue;
            };
            let time = || {
                DateTime::parse_from_rfc3339(value)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|e| format!("{name}: {e}"))
            };
            match name {
                "host" => host = Some(value.to_string()),
                "pid" => pid = Some(value.parse().map_err(|e| format!("pid: {e}"))?),
                "run" => run = Some(value.to_string()),
                "started" => started = Some(time()?),
                "expires" => expires = Some(time()?),
                "reserved" => reserved = value.parse().map_err(|e| format!("reserved: {e}"))?,
                _ => {}
            }
        }
        let missing = |what: &str| format!("it has no {what}");
        Ok(LeaseRecord {
            host: host.ok_or_else(|| missing("host"))?,
            pid: pid.ok_or_else(|| missing("pid"))?,
            run: run.ok_or_else(|| missing("run"))?,
            started: started.ok_or_else(|| missing("started"))?,
            expires: expires.ok_or_else(|| missing("expires"))?,
            reserved,
        })
    }

    /// For messages: `host pid 1234 (run 0a1b…)`.
    pub fn holder(&self) -> String {
        format!("{} pid {} (run {})", self.host, self.pid, self.run)
    }
}

/// Whether a run may take the lease it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No lease, an expired one, or one that cannot be read: take it.
    Free,
    /// This run holds it.
    Ours,
    /// Another run holds it until `expires`.
    Held(LeaseRecord),
}

/// Judges the lease object found (its text, if any) for run `me` at `now`;
/// `gone` tells of a holder known to have ended (a process of this machine
/// that no longer exists), whose lease is free before it runs out.
pub fn judge(
    found: Option<&str>,
    me: &str,
    now: DateTime<Utc>,
    gone: impl Fn(&LeaseRecord) -> bool,
) -> Verdict {
    let Some(text) = found else {
        return Verdict::Free;
    };
    match LeaseRecord::parse(text) {
        Ok(r) if r.run == me => Verdict::Ours,
        Ok(r) if r.expires > now && !gone(&r) => Verdict::Held(r),
        // expired, or not a lease we can read (a holder that cannot be
        // named cannot be waited for)
        _ => Verdict::Free,
    }
}

/// How long a lease lasts and when its holder renews it and stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub lease: Duration,
}

impl LeaseTiming {
    /// The least `--lease-seconds` accepted.
    pub const MIN: Duration = Duration::from_secs(5);

    /// `--lease-seconds` by default: the larger of 10 s and three target
    /// durations.
    pub fn default_for(target: Duration) -> LeaseTiming {
        LeaseTiming {
            lease: (target * 3).max(Duration::from_secs(10)),
        }
    }

    /// Renewals start this often: three tries before the lease runs out.
    pub fn renew_every(&self) -> Duration {
        self.lease / 4
    }

    /// How long after the start of its last successful renewal a holder
    /// may still publish: the lease less a margin for clocks that drift
    /// apart and requests still on their way (a fifth of the lease, at
    /// least a second).
    pub fn publish_for(&self) -> Duration {
        let margin = (self.lease / 5).max(Duration::from_secs(1));
        self.lease.saturating_sub(margin)
    }
}

/// How many segment numbers past the highest one written a holder
/// reserves at a time: those it may cut in twice the lease, at least ten,
/// so that it renews for numbers rarely and a takeover skips few.
pub fn reserve_ahead(lease: Duration, target: Duration) -> u64 {
    let per_lease = (lease.as_secs_f64() * 2.0 / target.as_secs_f64().max(0.1)).ceil();
    (per_lease as u64).max(10)
}

/// A holder's own view of its lease: whether it may still publish.
#[derive(Debug, Clone)]
pub struct Fence {
    timing: LeaseTiming,
    /// When the last successful take or renewal began.
    renewed: Instant,
    /// Another run was found holding the lease: never publish again.
    lost: bool,
}

impl Fence {
    /// A lease taken by a request that began at `began`.
    pub fn taken(timing: LeaseTiming, began: Instant) -> Fence {
        Fence {
            timing,
            renewed: began,
            lost: false,
        }
    }

    /// A renewal that began at `began` succeeded.
    pub fn renewed(&mut self, began: Instant) {
        if !self.lost {
            self.renewed = self.renewed.max(began);
        }
    }

    /// Another run holds the lease now.
    pub fn lose(&mut self) {
        self.lost = true;
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Whether a request begun at `now` may publish.
    pub fn may_publish(&self, now: Instant) -> bool {
        !self.lost && now.saturating_duration_since(self.renewed) < self.timing.publish_for()
    }

    /// Whether a renewal is due at `now`.
    pub fn renewal_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.renewed) >= self.timing.renew_every()
    }

    /// How long since the last successful renewal began.
    pub fn since_renewal(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.renewed)
    }
}

/// A random run id: 16 hex digits.
pub fn new_run_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(run: &str, expires_s: u32) -> LeaseRecord {
        LeaseRecord {
            host: "edge-1".into(),
            pid: 4242,
            run: run.into(),
            started: Utc.with_ymd_and_hms(2026, 12, 2, 20, 0, 0).unwrap(),
            expires: Utc.with_ymd_and_hms(2026, 12, 2, 20, 0, expires_s).unwrap(),
            reserved: 17,
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_named() {
        let r = record("00ff00ff00ff00ff", 10);
        let text = r.render();
        assert!(text.contains("expires: 2026-12-02T20:00:10.000Z"), "{text}");
        assert!(text.ends_with("reserved: 17\n"), "{text}");
        assert_eq!(LeaseRecord::parse(&text).unwrap(), r);
        assert!(LeaseRecord::parse("hello").is_err());
        let no_run = text.replace("run: 00ff00ff00ff00ff\n", "");
        assert_eq!(LeaseRecord::parse(&no_run).unwrap_err(), "it has no run");
        assert_eq!(r.holder(), "edge-1 pid 4242 (run 00ff00ff00ff00ff)");
        // a record without reservations reserves nothing
        let older = text.replace("reserved: 17\n", "");
        assert_eq!(LeaseRecord::parse(&older).unwrap().reserved, 0);
        assert_eq!(lease_name("live/index.m3u8"), "live/index.m3u8.lease");
    }

    #[test]
    fn who_may_take_the_lease() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 20, 0, 5).unwrap();
        let alive = |_: &LeaseRecord| false;
        assert_eq!(judge(None, "me", now, alive), Verdict::Free);
        let live = record("other", 10).render();
        assert_eq!(
            judge(Some(&live), "me", now, alive),
            Verdict::Held(record("other", 10))
        );
        assert_eq!(judge(Some(&live), "other", now, alive), Verdict::Ours);
        // a holder known to be gone leaves its lease free before it expires
        assert_eq!(
            judge(Some(&live), "me", now, |r| r.pid == 4242),
            Verdict::Free
        );
        let expired = record("other", 5).render();
        assert_eq!(judge(Some(&expired), "me", now, alive), Verdict::Free);
        assert_eq!(judge(Some("garbage"), "me", now, alive), Verdict::Free);
    }

    #[test]
    fn timing_and_fencing() {
        let t = LeaseTiming::default_for(Duration::from_secs(2));
        assert_eq!(t.lease, Duration::from_secs(10));
        assert_eq!(
            LeaseTiming::default_for(Duration::from_secs(6)).lease,
            Duration::from_secs(18)
        );
        assert_eq!(t.renew_every(), Duration::from_millis(2500));
        assert_eq!(t.publish_for(), Duration::from_secs(8));
        let short = LeaseTiming {
            lease: Duration::from_secs(5),
        };
        assert_eq!(short.publish_for(), Duration::from_secs(4));

        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut f = Fence::taken(t, start);
        assert!(f.may_publish(at(7_999)));
        assert!(!f.may_publish(at(8_000)), "fenced a margin before expiry");
        assert!(!f.renewal_due(at(2_499)));
        assert!(f.renewal_due(at(2_500)));
        f.renewed(at(3_000));
        assert!(f.may_publish(at(10_999)));
        // an older renewal finishing late does not move the fence back
        f.renewed(at(1_000));
        assert!(f.may_publish(at(10_999)));
        f.lose();
        assert!(!f.may_publish(at(3_001)));
        f.renewed(at(4_000));
        assert!(f.is_lost(), "a lost lease stays lost");
        assert_eq!(
            reserve_ahead(Duration::from_secs(10), Duration::from_secs(2)),
            10
        );
        assert_eq!(
            reserve_ahead(Duration::from_secs(30), Duration::from_secs(1)),
            60
        );
        assert_ne!(new_run_id(), new_run_id());
        assert_eq!(new_run_id().len(), 16);
    }
}
