//! `live_upload serve`: a small HLS origin in front of a live_upload
//! destination, a local directory or an S3 bucket and prefix.
//!
//! Built on axum and tower-http. Every request passes, from the outside in:
//! CORS (which answers preflights itself, without a token), the token
//! check, then one handler: `/` is the player page, `/_player/hls.min.js`
//! the local copy of hls.js, and any other path an object below the
//! directory or prefix (see [`path`] for what is refused).

pub mod cond;
pub mod local;
pub mod path;
pub mod player;
pub mod s3;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::serve::ListenerExt;
use axum::Router;
use subtle::ConstantTimeEq;
use tower_http::cors::{Any, CorsLayer};

use crate::media::packaging;
use crate::uploader::Destination;
use cond::Validators;

/// The checked configuration of `live_upload serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// As given, for messages.
    pub location: String,
    pub destination: crate::uploader::Destination,
    /// Normalized like the main command's key prefix.
    pub key_prefix: String,
    pub listen: std::net::SocketAddr,
    pub token: Option<String>,
    /// Relative key of the player page's playlist (checked like a key).
    pub index: String,
    /// Relative key of a master playlist the page prefers, when it exists.
    pub master: Option<String>,
    pub hls_js: Option<std::path::PathBuf>,
    pub s3: crate::uploader::S3Settings,
    pub log_level: log::LevelFilter,
}

/// Cache-Control of playlists: a player always revalidates (cheap, with
/// ETags), so a live playlist is never stale.
pub const PLAYLIST_CACHE_CONTROL: &str = "no-cache";
/// Cache-Control of segments: their names are never reused within a run.
pub const SEGMENT_CACHE_CONTROL: &str = packaging::SEGMENT_CACHE_CONTROL;

/// How long in-flight requests may finish after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Content-Type by extension; what HLS players expect for playlists and
/// segments.
pub fn content_type_for(key: &str) -> &'static str {
    packaging::content_type_for(key)
}

/// Cache-Control by kind: segments and init segments long, everything else
/// revalidated.
pub fn cache_control_for(key: &str) -> &'static str {
    if packaging::is_immutable_media(key) {
        SEGMENT_CACHE_CONTROL
    } else {
        PLAYLIST_CACHE_CONTROL
    }
}

/// A short text response.
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    if !text.is_empty() {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}

/// ETag, Last-Modified and Cache-Control of a 200, 206 or 304.
pub fn with_validators(h: &mut HeaderMap, v: &Validators, cache_control: &str) {
    if let Some(tag) = v
        .etag
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        h.insert(header::ETAG, tag);
    }
    if let Some(t) = v.last_modified {
        if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(t)) {
            h.insert(header::LAST_MODIFIED, date);
        }
    }
    if let Ok(c) = HeaderValue::from_str(cache_control) {
        h.insert(header::CACHE_CONTROL, c);
    }
}

/// Where objects come from.
#[derive(Clone)]
enum Source {
    Local(local::LocalRoot),
    S3(s3::S3Source),
}

struct AppState {
    source: Source,
    token: Option<String>,
    page: String,
    /// The playlists the page may play, best first (relative keys): a
    /// ladder's master, then the index.
    candidates: Vec<String>,
    /// The local copy of hls.js, if one was found.
    hls_js: Option<Vec<u8>>,
}

/// Whether the request carries the token: `Authorization: Bearer T` or a
/// `token=T` query parameter, compared in constant time.
pub fn authorized(expected: &str, headers: &HeaderMap, query: Option<&str>) -> bool {
    let same = |given: &str| bool::from(given.as_bytes().ct_eq(expected.as_bytes()));
    let mut ok = false;
    for v in headers.get_all(header::AUTHORIZATION) {
        if let Some(t) = v.to_str().ok().and_then(bearer) {
            ok |= same(t);
        }
    }
    for pair in query.unwrap_or("").split('&') {
        if let Some(t) = pair.strip_prefix("token=") {
            if let Some(t) = path::percent_decode(&t.replace('+', " ")) {
                ok |= same(&t);
            }
        }
    }
    ok
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    if let Some(token) = &state.token {
        if !authorized(token, req.headers(), req.uri().query()) {
            // the same answer for every path, existing or not
            let mut r = plain(StatusCode::UNAUTHORIZED, "token required\n");
            let h = r.headers_mut();
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"live_upload\""),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return r;
        }
    }
    next.run(req).await
}

