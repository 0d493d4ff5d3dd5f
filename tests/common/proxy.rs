//! An HTTP proxy on 127.0.0.1 that sits between live_upload and the S3
//! server. It records every request in the order it reached the server and
//! the order its answer came back, and can inject faults: error answers
//! (500, 503 SlowDown), connection resets, latency spikes, and a total
//! blackout for a while.

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
}

use super::http::read_message;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub status: u16,
    /// Position in the proxy's event order when the request was forwarded.
    pub sent: u64,
    /// Position when the answer had been relayed back.
    pub answered: u64,
    /// When the answer was relayed back, from the proxy's start.
    pub at: Duration,
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
        let record = |status: u16, sent: u64| {
            let answered = shared.clock.fetch_add(1, Ordering::SeqCst);
            shared.log.lock().unwrap().push(Exchange {
                method: method.clone(),
                path: path.clone(),
                body: req.body.clone(),
                status,
                sent,
                answered,
                at: shared.started.elapsed(),
            });
        };
        let sent = shared.clock.fetch_add(1, Ordering::SeqCst);
        match fate {
            Fate::Blackout | Fate::Reset => {
                let counter = if matches!(fate, Fate::Blackout) {
                    &counters.blacked_out
                } else {
                    &counters.resets
                };
                counter.fetch_add(1, Ordering::Relaxed);
                record(0, sent);
                super::reset(&client);
                return;
            }
            Fate::Error(status, code) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
                     <Message>injected</Message></Error>"
                );
                let reason = if status == 500 {
                    "Internal Server Error"
                } else {
                    "Service Unavailable"
                };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if to_client
                    .write_all(head.as_bytes())
                    .and_then(|_| to_client.write_all(body.as_bytes()))
                    .is_err()
                {
                    return;
                }
                record(status, sent);
            }
            Fate::Forward => {
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
                if to_client.write_all(&resp.raw).is_err() {
                    return;
                }
                record(resp.status(), sent);
            }
        }
    }
}
