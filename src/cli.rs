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
    /// Segments not yet stored outgrew --max-spool while the destination failed.
    pub const SPOOL_FULL: i32 = 5;
}

const EXAMPLES: &str = "\
Examples:
  # a live encode from a capture device, 6 s segments, published to a local web root
  ffmpeg -f v4l2 -i /dev/video0 -c:v libx264 -g 60 -c:a aac -f mpegts - | \\
    live_upload - 6 /tmp/spool live index.m3u8 '' file:///var/www/hls live

  # the original form: 10 s segments, absolute URLs in the playlist, an S3 bucket
  ffmpeg -re -i input.mp4 -c copy -f mpegts - | \\
    live_upload - 10 /tmp/spool live index.m3u8 https://cdn.example/live/ my-bucket live

  # watch what is published: a player page and an HLS origin
  live_upload serve file:///var/www/hls --listen 127.0.0.1:8080

Other commands:
  live_upload clip --help    a VOD playlist for a time range of the --archive
  live_upload serve --help   a preview origin with a player page

S3 credentials and region come from the standard AWS chain (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws files, web identity, container and
instance metadata), never from the command line.

Exit codes: 0 stream ended and published, 1 internal error, 2 bad command line,
3 input could not be opened or read (or is not MPEG-TS), 4 destination failed,
5 spool limit exceeded while the destination was failing.";

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
    /// Start over: ignore the playlist already at the destination and the
    /// segments an earlier run left in the spool. Without it, a run
    /// continues the published playlist after a discontinuity, publishes
    /// leftover segments first and never reuses a segment key.
    #[arg(long)]
    pub fresh: bool,
    /// MPEG-TS program number to publish when the input carries several
    /// [default: the first in the PAT].
    #[arg(long, value_name = "NUMBER")]
    pub program: Option<u16>,
    /// End the run (as at end of input) when no input arrives for this many
    /// seconds [default: wait forever].
    #[arg(long, value_name = "SECONDS")]
    pub input_timeout: Option<f64>,
    /// Segment uploads in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// Most bytes of segments that may wait in the spool directory while the
    /// destination is failing (suffixes K, M, G); beyond it the run stops with
    /// exit code 5.
    #[arg(long, value_name = "BYTES", default_value = "1G")]
    pub max_spool: String,
    /// Time allowed for each request to the destination, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub request_timeout: f64,
    /// Once input has ended, how long to keep trying to store what is left,
    /// in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub flush_timeout: f64,
    /// Delete each segment once it has left the playlist and stayed
    /// available for its own duration plus that of the last playlist that
    /// listed it (RFC 8216 §6.2.2). Off: keep every segment (or let a bucket
    /// lifecycle rule expire them). With --archive nothing is deleted: every
    /// segment stays listed in the archive.
    #[arg(long)]
    pub delete_old: bool,
    /// Also keep an archive playlist of the whole event under this object
    /// name beside the rolling one (e.g. archive.m3u8):
    /// EXT-X-PLAYLIST-TYPE:EVENT with every segment and its program date
    /// time, VOD with EXT-X-ENDLIST once the stream ends. A restarted run
    /// continues it after a discontinuity. Clips are cut from it with
    /// `live_upload clip`.
    #[arg(long, value_name = "NAME")]
    pub archive: Option<String>,
    /// Publish the archive once this many seconds of media were added since
    /// its last version (and always at the end). Each version carries the
    /// whole event, so fewer versions upload fewer bytes; players reloading
    /// the archive see it grow in these steps while the rolling playlist
    /// stays at the live edge.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub archive_every: f64,
    /// Cache-Control of segments.
    #[arg(long, value_name = "VALUE", default_value = crate::uploader::DEFAULT_SEGMENT_CACHE_CONTROL)]
    pub segment_cache_control: String,
    /// Cache-Control of the playlist [default: max-age= half the target
    /// duration, at least 1 s].
    #[arg(long, value_name = "VALUE")]
    pub playlist_cache_control: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// A canned ACL for every object, e.g. public-read. Off by default: most
    /// buckets now block ACLs.
    #[arg(long, value_name = "ACL")]
    pub acl: Option<String>,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

