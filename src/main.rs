//! The `live_upload` command: parse the command line, start the segmenter
//! thread, run the uploader on this thread (which owns a small tokio
//! runtime), and turn the outcome into an exit code: [`Failure::code`] is
//! the one place where exit codes are decided.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::Parser;

use live_upload::channel;
use live_upload::cli::{ClipConfig, ClipOpts, Config, Opts, ServeOpts};
use live_upload::input::standby::Standby;
use live_upload::journal;
use live_upload::media::segment::segment_name;
use live_upload::media::Packaging;
use live_upload::resume;
use live_upload::segmenter::{self, SegmenterConfig, SegmenterError, SegmenterSummary};
use live_upload::serve::{ServeConfig, ServeFailure};
use live_upload::spool;
use live_upload::uploader::lease::LeasedStore;
use live_upload::uploader::store::Store;
use live_upload::uploader::{
    open_store, ArchiveConfig, UploadError, UploadSummary, Uploader, UploaderConfig,
};

#[path = "cmd/clip.rs"]
mod clip;
#[path = "cmd/ladder.rs"]
mod ladder;
#[path = "cmd/lease.rs"]
mod lease;

/// Segments that may wait in the channel; the uploader drains it eagerly
/// into its own queue, bounded by --max-spool.
const CHANNEL_CAPACITY: usize = 64;

/// Why a command ended without success. Its exit code (documented in the
/// README and in `--help`) is decided by [`Failure::code`] alone.
#[derive(Debug)]
enum Failure {
    /// The command line is wrong: printed with the command's name, before
    /// logging starts.
    Options(String),
    /// clap printed what was wrong with the command line.
    Parse,
    /// The configuration is wrong in a way found once running (a spool
    /// directory that cannot be made, an address that cannot be listened
    /// on).
    Usage(String),
    /// The input could not be opened or read, or is not MPEG-TS.
    Input(String),
    /// The destination refused or failed to store an object (or a clip's
    /// range is not in the archive: see `clip`).
    Storage(String),
    /// Segments not yet stored outgrew --max-spool while the destination
    /// failed.
    SpoolFull(String),
    /// Another run holds the stream's lease or the spool directory (nothing
    /// was published), or took the lease over, or wrote a segment key of
    /// this run's (nothing more was published).
    Lease(String),
    /// An unexpected internal error.
    Internal(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Internal(_) => 1,
            Failure::Options(_) | Failure::Parse | Failure::Usage(_) => 2,
            Failure::Input(_) => 3,
            Failure::Storage(_) => 4,
            Failure::SpoolFull(_) => 5,
            Failure::Lease(_) => 6,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Parse => "",
            Failure::Options(m)
            | Failure::Usage(m)
            | Failure::Input(m)
            | Failure::Storage(m)
            | Failure::SpoolFull(m)
            | Failure::Lease(m)
            | Failure::Internal(m) => m,
        }
    }
}

/// A command's outcome; `Ok` exits 0.
type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    // a bug must still end in one line and a documented exit code
    std::panic::set_hook(Box::new(|info| {
        eprintln!("live_upload: internal error (please report it): {info}");
    }));
    let args: Vec<OsString> = std::env::args_os().collect();
    // subcommands come first; anything else is the segmenting command, whose
    // first argument is its input (a file named like a subcommand: ./clip)
    let (name, outcome) = match args.get(1).and_then(|a| a.to_str()) {
        Some("clip") => ("live_upload clip", parse_and_run(&args[1..], run_clip)),
        Some("serve") => ("live_upload serve", parse_and_run(&args[1..], run_serve)),
        _ => ("live_upload", parse_and_run(&args, run)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match &failure {
                Failure::Parse => {}
                Failure::Options(msg) => eprintln!("{name}: error: {msg}"),
                other => log::error!("{}", other.message()),
            }
            let _ = std::io::stderr().flush();
            ExitCode::from(failure.code())
        }
    }
}

/// Parses `args` as `T` and runs `body`; a usage error exits 2, `--help`
/// and `--version` exit 0, a panic exits 1.
fn parse_and_run<T: Parser>(args: &[OsString], body: fn(T) -> Outcome) -> Outcome {
    match T::try_parse_from(args) {
        Ok(opts) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(opts)))
            .unwrap_or_else(|_| Err(Failure::Internal("internal error: a panic".into()))),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                Err(Failure::Parse)
            } else {
                Ok(())
            }
        }
    }
}

