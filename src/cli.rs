//! Command line: clap parses [`Opts`]; [`Config::from_opts`] checks them and
//! produces the configuration the rest of the program uses.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::playlist::initial_target_duration;
use crate::timeline::{format_secs, ticks_from_secs, TICKS_PER_SECOND};
use crate::uploader::store::check_key;

/// Exit codes (also documented in the README).
pub mod exit {
    /// The stream ended (end of input, SIGINT or SIGTERM) and everything was published.
    pub const OK: i32 = 0;
    /// An unexpected internal error.
    pub const INTERNAL: i32 = 1;
    /// The command line or configuration is wrong.
    pub const USAGE: i32 = 2;
    /// The input could not be opened or read, or is not MPEG-TS.
    pub const INPUT: i32 = 3;
    /// The destination refused or failed to store an object.
    pub const STORAGE: i32 = 4;
}

const EXAMPLES: &str = "\
Examples:
  # a live encode from a capture device, 6 s segments, published to a local web root
  ffmpeg -f v4l2 -i /dev/video0 -c:v libx264 -g 60 -c:a aac -f mpegts - | \\
    live_upload - 6 /tmp/spool live index.m3u8 '' file:///var/www/hls live

  # the original form: 10 s segments, absolute URLs in the playlist, an S3 bucket
  ffmpeg -re -i input.mp4 -c copy -f mpegts - | \\
    live_upload - 10 /tmp/spool live index.m3u8 https://cdn.example/live/ my-bucket live

Exit codes: 0 stream ended and published, 1 internal error, 2 bad command line,
3 input could not be opened or read (or is not MPEG-TS), 4 destination failed.";

/// Cut a live MPEG-TS stream into HLS segments on keyframes and publish them,
/// with a rolling playlist, to a storage destination.
#[derive(Debug, Parser)]
#[command(name = "live_upload", version, after_help = EXAMPLES)]
pub struct Opts {
    /// `-` for standard input, or any file or URL that libav opens
    /// (udp://, srt://, http://...). The stream must be MPEG-TS.
    pub input: String,
    /// Target segment duration in seconds (> 0, decimals allowed). Segments
    /// are cut on the first keyframe once this much has been collected.
    pub segment_seconds: String,
    /// Directory where each segment is written before it is stored
    /// (created if missing).
    pub spool_dir: PathBuf,
    /// Segments are named `<SEGMENT_PREFIX>-<NNNNN>.ts`.
    pub segment_prefix: String,
    /// Object name of the playlist, e.g. `index.m3u8`.
    pub index_name: String,
    /// Written before each segment name in the playlist, e.g.
    /// `https://cdn.example/live/`; an empty string gives relative URIs.
    pub http_prefix: String,
    /// Destination: an S3 bucket name, or `file:///absolute/dir` for a local
    /// directory.
    pub bucket: String,
    /// Prefix of every object key inside the destination (may be empty).
    pub key_prefix: String,

    /// Number of segments in the rolling playlist (at least three target
    /// durations' worth, RFC 8216 §6.2.2).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub window: usize,
    /// Leave out EXT-X-PROGRAM-DATE-TIME tags.
    #[arg(long)]
    pub no_program_date_time: bool,
    /// Keep segment files in the spool directory after they are stored.
    #[arg(long)]
    pub keep_spool: bool,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

/// Where objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Local(PathBuf),
    S3 { bucket: String },
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub input: String,
    /// Target segment duration in ticks.
    pub target: i64,
    pub spool_dir: PathBuf,
    pub segment_prefix: String,
    pub index_name: String,
    pub http_prefix: String,
    pub destination: Destination,
    /// Normalized: no leading, trailing or doubled `/`.
    pub key_prefix: String,
    pub window: usize,
    pub program_date_time: bool,
    pub keep_spool: bool,
    pub log_level: log::LevelFilter,
}

/// Longest accepted target segment duration, in seconds.
const MAX_SEGMENT_SECONDS: f64 = 3600.0;

impl Config {
    pub fn from_opts(o: Opts) -> Result<Config, String> {
        let secs: f64 = o
            .segment_seconds
            .trim()
            .parse()
            .map_err(|_| format!("segment-seconds {:?} is not a number", o.segment_seconds))?;
        if !(secs > 0.0 && secs <= MAX_SEGMENT_SECONDS) {
            return Err(format!(
                "segment-seconds must be greater than 0 and at most {MAX_SEGMENT_SECONDS}, not {}",
                o.segment_seconds
            ));
        }
        let target = ticks_from_secs(secs).max(1);
        check_name("segment-prefix", &o.segment_prefix)?;
        check_name("index-name", &o.index_name)?;
        if o.http_prefix.chars().any(char::is_control) {
            return Err("http-prefix contains a control character".into());
        }
        let key_prefix = normalize_prefix(&o.key_prefix)?;
        let destination = parse_destination(&o.bucket)?;
        if o.window == 0 {
            return Err("--window must be at least 1".into());
        }
        let target_duration = initial_target_duration(target) as i64 * TICKS_PER_SECOND;
        if (o.window as i64) * target < 3 * target_duration {
            let needed = (3 * target_duration + target - 1) / target;
            return Err(format!(
                "--window {} of {} s segments covers {} s, less than three target durations \
                 ({} s) as RFC 8216 §6.2.2 requires; use --window {needed} or more",
                o.window,
                format_secs(target),
                format_secs(o.window as i64 * target),
                format_secs(3 * target_duration),
            ));
        }
        let log_level = match (o.verbose, o.quiet) {
            (0, 0) => log::LevelFilter::Info,
            (1, _) => log::LevelFilter::Debug,
            (v, _) if v >= 2 => log::LevelFilter::Trace,
            (_, 1) => log::LevelFilter::Warn,
            _ => log::LevelFilter::Error,
        };
        Ok(Config {
            input: o.input,
            target,
            spool_dir: o.spool_dir,
            segment_prefix: o.segment_prefix,
            index_name: o.index_name,
            http_prefix: o.http_prefix,
            destination,
            key_prefix,
            window: o.window,
            program_date_time: !o.no_program_date_time,
            keep_spool: o.keep_spool,
            log_level,
        })
    }
}

