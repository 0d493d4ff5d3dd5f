//! Conditional requests (RFC 7232): If-Match, If-Unmodified-Since,
//! If-None-Match, If-Modified-Since and If-Range, evaluated in the RFC's
//! order against an object's ETag and Last-Modified. The same rules apply to
//! both destinations; the local one adds ETags, which tower-http's file
//! service does not make.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, Method};

/// What a conditional request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve it; `use_range` is false when If-Range says the Range header
    /// is for another version.
    Serve {
        use_range: bool,
    },
    NotModified,
    PreconditionFailed,
}

/// An object's validators.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    /// Quoted, possibly `W/`-prefixed.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// The headers a conditional request is decided on (and that the file
/// service must not see again).
pub const CONDITIONAL_HEADERS: [header::HeaderName; 5] = [
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

/// An ETag for a local file from its length and modification time.
pub fn file_etag(len: u64, modified: Option<SystemTime>) -> String {
    let nanos = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{nanos:x}\"")
}

/// HTTP dates have whole seconds.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let v = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v.trim()).ok()
}

fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// Whether an If-Match / If-None-Match list matches `etag`; `strong`
/// refuses weak tags on either side.
fn list_matches(list: &str, etag: Option<&str>, strong: bool) -> bool {
    let Some(etag) = etag else {
        return false;
    };
    list.split(',').map(str::trim).any(|t| {
        t == "*"
            || if strong {
                !t.starts_with("W/") && !etag.starts_with("W/") && t == etag
            } else {
                opaque(t) == opaque(etag)
            }
    })
}

/// Decides a request against an existing object's validators.
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators) -> Outcome {
    let etag = v.etag.as_deref();
    let modified = v.last_modified.map(whole_seconds);
    let text = |name: header::HeaderName| headers.get(name).and_then(|h| h.to_str().ok());
    // 1 and 2: the client's copy must still be current
    if let Some(list) = text(header::IF_MATCH) {
        if !list_matches(list, etag, true) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(since) = date(headers, header::IF_UNMODIFIED_SINCE) {
        if modified.is_none_or(|m| m > since) {
            return Outcome::PreconditionFailed;
        }
    }
    let safe = method == Method::GET || method == Method::HEAD;
    // 3 and 4: the client has this version already
    if let Some(list) = text(header::IF_NONE_MATCH) {
        if list_matches(list, etag, false) {
            return if safe {
                Outcome::NotModified
            } else {
                Outcome::PreconditionFailed
            };
        }
    } else if let Some(since) = date(headers, header::IF_MODIFIED_SINCE) {
        if safe && modified.is_some_and(|m| m <= since) {
            return Outcome::NotModified;
        }
    }
    // 5: a Range for another version is ignored (the whole object is sent)
    let use_range = match text(header::IF_RANGE).map(str::trim) {
        None => true,
        Some(tag) if tag.starts_with('"') || tag.starts_with("W/") => {
            !tag.starts_with("W/") && etag.is_some_and(|e| !e.starts_with("W/") && e == tag)
        }
        Some(d) => match (httpdate::parse_http_date(d), modified) {
            (Ok(d), Some(m)) => d == m,
            _ => false,
        },
    };
    Outcome::Serve { use_range }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn object() -> Validators {
        Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)),
        }
    }

    fn eval(pairs: &[(&str, &str)]) -> Outcome {
        evaluate(&Method::GET, &headers(pairs), &object())
    }

    const AT: &str = "Tue, 14 Nov 2023 22:13:20 GMT"; // 1_700_000_000
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const SERVE: Outcome = Outcome::Serve { use_range: true };

    #[test]
    fn if_none_match_and_if_modified_since() {
        assert_eq!(eval(&[]), SERVE);
        assert_eq!(eval(&[("if-none-match", "\"abc\"")]), Outcome::NotModified);
        assert_eq!(
            eval(&[("if-none-match", "\"x\", W/\"abc\"")]),
            Outcome::NotModified
        );
        assert_eq!(eval(&[("if-none-match", "*")]), Outcome::NotModified);
        assert_eq!(eval(&[("if-none-match", "\"x\"")]), SERVE);
        assert_eq!(eval(&[("if-modified-since", AT)]), Outcome::NotModified);
        assert_eq!(eval(&[("if-modified-since", BEFORE)]), SERVE);
        assert_eq!(eval(&[("if-modified-since", "garbage")]), SERVE);
        // If-None-Match wins over If-Modified-Since
        assert_eq!(
            eval(&[("if-none-match", "\"x\""), ("if-modified-since", AT)]),
            SERVE
        );
        let head = evaluate(
            &Method::HEAD,
            &headers(&[("if-none-match", "\"abc\"")]),
            &object(),
        );
        assert_eq!(head, Outcome::NotModified);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        assert_eq!(eval(&[("if-match", "\"abc\"")]), SERVE);
        assert_eq!(eval(&[("if-match", "\"x\"")]), Outcome::PreconditionFailed);
        assert_eq!(
            eval(&[("if-match", "W/\"abc\"")]),
            Outcome::PreconditionFailed
        );
        assert_eq!(eval(&[("if-unmodified-since", AT)]), SERVE);
        assert_eq!(
            eval(&[("if-unmodified-since", BEFORE)]),
            Outcome::PreconditionFailed
        );
    }

    #[test]
    fn if_range_decides_whether_range_applies() {
        assert_eq!(eval(&[("if-range", "\"abc\"")]), SERVE);
        assert_eq!(eval(&[("if-range", AT)]), SERVE);
        let whole = Outcome::Serve { use_range: false };
        assert_eq!(eval(&[("if-range", "\"old\"")]), whole);
        assert_eq!(eval(&[("if-range", "W/\"abc\"")]), whole);
        assert_eq!(eval(&[("if-range", BEFORE)]), whole);
    }

    #[test]
    fn file_etags_change_with_length_and_time() {
        let t = UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(file_etag(255, Some(t)), "\"ff-12a05f200\"");
        assert_ne!(file_etag(255, Some(t)), file_etag(256, Some(t)));
        assert_ne!(
            file_etag(255, Some(t)),
            file_etag(255, Some(t + Duration::from_nanos(1)))
        );
    }
}
