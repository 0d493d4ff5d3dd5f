//! An HTTP proxy on 127.0.0.1 that sits between live_upload and the S3
//! server. It records every request in the order it reached the server and
//! the order its answer came back, and can inject faults: error answers
//! (500, 503 SlowDown), connection resets, latency spikes, and a total
//! blackout for a while.
//!
//! It can also play a store that honours conditional writes in front of
//! one that ignores them (Garage 2.5): see [`Conditions`].

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What to inject; rates are fractions of requests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answered 500 InternalError or 503 SlowDown instead of forwarded.
    pub error_rate: f64,
    /// Connection reset instead of an answer.
    pub reset_rate: f64,
    /// Forwarded after a delay drawn from `spike`.
    pub spike_rate: f64,
    pub spike: (Duration, Duration),
    /// Every connection is reset during this window.
    pub blackout: Option<(Instant, Instant)>,
}

/// How many of each fault were injected.
#[derive(Debug, Default)]
pub struct Injected {
    pub errors: AtomicU64,
    pub resets: AtomicU64,
    pub spikes: AtomicU64,
    pub blacked_out: AtomicU64,
}

impl Injected {
    pub fn get(&self) -> [u64; 4] {
        [&self.errors, &self.resets, &self.spikes, &self.blacked_out]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

struct Shared {
    started: Instant,
    upstream: String,
    log: Mutex<Vec<Exchange>>,
    clock: AtomicU64,
    faults: Mutex<Faults>,
    injected: Injected,
    rng: Mutex<fastrand::Rng>,
    conditions: Option<Arc<Conditions>>,
}

/// Conditional writes as S3 does them, emulated by the proxies that share
/// one of these (the proxy cannot sign requests, so it keeps its own
/// record of what exists instead of asking the store).
///
/// - A `PUT` or `DELETE` with `If-None-Match: *` on a path the record holds
///   (stored through one of these proxies, or marked with
///   [`mark_existing`](Self::mark_existing)) is answered `412 Precondition
///   Failed` without reaching the store.
/// - One with `If-Match: X` is answered 412 unless the record holds the
///   path with ETag `X` (quotes and `W/` aside).
/// - A `PUT` answered 2xx records the answer's ETag for its path; a
///   `DELETE` answered 2xx forgets the path.
///
/// The check, the forwarding and the update happen under one lock, so two
/// runs through two proxies race as on a store that serializes them.
/// Paths are request paths without the query (`/bucket/key`).
#[derive(Debug, Default)]
pub struct Conditions {
    state: Mutex<Known>,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Known {
    etags: HashMap<String, String>,
    existing: HashSet<String>,
}

impl Conditions {
    pub fn new() -> Arc<Conditions> {
        Arc::default()
    }

    /// From now on `path` exists for `If-None-Match: *` (as if another
    /// writer had stored it), until a DELETE through a proxy removes it.
    pub fn mark_existing(&self, path: &str) {
        self.state.lock().unwrap().existing.insert(path.to_string());
    }

    /// The ETag recorded for `path`, as the store gave it.
    pub fn etag(&self, path: &str) -> Option<String> {
        self.state.lock().unwrap().etags.get(path).cloned()
    }

    /// How many requests were answered 412.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// An ETag without its quotes or weak mark, for comparisons.
fn bare_etag(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Whether a write with these headers may go ahead given what is known.
fn precondition_holds(known: &Known, path: &str, req: &super::http::Message) -> bool {
    let current = known.etags.get(path);
    let exists = current.is_some() || known.existing.contains(path);
    if let Some(v) = req.header("if-none-match") {
        if v.trim() == "*" && exists {
            return false;
        }
        if v.split(',')
            .any(|t| current.is_some_and(|c| bare_etag(t) == bare_etag(c)))
        {
            return false;
        }
    }
    if let Some(v) = req.header("if-match") {
        let matches = v.split(',').any(|t| {
            t.trim() == "*" && exists || current.is_some_and(|c| bare_etag(t) == bare_etag(c))
        });
        if !matches {
            return false;
        }
    }
    true
}

use super::http::read_message;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// The request's headers, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// The answer's headers as the store gave them (names lowercased);
    /// empty for answers the proxy made itself.
    pub answer_headers: Vec<(String, String)>,
    /// Position in the proxy's event order when the request was forwarded.
    pub sent: u64,
    /// When its first line arrived, from the proxy's start (before the
    /// rest of it, which a client may send much later).
    pub began_at: Duration,
    /// When the request was forwarded (or answered by the proxy itself),
    /// from the proxy's start.
    pub sent_at: Duration,
    /// Position when the answer had been relayed back.
    pub answered: u64,
    /// When the answer was relayed back, from the proxy's start.
    pub at: Duration,
}

impl Exchange {
    /// A request header by its lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An answer header by its lowercase name.
    pub fn answer_header(&self, name: &str) -> Option<&str> {
        self.answer_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:port`) that injects nothing.
    pub fn start(upstream: &str) -> Proxy {
        Self::with_faults(upstream, Faults::default(), 1)
    }

    /// Starts a proxy that injects `faults`, drawn from a generator seeded
    /// with `seed`.
    pub fn with_faults(upstream: &str, faults: Faults, seed: u64) -> Proxy {
        Self::build(upstream, faults, seed, None)
    }

    /// Starts a proxy that emulates conditional writes with `conditions`,
    /// shared with the other proxies of a test.
    pub fn with_conditions(upstream: &str, conditions: &Arc<Conditions>) -> Proxy {
        Self::build(upstream, Faults::default(), 1, Some(conditions.clone()))
    }

    fn build(
        upstream: &str,
        faults: Faults,
        seed: u64,
        conditions: Option<Arc<Conditions>>,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            started: Instant::now(),
            upstream: upstream.to_string(),
            log: Mutex::default(),
            clock: AtomicU64::new(0),
            faults: Mutex::new(faults),
            injected: Injected::default(),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            conditions,
        });
        {
            let (shared, stop) = (shared.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    thread::spawn(move || serve(conn, &shared));
                }
            });
        }
        Proxy { addr, shared, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.log.lock().unwrap().clone()
    }

    /// When the proxy started; `Exchange::at` counts from here.
    pub fn started(&self) -> Instant {
        self.shared.started
    }

    pub fn injected(&self) -> &Injected {
        &self.shared.injected
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

enum Fate {
    Forward,
    Error(u16, &'static str),
    Reset,
    Blackout,
}

fn decide(shared: &Shared) -> (Fate, Duration) {
    let faults = shared.faults.lock().unwrap().clone();
    if faults
        .blackout
        .is_some_and(|(from, to)| (from..to).contains(&Instant::now()))
    {
        return (Fate::Blackout, Duration::ZERO);
    }
    let mut rng = shared.rng.lock().unwrap();
    let roll = rng.f64();
    let delay = if rng.f64() < faults.spike_rate {
        let (lo, hi) = faults.spike;
        lo + (hi - lo).mul_f64(rng.f64())
    } else {
        Duration::ZERO
    };
    let fate = if roll < faults.reset_rate {
        Fate::Reset
    } else if roll < faults.reset_rate + faults.error_rate {
        if rng.bool() {
            Fate::Error(500, "InternalError")
        } else {
            Fate::Error(503, "SlowDown")
        }
    } else {
        Fate::Forward
    };
    (fate, delay)
}

fn serve(client: TcpStream, shared: &Shared) {
    let counters = &shared.injected;
    let mut to_client = client.try_clone().unwrap();
    let mut from_client = BufReader::new(client.try_clone().unwrap());
    let mut upstream: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while let Ok(Some(req)) = read_message(&mut from_client, false) {
        let (method, path) = req.request_line();
        let (fate, delay) = decide(shared);
        if !delay.is_zero() {
            counters.spikes.fetch_add(1, Ordering::Relaxed);
            thread::sleep(delay);
        }
        let sent = shared.clock.fetch_add(1, Ordering::SeqCst);
        let sent_at = shared.started.elapsed();
        let record = |status: u16, answer: &[(String, String)]| {
            let answered = shared.clock.fetch_add(1, Ordering::SeqCst);
            shared.log.lock().unwrap().push(Exchange {
                method: method.clone(),
                path: path.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
                status,
                answer_headers: answer.to_vec(),
                sent,
                began_at: req
                    .began
                    .map_or(sent_at, |b| b.saturating_duration_since(shared.started)),
                sent_at,
                answered,
                at: shared.started.elapsed(),
            });
        };
        match fate {
            Fate::Blackout | Fate::Reset => {
                let counter = if matches!(fate, Fate::Blackout) {
                    &counters.blacked_out
                } else {
                    &counters.resets
                };
                counter.fetch_add(1, Ordering::Relaxed);
                record(0, &[]);
                super::reset(&client);
                return;
            }
            Fate::Error(status, code) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                let reason = if status == 500 {
                    "Internal Server Error"
                } else {
                    "Service Unavailable"
                };
                if to_client
                    .write_all(&error_answer(status, reason, code, "injected"))
                    .is_err()
                {
                    return;
                }
                record(status, &[]);
            }
            Fate::Forward => {
                // a write under emulated conditions: checked, forwarded and
                // recorded under the lock that all proxies of a test share
                let path_only = path.split('?').next().unwrap_or("").to_string();
                let conditions = shared.conditions.as_deref().filter(|_| {
                    (method == "PUT" || method == "DELETE") && !path.contains("uploadId=")
                });
                let mut known = conditions.map(|c| c.state.lock().unwrap());
                if let (Some(c), Some(k)) = (conditions, &known) {
                    if !precondition_holds(k, &path_only, &req) {
                        drop(known);
                        c.refused.fetch_add(1, Ordering::Relaxed);
                        let answer = error_answer(
                            412,
                            "Precondition Failed",
                            "PreconditionFailed",
                            "At least one of the pre-conditions you specified did not hold",
                        );
                        if to_client.write_all(&answer).is_err() {
                            return;
                        }
                        record(412, &[]);
                        continue;
                    }
                }
                if upstream.is_none() {
                    let Ok(server) = TcpStream::connect(&shared.upstream) else {
                        return;
                    };
                    let reader = BufReader::new(server.try_clone().unwrap());
                    upstream = Some((server, reader));
                }
                let (to_server, from_server) = upstream.as_mut().unwrap();
                if to_server.write_all(&req.raw).is_err() {
                    return;
                }
                let Ok(Some(resp)) = read_message(from_server, method == "HEAD") else {
                    return;
                };
                if let Some(k) = known.as_mut() {
                    if (200..300).contains(&resp.status()) {
                        if method == "PUT" {
                            if let Some(tag) = resp.header("etag") {
                                k.etags.insert(path_only.clone(), tag.to_string());
                            }
                        } else {
                            k.etags.remove(&path_only);
                            k.existing.remove(&path_only);
                        }
                    }
                }
                drop(known);
                if to_client.write_all(&resp.raw).is_err() {
                    return;
                }
                record(resp.status(), &resp.headers);
            }
        }
    }
}

/// An S3 error answer: status line, XML body with `code`.
fn error_answer(status: u16, reason: &str, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error>"
    );
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}
