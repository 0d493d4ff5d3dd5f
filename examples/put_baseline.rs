//! The publish-latency baseline for `scripts/bench.sh`: COUNT times, one bare
//! PUT of a SIZE-byte object cut from FILE (the measured run's input: real
//! media, which the store compresses and stores like a segment, unlike
//! made-up bytes; each round takes the next piece, as each segment is new)
//! then one PUT of a playlist-sized object that
//! lists it, through the same S3 client code live_upload uses, then one GET
//! of the playlist through the store's anonymous web endpoint (the moment a
//! player can read it). Prints one line per round: the object's name, the
//! round's start (seconds since 1970, to the microsecond, for the same
//! poller that watches live_upload's playlist) and the round's time in
//! milliseconds.
//!
//!     put_baseline BUCKET ENDPOINT FILE SIZE COUNT WEB_ADDR WEB_HOST [INTERVAL_MS]
//!
//! With INTERVAL_MS, a round starts every INTERVAL_MS (as segments arrive in
//! a live stream) instead of back to back.
//!
//! Objects go under `baseline/` (or `$BASELINE_PREFIX/`). Credentials and
//! region come from the environment, as for live_upload.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use live_upload::uploader::s3::{S3Options, S3Store};
use live_upload::uploader::store::{Body, ObjectMeta, Store};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: put_baseline BUCKET ENDPOINT FILE SIZE COUNT WEB_ADDR WEB_HOST [INTERVAL_MS]";
    let (bucket, endpoint, file, size, count, web, host, interval) = match args.as_slice() {
        [b, e, f, s, c, w, h] => (b, e, f, s, c, w, h, None),
        [b, e, f, s, c, w, h, i] => (b, e, f, s, c, w, h, Some(Duration::from_millis(i.parse()?))),
        _ => anyhow::bail!(usage),
    };
    let mut reader = WebReader::connect(web.trim_start_matches("http://"), host)?;
    let (size, count): (usize, usize) = (size.parse()?, count.parse()?);
    let media = std::fs::read(file)?;
    anyhow::ensure!(media.len() > size, "{file} is smaller than {size} bytes");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = S3Store::connect(&S3Options {
            bucket: bucket.clone(),
            endpoint_url: Some(endpoint.clone()),
            path_style: true,
            connect_timeout: Duration::from_secs(5),
            ..S3Options::default()
        })
        .await
        .map_err(anyhow::Error::msg)?;
        // a playlist of live_upload's usual size, listing the new object last
        let playlist = |name: &str| {
            let mut text = "#EXTM3U\n".to_string();
            text.push_str(&"#".repeat(600 - text.len() - name.len() - 1));
            text.push('\n');
            text.push_str(name);
            text.push('\n');
            Arc::new(text.into_bytes())
        };
        let meta = |content_type: &str| ObjectMeta {
            content_type: content_type.to_string(),
            cache_control: "max-age=1".to_string(),
        };
        let prefix = std::env::var("BASELINE_PREFIX").unwrap_or_else(|_| "baseline".into());
        let began = tokio::time::Instant::now();
        for i in 0..count {
            if let Some(every) = interval {
                tokio::time::sleep_until(began + every * i as u32).await;
            }
            let from = i * size % (media.len() - size);
            let segment = Arc::new(media[from..from + size].to_vec());
            let start = Instant::now();
            let epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs_f64();
            let name = format!("object-{i:05}.ts");
            let key = format!("{prefix}/{name}");
            store
                .put(key, Body::Bytes(segment), meta("video/mp2t"))
                .await?;
            let index = format!("{prefix}/index.m3u8");
            store
                .put(
                    index,
                    Body::Bytes(playlist(&name)),
                    meta("application/vnd.apple.mpegurl"),
                )
                .await?;
            anyhow::ensure!(
                reader.get(&format!("/{prefix}/index.m3u8"))? == 200,
                "the playlist is readable"
            );
            println!(
                "{name},{epoch:.6},{:.3}",
                start.elapsed().as_secs_f64() * 1000.0
            );
        }
        Ok(())
    })
}

/// A kept-alive plain HTTP/1.1 connection for GETs with a given Host.
struct WebReader {
    addr: String,
    host: String,
    conn: BufReader<TcpStream>,
}

impl WebReader {
    fn connect(addr: &str, host: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let conn = BufReader::new(stream);
        Ok(WebReader {
            addr: addr.to_string(),
            host: host.to_string(),
            conn,
        })
    }

    /// GETs `path`, reads the whole answer, returns its status.
    fn get(&mut self, path: &str) -> anyhow::Result<u16> {
        if self.try_get(path).is_err() {
            // the server may have closed the idle connection
            *self = Self::connect(&self.addr.clone(), &self.host.clone())?;
        }
        self.try_get(path)
    }

    fn try_get(&mut self, path: &str) -> anyhow::Result<u16> {
        // one write: several small ones would wait on delayed ACKs
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.conn.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        anyhow::ensure!(self.conn.read_line(&mut line)? > 0, "connection closed");
        let status = line.split(' ').nth(1).unwrap_or("0").parse()?;
        let mut length = 0;
        loop {
            line.clear();
            self.conn.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.conn.read_exact(&mut body)?;
        Ok(status)
    }
}