/// One debug line per request: method, path (never the query, which may
/// hold the token), status and time taken.
async fn log_request(req: Request, next: Next) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    log::debug!(
        "{method} {path} -> {} in {:.1} ms",
        res.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    res
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        return r;
    }
    match req.uri().path() {
        "/" => {
            let mut r = Response::new(Body::from(state.page.clone()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return r;
        }
        player::CHOICE_PATH => return choice(&state).await,
        player::HLS_JS_PATH => {
            let Some(js) = &state.hls_js else {
                return plain(StatusCode::NOT_FOUND, "not found\n");
            };
            let mut r = Response::new(Body::from(js.clone()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            return r;
        }
        _ => {}
    }
    let key = match path::relative_key(req.uri().path()) {
        Ok(k) => k,
        Err(path::PathError::Hidden) => return plain(StatusCode::NOT_FOUND, "not found\n"),
        Err(path::PathError::Bad) => return plain(StatusCode::BAD_REQUEST, "bad request path\n"),
    };
    match &state.source {
        Source::Local(root) => root.serve(&key, req).await,
        Source::S3(src) => {
            let full = path::full_key(&src.prefix, &key);
            src.serve(&full, req.method(), req.headers()).await
        }
    }
}

/// Which playlist the page plays: the first candidate that exists, as
/// JSON (`{"playlist":"/live/master.m3u8"}`, or `null` while none does).
/// Asked here rather than by the page, so that a stream without a ladder
/// costs the page no 404.
async fn choice(state: &AppState) -> Response<Body> {
    let mut chosen = None;
    for key in &state.candidates {
        let exists = match &state.source {
            Source::Local(root) => root.resolve(key).await.is_some(),
            Source::S3(src) => src.exists(&path::full_key(&src.prefix, key)).await,
        };
        if exists {
            chosen = Some(format!("/{key}"));
            break;
        }
    }
    let body = match chosen {
        Some(p) => format!("{{\"playlist\":{}}}", player::js_string(&p)),
        None => "{\"playlist\":null}".to_string(),
    };
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
        ])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CACHE_CONTROL,
            HeaderName::from_static("age"),
        ])
        .max_age(Duration::from_secs(600))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(cors())
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// What kind of failure ended the command (the binary turns it into an
/// exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeFailure {
    /// A bad option: an hls.js path that cannot be read, an address that
    /// cannot be listened on.
    Usage,
    /// The destination cannot be opened.
    Destination,
    Internal,
}

/// A failure that ends the command.
#[derive(Debug)]
pub struct ServeError {
    pub kind: ServeFailure,
    pub message: String,
}

fn error(kind: ServeFailure, message: impl Into<String>) -> ServeError {
    ServeError {
        kind,
        message: message.into(),
    }
}

/// Finds and reads hls.js: `--hls-js` (must exist), `LIVE_UPLOAD_HLS_JS`
/// (must exist), else the first of the default places that has it.
fn load_hls_js(cfg: &ServeConfig) -> Result<Option<(std::path::PathBuf, Vec<u8>)>, ServeError> {
    let named = cfg.hls_js.clone().map(|p| (p, "--hls-js")).or_else(|| {
        std::env::var_os("LIVE_UPLOAD_HLS_JS")
            .filter(|v| !v.is_empty())
            .map(|p| (p.into(), "LIVE_UPLOAD_HLS_JS"))
    });
    if let Some((p, what)) = named {
        return match std::fs::read(&p) {
            Ok(js) => Ok(Some((p, js))),
            Err(e) => Err(error(
                ServeFailure::Usage,
                format!("{what} {}: {e}", p.display()),
            )),
        };
    }
    let exe = std::env::current_exe().ok();
    Ok(player::default_hls_js(exe.as_deref())
        .into_iter()
        .find_map(|p| std::fs::read(&p).ok().map(|js| (p, js))))
}