/// Logging to stderr at `level`; RUST_LOG overrides it.
fn init_logging(level: log::LevelFilter) {
    env_logger::Builder::new()
        .filter_level(level)
        // the SDK's own logs are noisy below warn and may show request details
        .filter_module("aws", log::LevelFilter::Warn)
        .filter_module("hyper", log::LevelFilter::Warn)
        .parse_env("RUST_LOG")
        .format_timestamp_micros()
        .init();
}

/// A current-thread runtime for a subcommand's requests.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Internal(format!("cannot start the async runtime: {e}")))
}

fn run_serve(opts: ServeOpts) -> Outcome {
    let env_token = std::env::var("LIVE_UPLOAD_TOKEN").ok();
    let cfg = ServeConfig::from_opts(opts, env_token).map_err(Failure::Options)?;
    init_logging(cfg.log_level);
    live_upload::serve::run(cfg).map_err(|e| match e.kind {
        // a bad --hls-js or --listen is found only once logging runs
        ServeFailure::Usage => Failure::Usage(e.message),
        ServeFailure::Destination => Failure::Storage(e.message),
        ServeFailure::Internal => Failure::Internal(e.message),
    })
}

/// The main command: segment the input and publish it. With --events, the
/// journal's last line says how it ended.
fn run(opts: Opts) -> Outcome {
    let cfg = Config::from_opts(opts).map_err(Failure::Options)?;
    init_logging(cfg.log_level);
    if let Some(path) = &cfg.events {
        journal::open(path).map_err(|e| {
            Failure::Usage(format!(
                "cannot create the event journal {}: {e}",
                path.display()
            ))
        })?;
    }
    let mut totals = Totals::default();
    let outcome = segment_and_publish(&cfg, &mut totals);
    let failure = outcome.as_ref().err();
    journal::end(
        failure.map_or(0, Failure::code),
        failure.map(Failure::message),
        &end_totals(&totals),
    );
    outcome
}

/// The journal's `end` totals from the summaries of the parts that
/// finished.
fn end_totals(totals: &Totals) -> journal::EndTotals {
    let cut = totals.segmented.as_ref();
    let up = totals.uploaded.as_ref();
    let u = |f: fn(&UploadSummary) -> u64| up.map(f);
    journal::EndTotals {
        segments_cut: cut.map(|s| s.segments),
        bytes_in: cut.map(|s| s.bytes_in),
        segments: u(|s| s.segments),
        bytes: u(|s| s.bytes),
        inits: u(|s| s.inits),
        playlist_versions: u(|s| s.playlist_versions),
        playlist_bytes: u(|s| s.playlist_bytes),
        archive_versions: u(|s| s.archive_versions),
        archive_bytes: u(|s| s.archive_bytes),
        media: up.map(|s| s.media),
        deleted: u(|s| s.deleted),
        attempts: u(|s| s.attempts),
        retries: u(|s| s.retries),
        longest_wait_ms: u(|s| s.longest_wait.as_millis().try_into().unwrap_or(u64::MAX)),
    }
}

/// What the segmenter and the publisher reported, once they finished.
#[derive(Default)]
struct Totals {
    segmented: Option<SegmenterSummary>,
    uploaded: Option<UploadSummary>,
}

fn segment_and_publish(cfg: &Config, totals: &mut Totals) -> Outcome {
    // libav's own messages follow RUST_LOG too (target `libav`)
    live_upload::input::avlog::install(log::max_level());
    let runtime = runtime()?;
    let store = runtime
        .block_on(open_store(
            &cfg.destination,
            &cfg.s3,
            cfg.acl.clone(),
            connect_timeout(cfg.request_timeout),
        ))
        .map_err(Failure::Storage)?;
    std::fs::create_dir_all(&cfg.spool_dir).map_err(|e| {
        Failure::Usage(format!(
            "cannot create spool directory {}: {e}",
            cfg.spool_dir.display()
        ))
    })?;
    // a second run on this spool directory would take this one's leftovers
    let spool_lock = spool::lock(&cfg.spool_dir).map_err(|e| match e {
        spool::LockError::InUse { .. } => Failure::Lease(e.to_string()),
        spool::LockError::Io { .. } => Failure::Usage(e.to_string()),
    })?;
    let stop = stop_on_signals()?;
    if cfg.delete_old && cfg.archive.is_some() {
        log::warn!("--delete-old deletes nothing with --archive: every segment stays listed in the archive");
    }
    log::info!(
        "segmenting {} into {} s segments, publishing to {}",
        cfg.input,
        cfg.target,
        store.describe()
    );
    // a standby reads its input while it waits, so that it starts from the
    // present
    let standby = match cfg.standby {
        true => Some(lease::open_standby(cfg, &stop)?),
        false => None,
    };
    let Some(acquired) = lease::take(cfg, &runtime, store.clone(), &stop, standby.as_ref())? else {
        return Ok(());
    };
    let lease = acquired.lease;
    let keeper = runtime.spawn(lease.clone().keep());
    let leased: Arc<dyn Store> =
        Arc::new(LeasedStore::new(store, lease.clone(), &cfg.segment_prefix));
    let begin = lease::Begin {
        lease: lease.clone(),
        opened: standby.map(Standby::into_input),
        first_number: acquired.first_number,
    };
    let outcome = match &cfg.ladder {
        Some(ladder) => {
            ladder::segment_and_publish(cfg, ladder, totals, &runtime, leased, stop, begin)
        }
        None => publish_one(cfg, totals, &runtime, leased, stop, begin),
    };
    // the final playlist is out (or the run failed): the next run may take over
    runtime.block_on(lease.release());
    keeper.abort();
    drop(spool_lock);
    outcome
}