/// How to reach an S3 destination; shared by every subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct S3Args {
    /// S3 region (default: AWS_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// S3 endpoint for S3-compatible stores (B2, R2, MinIO, Garage, ...);
    /// AWS_ENDPOINT_URL works too.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Address the bucket in the URL path instead of the host name (MinIO,
    /// Garage and most self-hosted stores).
    #[arg(long)]
    pub path_style: bool,
}

impl S3Args {
    /// Refuses empty values, control characters and endpoints without a scheme.
    pub fn check(&self) -> Result<(), String> {
        if self
            .region
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.chars().any(char::is_control))
        {
            return Err("--region must not be empty or contain control characters".into());
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "--endpoint-url {url:?} must start with http:// or https://"
                ));
            }
        }
        Ok(())
    }
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
    pub fresh: bool,
    pub program: Option<u16>,
    pub input_timeout: Option<std::time::Duration>,
    pub concurrency: usize,
    pub max_spool: u64,
    pub request_timeout: std::time::Duration,
    pub flush_timeout: std::time::Duration,
    pub delete_old: bool,
    /// The archive's object name and publishing interval in ticks.
    pub archive: Option<(String, i64)>,
    pub segment_cache_control: String,
    pub playlist_cache_control: Option<String>,
    pub s3: S3Args,
    pub acl: Option<String>,
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
        if o.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        let max_spool = parse_bytes(&o.max_spool).ok_or_else(|| {
            format!(
                "--max-spool {:?} is not a size like 500M or 2G",
                o.max_spool
            )
        })?;
        let request_timeout = seconds("--request-timeout", o.request_timeout)?;
        let archive_every = seconds("--archive-every", o.archive_every)?;
        if let Some(name) = &o.archive {
            check_name("--archive", name)?;
            if name == &o.index_name {
                return Err(format!(
                    "--archive {name:?} must differ from the playlist's name"
                ));
            }
        }
        let flush_timeout = seconds("--flush-timeout", o.flush_timeout)?;
        for (name, value) in [
            ("--segment-cache-control", Some(&o.segment_cache_control)),
            (
                "--playlist-cache-control",
                o.playlist_cache_control.as_ref(),
            ),
            ("--acl", o.acl.as_ref()),
        ] {
            if value.is_some_and(|v| v.is_empty() || v.chars().any(char::is_control)) {
                return Err(format!(
                    "{name} must not be empty or contain control characters"
                ));
            }
        }
        o.s3.check()?;
        let log_level = log_level(o.verbose, o.quiet);
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
            fresh: o.fresh,
            program: o.program,
            input_timeout: o
                .input_timeout
                .map(|t| seconds("--input-timeout", t))
                .transpose()?,
            concurrency: o.concurrency,
            max_spool,
            request_timeout,
            flush_timeout,
            delete_old: o.delete_old,
            archive: o
                .archive
                .map(|name| (name, ticks_from_secs(archive_every.as_secs_f64()))),
            segment_cache_control: o.segment_cache_control,
            playlist_cache_control: o.playlist_cache_control,
            s3: o.s3,
            acl: o.acl,
            log_level,
        })
    }
}

/// The log level for `-v`/`-q` counts (RUST_LOG overrides it).
pub fn log_level(verbose: u8, quiet: u8) -> log::LevelFilter {
    match (verbose, quiet) {
        (0, 0) => log::LevelFilter::Info,
        (1, _) => log::LevelFilter::Debug,
        (v, _) if v >= 2 => log::LevelFilter::Trace,
        (_, 1) => log::LevelFilter::Warn,
        _ => log::LevelFilter::Error,
    }
}

