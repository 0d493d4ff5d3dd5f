//! Objects read through from an S3 bucket and prefix, with the main
//! command's credentials and endpoint options.
//!
//! A plain GET is one GetObject, streamed. A request with a Range or a
//! condition first reads the object's validators and length with
//! HeadObject, decides here (the same rules as for a local directory), then
//! asks for exactly the bytes to send with GetObject, on condition that the
//! object is still the version the decision was made on (if it is not, a
//! playlist replaced meanwhile, the request is decided again).

use std::time::SystemTime;

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::Client;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::cond::{self, Outcome, Validators};
use super::{cache_control_for, content_type_for, plain, with_validators};
use crate::uploader::s3::redact;

#[derive(Clone)]
pub struct S3Source {
    pub client: Client,
    pub bucket: String,
    pub prefix: String,
}

/// What HeadObject and GetObject both tell about an object.
struct Meta {
    len: u64,
    validators: Validators,
    content_type: Option<String>,
    cache_control: Option<String>,
}

fn time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

fn gateway_error(what: &str, e: impl std::error::Error) -> Response<Body> {
    log::warn!("{what}: {}", redact(&DisplayErrorContext(e).to_string()));
    plain(StatusCode::BAD_GATEWAY, "the storage failed to answer\n")
}

impl S3Source {
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Reads one key (a `ListObjectsV2` of at most one key) to check that
    /// the credentials may read the bucket.
    pub async fn check(&self) -> Result<(), String> {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let status = match &e {
                    SdkError::ServiceError(s) => format!("HTTP {}: ", s.raw().status().as_u16()),
                    _ => String::new(),
                };
                format!(
                    "cannot list {}: {status}{}",
                    self.describe(),
                    redact(&DisplayErrorContext(&e).to_string())
                )
            })
    }

    async fn head(&self, key: &str) -> Result<Option<Meta>, Response<Body>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(Meta {
                len: o.content_length().unwrap_or(0).max(0) as u64,
                validators: Validators {
                    etag: o.e_tag().map(str::to_string),
                    last_modified: time(o.last_modified()),
                },
                content_type: o.content_type().map(str::to_string),
                cache_control: o.cache_control().map(str::to_string),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(gateway_error(&format!("HEAD {key}"), e)),
        }
    }

    /// Whether the object exists (a failure to ask counts as not).
    pub async fn exists(&self, key: &str) -> bool {
        matches!(self.head(key).await, Ok(Some(_)))
    }

    pub async fn serve(&self, key: &str, method: &Method, headers: &HeaderMap) -> Response<Body> {
        // a playlist replaced between HEAD and GET is read again
        for _ in 0..3 {
            if let Some(res) = self.serve_once(key, method, headers).await {
                return res;
            }
        }
        let mut r = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the object keeps changing, retry\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }

    /// One answer, or `None` when the object changed between the HEAD the
    /// decision was made on and the GET.
    async fn serve_once(
        &self,
        key: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let conditional = cond::CONDITIONAL_HEADERS
            .iter()
            .any(|h| headers.contains_key(h));
        let mut part = None;
        let mut expect_etag = None;
        if *method == Method::HEAD || range.is_some() || conditional {
            let meta = match self.head(key).await {
                Ok(Some(m)) => m,
                Ok(None) => return Some(plain(StatusCode::NOT_FOUND, "not found\n")),
                Err(r) => return Some(r),
            };
            let use_range = match cond::evaluate(method, headers, &meta.validators) {
                Outcome::Serve { use_range } => use_range,
                Outcome::NotModified => {
                    let mut r = plain(StatusCode::NOT_MODIFIED, "");
                    with_validators(r.headers_mut(), &meta.validators, cache_of(key, &meta));
                    return Some(r);
                }
                Outcome::PreconditionFailed => {
                    return Some(plain(
                        StatusCode::PRECONDITION_FAILED,
                        "precondition failed\n",
                    ))
                }
            };
            if let (Some(r), true) = (range, use_range) {
                match single_range(r, meta.len) {
                    Some(p) => part = Some(p),
                    None => {
                        let mut res =
                            plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                        res.headers_mut().insert(
                            header::CONTENT_RANGE,
                            header_value(format!("bytes */{}", meta.len)),
                        );
                        return Some(res);
                    }
                }
            }
            if *method == Method::HEAD {
                return Some(respond(key, &meta, part, Body::empty()));
            }
            expect_etag = meta.validators.etag.clone();
        }
        let mut get = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some((a, b)) = part {
            get = get.range(format!("bytes={a}-{b}"));
        }
        if let Some(tag) = &expect_etag {
            get = get.if_match(tag);
        }
        let out = match get.send().await {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Some(plain(StatusCode::NOT_FOUND, "not found\n"))
            }
            Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 412 => {
                log::debug!("{key} changed between HEAD and GET");
                return None;
            }
            Err(e) => return Some(gateway_error(&format!("GET {key}"), e)),
        };
        let sent = out.content_length().unwrap_or(0).max(0) as u64;
        let meta = Meta {
            // for a part, the whole length is in Content-Range; else it is what came
            len: part.map_or(sent, |_| {
                out.content_range()
                    .and_then(|r| r.rsplit('/').next()?.parse().ok())
                    .unwrap_or(0)
            }),
            validators: Validators {
                etag: out.e_tag().map(str::to_string),
                last_modified: time(out.last_modified()),
            },
            content_type: out.content_type().map(str::to_string),
            cache_control: out.cache_control().map(str::to_string),
        };
        let stream = futures_util::stream::unfold(out.body, |mut body| async move {
            body.next().await.map(|chunk| (chunk, body))
        });
        Some(respond(key, &meta, part, Body::from_stream(stream)))
    }
}

