//! A bounded load run against `live_upload serve` on loopback: N viewers,
//! each on its own keep-alive connection, behave like live HLS players for a
//! fixed time and then stop.
//!
//!   serve_load URL VIEWERS SECONDS INTERVAL [TOKEN]
//!
//! URL is the playlist (http://127.0.0.1:PORT/live/index.m3u8). Each viewer
//! loops: GET the playlist; GET every listed segment it has not fetched yet
//! (on its first round only the newest, where a player joins); sleep
//! INTERVAL seconds (players reload a live playlist about every half target
//! duration). Viewers start spread over the first interval. Prints one JSON
//! object: requests, errors (non-2xx answers and connection failures),
//! latency percentiles per kind of request (time to the whole body), bytes
//! and rates.
//!
//! Only loopback addresses are accepted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Default)]
struct Tally {
    playlist_ms: Vec<f64>,
    segment_ms: Vec<f64>,
    bytes: u64,
    errors: u64,
    first_errors: Vec<String>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(what);
        }
    }
}

struct Target {
    addr: String,
    /// Path of the playlist, and of the directory segments are relative to.
    playlist: String,
    dir: String,
    token: Option<String>,
}

async fn connect(addr: &str) -> Result<SendRequest<Empty<Bytes>>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// One GET on the viewer's connection (reconnecting when it is gone):
/// (body, milliseconds).
async fn get(
    conn: &mut Option<SendRequest<Empty<Bytes>>>,
    t: &Target,
    path: &str,
) -> Result<(Bytes, f64), String> {
    let started = Instant::now();
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        *conn = Some(connect(&t.addr).await?);
    }
    let Some(send) = conn.as_mut() else {
        return Err("no connection".into());
    };
    send.ready().await.map_err(|e| format!("ready: {e}"))?;
    let mut req = hyper::Request::get(path).header("host", &t.addr);
    if let Some(tok) = &t.token {
        req = req.header("authorization", format!("Bearer {tok}"));
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let res = match send.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            *conn = None;
            return Err(format!("GET {path}: {e}"));
        }
    };
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {path}: body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("GET {path}: HTTP {}", status.as_u16()));
    }
    Ok((body, started.elapsed().as_secs_f64() * 1000.0))
}

async fn viewer(
    t: std::sync::Arc<Target>,
    delay: Duration,
    until: Instant,
    every: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn = None;
    let mut fetched = HashSet::new();
    tokio::time::sleep(delay).await;
    while Instant::now() < until {
        let round = Instant::now();
        match get(&mut conn, &t, &t.playlist).await {
            Err(e) => tally.error(e),
            Ok((body, ms)) => {
                tally.playlist_ms.push(ms);
                tally.bytes += body.len() as u64;
                let text = String::from_utf8_lossy(&body);
                let listed: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect();
                let joining = fetched.is_empty();
                let wanted: Vec<&str> = if joining {
                    listed.last().copied().into_iter().collect()
                } else {
                    listed
                        .iter()
                        .copied()
                        .filter(|s| !fetched.contains(*s))
                        .collect()
                };
                for name in wanted {
                    if Instant::now() >= until {
                        break;
                    }
                    fetched.insert(name.to_string());
                    match get(&mut conn, &t, &format!("{}{name}", t.dir)).await {
                        Err(e) => tally.error(e),
                        Ok((body, ms)) => {
                            tally.segment_ms.push(ms);
                            tally.bytes += body.len() as u64;
                        }
                    }
                }
                if joining {
                    // the rest of the window counts as seen: a player starts at the edge
                    fetched.extend(listed.iter().map(|s| s.to_string()));
                }
            }
        }
        let next = round + every;
        if next > until {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    tally
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[k]
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{{\"count\": {}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}}}",
        v.len(),
        pct(&v, 50.0),
        pct(&v, 99.0),
        v.last().copied().unwrap_or(0.0)
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: serve_load URL VIEWERS SECONDS INTERVAL [TOKEN]");
        std::process::exit(2);
    }
    let url = args[1].strip_prefix("http://").unwrap_or_else(|| {
        eprintln!("serve_load: only http:// URLs");
        std::process::exit(2)
    });
    let (addr, path) = url.split_once('/').unwrap_or((url, ""));
    let loopback = addr
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    if !loopback {
        eprintln!("serve_load: {addr} is not a loopback address and port");
        std::process::exit(2);
    }
    let playlist = format!("/{path}");
    let dir = playlist[..playlist.rfind('/').unwrap_or(0) + 1].to_string();
    let viewers: usize = args[2].parse().expect("VIEWERS");
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let every = Duration::from_secs_f64(args[4].parse().expect("INTERVAL"));
    let target = std::sync::Arc::new(Target {
        addr: addr.to_string(),
        playlist,
        dir,
        token: args.get(5).cloned(),
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let total = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..viewers {
            let delay = every.mul_f64(i as f64 / viewers as f64);
            set.spawn(viewer(target.clone(), delay, until, every));
        }
        let mut total = Tally::default();
        while let Some(r) = set.join_next().await {
            let t = r.expect("a viewer task");
            total.playlist_ms.extend(t.playlist_ms);
            total.segment_ms.extend(t.segment_ms);
            total.bytes += t.bytes;
            total.errors += t.errors;
            for e in t.first_errors {
                if total.first_errors.len() < 5 {
                    total.first_errors.push(e);
                }
            }
        }
        total
    });
    let wall = started.elapsed().as_secs_f64();
    let requests = total.playlist_ms.len() + total.segment_ms.len() + total.errors as usize;
    let mut all: Vec<f64> = total
        .playlist_ms
        .iter()
        .chain(&total.segment_ms)
        .copied()
        .collect();
    all.sort_by(f64::total_cmp);
    println!(
        "{{\"viewers\": {viewers}, \"seconds\": {wall:.2}, \"interval_s\": {}, \"requests\": {requests}, \
         \"errors\": {}, \"first_errors\": {:?}, \"bytes\": {}, \"requests_per_s\": {:.1}, \
         \"mb_per_s\": {:.2}, \"playlist\": {}, \"segment\": {}, \"all\": {}}}",
        every.as_secs_f64(),
        total.errors,
        total.first_errors,
        total.bytes,
        requests as f64 / wall,
        total.bytes as f64 / wall / 1e6,
        stats(total.playlist_ms),
        stats(total.segment_ms),
        stats(all),
    );
}