/// A byte count with an optional K, M or G suffix (powers of 1024).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last()? {
        (i, 'K' | 'k') => (&t[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&t[..i], 1 << 20),
        (i, 'G' | 'g') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn seconds(name: &str, value: f64) -> Result<std::time::Duration, String> {
    if !(value > 0.0 && value <= 86_400.0) {
        return Err(format!(
            "{name} must be a number of seconds above 0, not {value}"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(value))
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

/// A destination with its key prefix as the subcommands name it:
/// `s3://bucket/prefix` or `file:///absolute/dir`.
pub fn parse_location(text: &str) -> Result<(Destination, String), String> {
    if text.starts_with("file://") {
        return Ok((parse_destination(text)?, String::new()));
    }
    let Some(rest) = text.strip_prefix("s3://") else {
        return Err(format!(
            "destination {text:?} must be s3://bucket/prefix or file:///absolute/dir"
        ));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((parse_destination(bucket)?, normalize_prefix(prefix)?))
}

// ---- `live_upload clip` ----

const CLIP_EXAMPLES: &str = "\
Examples:
  # minutes 10 to 12 of the event archived under s3://my-bucket/live
  live_upload clip s3://my-bucket/live --from 10:00 --to 12:00 \\
    --http-prefix https://cdn.example/live/

  # by wall-clock time, into a local destination, with a chosen name
  live_upload clip file:///var/www/hls/live --from 2026-11-22T20:15:00Z \\
    --to 2026-11-22T20:16:30Z --name goal.m3u8

Prints the clip's key and, with --http-prefix, its URL. The clip is a VOD playlist
beside the archive that lists the archive's own segment objects: no media is
copied. Its ends are the segments that hold --from and --to, so it covers the range
and overshoots it by less than one segment at each end.

Exit codes: 0 clip written, 1 internal error, 2 bad command line or a range that
is empty, reversed or not (yet) in the archive, 4 the archive could not be read or
the clip could not be stored.";

/// Write a VOD playlist for a time range of an event's archive (see
/// `live_upload --archive`).
#[derive(Debug, Parser)]
#[command(
    name = "live_upload clip",
    bin_name = "live_upload clip",
    version,
    after_help = CLIP_EXAMPLES
)]
pub struct ClipOpts {
    /// Where the archive is: `s3://bucket/prefix` (the main command's bucket
    /// and key prefix) or `file:///dir` (the directory that holds it).
    pub location: String,
    /// Start of the range: an RFC 3339 time (matched against the archive's
    /// program date times) or an offset from the start of the archive
    /// (seconds, MM:SS or HH:MM:SS[.fff]).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// End of the range, in the same form as --from.
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Object name of the archive playlist (the main command's --archive).
    #[arg(long, value_name = "NAME", default_value = "archive.m3u8")]
    pub archive: String,
    /// Object name of the clip, beside the archive [default:
    /// clip-<first>-<last>.m3u8 after its first and last segments].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The public URL of the location, e.g. `https://cdn.example/live/`, to
    /// print the clip's URL.
    #[arg(long, value_name = "URL")]
    pub http_prefix: Option<String>,
    /// Cache-Control of the clip (it never changes once written).
    #[arg(long, value_name = "VALUE", default_value = crate::uploader::DEFAULT_SEGMENT_CACHE_CONTROL)]
    pub cache_control: String,
    #[command(flatten)]
    pub s3: S3Args,
    /// Time allowed for each request to the destination, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub request_timeout: f64,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

/// The checked `clip` configuration.
#[derive(Debug, Clone)]
pub struct ClipConfig {
    pub destination: Destination,
    pub key_prefix: String,
    pub from: crate::clip::Bound,
    pub to: crate::clip::Bound,
    pub archive: String,
    pub name: Option<String>,
    pub http_prefix: Option<String>,
    pub cache_control: String,
    pub s3: S3Args,
    pub request_timeout: std::time::Duration,
    pub log_level: log::LevelFilter,
}

impl ClipConfig {
    pub fn from_opts(o: ClipOpts) -> Result<ClipConfig, String> {
        let (destination, key_prefix) = parse_location(&o.location)?;
        let from = crate::clip::parse_bound(&o.from).map_err(|e| format!("--from {e}"))?;
        let to = crate::clip::parse_bound(&o.to).map_err(|e| format!("--to {e}"))?;
        check_name("--archive", &o.archive)?;
        if let Some(name) = &o.name {
            check_name("--name", name)?;
            if name == &o.archive {
                return Err(format!("--name {name:?} would replace the archive"));
            }
        }
        if o.cache_control.is_empty() || o.cache_control.chars().any(char::is_control) {
            return Err("--cache-control must not be empty or contain control characters".into());
        }
        o.s3.check()?;
        Ok(ClipConfig {
            destination,
            key_prefix,
            from,
            to,
            archive: o.archive,
            name: o.name,
            http_prefix: o.http_prefix,
            cache_control: o.cache_control,
            s3: o.s3,
            request_timeout: seconds("--request-timeout", o.request_timeout)?,
            log_level: log_level(o.verbose, o.quiet),
        })
    }
}

// ---- `live_upload serve` ----

const SERVE_HELP: &str = "\
Examples:
  # preview what live_upload writes to a local directory
  live_upload serve file:///var/www/hls --listen 127.0.0.1:8080
  # read through to an S3 prefix, with a token (or set LIVE_UPLOAD_TOKEN)
  live_upload serve s3://my-bucket/live --token s3cret --endpoint-url http://127.0.0.1:3900 --path-style

Then open http://127.0.0.1:8080/ (with a token: /?token=...): a player page for
the playlist named by --index. Objects are served at their key below the
directory or prefix, e.g. /live/index.m3u8.

Exit codes: 0 stopped by SIGINT or SIGTERM, 1 internal error, 2 bad command line
or the address cannot be listened on, 4 the destination cannot be opened.";

/// Serve a live_upload destination over HTTP as a small HLS origin, with a
/// player page at `/`.
#[derive(Debug, Parser)]
#[command(name = "live_upload serve", version, after_help = SERVE_HELP)]
pub struct ServeOpts {
    /// What to serve: file:///absolute/dir or s3://bucket/prefix.
    pub location: String,
    /// Address and port to listen on (port 0 picks a free one; the address
    /// is printed on standard output).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Require this token: `Authorization: Bearer TOKEN` or `?token=TOKEN`
    /// [default: LIVE_UPLOAD_TOKEN, if set].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The playlist the player page at / plays, relative to the directory or
    /// prefix.
    #[arg(long, value_name = "KEY", default_value = "index.m3u8")]
    pub index: String,
    /// hls.js for the player page [default: LIVE_UPLOAD_HLS_JS, then the
    /// copy scripts/setup.sh installs, else a CDN URL].
    #[arg(long, value_name = "PATH")]
    pub hls_js: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
    /// More log output (-v debug: one line per request, -vv trace).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

/// The checked configuration of `live_upload serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// As given, for messages.
    pub location: String,
    pub destination: Destination,
    /// Normalized like the main command's key prefix.
    pub key_prefix: String,
    pub listen: std::net::SocketAddr,
    pub token: Option<String>,
    /// Relative key of the player page's playlist (checked like a key).
    pub index: String,
    pub hls_js: Option<PathBuf>,
    pub s3: S3Args,
    pub log_level: log::LevelFilter,
}

impl ServeConfig {
    /// Checks the options; `env_token` is LIVE_UPLOAD_TOKEN, used when
    /// --token is not given.
    pub fn from_opts(o: ServeOpts, env_token: Option<String>) -> Result<ServeConfig, String> {
        let (destination, key_prefix) = parse_location(&o.location)?;
        let listen = o.listen.parse().map_err(|_| {
            format!(
                "--listen {:?} is not an address and port like 127.0.0.1:8080 or [::1]:8080",
                o.listen
            )
        })?;
        let token = o.token.or(env_token.filter(|t| !t.is_empty()));
        if let Some(t) = &token {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(
                    "--token must be printable ASCII without spaces (it goes in a header and a URL)"
                        .into(),
                );
            }
        }
        let index = o.index.trim_start_matches('/').to_string();
        if check_key(&index).is_err() {
            return Err(format!(
                "--index {:?} must be a relative key like index.m3u8 or live/index.m3u8",
                o.index
            ));
        }
        o.s3.check()?;
        Ok(ServeConfig {
            location: o.location,
            destination,
            key_prefix,
            listen,
            token,
            index,
            hls_js: o.hls_js,
            s3: o.s3,
            log_level: log_level(o.verbose, o.quiet),
        })
    }
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
    fn sizes_and_s3_options() {
        assert_eq!(parse_bytes("512"), Some(512));
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("500m"), Some(500 << 20));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes(""), None);
        let mut a = BASE.to_vec();
        a.extend([
            "--max-spool",
            "64M",
            "--endpoint-url",
            "http://127.0.0.1:3900",
            "--path-style",
        ]);
        let c = opts(&a).unwrap();
        assert_eq!(c.max_spool, 64 << 20);
        assert!(c.s3.path_style);
        let mut b = BASE.to_vec();
        b.extend(["--endpoint-url", "127.0.0.1:3900"]);
        assert!(opts(&b).unwrap_err().contains("http://"));
        let mut d = BASE.to_vec();
        d.extend(["--concurrency", "0"]);
        assert!(opts(&d).is_err());
    }

    #[test]
    fn archive_options() {
        let mut a = BASE.to_vec();
        a.extend(["--archive", "archive.m3u8", "--archive-every", "30"]);
        assert_eq!(
            opts(&a).unwrap().archive,
            Some(("archive.m3u8".into(), 30 * TICKS_PER_SECOND))
        );
        assert_eq!(opts(&BASE).unwrap().archive, None);
        a[9] = "index.m3u8";
        assert!(opts(&a).unwrap_err().contains("must differ"));
        a[9] = "x/a.m3u8";
        assert!(opts(&a).unwrap_err().contains("--archive"));
        a[9] = "a.m3u8";
        a[11] = "0";
        assert!(opts(&a).unwrap_err().contains("--archive-every"));
    }

    #[test]
    fn clip_options() {
        let clip = |args: &[&str]| {
            let mut argv = vec!["live_upload clip", "s3://my-bucket/live"];
            argv.extend_from_slice(args);
            ClipConfig::from_opts(ClipOpts::try_parse_from(argv).map_err(|e| e.to_string())?)
        };
        let c = clip(&["--from", "10", "--to", "2026-11-22T20:00:00Z"]).unwrap();
        assert_eq!(c.key_prefix, "live");
        assert_eq!(c.archive, "archive.m3u8");
        assert_eq!(c.from, crate::clip::Bound::Offset(10 * TICKS_PER_SECOND));
        assert!(clip(&["--from", "x", "--to", "1"])
            .unwrap_err()
            .starts_with("--from"));
        assert!(
            clip(&["--from", "0", "--to", "1", "--name", "archive.m3u8"])
                .unwrap_err()
                .contains("replace the archive")
        );
        assert!(clip(&["--from", "0"]).is_err(), "--to is required");
    }

    #[test]
    fn subcommand_locations() {
        assert_eq!(
            parse_location("s3://my-bucket/live//a/").unwrap(),
            (
                Destination::S3 {
                    bucket: "my-bucket".into()
                },
                "live/a".into()
            )
        );
        assert_eq!(parse_location("s3://my-bucket").unwrap().1, "");
        assert_eq!(
            parse_location("file:///srv/hls").unwrap(),
            (Destination::Local("/srv/hls".into()), String::new())
        );
        assert!(parse_location("my-bucket").unwrap_err().contains("s3://"));
        assert!(parse_location("s3://B/x").is_err());
        assert!(parse_location("s3://my-bucket/../x").is_err());
    }

    fn serve(args: &[&str]) -> Result<ServeConfig, String> {
        let mut argv = vec!["live_upload serve"];
        argv.extend_from_slice(args);
        ServeConfig::from_opts(
            ServeOpts::try_parse_from(argv).map_err(|e| e.to_string())?,
            None,
        )
    }

    #[test]
    fn serve_options() {
        let c = serve(&["file:///srv/hls"]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.index, "index.m3u8");
        assert_eq!(c.token, None);
        let c = serve(&[
            "s3://my-bucket/a//b/",
            "--listen",
            "[::1]:0",
            "--token",
            "t0k",
        ])
        .unwrap();
        assert_eq!(c.key_prefix, "a/b");
        assert_eq!(c.token.as_deref(), Some("t0k"));
        assert!(serve(&["file:///x", "--listen", "localhost"])
            .unwrap_err()
            .contains("--listen"));
        assert!(serve(&["file:///x", "--token", "a b"]).is_err());
        assert!(serve(&["file:///x", "--index", "../index.m3u8"]).is_err());
        assert!(serve(&["/srv/hls"]).is_err());
        let env = ServeConfig::from_opts(
            ServeOpts::try_parse_from(["s", "file:///x"]).unwrap(),
            Some("from-env".into()),
        )
        .unwrap();
        assert_eq!(env.token.as_deref(), Some("from-env"));
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
