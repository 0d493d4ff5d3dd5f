//! Checks the parsed options and builds the plain configuration each part of
//! the program takes: [`Config`] for the main command, [`ClipConfig`], and
//! `serve`'s [`ServeConfig`].

use std::path::PathBuf;

use super::{ClipOpts, Opts, ServeOpts};
use crate::media::MediaDuration;
use crate::playlist::initial_target_duration;
use crate::serve::ServeConfig;
use crate::uploader::retry::RetryPolicy;
use crate::uploader::store::check_key;
pub use crate::uploader::{Destination, S3Settings};

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub input: String,
    /// Target segment duration.
    pub target: MediaDuration,
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
    /// TS or fMP4 segments.
    pub format: crate::media::Packaging,
    pub input_timeout: Option<std::time::Duration>,
    pub concurrency: usize,
    pub max_spool: u64,
    pub request_timeout: std::time::Duration,
    pub flush_timeout: std::time::Duration,
    pub delete_old: bool,
    /// How long the lease on the stream lasts.
    pub lease: crate::lease::LeaseTiming,
    pub standby: bool,
    /// The archive's object name and publishing interval.
    pub archive: Option<(String, MediaDuration)>,
    pub segment_cache_control: String,
    pub playlist_cache_control: Option<String>,
    pub s3: S3Settings,
    pub acl: Option<String>,
    /// Where the event journal goes (`--events`).
    pub events: Option<PathBuf>,
    /// `--ladder`, with the master playlist's name and the x264 preset.
    pub ladder: Option<LadderConfig>,
    pub log_level: log::LevelFilter,
}

/// Longest accepted target segment duration, in seconds.
const MAX_SEGMENT_SECONDS: f64 = 3600.0;

impl Config {
    /// How requests to the store are retried: the defaults, each attempt
    /// bounded by `--request-timeout`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempt_timeout: self.request_timeout,
            ..RetryPolicy::default()
        }
    }

    /// Checks every option, in the order they appear on the command line,
    /// and builds the configuration; the error names what was wrong.
    pub fn from_opts(o: Opts) -> Result<Config, String> {
        let target = parse_target(&o.segment_seconds)?;
        check_name("segment-prefix", &o.segment_prefix)?;
        check_name("index-name", &o.index_name)?;
        if o.http_prefix.chars().any(char::is_control) {
            return Err("http-prefix contains a control character".into());
        }
        let key_prefix = normalize_prefix(&o.key_prefix)?;
        let destination = parse_destination(&o.bucket)?;
        check_window(o.window, target)?;
        if o.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        let max_spool = parse_bytes(&o.max_spool).ok_or_else(|| {
            format!(
                "--max-spool {:?} is not a size like 500M or 2G",
                o.max_spool
            )
        })?;
        let archive = archive(&o)?;
        check_header_values(&o)?;
        o.s3.check()?;
        if o.events.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err("--events must name a file".into());
        }
        let ladder = ladder(&o)?;
        let lease = lease_timing(o.lease_seconds, target)?;
        Ok(Config {
            lease,
            standby: o.standby,
            target,
            destination,
            key_prefix,
            max_spool,
            archive,
            request_timeout: seconds("--request-timeout", o.request_timeout)?,
            flush_timeout: seconds("--flush-timeout", o.flush_timeout)?,
            input_timeout: o
                .input_timeout
                .map(|t| seconds("--input-timeout", t))
                .transpose()?,
            log_level: log_level(o.verbose, o.quiet),
            s3: o.s3.settings(),
            input: o.input,
            spool_dir: o.spool_dir,
            segment_prefix: o.segment_prefix,
            index_name: o.index_name,
            http_prefix: o.http_prefix,
            window: o.window,
            program_date_time: !o.no_program_date_time,
            keep_spool: o.keep_spool,
            fresh: o.fresh,
            program: o.program,
            format: o.format.into(),
            concurrency: o.concurrency,
            delete_old: o.delete_old,
            segment_cache_control: o.segment_cache_control,
            playlist_cache_control: o.playlist_cache_control,
            acl: o.acl,
            events: o.events,
            ladder,
        })
    }
}

/// What `--ladder` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderConfig {
    pub spec: crate::media::LadderSpec,
    /// The master playlist's object name.
    pub master: String,
    /// libx264's preset.
    pub preset: String,
}

/// x264's presets, from fastest to slowest.
const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

fn ladder(o: &Opts) -> Result<Option<LadderConfig>, String> {
    let Some(text) = &o.ladder else {
        return Ok(None);
    };
    let spec = text
        .parse()
        .map_err(|e| format!("--ladder {text:?}: {e}"))?;
    check_name("master", &o.master)?;
    if o.master == o.index_name {
        return Err(format!(
            "--master {:?} is also the INDEX_NAME of each rendition's playlist",
            o.master
        ));
    }
    if !PRESETS.contains(&o.preset.as_str()) {
        return Err(format!(
            "--preset {:?} is not one of libx264's presets ({})",
            o.preset,
            PRESETS.join(", ")
        ));
    }
    Ok(Some(LadderConfig {
        spec,
        master: o.master.clone(),
        preset: o.preset.clone(),
    }))
}

/// SEGMENT_SECONDS: a number above 0 and at most an hour.
fn parse_target(text: &str) -> Result<MediaDuration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("segment-seconds {text:?} is not a number"))?;
    if !(secs > 0.0 && secs <= MAX_SEGMENT_SECONDS) {
        return Err(format!(
            "segment-seconds must be greater than 0 and at most {MAX_SEGMENT_SECONDS}, not {text}"
        ));
    }
    // at least one tick
    Ok(MediaDuration::from_secs(secs).max(MediaDuration(1)))
}