/// The object's own Cache-Control, else the one for its type.
fn cache_of<'a>(key: &str, meta: &'a Meta) -> &'a str {
    meta.cache_control
        .as_deref()
        .filter(|c| HeaderValue::from_str(c).is_ok())
        .unwrap_or_else(|| cache_control_for(key))
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A 200, or a 206 for `part`, with the object's headers.
fn respond(key: &str, meta: &Meta, part: Option<(u64, u64)>, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    // the HLS types by name; other objects keep what they were stored with
    let ctype = match (content_type_for(key), &meta.content_type) {
        ("application/octet-stream", Some(stored)) => stored.as_str(),
        (t, _) => t,
    };
    h.insert(header::CONTENT_TYPE, header_value(ctype.to_string()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    with_validators(h, &meta.validators, cache_of(key, meta));
    match part {
        Some((a, b)) => {
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_RANGE,
                header_value(format!("bytes {a}-{b}/{}", meta.len)),
            );
            h.insert(
                header::CONTENT_LENGTH,
                header_value((b - a + 1).to_string()),
            );
        }
        None => {
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, header_value(meta.len.to_string()));
        }
    }
    res
}

/// The one byte range a Range header asks for in an object of `len` bytes;
/// `None` when it cannot be satisfied. Several ranges are refused as the
/// local file service refuses them (no multipart answers).
pub fn single_range(range: &str, len: u64) -> Option<(u64, u64)> {
    let ranges = http_range_header::parse_range_header(range)
        .ok()?
        .validate(len)
        .ok()?;
    match ranges.as_slice() {
        [r] => Some((*r.start(), *r.end())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::single_range;

    #[test]
    fn ranges() {
        assert_eq!(single_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(single_range("bytes=100-", 1000), Some((100, 999)));
        assert_eq!(single_range("bytes=-50", 1000), Some((950, 999)));
        assert_eq!(single_range("bytes=900-2000", 1000), Some((900, 999)));
        assert_eq!(single_range("bytes=1000-", 1000), None);
        assert_eq!(single_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(single_range("lines=0-1", 1000), None);
    }
}
