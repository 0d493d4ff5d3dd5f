//! The command line: clap parses [`Opts`] (and the subcommands' [`ClipOpts`]
//! and [`ServeOpts`]); [`config`] checks them and produces the plain
//! configuration the rest of the program uses. Nothing below this module
//! imports it.

pub mod config;

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::uploader::defaults;
use crate::uploader::S3Settings;
pub use config::{ClipConfig, Config, LadderConfig};

/// `--format`: how segments are packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ts,
    Fmp4,
}

impl From<Format> for crate::media::Packaging {
    fn from(f: Format) -> Self {
        match f {
            Format::Ts => crate::media::Packaging::Ts,
            Format::Fmp4 => crate::media::Packaging::Fmp4,
        }
    }
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
5 spool limit exceeded while the destination was failing, 6 another run holds the
stream's lease or the spool directory, or took the lease over.";

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
    #[arg(long, value_name = "N", default_value_t = defaults::WINDOW)]
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
    /// Segment format: `ts` (the input's own MPEG-TS packets) or `fmp4`
    /// (CMAF fragmented MP4: an init segment and .m4s media segments;
    /// H.264, HEVC and AAC only).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Ts)]
    pub format: Format,
    /// Publish an adaptive-bitrate ladder under a master playlist: a
    /// comma-separated list of rungs, `source` (the input's video as it is)
    /// or HEIGHTp@KBPS (H.264 encoded here with libx264, e.g. 480p@1200k:
    /// width from the input's display aspect ratio, its frame rate, capped
    /// VBR); or `streams`: each video stream of the input is a rendition of
    /// its own, not transcoded. Each rendition's playlist (INDEX_NAME) and
    /// segments go to a folder of its own below the key prefix.
    #[arg(long, value_name = "SPEC")]
    pub ladder: Option<String>,
    /// The master playlist's object name, with --ladder.
    #[arg(long, value_name = "NAME", default_value = crate::media::rendition::DEFAULT_MASTER)]
    pub master: String,
    /// libx264's preset for the encoded rungs of --ladder.
    #[arg(long, value_name = "PRESET", default_value = "veryfast")]
    pub preset: String,
    /// MPEG-TS program number to publish when the input carries several
    /// [default: the first in the PAT].
    #[arg(long, value_name = "NUMBER")]
    pub program: Option<u16>,
    /// End the run (as at end of input) when no input arrives for this many
    /// seconds [default: wait forever].
    #[arg(long, value_name = "SECONDS")]
    pub input_timeout: Option<f64>,
    /// Segment uploads in flight at once.
    #[arg(long, value_name = "N", default_value_t = defaults::CONCURRENCY)]
    pub concurrency: usize,
    /// Most bytes of segments that may wait in the spool directory while the
    /// destination is failing (suffixes K, M, G); beyond it the run stops with
    /// exit code 5.
    #[arg(long, value_name = "BYTES", default_value = defaults::MAX_SPOOL)]
    pub max_spool: String,
    /// Time allowed for each request to the destination, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::REQUEST_TIMEOUT_SECS)]
    pub request_timeout: f64,
    /// Once input has ended, how long to keep trying to store what is left,
    /// in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::FLUSH_TIMEOUT_SECS)]
    pub flush_timeout: f64,
    /// Delete each segment once it has left the playlist and stayed
    /// available for its own duration plus that of the longest playlist that
    /// listed it (RFC 8216 §6.2.2). Off: keep every segment (or let a bucket
    /// lifecycle rule expire them). With --archive nothing is deleted: every
    /// segment stays listed in the archive. fMP4 init segments are never
    /// deleted (listed segments and restarts may need them).
    #[arg(long)]
    pub delete_old: bool,
    /// How long the lease on the stream lasts, in seconds (at least 5): a
    /// run holds it while it publishes and renews it every quarter of it; a
    /// run that finds a live lease of another run exits 6 (or waits, with
    /// --standby); one that cannot renew in time pauses publishing. Default:
    /// the larger of 10 and three target durations.
    #[arg(long, value_name = "SECONDS")]
    pub lease_seconds: Option<f64>,
    /// Hot standby: while another run holds the stream's lease, read the
    /// input (keeping only what arrived in the last two target durations)
    /// and wait; once the lease runs out, take it and continue the playlist
    /// after a discontinuity.
    #[arg(long)]
    pub standby: bool,
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
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::ARCHIVE_EVERY_SECS)]
    pub archive_every: f64,
    /// Cache-Control of segments.
    #[arg(long, value_name = "VALUE", default_value = crate::media::packaging::SEGMENT_CACHE_CONTROL)]
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
    /// Write an event journal to this file (created, or truncated, at
    /// start): one JSON object per line for each segment cut, object
    /// stored or deleted, playlist version published, warning and the end
    /// of the run, for monitoring and scripts (see the README).
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
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
    /// The settings as plain data, for the store.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            path_style: self.path_style,
        }
    }

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
    #[arg(long, value_name = "VALUE", default_value = crate::media::packaging::SEGMENT_CACHE_CONTROL)]
    pub cache_control: String,
    #[command(flatten)]
    pub s3: S3Args,
    /// Time allowed for each request to the destination, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::REQUEST_TIMEOUT_SECS)]
    pub request_timeout: f64,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
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
    /// The master playlist of an ABR ladder (`--ladder`) that the player
    /// page prefers to the index when it exists, relative to the directory
    /// or prefix [default: master.m3u8 beside --index].
    #[arg(long, value_name = "KEY", conflicts_with = "no_master")]
    pub master: Option<String>,
    /// Play --index even where a master playlist exists.
    #[arg(long)]
    pub no_master: bool,
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
