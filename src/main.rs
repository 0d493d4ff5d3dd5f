//! The `live_upload` command: parse the command line, start the segmenter
//! thread, run the uploader on this thread (which owns a small tokio
//! runtime), and turn the outcome into an exit code.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::Parser;

use live_upload::channel;
use live_upload::cli::{exit, ClipConfig, ClipOpts, Config, Opts, ServeConfig, ServeOpts};
use live_upload::resume;
use live_upload::segmenter::{self, spool, SegmenterConfig, SegmenterError};
use live_upload::uploader::retry::RetryPolicy;
use live_upload::uploader::{open_store, ArchiveConfig, UploadError, Uploader, UploaderConfig};

/// Segments that may wait in the channel; the uploader drains it eagerly
/// into its own queue, bounded by --max-spool.
const CHANNEL_CAPACITY: usize = 64;

fn main() -> ExitCode {
    // a bug must still end in one line and a documented exit code
    std::panic::set_hook(Box::new(|info| {
        eprintln!("live_upload: internal error (please report it): {info}");
    }));
    let args: Vec<OsString> = std::env::args_os().collect();
    // subcommands come first; anything else is the segmenting command, whose
    // first argument is its input (a file named like a subcommand: ./clip)
    let code = match args.get(1).and_then(|a| a.to_str()) {
        Some("clip") => parse_and_run::<ClipOpts>(&args[1..], run_clip),
        Some("serve") => parse_and_run::<ServeOpts>(&args[1..], run_serve),
        _ => parse_and_run::<Opts>(&args, run),
    };
    ExitCode::from(code as u8)
}

/// Parses `args` as `T` and runs `body`; a usage error exits 2, `--help`
/// and `--version` exit 0, a panic exits 1.
fn parse_and_run<T: Parser>(args: &[OsString], body: fn(T) -> i32) -> i32 {
    match T::try_parse_from(args) {
        Ok(opts) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(opts)))
            .unwrap_or(exit::INTERNAL),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
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
fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            fail(
                exit::INTERNAL,
                format!("cannot start the async runtime: {e}"),
            )
        })
}

fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    log::error!("{msg}");
    let _ = std::io::stderr().flush();
    code
}

fn run_serve(opts: ServeOpts) -> i32 {
    let env_token = std::env::var("LIVE_UPLOAD_TOKEN").ok();
    let cfg = match ServeConfig::from_opts(opts, env_token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("live_upload serve: error: {e}");
            return exit::USAGE;
        }
    };
    init_logging(cfg.log_level);
    match live_upload::serve::run(cfg) {
        Ok(()) => exit::OK,
        Err(e) => fail(e.code, e.message),
    }
}