/// A single object name: not empty, no `/`, no control characters, not `.`
/// or `..`.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if name.contains('/') || name == "." || name == ".." {
        return Err(format!("{what} {name:?} must be a plain name without '/'"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} {name:?} contains a control character"));
    }
    Ok(())
}

/// Strips leading, trailing and doubled slashes; refuses `.`/`..` parts and
/// control characters.
pub fn normalize_prefix(prefix: &str) -> Result<String, String> {
    let parts: Vec<&str> = prefix.split('/').filter(|p| !p.is_empty()).collect();
    let joined = parts.join("/");
    if joined.is_empty() {
        return Ok(joined);
    }
    check_key(&joined).map_err(|_| {
        format!("key-prefix {prefix:?} must not contain '.' or '..' parts or control characters")
    })?;
    Ok(joined)
}

fn parse_destination(bucket: &str) -> Result<Destination, String> {
    if let Some(rest) = bucket.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(format!(
                "destination {bucket:?} must name an absolute directory: file:///path/to/dir"
            ));
        }
        if rest.chars().any(char::is_control) {
            return Err("destination path contains a control character".into());
        }
        return Ok(Destination::Local(PathBuf::from(rest)));
    }
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !valid {
        return Err(format!(
            "bucket {bucket:?} is neither a valid S3 bucket name (3-63 of a-z 0-9 . -) nor file:///dir"
        ));
    }
    Ok(Destination::S3 {
        bucket: bucket.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["live_upload"];
        argv.extend_from_slice(args);
        Config::from_opts(Opts::try_parse_from(argv).map_err(|e| e.to_string())?)
    }

    const BASE: [&str; 8] = [
        "-",
        "10",
        "/tmp/s",
        "live",
        "index.m3u8",
        "",
        "file:///tmp/out",
        "a/b",
    ];

    fn with(i: usize, v: &str) -> Vec<&str> {
        let mut a = BASE.to_vec();
        a[i] = v;
        a
    }

    #[test]
    fn the_original_positional_form_parses() {
        let c = opts(&BASE).unwrap();
        assert_eq!(c.target, 900_000);
        assert_eq!(c.destination, Destination::Local("/tmp/out".into()));
        assert_eq!(c.key_prefix, "a/b");
        assert_eq!(c.window, 5);
        assert!(c.program_date_time);
        let s3 = opts(&with(6, "my-bucket")).unwrap();
        assert_eq!(
            s3.destination,
            Destination::S3 {
                bucket: "my-bucket".into()
            }
        );
        assert_eq!(opts(&with(1, "2.5")).unwrap().target, 225_000);
    }

    #[test]
    fn key_prefixes_are_normalized_or_refused() {
        assert_eq!(opts(&with(7, "/live//x/")).unwrap().key_prefix, "live/x");
        assert_eq!(opts(&with(7, "")).unwrap().key_prefix, "");
        assert!(opts(&with(7, "a/../b")).unwrap_err().contains("key-prefix"));
        assert!(opts(&with(7, "a\tb")).is_err());
    }

    #[test]
    fn bad_values_get_clear_messages() {
        assert!(opts(&with(1, "0")).unwrap_err().contains("greater than 0"));
        assert!(opts(&with(1, "-3")).is_err());
        assert!(opts(&with(1, "abc")).unwrap_err().contains("not a number"));
        assert!(opts(&with(1, "NaN")).is_err());
        assert!(opts(&with(3, "a/b"))
            .unwrap_err()
            .contains("segment-prefix"));
        assert!(opts(&with(4, "")).unwrap_err().contains("index-name"));
        assert!(opts(&with(6, "file://relative"))
            .unwrap_err()
            .contains("absolute"));
        assert!(opts(&with(6, "Bad_Bucket")).unwrap_err().contains("bucket"));
    }

    #[test]
    fn short_windows_are_refused_per_rfc_8216() {
        let mut a = BASE.to_vec();
        a.extend(["--window", "2"]);
        let err = opts(&a).unwrap_err();
        assert!(err.contains("use --window 3"), "{err}");
        let mut b = with(1, "2.5");
        b.extend(["--window", "3"]);
        assert!(opts(&b).unwrap_err().contains("use --window 4"));
        b[9] = "4";
        assert!(opts(&b).is_ok());
    }
}
