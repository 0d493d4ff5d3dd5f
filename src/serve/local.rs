//! Objects from a local directory: tower-http's `ServeFile` streams the
//! file and answers Range and HEAD; this module finds the file without
//! leaving the root (symlinks included) and adds ETags, conditional
//! requests on them, and the HLS content types and cache policy.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::cond::{self, Outcome, Validators};
use super::{cache_control_for, content_type_for, plain, with_validators};

/// The served directory, canonical.
#[derive(Debug, Clone)]
pub struct LocalRoot {
    root: PathBuf,
}

impl LocalRoot {
    pub fn open(dir: &Path) -> Result<LocalRoot, String> {
        let root = dir
            .canonicalize()
            .map_err(|e| format!("cannot serve {}: {e}", dir.display()))?;
        if !root.is_dir() {
            return Err(format!("cannot serve {}: not a directory", dir.display()));
        }
        Ok(LocalRoot { root })
    }

    /// The file a key names, if it is a regular file whose real path (all
    /// symlinks resolved) is inside the root.
    pub async fn resolve(&self, key: &str) -> Option<(PathBuf, std::fs::Metadata)> {
        let real = tokio::fs::canonicalize(self.root.join(key)).await.ok()?;
        if !real.starts_with(&self.root) {
            log::debug!("{key}: resolves outside the served directory, refused");
            return None;
        }
        let meta = tokio::fs::metadata(&real).await.ok()?;
        meta.is_file().then_some((real, meta))
    }

    pub async fn serve(&self, key: &str, mut req: Request<Body>) -> Response<Body> {
        let Some((path, meta)) = self.resolve(key).await else {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        };
        let v = Validators {
            etag: Some(cond::file_etag(meta.len(), meta.modified().ok())),
            last_modified: meta.modified().ok(),
        };
        let cache = cache_control_for(key);
        let use_range = match cond::evaluate(req.method(), req.headers(), &v) {
            Outcome::Serve { use_range } => use_range,
            Outcome::NotModified => {
                let mut r = plain(StatusCode::NOT_MODIFIED, "");
                with_validators(r.headers_mut(), &v, cache);
                return r;
            }
            Outcome::PreconditionFailed => {
                return plain(StatusCode::PRECONDITION_FAILED, "precondition failed\n")
            }
        };
        // the file service must not decide again on the headers decided here
        let headers = req.headers_mut();
        for name in cond::CONDITIONAL_HEADERS {
            headers.remove(name);
        }
        if !use_range {
            headers.remove(header::RANGE);
        }
        let res = match ServeFile::new(&path).oneshot(req).await {
            Ok(res) => res.map(Body::new),
            Err(e) => {
                log::warn!("{key}: {e}");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n");
            }
        };
        let (mut parts, body) = res.into_parts();
        match parts.status {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type_for(key)),
                );
                with_validators(&mut parts.headers, &v, cache);
            }
            StatusCode::NOT_FOUND => return plain(StatusCode::NOT_FOUND, "not found\n"),
            // a 416's body is a message, not the object
            _ => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
            }
        }
        Response::from_parts(parts, body)
    }
}