/// The run without a ladder: one segmenter, one publisher.
fn publish_one(
    cfg: &Config,
    totals: &mut Totals,
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    stop: Arc<AtomicBool>,
    begin: lease::Begin,
) -> Outcome {
    let mut uploader = Uploader::new(store, uploader_config(cfg), stop.clone());
    begin.lease.wake_on_renewal(uploader.retry_wakeup());
    let (first_sequence, first_discontinuity) =
        runtime.block_on(prepare(cfg, &mut uploader, begin.first_number))?;

    let (outbox, inbox) = channel::bounded(CHANNEL_CAPACITY);
    let mut seg_cfg = segmenter_config(cfg, first_sequence, first_discontinuity);
    seg_cfg.opened = begin.opened;
    let seg_stop = stop.clone();
    let segmenter = thread::Builder::new()
        .name("segmenter".into())
        .spawn(move || segmenter::run(seg_cfg, &outbox, seg_stop))
        .map_err(|e| Failure::Internal(format!("cannot start the segmenter thread: {e}")))?;
    let uploaded = runtime.block_on(uploader.run(inbox));
    if uploaded.is_err() {
        // stop reading input: nothing more can be published
        stop.store(true, Ordering::Relaxed);
    }
    let segmented = segmenter
        .join()
        .map_err(|_| Failure::Internal("internal error: the segmenter thread panicked".into()))?;
    totals.uploaded = uploaded.as_ref().ok().cloned();
    totals.segmented = Some(match &segmented {
        Ok(s) | Err((_, s)) => s.clone(),
    });
    outcome(cfg, uploaded, segmented)
}

/// Connections to the destination give up sooner than whole requests.
fn connect_timeout(request_timeout: Duration) -> Duration {
    Duration::from_secs(5).min(request_timeout)
}

/// SIGINT and SIGTERM set the returned flag, which ends the run as at end
/// of input; a second signal while the first is handled exits at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| Failure::Internal(format!("cannot install signal handler: {e}")))?;
    }
    Ok(stop)
}

fn uploader_config(cfg: &Config) -> UploaderConfig {
    UploaderConfig {
        key_prefix: cfg.key_prefix.clone(),
        index_name: cfg.index_name.clone(),
        http_prefix: cfg.http_prefix.clone(),
        target: cfg.target,
        window: cfg.window,
        program_date_time: cfg.program_date_time,
        keep_spool: cfg.keep_spool,
        segment_cache_control: cfg.segment_cache_control.clone(),
        playlist_cache_control: cfg.playlist_cache_control.clone(),
        concurrency: cfg.concurrency,
        max_spool: cfg.max_spool,
        delete_old: cfg.delete_old,
        retry: cfg.retry_policy(),
        flush_timeout: cfg.flush_timeout,
        archive: cfg
            .archive
            .clone()
            .map(|(name, every)| ArchiveConfig { name, every }),
        on_published: None,
    }
}

fn segmenter_config(
    cfg: &Config,
    first_sequence: u64,
    first_discontinuity: bool,
) -> SegmenterConfig {
    SegmenterConfig {
        input: cfg.input.clone(),
        target: cfg.target,
        max_segment: cfg.target * 4,
        spool: cfg.spool_dir.clone(),
        segment_prefix: cfg.segment_prefix.clone(),
        first_sequence,
        first_discontinuity,
        program: cfg.program,
        input_timeout: cfg.input_timeout,
        opened: None,
        packaging: cfg.format,
        clock: Box::new(chrono::Utc::now),
    }
}