fn run(opts: Opts) -> i32 {
    let cfg = match Config::from_opts(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("live_upload: error: {e}");
            return exit::USAGE;
        }
    };
    init_logging(cfg.log_level);
    // libav's own messages follow RUST_LOG too (target `libav`)
    segmenter::avlog::install(log::max_level());

    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let connect_timeout = Duration::from_secs(5).min(cfg.request_timeout);
    let opened = runtime.block_on(open_store(
        &cfg.destination,
        &cfg.s3,
        cfg.acl.clone(),
        connect_timeout,
    ));
    let store = match opened {
        Ok(s) => s,
        Err(e) => return fail(exit::STORAGE, e),
    };
    if let Err(e) = std::fs::create_dir_all(&cfg.spool_dir) {
        return fail(
            exit::USAGE,
            format!(
                "cannot create spool directory {}: {e}",
                cfg.spool_dir.display()
            ),
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // a second signal while the first is handled exits at once
        let registered = signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()));
        if let Err(e) = registered {
            return fail(
                exit::INTERNAL,
                format!("cannot install signal handler: {e}"),
            );
        }
    }

    if cfg.delete_old && cfg.archive.is_some() {
        log::warn!("--delete-old deletes nothing with --archive: every segment stays listed in the archive");
    }
    log::info!(
        "segmenting {} into {} s segments, publishing to {}",
        cfg.input,
        live_upload::timeline::format_secs(cfg.target),
        store.describe()
    );
    let uploader = Uploader::new(
        store,
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
            retry: RetryPolicy {
                attempt_timeout: cfg.request_timeout,
                ..RetryPolicy::default()
            },
            flush_timeout: cfg.flush_timeout,
            archive: cfg
                .archive
                .clone()
                .map(|(name, every)| ArchiveConfig { name, every }),
        },
        stop.clone(),
    );
    let mut uploader = uploader;
    let (first_sequence, first_discontinuity) = match runtime.block_on(prepare(&cfg, &mut uploader))
    {
        Ok(start) => start,
        Err(e) => return fail(exit::STORAGE, e),
    };

    let (outbox, inbox) = channel::bounded(CHANNEL_CAPACITY);
    let seg_cfg = SegmenterConfig {
        input: cfg.input.clone(),
        target: cfg.target,
        max_segment: 4 * cfg.target,
        spool: cfg.spool_dir.clone(),
        segment_prefix: cfg.segment_prefix.clone(),
        first_sequence,
        first_discontinuity,
        program: cfg.program,
        input_timeout: cfg.input_timeout,
        clock: Box::new(chrono::Utc::now),
    };
    let seg_stop = stop.clone();
    let segmenter = thread::Builder::new()
        .name("segmenter".into())
        .spawn(move || segmenter::run(seg_cfg, &outbox, seg_stop));
    let segmenter = match segmenter {
        Ok(h) => h,
        Err(e) => {
            return fail(
                exit::INTERNAL,
                format!("cannot start the segmenter thread: {e}"),
            )
        }
    };

    let uploaded = runtime.block_on(uploader.run(inbox));
    if uploaded.is_err() {
        // stop reading input: nothing more can be published
        stop.store(true, Ordering::Relaxed);
    }
    let segmented = segmenter.join();

    match (uploaded, segmented) {
        (Err(e), _) => {
            let code = match e {
                UploadError::SpoolFull { .. } => exit::SPOOL_FULL,
                _ => exit::STORAGE,
            };
            fail(
                code,
                format!(
                    "{e}; segments not yet stored remain in {}",
                    cfg.spool_dir.display()
                ),
            )
        }
        (Ok(_), Err(_)) => fail(
            exit::INTERNAL,
            "internal error: the segmenter thread panicked",
        ),
        (Ok(_), Ok(Ok(s))) => {
            log::info!(
                "input ended after {} bytes; {} segment(s) cut",
                s.bytes_in,
                s.segments
            );
            exit::OK
        }
        (Ok(_), Ok(Err((e, s)))) => {
            let code = match e {
                SegmenterError::Spool(_) => exit::STORAGE,
                SegmenterError::UploaderGone => exit::INTERNAL,
                _ => exit::INPUT,
            };
            if s.segments > 0 {
                log::info!(
                    "{} segment(s) cut before the error were published",
                    s.segments
                );
            }
            fail(code, e)
        }
    }
}

