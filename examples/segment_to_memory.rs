//! Segments an MPEG-TS file with the library, publishing into the in-memory
//! store, and prints what was stored and the final playlist.
//!
//!     cargo run --example segment_to_memory -- input.ts [segment-seconds]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use live_upload::media::MediaDuration;
use live_upload::segmenter::{self, SegmenterConfig};
use live_upload::uploader::store::MemoryStore;
use live_upload::uploader::{Uploader, UploaderConfig};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: segment_to_memory INPUT.ts [SECONDS]"))?;
    let seconds: f64 = args.next().map_or(Ok(4.0), |s| s.parse())?;
    let target = MediaDuration::from_secs(seconds);
    let spool = tempfile::tempdir()?;

    let (outbox, inbox) = live_upload::channel::bounded(16);
    let cfg = SegmenterConfig {
        input,
        target,
        max_segment: target * 4,
        spool: spool.path().to_path_buf(),
        segment_prefix: "seg".into(),
        first_sequence: 1,
        first_discontinuity: false,
        program: None,
        input_timeout: None,
        opened: None,
        packaging: live_upload::media::Packaging::Ts,
        clock: Box::new(chrono::Utc::now),
    };
    let segmenter =
        std::thread::spawn(move || segmenter::run(cfg, &outbox, Arc::new(AtomicBool::new(false))));

    let store = MemoryStore::new();
    let uploader = Uploader::new(
        Arc::new(store.clone()),
        UploaderConfig::new("example", "index.m3u8", target),
        Arc::new(AtomicBool::new(false)),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(uploader.run(inbox))?;
    segmenter
        .join()
        .map_err(|_| anyhow::anyhow!("segmenter panicked"))?
        .map_err(|(e, _)| e)?;

    let state = store.lock();
    for (key, (body, meta)) in &state.objects {
        println!("{key}: {} bytes, {}", body.len(), meta.content_type);
    }
    println!(
        "{} segments, {} playlist versions\n",
        summary.segments, summary.playlist_versions
    );
    print!(
        "{}",
        String::from_utf8_lossy(&state.objects["example/index.m3u8"].0)
    );
    Ok(())
}