/// How the run ended, from the uploader's and the segmenter's results: the
/// uploader's failure comes first (it stopped the input).
fn outcome(
    cfg: &Config,
    uploaded: Result<UploadSummary, UploadError>,
    segmented: Result<SegmenterSummary, (SegmenterError, SegmenterSummary)>,
) -> Outcome {
    if let Err(e) = uploaded {
        let message = format!(
            "{e}; segments not yet stored remain in {}",
            cfg.spool_dir.display()
        );
        return Err(match e {
            UploadError::SpoolFull { .. } => Failure::SpoolFull(message),
            UploadError::Store { source, .. } if source.is_contested() => Failure::Lease(message),
            _ => Failure::Storage(message),
        });
    }
    match segmented {
        Ok(s) => {
            log::info!(
                "input ended after {} bytes; {} segment(s) cut",
                s.bytes_in,
                s.segments
            );
            Ok(())
        }
        Err((e, s)) => {
            if s.segments > 0 {
                log::info!(
                    "{} segment(s) cut before the error were published",
                    s.segments
                );
            }
            let message = e.to_string();
            Err(match e {
                SegmenterError::Spool(_) => Failure::Storage(message),
                SegmenterError::UploaderGone => Failure::Internal(message),
                SegmenterError::Unpackageable(_) | SegmenterError::Ladder(_) => {
                    Failure::Usage(message)
                }
                _ => Failure::Input(message),
            })
        }
    }
}

/// Decides where this run starts from what an earlier run published and
/// left in the spool (see `live_upload::resume`), and sets the uploader up
/// to continue, numbering from `lowest` at least (the lease's reservation).
/// Returns the first segment number and whether it follows a break.
async fn prepare(
    cfg: &Config,
    uploader: &mut Uploader,
    lowest: u64,
) -> Result<(u64, bool), Failure> {
    let plan = plan_resume(cfg, uploader).await?;
    let first = first_unused(cfg, uploader, plan.first_sequence.max(lowest)).await?;
    Ok(apply_resume(uploader, plan, first))
}

/// The first segment number from `from` on whose key does not exist yet.
async fn first_unused(cfg: &Config, uploader: &Uploader, from: u64) -> Result<u64, Failure> {
    let prefix = cfg.segment_prefix.clone();
    let format = cfg.format;
    let name = move |n| segment_name(&prefix, n, format);
    uploader
        .first_unused(&name, from)
        .await
        .map_err(|e| Failure::Storage(e.to_string()))
}

/// What an earlier run published and left in the spool, and how this run
/// continues it (see `live_upload::resume`); unfinished spool files are
/// removed.
async fn plan_resume(cfg: &Config, uploader: &Uploader) -> Result<resume::Plan, Failure> {
    let index = uploader.index_key();
    let published = read_published(cfg, uploader, &index)
        .await
        .map_err(Failure::Storage)?;
    check_packaging(cfg, &index, published.as_ref())?;
    let archive = match uploader.archive_key() {
        Some(key) => {
            let archived = read_published(cfg, uploader, &key)
                .await
                .map_err(Failure::Storage)?;
            check_packaging(cfg, &key, archived.as_ref())?;
            Some(archived)
        }
        None => None,
    };
    let leftovers = spool::scan(&cfg.spool_dir, &cfg.segment_prefix).map_err(|e| {
        Failure::Storage(format!(
            "cannot read spool directory {}: {e}",
            cfg.spool_dir.display()
        ))
    })?;
    if let Some(other) = leftovers
        .complete
        .iter()
        .find(|s| !cfg.fresh && s.packaging != cfg.format)
    {
        return Err(Failure::Usage(format!(
            "the spool directory {} holds {} left by a run of the other --format; \
             publish it with that format first, or use --fresh",
            cfg.spool_dir.display(),
            other.name
        )));
    }
    let plan = resume::plan_archive(
        published,
        archive,
        leftovers,
        cfg.fresh,
        &cfg.http_prefix,
        cfg.program_date_time,
    );
    clean_spool(cfg, &plan);
    Ok(plan)
}