/// Decides where this run starts from what an earlier run published and
/// left in the spool (see `live_upload::resume`), and sets the uploader up
/// to continue. Returns the first segment number and whether it follows a
/// break.
async fn prepare(cfg: &Config, uploader: &mut Uploader) -> Result<(u64, bool), String> {
    let key = uploader.index_key();
    let existing = uploader
        .existing_playlist()
        .await
        .map_err(|e| e.to_string())?;
    let published = match existing {
        Some(text) if !cfg.fresh => Some(
            resume::parse_published(&text, &cfg.http_prefix, &cfg.segment_prefix)
                .map_err(|e| format!("cannot continue {key}: {e} (use --fresh to replace it)"))?,
        ),
        Some(_) => {
            log::warn!("--fresh: replacing {key}");
            None
        }
        None => None,
    };
    let leftovers = spool::scan(&cfg.spool_dir, &cfg.segment_prefix).map_err(|e| {
        format!(
            "cannot read spool directory {}: {e}",
            cfg.spool_dir.display()
        )
    })?;
    let archive = match uploader.archive_key() {
        Some(key) if !cfg.fresh => {
            let text = uploader.fetch(&key).await.map_err(|e| e.to_string())?;
            let parsed = text
                .map(|t| resume::parse_published(&t, &cfg.http_prefix, &cfg.segment_prefix))
                .transpose()
                .map_err(|e| format!("cannot continue {key}: {e} (use --fresh to replace it)"))?;
            Some(parsed)
        }
        Some(key) => {
            log::warn!("--fresh: replacing {key}");
            Some(None)
        }
        None => None,
    };
    let mut plan = resume::plan_archive(
        published,
        archive,
        leftovers,
        cfg.fresh,
        &cfg.http_prefix,
        cfg.program_date_time,
    );
    if !plan.incomplete.is_empty() {
        log::warn!(
            "removing {} unfinished segment file(s) an earlier run left in {}",
            plan.incomplete.len(),
            cfg.spool_dir.display()
        );
    }
    let keep = if cfg.keep_spool {
        Vec::new()
    } else {
        plan.stale
    };
    for path in keep.iter().chain(&plan.incomplete) {
        if let Err(e) = spool::remove(path) {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
    let prefix = cfg.segment_prefix.clone();
    let name = move |n| segmenter::segment_name(&prefix, n);
    let first = uploader
        .first_unused(&name, plan.first_sequence)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(p) = &plan.restored {
        log::info!(
            "continuing {key} after a discontinuity: media sequence {}, {} segment(s) listed{}",
            p.media_sequence,
            p.entries.len(),
            if p.ended { ", ENDLIST removed" } else { "" }
        );
        uploader.restore(p);
    }
    if !plan.leftovers.is_empty() {
        log::info!(
            "publishing {} complete segment(s) an earlier run left in the spool first",
            plan.leftovers.len()
        );
    }
    if let Some(a) = plan.archive.take() {
        let key = uploader.archive_key().unwrap_or_default();
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
        uploader.restore_archive(a);
    }
    for seg in plan.leftovers {
        uploader.queue(seg);
    }
    let first_discontinuity = plan.first_discontinuity || first != plan.first_sequence;
    Ok((first, first_discontinuity))
}

/// `live_upload clip`: reads the archive, writes a VOD playlist for the
/// range beside it, prints its key (and URL).
fn run_clip(opts: ClipOpts) -> i32 {
    let cfg = match ClipConfig::from_opts(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("live_upload clip: error: {e}");
            return exit::USAGE;
        }
    };
    init_logging(cfg.log_level);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(clip(&cfg)) {
        Ok((key, url)) => {
            println!("{key}");
            if let Some(url) = url {
                println!("{url}");
            }
            exit::OK
        }
        Err((code, msg)) => fail(code, msg),
    }
}

async fn clip(cfg: &ClipConfig) -> Result<(String, Option<String>), (i32, String)> {
    use live_upload::uploader::store::{Body, ObjectMeta};
    use live_upload::uploader::{object_key, PLAYLIST_CONTENT_TYPE};
    let storage = |e: String| (exit::STORAGE, e);
    if let live_upload::cli::Destination::Local(dir) = &cfg.destination {
        if !dir.is_dir() {
            return Err(storage(format!("{} is not a directory", dir.display())));
        }
    }
    let connect_timeout = Duration::from_secs(5).min(cfg.request_timeout);
    let store = open_store(&cfg.destination, &cfg.s3, None, connect_timeout)
        .await
        .map_err(storage)?;
    let retrier = live_upload::uploader::retry::Retrier::new(RetryPolicy {
        attempt_timeout: cfg.request_timeout,
        ..RetryPolicy::default()
    });
    let key = object_key(&cfg.key_prefix, &cfg.archive);
    let text = retrier
        .run(&format!("GET {key}"), || store.get(key.clone()))
        .await
        .map_err(|e| storage(format!("{}: cannot read {key}: {e}", store.describe())))?
        .ok_or_else(|| storage(format!("{}: there is no archive {key}", store.describe())))?;
    let archive =
        resume::parse_published(&text, "", "").map_err(|e| storage(format!("{key}: {e}")))?;
    let chosen = live_upload::clip::select(&archive, cfg.from, cfg.to)
        .map_err(|e| (exit::USAGE, format!("{key}: {e}")))?;
    let name = cfg
        .name
        .clone()
        .unwrap_or_else(|| live_upload::clip::default_name(&chosen));
    let body = live_upload::clip::render(&archive, &chosen).into_bytes();
    let ticks: i64 = chosen.iter().map(|e| e.duration).sum();
    let clip_key = object_key(&cfg.key_prefix, &name);
    let meta = ObjectMeta {
        content_type: PLAYLIST_CONTENT_TYPE.to_string(),
        cache_control: cfg.cache_control.clone(),
    };
    let body = Body::Bytes(Arc::new(body));
    retrier
        .run(&format!("PUT {clip_key}"), || {
            store.put(clip_key.clone(), body.clone(), meta.clone())
        })
        .await
        .map_err(|e| {
            storage(format!(
                "{}: cannot store {clip_key}: {e}",
                store.describe()
            ))
        })?;
    log::info!(
        "clip of {} segment(s), {} s, written to {clip_key}",
        chosen.len(),
        live_upload::timeline::format_secs(ticks)
    );
    let url = cfg.http_prefix.as_ref().map(|p| format!("{p}{name}"));
    Ok((clip_key, url))
}
