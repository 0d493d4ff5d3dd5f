//! The `live_upload` command: parse the command line, start the segmenter
//! thread, run the uploader, and turn the outcome into an exit code.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use clap::Parser;

use live_upload::cli::{exit, Config, Destination, Opts};
use live_upload::segmenter::{self, SegmenterConfig, SegmenterError};
use live_upload::uploader::store::{LocalDirStore, Store};
use live_upload::uploader::{Uploader, UploaderConfig};

/// Segments that may wait between the segmenter and the uploader.
const CHANNEL_CAPACITY: usize = 256;

fn main() -> ExitCode {
    let code = match Opts::try_parse() {
        Ok(opts) => run(opts),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            }
        }
    };
    ExitCode::from(code as u8)
}

fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    log::error!("{msg}");
    let _ = std::io::stderr().flush();
    code
}

fn run(opts: Opts) -> i32 {
    let cfg = match Config::from_opts(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("live_upload: error: {e}");
            return exit::USAGE;
        }
    };
    env_logger::Builder::new()
        .filter_level(cfg.log_level)
        .parse_env("RUST_LOG")
        .format_timestamp_millis()
        .init();
    ffmpeg_next::util::log::set_level(match cfg.log_level {
        log::LevelFilter::Trace => ffmpeg_next::util::log::Level::Verbose,
        log::LevelFilter::Debug => ffmpeg_next::util::log::Level::Warning,
        _ => ffmpeg_next::util::log::Level::Error,
    });

    let store: Box<dyn Store> = match &cfg.destination {
        Destination::Local(dir) => match LocalDirStore::open(dir) {
            Ok(s) => Box::new(s),
            Err(e) => {
                return fail(
                    exit::STORAGE,
                    format!("cannot open destination {}: {e}", dir.display()),
                )
            }
        },
        Destination::S3 { bucket } => {
            return fail(
                exit::USAGE,
                format!(
                "S3 destinations are not available yet (bucket {bucket}); use file:///absolute/dir"
            ),
            )
        }
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

    log::info!(
        "segmenting {} into {} s segments, publishing to {}",
        cfg.input,
        live_upload::timeline::format_secs(cfg.target),
        store.describe()
    );
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let seg_cfg = SegmenterConfig {
        input: cfg.input.clone(),
        target: cfg.target,
        max_segment: 4 * cfg.target,
        spool: cfg.spool_dir.clone(),
        segment_prefix: cfg.segment_prefix.clone(),
        first_sequence: 1,
        first_discontinuity: false,
        program: None,
        input_timeout: None,
        clock: Box::new(chrono::Utc::now),
    };
    let seg_stop = stop.clone();
    let segmenter = thread::Builder::new()
        .name("segmenter".into())
        .spawn(move || segmenter::run(seg_cfg, &tx, seg_stop));
    let segmenter = match segmenter {
        Ok(h) => h,
        Err(e) => {
            return fail(
                exit::INTERNAL,
                format!("cannot start the segmenter thread: {e}"),
            )
        }
    };

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
            segment_cache_control: "max-age=86400".into(),
            playlist_cache_control: None,
        },
    );
    let uploaded = uploader.run(rx);
    if uploaded.is_err() {
        // stop reading input: nothing more can be published
        stop.store(true, Ordering::Relaxed);
    }
    let segmented = segmenter.join();

    match (uploaded, segmented) {
        (Err(e), _) => fail(
            exit::STORAGE,
            format!(
                "{e}; segments not yet stored remain in {}",
                cfg.spool_dir.display()
            ),
        ),
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
