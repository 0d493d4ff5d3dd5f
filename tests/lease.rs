//! One writer per stream (issue 13): the lease a run takes on its
//! destination, the standby that takes over a dead or frozen holder, and
//! conditional writes on stores that honour them.
//!
//! Black-box: runs of the binary fed by live encodes at real speed, on
//! Garage through recording proxies (one per run, so that each request is
//! attributed to its run) and on a local directory. Every test is bounded
//! in time: a run that outlives its limit is killed and the test fails.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::garage::garage;
use common::proxy::{Conditions, Exchange, Faults, Proxy};
use common::{journal, live_source, Record, BIN};

/// `--lease-seconds` of every run: the smallest accepted.
const LEASE_SECONDS: u64 = 5;

/// A key prefix no other test uses.
fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "lease-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where a run publishes.
#[derive(Clone)]
enum Dest {
    /// Garage's bucket `live` through this endpoint (a proxy's URL).
    S3(String),
    /// A local directory, as `file://`.
    Dir(PathBuf),
}

impl Dest {
    /// The object at `key` as a player (or the next run) would find it.
    fn read(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Dest::S3(_) => {
                let (status, _, body) = garage().web_get(key);
                (status == 200).then_some(body)
            }
            Dest::Dir(dir) => std::fs::read(dir.join(key)).ok(),
        }
    }

    fn read_text(&self, key: &str) -> Option<String> {
        self.read(key)
            .map(|b| String::from_utf8(b).expect("a text object"))
    }
}

