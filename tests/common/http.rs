//! Minimal HTTP/1.1 message reading and writing for the test proxy and
//! client (plain TCP on 127.0.0.1).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One HTTP message: its start line, headers (names lowercased), and body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The message exactly as read.
    pub raw: Vec<u8>,
    /// When its first line had been read.
    pub began: Option<std::time::Instant>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// For a request: (method, path).
    pub fn request_line(&self) -> (String, String) {
        let mut parts = self.start.split(' ');
        (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        )
    }

    /// For a response: the status code.
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads one message. `Ok(None)` at a clean end of the connection.
/// `no_body` is for responses to HEAD and the like.
pub fn read_message(r: &mut BufReader<TcpStream>, no_body: bool) -> io::Result<Option<Message>> {
    let mut msg = Message::default();
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    msg.began = Some(std::time::Instant::now());
    msg.raw.extend_from_slice(line.as_bytes());
    msg.start = line.trim_end().to_string();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        msg.raw.extend_from_slice(line.as_bytes());
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            msg.headers
                .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let status = msg.status();
    let is_response = msg.start.starts_with("HTTP/");
    if no_body || (is_response && (status == 204 || status == 304 || (100..200).contains(&status)))
    {
        return Ok(Some(msg));
    }
    if msg
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            msg.raw.extend_from_slice(line.as_bytes());
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            msg.raw.extend_from_slice(&chunk);
            msg.body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = msg
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        msg.raw.extend_from_slice(&body);
        msg.body = body;
    } else if is_response {
        r.read_to_end(&mut msg.body)?;
        msg.raw.extend_from_slice(&msg.body);
    }
    Ok(Some(msg))
}

/// A GET with a given Host header: (status, headers, body).
pub fn get(addr: &str, host: &str, path: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let msg = read_message(&mut r, false).unwrap().expect("a response");
    let headers = msg.headers.iter().cloned().collect();
    (msg.status(), headers, msg.body)
}