/// Sets the uploader up to continue as `plan` says, this run's segments
/// numbered from `first`; returns whether the first follows a break.
fn apply_resume(uploader: &mut Uploader, mut plan: resume::Plan, first: u64) -> (u64, bool) {
    let index = uploader.index_key();
    if let Some(p) = &plan.restored {
        log::info!(
            "continuing {index} after a discontinuity: media sequence {}, {} segment(s) listed{}",
            p.media_sequence,
            p.entries.len(),
            if p.ended { ", ENDLIST removed" } else { "" }
        );
        journal::resumed(&index, p.media_sequence, p.entries.len(), p.ended);
        uploader.restore(p);
    }
    if !plan.leftovers.is_empty() {
        log::info!(
            "publishing {} complete segment(s) an earlier run left in the spool first",
            plan.leftovers.len()
        );
    }
    if let Some(a) = plan.archive.take() {
        log_archive_plan(&uploader.archive_key().unwrap_or_default(), &a);
        uploader.restore_archive(a);
    }
    let first_discontinuity = plan.first_discontinuity || first != plan.first_sequence;
    // an init before the leftovers that need it (stored again: same bytes)
    for init in plan.inits {
        uploader.queue_init(init);
    }
    for seg in plan.leftovers {
        uploader.queue(seg);
    }
    (first, first_discontinuity)
}

/// A playlist continues in the format it was published in: fMP4 entries
/// carry EXT-X-MAP, and a TS segment after them could not take it back.
fn check_packaging(
    cfg: &Config,
    key: &str,
    published: Option<&resume::Published>,
) -> Result<(), Failure> {
    let Some(last) = published.and_then(|p| p.entries.last()) else {
        return Ok(());
    };
    let theirs = if last.map.is_some() {
        Packaging::Fmp4
    } else {
        Packaging::Ts
    };
    if theirs == cfg.format {
        return Ok(());
    }
    let name = |p| match p {
        Packaging::Ts => "ts",
        Packaging::Fmp4 => "fmp4",
    };
    Err(Failure::Usage(format!(
        "{key} lists --format {} segments; continuing it with --format {} would mix them \
         (use --fresh to replace it)",
        name(theirs),
        name(cfg.format)
    )))
}

/// The playlist at `key` as an earlier run published it; `None` when there
/// is none or with --fresh (which replaces it).
async fn read_published(
    cfg: &Config,
    uploader: &Uploader,
    key: &str,
) -> Result<Option<resume::Published>, String> {
    let Some(text) = uploader.fetch(key).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if cfg.fresh {
        log::warn!("--fresh: replacing {key}");
        return Ok(None);
    }
    resume::parse_published(&text, &cfg.http_prefix, &cfg.segment_prefix)
        .map(Some)
        .map_err(|e| format!("cannot continue {key}: {e} (use --fresh to replace it)"))
}

/// Removes what the plan found unfinished, and (without --keep-spool) the
/// stored segments an earlier run left.
fn clean_spool(cfg: &Config, plan: &resume::Plan) {
    if !plan.incomplete.is_empty() {
        log::warn!(
            "removing {} unfinished segment file(s) an earlier run left in {} (or fMP4 segments \
             whose init segment is gone)",
            plan.incomplete.len(),
            cfg.spool_dir.display()
        );
    }
    let stale: &[std::path::PathBuf] = if cfg.keep_spool { &[] } else { &plan.stale };
    for path in stale.iter().chain(&plan.incomplete) {
        if let Err(e) = spool::remove(path) {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

fn log_archive_plan(key: &str, a: &resume::ArchivePlan) {
    if a.restored.is_some() || !a.backfill.is_empty() || a.missing > 0 {
        journal::resumed_archive(
            key,
            a.restored.as_ref().map_or(0, |p| p.entries.len()),
            a.restored.as_ref().is_some_and(|p| p.ended),
            a.backfill.len(),
            a.missing,
        );
    }
    if let Some(p) = &a.restored {
        log::info!(
            "continuing {key} after a discontinuity: {} segment(s) listed{}",
            p.entries.len(),
            if p.ended {
                ", VOD and ENDLIST removed"
            } else {
                ""
            }
        );
    }
    if !a.backfill.is_empty() {
        log::info!(
            "appending {} stored segment(s) its last version did not list yet",
            a.backfill.len()
        );
    }
    if a.missing > 0 {
        log::warn!(
            "{} segment(s) published before the restart are listed neither in the rolling \
             playlist nor in the spool: {key} skips them after a discontinuity",
            a.missing
        );
    }
}

/// `live_upload clip`: reads the archive, writes a VOD playlist for the
/// range beside it, prints its key (and URL).
fn run_clip(opts: ClipOpts) -> Outcome {
    let cfg = ClipConfig::from_opts(opts).map_err(Failure::Options)?;
    init_logging(cfg.log_level);
    let (key, url) = runtime()?.block_on(clip::clip(&cfg))?;
    println!("{key}");
    if let Some(url) = url {
        println!("{url}");
    }
    Ok(())
}
