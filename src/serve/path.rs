//! From a request's path to an object key that cannot leave the served
//! directory or prefix.
//!
//! The path is taken as it arrived (still percent-encoded) and split on `/`
//! before decoding, so an encoded slash or dot cannot build a `..` part
//! after the check. Every part must decode to UTF-8 without control
//! characters, `/` or `\`, must not be empty (`//`), and must not start with
//! a dot: that refuses `.` and `..` and also hides dot files, such as the
//! temporary files the local destination renames into place.

use std::fmt;

/// Why a request path is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Malformed: bad percent-encoding, not UTF-8, control characters,
    /// backslashes, empty or dot parts.
    Bad,
    /// A part names a hidden (dot) file.
    Hidden,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Bad => "bad request path",
            PathError::Hidden => "hidden file",
        })
    }
}

/// Decodes `%XX` escapes; `None` for a truncated or non-hex escape or bytes
/// that are not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The relative key a request path names: `/live/index.m3u8` gives
/// `live/index.m3u8`. The path must start with `/` and have at least one
/// part.
pub fn relative_key(raw_path: &str) -> Result<String, PathError> {
    let rest = raw_path.strip_prefix('/').ok_or(PathError::Bad)?;
    let mut parts = Vec::new();
    let mut hidden = false;
    for raw in rest.split('/') {
        let part = percent_decode(raw).ok_or(PathError::Bad)?;
        if part.is_empty()
            || part
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\')
            || part == "."
            || part == ".."
        {
            return Err(PathError::Bad);
        }
        hidden |= part.starts_with('.');
        parts.push(part);
    }
    if hidden {
        return Err(PathError::Hidden);
    }
    Ok(parts.join("/"))
}

/// The full key under `prefix` (already normalized, may be empty).
pub fn full_key(prefix: &str, relative: &str) -> String {
    if prefix.is_empty() {
        relative.to_string()
    } else {
        format!("{prefix}/{relative}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_give_keys() {
        assert_eq!(relative_key("/index.m3u8").unwrap(), "index.m3u8");
        assert_eq!(
            relative_key("/live/live-00001.ts").unwrap(),
            "live/live-00001.ts"
        );
        assert_eq!(relative_key("/a%20b/c%2Bd").unwrap(), "a b/c+d");
        assert_eq!(relative_key("/caf%C3%A9").unwrap(), "café");
        assert_eq!(full_key("p/q", "x.ts"), "p/q/x.ts");
        assert_eq!(full_key("", "x.ts"), "x.ts");
    }

    #[test]
    fn traversal_and_malformed_paths_are_refused() {
        for bad in [
            "",
            "/",
            "//etc/passwd",
            "/../etc/passwd",
            "/live/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/..%2fetc%2fpasswd",
            "/live/%2e",
            "/live/.",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/a%00b",
            "/a%0ab",
            "/a%",
            "/a%zz",
            "/a%ff",
            "/live/",
            "live/index.m3u8",
        ] {
            assert_eq!(relative_key(bad), Err(PathError::Bad), "{bad:?}");
        }
        assert_eq!(relative_key("/.env"), Err(PathError::Hidden));
        assert_eq!(
            relative_key("/live/.live-00001.ts.42.tmp"),
            Err(PathError::Hidden)
        );
        assert_eq!(relative_key("/%2egit/config"), Err(PathError::Hidden));
    }

    #[test]
    fn keys_never_hold_dot_parts() {
        // whatever the input, an accepted key passes the store's own check
        for p in [
            "/a/b",
            "/a%2Fb",
            "/x/%2e%2e%2f",
            "/x/..%5c",
            "/x/y%2F..%2Fz",
        ] {
            if let Ok(k) = relative_key(p) {
                crate::uploader::store::check_key(&k).unwrap();
                assert!(!k.split('/').any(|c| c == ".."), "{p} gave {k}");
            }
        }
    }
}
