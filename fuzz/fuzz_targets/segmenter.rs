//! Arbitrary bytes through the segmenter (libav demuxing, cut decisions and
//! the TS byte router), in memory. Any panic or crash is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    live_upload::input::avlog::install(log_off());
    let spool = tempfile::tempdir().expect("a temporary directory");
    let _ = live_upload::segmenter::segment_in_memory(data, spool.path());
});

fn log_off() -> live_upload::LogLevelFilter {
    live_upload::LogLevelFilter::Off
}