/// A window of `window` segments must cover three target durations (RFC
/// 8216 §6.2.2).
fn check_window(window: usize, target: MediaDuration) -> Result<(), String> {
    if window == 0 {
        return Err("--window must be at least 1".into());
    }
    let covered = target * window as i64;
    let required = MediaDuration::from_whole_secs(3 * initial_target_duration(target));
    if covered < required {
        let needed = (required.ticks() + target.ticks() - 1) / target.ticks();
        return Err(format!(
            "--window {window} of {target} s segments covers {covered} s, less than three \
             target durations ({required} s) as RFC 8216 §6.2.2 requires; use --window \
             {needed} or more",
        ));
    }
    Ok(())
}

/// `--archive` and `--archive-every`: the archive's name and interval.
fn archive(o: &Opts) -> Result<Option<(String, MediaDuration)>, String> {
    let every = seconds("--archive-every", o.archive_every)?;
    let Some(name) = &o.archive else {
        return Ok(None);
    };
    check_name("--archive", name)?;
    if name == &o.index_name {
        return Err(format!(
            "--archive {name:?} must differ from the playlist's name"
        ));
    }
    Ok(Some((
        name.clone(),
        MediaDuration::from_secs(every.as_secs_f64()),
    )))
}

/// Values that go into HTTP headers: not empty, no control characters.
fn check_header_values(o: &Opts) -> Result<(), String> {
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
    Ok(())
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

/// `--lease-seconds`, or its default for the target duration.
fn lease_timing(
    value: Option<f64>,
    target: MediaDuration,
) -> Result<crate::lease::LeaseTiming, String> {
    use crate::lease::LeaseTiming;
    let Some(v) = value else {
        return Ok(LeaseTiming::default_for(target.to_std()));
    };
    let lease = seconds("--lease-seconds", v)?;
    if lease < LeaseTiming::MIN {
        return Err(format!(
            "--lease-seconds must be at least {} (a renewal every quarter of it), not {v}",
            LeaseTiming::MIN.as_secs()
        ));
    }
    Ok(LeaseTiming { lease })
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
    pub s3: S3Settings,
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
            s3: o.s3.settings(),
            request_timeout: seconds("--request-timeout", o.request_timeout)?,
            log_level: log_level(o.verbose, o.quiet),
        })
    }
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
        let master = match (o.no_master, o.master) {
            (true, _) => None,
            (false, Some(m)) => {
                let m = m.trim_start_matches('/').to_string();
                if check_key(&m).is_err() || m == index {
                    return Err(format!(
                        "--master {m:?} must be a relative key like master.m3u8, other than --index"
                    ));
                }
                Some(m)
            }
            (false, None) => Some(crate::serve::player::master_beside(
                &index,
                crate::media::rendition::DEFAULT_MASTER,
            ))
            .filter(|m| *m != index),
        };
        o.s3.check()?;
        Ok(ServeConfig {
            location: o.location,
            destination,
            key_prefix,
            listen,
            token,
            index,
            master,
            hls_js: o.hls_js,
            s3: o.s3.settings(),
            log_level: log_level(o.verbose, o.quiet),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::TICKS_PER_SECOND;
    use crate::uploader::defaults;
    use clap::Parser;

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
    fn the_defaults_agree() {
        assert_eq!(
            parse_bytes(defaults::MAX_SPOOL),
            Some(defaults::MAX_SPOOL_BYTES)
        );
        let c = opts(&BASE).unwrap();
        assert_eq!(c.max_spool, defaults::MAX_SPOOL_BYTES);
        assert_eq!(c.request_timeout, defaults::request_timeout());
        assert_eq!(c.flush_timeout, defaults::flush_timeout());
    }

    #[test]
    fn the_original_positional_form_parses() {
        let c = opts(&BASE).unwrap();
        assert_eq!(c.target, MediaDuration(900_000));
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
        assert_eq!(
            opts(&with(1, "2.5")).unwrap().target,
            MediaDuration(225_000)
        );
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
        let mut events = BASE.to_vec();
        events.extend(["--events", ""]);
        assert!(opts(&events).unwrap_err().contains("--events"));
        events[9] = "/tmp/events.jsonl";
        assert_eq!(
            opts(&events).unwrap().events,
            Some(PathBuf::from("/tmp/events.jsonl"))
        );
        assert_eq!(opts(&BASE).unwrap().events, None);
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
            Some(("archive.m3u8".into(), MediaDuration(30 * TICKS_PER_SECOND)))
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
        assert_eq!(
            c.from,
            crate::clip::Bound::Offset(MediaDuration(10 * TICKS_PER_SECOND))
        );
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
        assert_eq!(c.master.as_deref(), Some("master.m3u8"));
        assert_eq!(c.token, None);
        let c = serve(&["file:///srv/hls", "--index", "ev/source/index.m3u8"]).unwrap();
        assert_eq!(c.master.as_deref(), Some("ev/source/master.m3u8"));
        let c = serve(&["file:///srv/hls", "--master", "/ev/m.m3u8"]).unwrap();
        assert_eq!(c.master.as_deref(), Some("ev/m.m3u8"));
        assert_eq!(
            serve(&["file:///srv/hls", "--no-master"]).unwrap().master,
            None
        );
        assert!(serve(&["file:///x", "--master", "index.m3u8"]).is_err());
        assert!(serve(&["file:///x", "--master", "a/../m.m3u8"]).is_err());
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
        assert_eq!(
            opts(&b).unwrap_err(),
            "--window 3 of 2.500 s segments covers 7.500 s, less than three target durations \
             (9.000 s) as RFC 8216 §6.2.2 requires; use --window 4 or more"
        );
        b[9] = "4";
        assert!(opts(&b).is_ok());
    }
}