async fn open_source(cfg: &ServeConfig) -> Result<Source, ServeError> {
    match &cfg.destination {
        Destination::Local(dir) => local::LocalRoot::open(dir)
            .map(Source::Local)
            .map_err(|e| error(ServeFailure::Destination, e)),
        Destination::S3 { bucket } => {
            let store = crate::uploader::connect_s3(bucket, &cfg.s3, None, Duration::from_secs(5))
                .await
                .map_err(|e| error(ServeFailure::Destination, e))?;
            let src = s3::S3Source {
                client: store.client().clone(),
                bucket: bucket.clone(),
                prefix: cfg.key_prefix.clone(),
            };
            src.check()
                .await
                .map_err(|e| error(ServeFailure::Destination, e))?;
            Ok(Source::S3(src))
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log::warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            error(
                ServeFailure::Internal,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    runtime.block_on(serve(cfg))
}

async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    let hls_js = load_hls_js(&cfg)?;
    let source = open_source(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| {
            error(
                ServeFailure::Usage,
                format!("cannot listen on {}: {e}", cfg.listen),
            )
        })?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| {
        error(
            ServeFailure::Internal,
            format!("cannot read the bound address: {e}"),
        )
    })?;
    let script = match &hls_js {
        Some((p, _)) => {
            log::info!("the player page uses {}", p.display());
            player::HLS_JS_PATH.to_string()
        }
        None => {
            let url = player::cdn_url();
            log::info!("no local hls.js found (see --hls-js); the player page loads {url}");
            url
        }
    };
    if cfg.token.is_none() && !addr.ip().is_loopback() {
        log::warn!("listening on {addr} without --token: anyone who can reach it can watch");
    }
    let state = Arc::new(AppState {
        source,
        token: cfg.token.clone(),
        page: player::page(&cfg.index, &script),
        candidates: cfg.master.iter().chain([&cfg.index]).cloned().collect(),
        hls_js: hls_js.map(|(_, js)| js),
    });
    println!("serving {} at http://{addr}/", cfg.location);
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    // without TCP_NODELAY a response's body waits behind its headers for the
    // client's delayed ACK (40 ms on Linux)
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            log::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        stop_signal().await;
        log::info!("stopping: finishing requests in flight");
        let _ = stopped_tx.send(());
    });
    let grace = async {
        if stopped_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = server => r.map_err(|e| error(ServeFailure::Internal, format!("server failed: {e}"))),
        _ = grace => {
            log::warn!("requests still open after {} s; stopping anyway", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(pairs: &[(&str, &str)], query: Option<&str>) -> bool {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        authorized("s3cr%t", &h, query)
    }

    #[test]
    fn tokens() {
        assert!(!auth(&[], None));
        assert!(auth(&[("authorization", "Bearer s3cr%t")], None));
        assert!(auth(&[("authorization", "bearer  s3cr%t ")], None));
        assert!(!auth(&[("authorization", "Basic s3cr%t")], None));
        assert!(!auth(&[("authorization", "Bearer s3cr")], None));
        assert!(auth(&[], Some("a=1&token=s3cr%25t")));
        assert!(!auth(&[], Some("token=s3cr")));
        assert!(!auth(&[], Some("xtoken=s3cr%25t")));
        assert!(!auth(&[], Some("token=s3cr%")));
    }

    #[test]
    fn types_and_cache_policy() {
        assert_eq!(
            content_type_for("live/index.m3u8"),
            packaging::PLAYLIST_CONTENT_TYPE
        );
        assert_eq!(content_type_for("live/live-00001.TS"), "video/mp2t");
        assert_eq!(content_type_for("x"), "application/octet-stream");
        assert_eq!(cache_control_for("a.ts"), SEGMENT_CACHE_CONTROL);
        assert_eq!(cache_control_for("a.m3u8"), "no-cache");
    }
}
