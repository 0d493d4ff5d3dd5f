//! An HTTP proxy on 127.0.0.1 that sits between live_upload and the S3
//! server and records every request in the order it reached the server and
//! the order its answer came back.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

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
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Exchange>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_string();
        {
            let (log, stop) = (log.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (log, clock, upstream) = (log.clone(), clock.clone(), upstream.clone());
                    thread::spawn(move || serve(conn, &upstream, &log, &clock));
                }
            });
        }
        Proxy { addr, log, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(client: TcpStream, upstream: &str, log: &Mutex<Vec<Exchange>>, clock: &AtomicU64) {
    let mut to_client = client.try_clone().unwrap();
    let mut from_client = BufReader::new(client);
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let mut to_server = server.try_clone().unwrap();
    let mut from_server = BufReader::new(server);
    while let Ok(Some(req)) = read_message(&mut from_client, false) {
        let (method, path) = req.request_line();
        let sent = clock.fetch_add(1, Ordering::SeqCst);
        if to_server.write_all(&req.raw).is_err() {
            return;
        }
        let Ok(Some(resp)) = read_message(&mut from_server, method == "HEAD") else {
            return;
        };
        if to_client.write_all(&resp.raw).is_err() {
            return;
        }
        let answered = clock.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push(Exchange {
            method,
            path,
            body: req.body,
            status: resp.status(),
            sent,
            answered,
        });
    }
}