/// A run of live_upload fed by its own live source, with its spool and
/// event journal in a directory of its own.
struct Live {
    child: Child,
    source: Child,
    /// Its standard error so far, and the thread that collects it.
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Live {
    /// Starts a run reading `source`'s output, segment prefix `live`, index
    /// `index.m3u8`, key prefix `prefix`, with `--lease-seconds 5`, an
    /// event journal and debug logging, then `extra`.
    fn start(dest: &Dest, prefix: &str, mut source: Child, seconds: &str, extra: &[&str]) -> Live {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = match dest {
            Dest::S3(_) => garage().command(BIN),
            Dest::Dir(_) => Command::new(BIN),
        };
        cmd.args(["-", seconds])
            .arg(dir.path().join("spool"))
            .args(["live", "index.m3u8", ""]);
        match dest {
            Dest::S3(endpoint) => {
                cmd.args(["live", prefix, "--endpoint-url", endpoint, "--path-style"]);
            }
            Dest::Dir(out) => {
                cmd.arg(format!("file://{}", out.display())).arg(prefix);
            }
        }
        let mut child = cmd
            .arg("--lease-seconds")
            .arg(LEASE_SECONDS.to_string())
            .arg("--events")
            .arg(dir.path().join("events.jsonl"))
            .args(extra)
            .env("RUST_LOG", "live_upload=debug")
            .stdin(source.stdout.take().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = BufReader::new(child.stderr.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in err.lines() {
                let Ok(line) = line else { break };
                let mut s = collected.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Live {
            child,
            source,
            stderr,
            reader: Some(reader),
            dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// The journal so far (empty before the run created it).
    fn journal(&self) -> Vec<Record> {
        let path = self.dir.path().join("events.jsonl");
        if path.exists() {
            journal::read(&path)
        } else {
            Vec::new()
        }
    }

    /// Whether the process has ended (a zombie not reaped yet, or gone).
    fn ended(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_or(true, |stat| {
            stat.rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('Z'))
        })
    }

    fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits at most `limit` for the run to end by itself; returns its exit
    /// code and standard error. The source is stopped once the run is over.
    fn wait(&mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "pid {} did not end within {limit:?}:\n{}",
                    self.child.id(),
                    tail(&self.stderr_so_far())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = self.source.kill();
        let _ = self.source.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status.code(), self.stderr_so_far())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for child in [&mut self.child, &mut self.source] {
            if matches!(child.try_wait(), Ok(None)) {
                // SAFETY: kill(2) on our own child, not reaped yet; a
                // stopped one is continued so that it dies at once
                unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A child process killed when the test ends, passed or failed.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The last few thousand bytes of a log, for messages.
fn tail(s: &str) -> &str {
    let mut from = s.len().saturating_sub(6000);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    &s[from..]
}

/// Polls `done` every 100 ms for at most `limit`; fails at once, with its
/// log, when one of the `live` runs ends meanwhile.
#[track_caller]
fn wait_until(what: &str, limit: Duration, live: &[&Live], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        if let Some(run) = live.iter().find(|r| r.ended()) {
            // its last lines may still be on their way
            std::thread::sleep(Duration::from_millis(300));
            if done() {
                return;
            }
            panic!(
                "{what}: pid {} ended first:\n{}",
                run.pid(),
                tail(&run.stderr_so_far())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The lines of a run's standard error that contain `ERROR`.
fn errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("ERROR")).collect()
}

/// The run's one error line.
#[track_caller]
fn one_error(stderr: &str) -> &str {
    let errors = errors(stderr);
    assert_eq!(errors.len(), 1, "one ERROR line:\n{}", tail(stderr));
    assert!(!stderr.contains("panicked"), "no panic:\n{}", tail(stderr));
    errors[0]
}

/// The `lease` events of a journal in `state`.
fn lease_events<'a>(journal: &'a [Record], state: &str) -> Vec<&'a Record> {
    journal
        .iter()
        .filter(|r| r.event() == "lease" && r.str("state") == state)
        .collect()
}

/// The journal's first `lease` event in `state`.
#[track_caller]
fn lease_event<'a>(journal: &'a [Record], state: &str) -> &'a Record {
    lease_events(journal, state)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no lease event {state:?} in {journal:#?}"))
}

/// The run id a run took its lease with, once it has.
fn run_id(journal: &[Record]) -> Option<String> {
    lease_events(journal, "taken")
        .first()
        .map(|r| r.str("run").to_string())
}

/// Texts of the playlist versions a run published, in order.
fn published(journal: &[Record], key: &str) -> Vec<String> {
    journal
        .iter()
        .filter(|r| r.event() == "published" && r.str("key") == key)
        .map(|r| r.str("text").to_string())
        .collect()
}

/// When a run first published `key`, by its journal's clock.
fn first_published_at(journal: &[Record], key: &str) -> Option<DateTime<Utc>> {
    journal
        .iter()
        .find(|r| r.event() == "published" && r.str("key") == key)
        .map(|r| rfc3339(r.str("t")))
}

/// The keys a run stored, from its journal.
fn stored(journal: &[Record]) -> Vec<String> {
    journal
        .iter()
        .filter(|r| r.event() == "stored")
        .map(|r| r.str("key").to_string())
        .collect()
}

#[track_caller]
fn rfc3339(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// The number of a segment key `.../live-NNNNN.ts`.
fn number(key: &str) -> Option<u64> {
    key.rsplit('/')
        .next()?
        .strip_prefix("live-")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The fields of a lease object, after checking its first line.
#[track_caller]
fn lease_fields(text: &str) -> HashMap<String, String> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("live_upload lease"), "{text}");
    let fields: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for name in ["host", "pid", "run", "started", "expires", "reserved"] {
        assert!(fields.contains_key(name), "no {name} in the lease:\n{text}");
    }
    let run = &fields["run"];
    assert!(
        run.len() == 16 && run.bytes().all(|b| b.is_ascii_hexdigit()),
        "run is 16 hex digits:\n{text}"
    );
    rfc3339(&fields["started"]);
    rfc3339(&fields["expires"]);
    fields["pid"].parse::<u32>().expect("a pid");
    fields["reserved"].parse::<u64>().expect("reserved: N");
    fields
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// The object key of a request to the bucket `live`.
fn key_of(e: &Exchange) -> String {
    e.path_only().trim_start_matches("/live/").to_string()
}

fn is_media(key: &str) -> bool {
    [".ts", ".m4s", ".mp4"].iter().any(|ext| key.ends_with(ext))
}

/// When a request was forwarded, on the test's clock.
fn sent_at(proxy: &Proxy, e: &Exchange) -> Instant {
    proxy.started() + e.sent_at
}

/// No segment or init key was PUT twice with different bytes, whichever
/// run (proxy) sent it and whatever the store answered.
fn assert_no_key_rewritten(proxies: &[&Proxy]) {
    let mut bodies: HashMap<String, (usize, Vec<u8>)> = HashMap::new();
    for (i, proxy) in proxies.iter().enumerate() {
        for e in proxy.exchanges().iter().filter(|e| e.method == "PUT") {
            let key = key_of(e);
            if !is_media(&key) {
                continue;
            }
            if let Some((first, body)) = bodies.get(&key) {
                assert!(
                    *body == e.body,
                    "{key} PUT with other bytes by run {i} than by run {first}"
                );
            } else {
                bodies.insert(key, (i, e.body.clone()));
            }
        }
    }
}

/// Two runs on one local directory never stored the same key (each
/// `stored` is a create-only write of the run's own bytes).
fn assert_disjoint_keys(a: &[Record], b: &[Record]) {
    let a: HashSet<String> = stored(a).into_iter().collect();
    let shared: Vec<String> = stored(b).into_iter().filter(|k| a.contains(k)).collect();
    assert!(shared.is_empty(), "both runs stored {shared:?}");
}

/// The requests a proxy passed that change something (PUT, POST, DELETE).
fn writes(proxy: &Proxy) -> Vec<Exchange> {
    proxy
        .exchanges()
        .into_iter()
        .filter(|e| !matches!(e.method.as_str(), "GET" | "HEAD"))
        .collect()
}

fn garage_upstream() -> String {
    garage().s3_url().trim_start_matches("http://").to_string()
}

fn describe(log: &[Exchange]) -> String {
    log.iter()
        .map(|e| {
            format!(
                "{:7.2} {} {} {}\n",
                e.sent_at.as_secs_f64(),
                e.method,
                e.path,
                e.status
            )
        })
        .collect()
}

// ---------------------------------------------------------------- overlap

/// A first run publishes; a second one on the same destination (own spool
/// directory, another source) is refused with exit 6 within seconds,
/// naming the holder, and writes nothing; the first ends normally, its
/// playlist without a discontinuity, and releases the lease.
fn overlap(first_dest: &Dest, second_dest: &Dest, proxies: Option<(&Proxy, &Proxy)>) {
    let prefix = unique("overlap");
    let index = format!("{prefix}/index.m3u8");
    let lease_key = format!("{index}.lease");
    let mut first = Live::start(first_dest, &prefix, live_source(16, "testsrc2"), "2", &[]);
    wait_until(
        "the first run published",
        Duration::from_secs(30),
        &[&first],
        || !published(&first.journal(), &index).is_empty(),
    );

    let refused_from = Utc::now();
    let started = Instant::now();
    let mut second = Live::start(second_dest, &prefix, live_source(30, "smptebars"), "2", &[]);
    let (code, stderr) = second.wait(Duration::from_secs(30));
    let took = started.elapsed();
    assert_eq!(code, Some(6), "{}", tail(&stderr));
    assert!(
        took < Duration::from_secs(8),
        "refused within seconds: {took:?}"
    );
    let line = one_error(&stderr);

    // the message names the holder as the lease object does
    let lease = lease_fields(
        &first_dest
            .read_text(&lease_key)
            .expect("the lease object exists while its holder runs"),
    );
    let first_journal = first.journal();
    let taken = lease_event(&first_journal, "taken");
    assert_eq!(taken.str("key"), lease_key, "{}", taken.line);
    assert_eq!(lease["run"], taken.str("run"));
    assert_eq!(lease["pid"], first.pid().to_string());
    assert_eq!(lease["host"], hostname());
    let held = format!(
        "is held by {} pid {} (run {}) until ",
        lease["host"], lease["pid"], lease["run"]
    );
    let until = line
        .split(&held)
        .nth(1)
        .unwrap_or_else(|| panic!("{line:?} says {held:?}"))
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let until_time = rfc3339(until);
    assert!(
        until_time > refused_from - chrono::Duration::seconds(1),
        "a live lease: {line}"
    );
    assert!(
        until_time <= rfc3339(&lease["expires"]),
        "a lease only moves forward: {line} / {}",
        lease["expires"]
    );
    // the refused run published nothing
    let second_journal = second.journal();
    assert!(stored(&second_journal).is_empty(), "{second_journal:#?}");
    assert!(published(&second_journal, &index).is_empty());
    if let Some((p1, p2)) = proxies {
        let w = writes(p2);
        assert!(w.is_empty(), "the refused run only read:\n{}", describe(&w));
        // EXPIRES as the holder wrote it in one version of the object
        assert!(
            p1.exchanges().iter().any(|e| e.method == "PUT"
                && key_of(e) == lease_key
                && String::from_utf8_lossy(&e.body).contains(&format!("\nexpires: {until}\n"))),
            "{until} is as in a version of the lease object"
        );
    }

    // the first run carries on to its end, alone
    let (code, stderr) = first.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", tail(&stderr));
    let journal = first.journal();
    let (_, final_text) = common::check_published(&journal, &index, &prefix);
    assert!(final_text.ends_with("#EXT-X-ENDLIST\n"), "{final_text}");
    assert!(!final_text.contains("#EXT-X-DISCONTINUITY"), "{final_text}");
    assert_eq!(
        first_dest.read_text(&index).as_deref(),
        Some(final_text.as_str())
    );
    let released = lease_event(&journal, "released");
    assert_eq!(released.str("key"), lease_key);
    assert!(lease_events(&journal, "lost").is_empty());
    assert!(
        first_dest.read(&lease_key).is_none(),
        "the lease was released at the end"
    );
    match proxies {
        Some((p1, p2)) => {
            assert!(
                !taken.bool("atomic"),
                "Garage ignores conditional writes: {}",
                taken.line
            );
            // the final playlist, then the release
            let log = p1.exchanges();
            let last_playlist = log
                .iter()
                .filter(|e| e.method == "PUT" && key_of(e) == index && e.status == 200)
                .max_by_key(|e| e.answered)
                .unwrap();
            let release = log
                .iter()
                .find(|e| e.method == "DELETE" && key_of(e) == lease_key)
                .expect("a DELETE of the lease");
            assert!(release.sent > last_playlist.answered, "{}", describe(&log));
            assert_no_key_rewritten(&[p1, p2]);
        }
        None => {
            assert!(taken.bool("atomic"), "{}", taken.line);
            assert_disjoint_keys(&journal, &second_journal);
            // nothing but the first run's objects and playlist is there
            let mine: HashSet<String> = stored(&journal).into_iter().collect();
            let Dest::Dir(dir) = first_dest else {
                unreachable!()
            };
            for entry in std::fs::read_dir(dir.join(&prefix)).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                let key = format!("{prefix}/{name}");
                assert!(
                    key == index || mine.contains(&key),
                    "{key} is not the first run's"
                );
            }
        }
    }
}

#[test]
fn a_second_run_on_a_leased_stream_is_refused_garage() {
    let upstream = garage_upstream();
    let (p1, p2) = (Proxy::start(&upstream), Proxy::start(&upstream));
    overlap(&Dest::S3(p1.url()), &Dest::S3(p2.url()), Some((&p1, &p2)));
}

#[test]
fn a_second_run_on_a_leased_stream_is_refused_local_directory() {
    let out = tempfile::tempdir().unwrap();
    let dest = Dest::Dir(out.path().to_path_buf());
    overlap(&dest, &dest, None);
}

// ---------------------------------------------------------------- standby

/// An active run and a `--standby` run fed alike; the active one is killed
/// with SIGKILL after a few segments; the standby publishes within the
/// lease plus two segments and ends the stream; the playlist has one
/// discontinuity, at the takeover. On S3 a live player started before the
/// kill reads to the end. With `short_standby`, a second standby whose
/// input ends while it waits exits 0 having published nothing.
fn standby(
    active_dest: &Dest,
    standby_dest: &Dest,
    proxies: Option<(&Proxy, &Proxy)>,
    short_standby: bool,
) {
    let prefix = unique("standby");
    let index = format!("{prefix}/index.m3u8");
    let lease_key = format!("{index}.lease");
    // both sources start together, as one feed sent to two machines
    let (src1, src2) = (live_source(40, "testsrc2"), live_source(40, "testsrc2"));
    let window = ["--window", "40"];
    let mut active = Live::start(active_dest, &prefix, src1, "2", &window);
    wait_until(
        "the active run took the lease",
        Duration::from_secs(20),
        &[&active],
        || run_id(&active.journal()).is_some(),
    );
    let active_run = run_id(&active.journal()).unwrap();
    let mut standby = Live::start(
        standby_dest,
        &prefix,
        src2,
        "2",
        &[&window[..], &["--standby"]].concat(),
    );
    let mut short = short_standby.then(|| {
        Live::start(
            standby_dest,
            &prefix,
            live_source(4, "smptebars"),
            "2",
            &["--standby"],
        )
    });
    for (name, run) in [
        ("the standby", Some(&standby)),
        ("the short standby", short.as_ref()),
    ] {
        let Some(run) = run else { continue };
        wait_until(
            &format!("{name} waits"),
            Duration::from_secs(20),
            &[],
            || !lease_events(&run.journal(), "waiting").is_empty(),
        );
        let journal = run.journal();
        let waiting = lease_event(&journal, "waiting");
        assert_eq!(waiting.str("key"), lease_key, "{}", waiting.line);
        assert!(
            waiting.str("holder").contains(&active_run),
            "{}",
            waiting.line
        );
        rfc3339(waiting.str("until"));
    }
    if let Some(short) = short.as_mut() {
        let (code, stderr) = short.wait(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{}", tail(&stderr));
        let journal = short.journal();
        assert!(stored(&journal).is_empty(), "{journal:#?}");
        assert!(published(&journal, &index).is_empty(), "{journal:#?}");
        assert!(lease_events(&journal, "taken").is_empty(), "{journal:#?}");
    }
    wait_until(
        "the active run published three segments",
        Duration::from_secs(40),
        &[&active, &standby],
        || {
            published(&active.journal(), &index)
                .last()
                .is_some_and(|t| t.matches("#EXTINF").count() >= 3)
        },
    );
    // a player joins the live stream and stays through the takeover
    let mut player = match active_dest {
        Dest::S3(_) => {
            let g = garage();
            let mut child = g
                .player(&index, "error", &["-live_start_index", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut err = child.stderr.take().unwrap();
            let log = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                s
            });
            Some((Guard(child), log))
        }
        Dest::Dir(_) => None,
    };
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        published(&standby.journal(), &index).is_empty(),
        "the standby publishes nothing while the holder lives"
    );

    active.signal(libc::SIGKILL);
    active.child.wait().unwrap();
    let killed = Utc::now();
    let killed_instant = Instant::now();
    let _ = active.source.kill();
    let _ = active.source.wait();
    let at_kill = active_dest.read_text(&lease_key).map(|t| lease_fields(&t));

    let limit = Duration::from_secs(LEASE_SECONDS + 2 * 2);
    wait_until(
        "the standby took over and published",
        limit + Duration::from_secs(10),
        &[&standby],
        || !published(&standby.journal(), &index).is_empty(),
    );
    let journal = standby.journal();
    let first = first_published_at(&journal, &index).unwrap();
    let after = (first - killed).to_std().unwrap_or_default();
    assert!(
        after <= limit + Duration::from_millis(500),
        "the standby published {after:?} after the kill (lease {LEASE_SECONDS} s + two segments)"
    );
    let taken = lease_event(&journal, "taken");
    assert_eq!(taken.str("key"), lease_key);
    assert_ne!(taken.str("run"), active_run);

    let (code, stderr) = standby.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", tail(&stderr));
    let journal = standby.journal();
    assert_eq!(lease_event(&journal, "released").str("key"), lease_key);
    assert!(
        journal
            .iter()
            .any(|r| r.event() == "resumed" && r.str("key") == index),
        "the standby continued the playlist as a restart does"
    );
    let final_text = standby_dest.read_text(&index).expect("a playlist");
    assert_eq!(published(&journal, &index).last(), Some(&final_text));
    assert!(final_text.ends_with("#EXT-X-ENDLIST\n"), "{final_text}");
    assert_eq!(
        final_text.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{final_text}"
    );
    // before the discontinuity the active run's segments, after it the standby's
    let (before, after) = final_text.split_once("#EXT-X-DISCONTINUITY\n").unwrap();
    let uris = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|u| format!("{prefix}/{u}"))
            .collect()
    };
    let active_keys: HashSet<String> = stored(&active.journal()).into_iter().collect();
    let standby_keys: HashSet<String> = stored(&journal).into_iter().collect();
    assert!(
        !uris(before).is_empty() && !uris(after).is_empty(),
        "{final_text}"
    );
    for key in uris(before) {
        assert!(active_keys.contains(&key), "{key} before the takeover");
    }
    for key in uris(after) {
        assert!(standby_keys.contains(&key), "{key} after the takeover");
    }
    // the standby's numbers are above the holder's, and above its reservation
    let highest_active = active_keys.iter().filter_map(|k| number(k)).max().unwrap();
    let lowest_standby = standby_keys.iter().filter_map(|k| number(k)).min().unwrap();
    assert!(
        lowest_standby > highest_active,
        "{lowest_standby} > {highest_active}"
    );
    if let Some(lease) = at_kill.filter(|l| l["run"] == active_run) {
        let reserved: u64 = lease["reserved"].parse().unwrap();
        assert!(
            lowest_standby > reserved,
            "the standby numbers above reserved: {reserved}"
        );
    }
    assert!(
        standby_dest.read(&lease_key).is_none(),
        "released at the end"
    );

    match proxies {
        Some((p1, p2)) => {
            assert!(!taken.bool("atomic"), "{}", taken.line);
            // the standby wrote nothing of the stream before the kill
            let early: Vec<Exchange> = writes(p2)
                .into_iter()
                .filter(|e| sent_at(p2, e) < killed_instant)
                .filter(|e| {
                    let k = key_of(e);
                    k == index || k == lease_key || is_media(&k)
                })
                .collect();
            assert!(early.is_empty(), "{}", describe(&early));
            assert_no_key_rewritten(&[p1, p2]);
        }
        None => assert_disjoint_keys(&active.journal(), &journal),
    }
    if let Some((mut child, log)) = player.take() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                panic!("the player did not reach the end");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let log = log.join().unwrap();
        assert!(status.success(), "the live player read to the end: {log}");
        let (ok, err) = garage().play(&index, &[]);
        assert!(ok, "the final playlist plays across the takeover: {err}");
    }
}

#[test]
fn a_standby_takes_over_a_killed_holder_garage() {
    let upstream = garage_upstream();
    let (p1, p2) = (Proxy::start(&upstream), Proxy::start(&upstream));
    standby(
        &Dest::S3(p1.url()),
        &Dest::S3(p2.url()),
        Some((&p1, &p2)),
        false,
    );
}

#[test]
fn a_standby_takes_over_a_killed_holder_local_directory() {
    let out = tempfile::tempdir().unwrap();
    let dest = Dest::Dir(out.path().to_path_buf());
    standby(&dest, &dest, None, true);
}

// ---------------------------------------------------------- frozen holder

/// An active run and a standby on one Garage destination, each through its
/// own proxy, once the standby waits and the active run has published
/// twice. Their window keeps the takeover's discontinuity listed.
struct Pair {
    p1: Proxy,
    p2: Proxy,
    d2: Dest,
    index: String,
    lease_key: String,
    active: Live,
    standby: Live,
}

impl Pair {
    fn start(name: &str) -> Pair {
        let upstream = garage_upstream();
        let (p1, p2) = (Proxy::start(&upstream), Proxy::start(&upstream));
        let (d1, d2) = (Dest::S3(p1.url()), Dest::S3(p2.url()));
        let prefix = unique(name);
        let index = format!("{prefix}/index.m3u8");
        let lease_key = format!("{index}.lease");
        let (src1, src2) = (live_source(45, "testsrc2"), live_source(45, "testsrc2"));
        let window = ["--window", "40"];
        let active = Live::start(&d1, &prefix, src1, "2", &window);
        wait_until(
            "the active run took the lease",
            Duration::from_secs(20),
            &[&active],
            || run_id(&active.journal()).is_some(),
        );
        let standby = Live::start(
            &d2,
            &prefix,
            src2,
            "2",
            &[&window[..], &["--standby"]].concat(),
        );
        wait_until(
            "the standby waits",
            Duration::from_secs(20),
            &[&standby],
            || !lease_events(&standby.journal(), "waiting").is_empty(),
        );
        wait_until(
            "the active run published twice",
            Duration::from_secs(30),
            &[&active, &standby],
            || published(&active.journal(), &index).len() >= 2,
        );
        Pair {
            p1,
            p2,
            d2,
            index,
            lease_key,
            active,
            standby,
        }
    }

    /// Waits until the standby has published (within `limit`); its run id
    /// and when it sent its first PUT after `since` (its probe or its take
    /// of the lease; a probe made while waiting is earlier).
    fn takeover(&self, since: Instant, limit: Duration) -> (String, Instant) {
        wait_until(
            "the standby took over and published",
            limit,
            &[&self.standby],
            || !published(&self.standby.journal(), &self.index).is_empty(),
        );
        let run = run_id(&self.standby.journal()).unwrap();
        let first_put = self
            .p2
            .exchanges()
            .iter()
            .filter(|e| e.method == "PUT")
            .map(|e| sent_at(&self.p2, e))
            .filter(|&at| at > since)
            .min()
            .expect("the standby PUT something");
        (run, first_put)
    }

    /// The old run's journal says it lost the lease to `standby_run` and
    /// ended with 6, and it began no write after `takeover`, whether it
    /// reached the store or not (a request begun before is not counted).
    fn check_fenced_off(&self, standby_run: &str, takeover: Instant) {
        let old = self.active.journal();
        let lost = lease_event(&old, "lost");
        assert_eq!(lost.str("key"), self.lease_key, "{}", lost.line);
        assert!(
            lost.opt_str("holder")
                .is_some_and(|h| h.contains(standby_run)),
            "{}",
            lost.line
        );
        assert_eq!(common::end(&old).i64("code"), 6);
        let late: Vec<Exchange> = writes(&self.p1)
            .into_iter()
            .filter(|e| self.p1.started() + e.began_at > takeover)
            .collect();
        assert!(
            late.is_empty(),
            "the fenced-off run wrote after the takeover:\n{}",
            describe(&late)
        );
    }

    /// The standby ends with 0, its final playlist with ENDLIST and one
    /// discontinuity; no key was PUT twice with other bytes.
    fn finish(mut self) {
        let (code, stderr) = self.standby.wait(Duration::from_secs(60));
        assert_eq!(code, Some(0), "{}", tail(&stderr));
        let final_text = self.d2.read_text(&self.index).expect("a playlist");
        assert!(final_text.ends_with("#EXT-X-ENDLIST\n"), "{final_text}");
        assert_eq!(
            final_text.matches("#EXT-X-DISCONTINUITY\n").count(),
            1,
            "{final_text}"
        );
        assert_eq!(
            published(&self.standby.journal(), &self.index).last(),
            Some(&final_text)
        );
        assert_no_key_rewritten(&[&self.p1, &self.p2]);
    }
}

#[test]
fn a_frozen_holder_that_wakes_after_a_takeover_publishes_nothing_and_exits_6() {
    let mut pair = Pair::start("frozen");
    pair.active.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let (standby_run, takeover) = pair.takeover(stopped, Duration::from_secs(LEASE_SECONDS + 15));
    // stopped for longer than its lease in any case
    let past_lease = stopped + Duration::from_secs(LEASE_SECONDS + 1);
    if let Some(wait) = past_lease.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    assert!(
        pair.p2
            .exchanges()
            .iter()
            .any(|e| e.method == "PUT" && key_of(e) == pair.lease_key && e.status == 200),
        "the standby took the lease"
    );
    pair.active.signal(libc::SIGCONT);

    let (code, stderr) = pair.active.wait(Duration::from_secs(30));
    assert_eq!(code, Some(6), "{}", tail(&stderr));
    // one ERROR line, naming the run that took over
    let errors = errors(&stderr);
    assert_eq!(errors.len(), 1, "one ERROR line:\n{}", tail(&stderr));
    assert!(
        errors[0].contains(&standby_run),
        "the error names the run that took over:\n{}",
        tail(&stderr)
    );
    assert!(!stderr.contains("panicked"), "{}", tail(&stderr));
    // after the takeover the old run wrote nothing: no segment, no playlist
    // version, no delete, and no lease of its own over the new holder's
    pair.check_fenced_off(&standby_run, takeover);
    pair.finish();
}

/// The holder is cut off from the store (every connection through its
/// proxy reset) for longer than its lease while it keeps cutting segments;
/// the standby takes over. When the store is back the old run has segments
/// and a playlist waiting, and must not send them: it publishes nothing
/// after the takeover (not even an attempt), and exits 6.
#[test]
fn a_holder_cut_off_past_its_lease_sends_nothing_after_the_takeover() {
    let mut pair = Pair::start("cutoff");
    let cut = Instant::now();
    let back = cut + Duration::from_secs(LEASE_SECONDS + 10);
    pair.p1.set_faults(Faults {
        blackout: Some((cut, back)),
        ..Faults::default()
    });
    let (standby_run, takeover) = pair.takeover(cut, Duration::from_secs(LEASE_SECONDS + 10));

    let (code, stderr) = pair.active.wait(Duration::from_secs(LEASE_SECONDS + 40));
    assert_eq!(code, Some(6), "{}", tail(&stderr));
    assert!(
        Instant::now() > back,
        "it could not know before the store was back"
    );
    pair.check_fenced_off(&standby_run, takeover);
    let taken = rfc3339(lease_event(&pair.standby.journal(), "taken").str("t"));
    assert!(
        pair.active
            .journal()
            .iter()
            .any(|r| r.event() == "segment" && rfc3339(r.str("t")) > taken),
        "the old run had segments of its own to publish after the takeover"
    );
    pair.finish();
}

// ------------------------------------------------------ conditional writes

fn bare(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

#[test]
fn the_proxy_emulates_conditional_writes_over_garage() {
    let g = garage();
    let conditions = Conditions::new();
    let proxy = Proxy::with_conditions(&garage_upstream(), &conditions);
    let plain = Proxy::start(&garage_upstream());
    let prefix = unique("emulation");
    let key = format!("{prefix}/object");
    let path = format!("/live/{key}");
    let (emulated, direct) = (g.s3_client_at(&proxy.url()), g.s3_client_at(&plain.url()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = |r: Result<u16, u16>| match r {
        Ok(s) | Err(s) => s,
    };
    rt.block_on(async {
        let put = |c: &aws_sdk_s3::Client, body: &'static str, none: bool, m: Option<&str>| {
            let mut req = c
                .put_object()
                .bucket("live")
                .key(&key)
                .body(body.as_bytes().to_vec().into());
            if none {
                req = req.if_none_match("*");
            }
            if let Some(m) = m {
                req = req.if_match(m);
            }
            async move {
                req.send()
                    .await
                    .map(|o| (200u16, o.e_tag().unwrap_or("").to_string()))
                    .map_err(|e| e.raw_response().map_or(0, |r| r.status().as_u16()))
            }
        };
        // Garage alone ignores If-None-Match: both create-only PUTs land
        assert_eq!(put(&direct, "a", true, None).await.map(|r| r.0), Ok(200));
        assert_eq!(put(&direct, "b", true, None).await.map(|r| r.0), Ok(200));
        assert_eq!(
            put(&direct, "c", false, Some("\"0\"")).await.map(|r| r.0),
            Ok(200),
            "Garage ignores If-Match too"
        );
        let direct_del = direct.delete_object().bucket("live").key(&key).send().await;
        assert!(direct_del.is_ok());

        // through the emulation: create once, then 412
        let (_, etag1) = put(&emulated, "one", true, None).await.expect("created");
        assert_eq!(conditions.etag(&path).as_deref(), Some(etag1.as_str()));
        assert_eq!(
            put(&emulated, "two", true, None).await.map(|r| r.0),
            Err(412)
        );
        assert_eq!(
            put(&emulated, "two", false, Some("\"0\""))
                .await
                .map(|r| r.0),
            Err(412)
        );
        // If-Match with the current ETag replaces, and moves the ETag on
        let (_, etag2) = put(&emulated, "three", false, Some(&etag1))
            .await
            .expect("If-Match with the current ETag");
        assert_ne!(bare(&etag1), bare(&etag2));
        assert_eq!(
            put(&emulated, "four", false, Some(&etag1))
                .await
                .map(|r| r.0),
            Err(412),
            "a stale ETag"
        );
        // the store kept the last write that was let through
        let (code, _, body) = g.web_get(&key);
        assert_eq!((code, body), (200, b"three".to_vec()));
        // a delete with a stale ETag is refused, with the current one done
        let del = |m: String| {
            let req = emulated
                .delete_object()
                .bucket("live")
                .key(&key)
                .if_match(m);
            async move {
                status(
                    req.send()
                        .await
                        .map(|_| 204)
                        .map_err(|e| e.raw_response().map_or(0, |r| r.status().as_u16())),
                )
            }
        };
        assert_eq!(del(etag1.clone()).await, 412);
        assert_eq!(g.web_get(&key).0, 200, "still there");
        assert_eq!(del(etag2.clone()).await, 204);
        assert_eq!(conditions.etag(&path), None);
        // a key marked as existing refuses create-only PUTs until deleted
        conditions.mark_existing(&path);
        assert_eq!(
            put(&emulated, "five", true, None).await.map(|r| r.0),
            Err(412)
        );
        assert_eq!(
            g.web_get(&key).0,
            404,
            "a refused PUT never reaches the store"
        );
        let plain_put = put(&emulated, "six", false, None).await;
        assert_eq!(plain_put.map(|r| r.0), Ok(200), "unconditional PUTs pass");
    });
    assert_eq!(conditions.refused(), 5);
    // the requests and their headers are recorded, the 412s with the XML code
    let log = proxy.exchanges();
    let refused: Vec<&Exchange> = log.iter().filter(|e| e.status == 412).collect();
    assert_eq!(refused.len(), 5, "{}", describe(&log));
    assert_eq!(refused[0].header("if-none-match"), Some("*"));
    assert_eq!(refused[1].header("if-match"), Some("\"0\""));
    assert!(log
        .iter()
        .filter(|e| e.status == 200 && e.method == "PUT")
        .all(|e| e.answer_header("etag").is_some()));
}

/// Through an emulating proxy a run sends the conditional headers: a probe,
/// a create-only lease then renewals and the release with its ETag, and
/// create-only segments; the journal says the lease is atomic. Through a
/// plain proxy to Garage, which ignores the headers, the journal says it
/// is not.
#[test]
fn a_run_sends_conditional_headers_where_they_are_honoured() {
    let upstream = garage_upstream();
    let conditions = Conditions::new();
    let emulating = Proxy::with_conditions(&upstream, &conditions);
    let plain = Proxy::start(&upstream);
    let (pa, pb) = (unique("atomic"), unique("fallback"));
    let mut atomic = Live::start(
        &Dest::S3(emulating.url()),
        &pa,
        live_source(10, "testsrc2"),
        "1",
        &[],
    );
    let mut fallback = Live::start(
        &Dest::S3(plain.url()),
        &pb,
        live_source(10, "testsrc2"),
        "1",
        &[],
    );
    let (code, stderr) = atomic.wait(Duration::from_secs(45));
    assert_eq!(code, Some(0), "{}", tail(&stderr));
    let (code, stderr) = fallback.wait(Duration::from_secs(45));
    assert_eq!(code, Some(0), "{}", tail(&stderr));

    let journal = atomic.journal();
    let index = format!("{pa}/index.m3u8");
    let lease_key = format!("{index}.lease");
    let taken = lease_event(&journal, "taken");
    assert_eq!(taken.str("key"), lease_key);
    assert!(taken.bool("atomic"), "{}", taken.line);
    assert_eq!(lease_event(&journal, "released").str("key"), lease_key);
    let run = taken.str("run");
    common::check_published(&journal, &index, &pa);

    let log = emulating.exchanges();
    let all = describe(&log);
    // the probe: create-only twice (the second refused), a stale If-Match
    // (refused), then its removal, all before the lease is taken
    let probe_key = format!("{lease_key}.probe-{run}");
    let probe: Vec<&Exchange> = log.iter().filter(|e| key_of(e) == probe_key).collect();
    let creates: Vec<&Exchange> = probe
        .iter()
        .copied()
        .filter(|e| e.method == "PUT" && e.header("if-none-match") == Some("*"))
        .collect();
    assert!(creates.len() >= 2, "{all}");
    assert_eq!(creates[0].status, 200, "{all}");
    assert_eq!(creates[1].status, 412, "{all}");
    let stale = probe
        .iter()
        .find(|e| e.method == "PUT" && e.header("if-match").map(bare) == Some("0"))
        .unwrap_or_else(|| panic!("a probe PUT with If-Match: \"0\":\n{all}"));
    assert_eq!(stale.status, 412, "{all}");
    let removed = probe
        .iter()
        .find(|e| e.method == "DELETE")
        .unwrap_or_else(|| panic!("the probe is deleted:\n{all}"));
    assert!((200..300).contains(&removed.status), "{all}");
    assert_eq!(conditions.etag(&format!("/live/{probe_key}")), None);

    // the lease: taken create-only, renewed and released with its ETag
    let lease: Vec<&Exchange> = log.iter().filter(|e| key_of(e) == lease_key).collect();
    let puts: Vec<&Exchange> = lease
        .iter()
        .copied()
        .filter(|e| e.method == "PUT")
        .collect();
    assert!(
        puts.len() >= 2,
        "taken and renewed at least once in 10 s:\n{all}"
    );
    assert!(
        removed.answered < puts[0].sent,
        "probed before taking:\n{all}"
    );
    assert_eq!(puts[0].header("if-none-match"), Some("*"), "{all}");
    assert_eq!(puts[0].header("if-match"), None, "{all}");
    for pair in puts.windows(2) {
        assert_eq!(pair[0].status, 200, "{all}");
        let etag = pair[0].answer_header("etag").expect("an ETag");
        assert_eq!(
            pair[1].header("if-match").map(bare),
            Some(bare(etag)),
            "renewed with the ETag of the last version:\n{all}"
        );
    }
    let last = puts.last().unwrap();
    assert_eq!(last.status, 200, "{all}");
    let release = lease
        .iter()
        .find(|e| e.method == "DELETE")
        .unwrap_or_else(|| panic!("the lease is released:\n{all}"));
    assert_eq!(
        release.header("if-match").map(bare),
        last.answer_header("etag").map(bare),
        "released with its ETag:\n{all}"
    );
    assert!((200..300).contains(&release.status), "{all}");
    assert!(release.sent > last.answered);
    let last_playlist = log
        .iter()
        .filter(|e| e.method == "PUT" && key_of(e) == index)
        .max_by_key(|e| e.answered)
        .unwrap();
    assert!(
        release.sent > last_playlist.answered,
        "final playlist, then release:\n{all}"
    );
    assert_eq!(conditions.etag(&format!("/live/{lease_key}")), None);

    // segments are create-only
    let segments: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "PUT" && is_media(&key_of(e)))
        .collect();
    assert!(segments.len() >= 8, "{all}");
    for e in &segments {
        assert_eq!(e.header("if-none-match"), Some("*"), "{}", e.path);
        assert_eq!(e.status, 200, "{}", e.path);
    }
    assert_no_key_rewritten(&[&emulating]);

    // Garage alone: the probe finds the headers ignored
    let journal = fallback.journal();
    let taken = lease_event(&journal, "taken");
    assert!(!taken.bool("atomic"), "{}", taken.line);
    assert_eq!(taken.str("key"), format!("{pb}/index.m3u8.lease"));
    common::check_published(&journal, &format!("{pb}/index.m3u8"), &pb);
    assert_no_key_rewritten(&[&plain]);
}

/// Another writer's object at segment key 4 (marked as existing in the
/// emulation, and stored in Garage with other bytes): the run's
/// create-only PUT is refused with 412, and the run ends with exit 6 and
/// publishes nothing after it, keeping its segments in the spool.
#[test]
fn a_refused_create_only_segment_ends_the_run_with_exit_6() {
    let g = garage();
    let conditions = Conditions::new();
    let proxy = Proxy::with_conditions(&garage_upstream(), &conditions);
    let prefix = unique("412");
    let taken_key = format!("{prefix}/live-00004.ts");
    let taken_path = format!("/live/{taken_key}");
    conditions.mark_existing(&taken_path);
    let mut run = Live::start(
        &Dest::S3(proxy.url()),
        &prefix,
        live_source(20, "testsrc2"),
        "1",
        &[],
    );
    wait_until("segment 1 stored", Duration::from_secs(20), &[&run], || {
        !stored(&run.journal()).is_empty()
    });
    // the other writer's bytes, stored behind the proxy's back
    let decoy = b"another writer's segment 4\n".to_vec();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        g.s3_client()
            .put_object()
            .bucket("live")
            .key(&taken_key)
            .body(decoy.clone().into())
            .send(),
    )
    .unwrap();
    assert!(
        !stored(&run.journal()).contains(&taken_key),
        "the decoy was stored before the run reached segment 4 (too slow a machine?)"
    );

    let (code, stderr) = run.wait(Duration::from_secs(40));
    assert_eq!(code, Some(6), "{}", tail(&stderr));
    one_error(&stderr);
    let journal = run.journal();
    assert_eq!(common::end(&journal).i64("code"), 6);
    let log = proxy.exchanges();
    let all = describe(&log);
    let refused = log
        .iter()
        .filter(|e| e.method == "PUT" && e.path_only() == taken_path && e.status == 412)
        .min_by_key(|e| e.answered)
        .unwrap_or_else(|| panic!("segment 4's PUT was refused:\n{all}"));
    for e in log
        .iter()
        .filter(|e| e.method == "PUT" && e.path_only() == taken_path)
    {
        assert_eq!(e.header("if-none-match"), Some("*"), "{all}");
    }
    let later: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "PUT" && key_of(e).ends_with(".m3u8") && e.sent > refused.answered)
        .collect();
    assert!(later.is_empty(), "a playlist PUT after the 412:\n{all}");
    let index = format!("{prefix}/index.m3u8");
    let text = garage().web_get(&index);
    assert!(
        !String::from_utf8_lossy(&text.2).contains("#EXT-X-ENDLIST"),
        "no final playlist"
    );
    assert_eq!(
        g.web_get(&taken_key).2,
        decoy,
        "the other writer's object stays"
    );
    assert!(
        run.spool().join("live-00004.ts").exists(),
        "the spool keeps the segment"
    );
    assert_no_key_rewritten(&[&proxy]);
}

// ---------------------------------------------------------- command line

#[test]
fn a_lease_below_five_seconds_is_refused_and_decimals_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    common::make_av(&input, 2, 30, &[]);
    let run = |value: &str, out: &str| {
        Command::new(BIN)
            .arg(&input)
            .arg("1")
            .arg(dir.path().join("spool"))
            .args(["live", "index.m3u8", ""])
            .arg(format!("file://{}", dir.path().join(out).display()))
            .args(["ev", "--lease-seconds", value])
            .output()
            .unwrap()
    };
    // decimals are accepted from 5 on, and the lease is gone at the end
    let out = run("5.5", "accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "5.5: {stderr}");
    let accepted = dir.path().join("accepted/ev");
    assert!(accepted.join("index.m3u8").exists(), "5.5: {stderr}");
    assert!(!accepted.join("index.m3u8.lease").exists(), "released");
    for value in ["4", "4.9"] {
        let out = run(value, "out");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{value}: one line: {stderr}"
        );
        assert!(!Path::new(&dir.path().join("out/ev")).exists());
    }
}

/// `--fresh` replaces the playlist, not the segments: where the store
/// refuses to overwrite, a fresh run numbers after the keys that exist and
/// publishes a playlist without the old ones.
#[test]
fn fresh_starts_a_new_playlist_without_overwriting_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (first_in, second_in) = (dir.path().join("a.ts"), dir.path().join("b.ts"));
    common::make_av(&first_in, 4, 30, &[]);
    common::make_av(&second_in, 4, 30, &["-vf", "negate"]);
    let out = dir.path().join("out");
    let run = |input: &std::path::Path, spool: &str, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_live_upload"))
            .args(["-", "1"])
            .arg(dir.path().join(spool))
            .args(["live", "index.m3u8", ""])
            .arg(format!("file://{}", out.display()))
            .arg("ev")
            .args(extra)
            .stdin(std::fs::File::open(input).unwrap())
            .output()
            .unwrap()
    };
    let first = run(&first_in, "s1", &[]);
    assert_eq!(first.status.code(), Some(0));
    let old = std::fs::read_to_string(out.join("ev/index.m3u8")).unwrap();
    let segment = out.join("ev/live-00001.ts");
    let before = std::fs::read(&segment).unwrap();
    let fresh = run(&second_in, "s2", &["--fresh"]);
    let stderr = String::from_utf8_lossy(&fresh.stderr);
    assert_eq!(fresh.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        before,
        "segment 1 is kept"
    );
    let text = std::fs::read_to_string(out.join("ev/index.m3u8")).unwrap();
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let uris = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("live-"))
            .map(String::from)
            .collect()
    };
    let (old_uris, new_uris) = (uris(&old), uris(&text));
    assert!(!new_uris.is_empty());
    assert!(
        new_uris.iter().all(|u| !old_uris.contains(u)),
        "{old_uris:?} {new_uris:?}"
    );
}
