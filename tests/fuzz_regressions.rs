//! Inputs that once broke the segmenter under the fuzzer (fuzz/regressions/),
//! and a few hostile shapes made here, replayed through the same in-memory
//! harness: each must end without a panic, with whole, announced segments.

mod common;

use live_upload::segmenter::{segment_in_memory, SegmenterError};

fn replay(name: &str, data: &[u8]) -> Result<usize, SegmenterError> {
    // libav's complaints about the damage go through `log`, which is off here
    live_upload::input::avlog::install(live_upload::LogLevelFilter::Off);
    let spool = tempfile::tempdir().unwrap();
    let result = std::panic::catch_unwind(|| segment_in_memory(data, spool.path()));
    let result = result.unwrap_or_else(|_| panic!("{name} made the segmenter panic"));
    result.map(|segments| segments.len())
}

#[test]
fn saved_fuzzer_findings_do_not_crash() {
    let dir = common::garage::repo().join("fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let _ = replay(&path.display().to_string(), &std::fs::read(&path).unwrap());
        replayed += 1;
    }
    assert!(
        replayed > 0,
        "fuzz/regressions holds the findings and seeds to replay"
    );
}

#[test]
fn hostile_shapes_do_not_crash() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ts");
    common::make_av(&input, 3, 15, &[]);
    let good = std::fs::read(&input).unwrap();
    assert!(replay("the good stream", &good).unwrap() >= 2);
    let mut shapes: Vec<(&str, Vec<u8>)> = vec![
        ("sync bytes only", vec![0x47; 188 * 200]),
        ("a PAT and nothing else", good[..188 * 3].to_vec()),
        ("one byte short", good[..good.len() - 1].to_vec()),
        ("shifted by 5 bytes", good[5..].to_vec()),
    ];
    let mut flipped = good.clone();
    for i in (0..flipped.len()).step_by(997) {
        flipped[i] ^= 0x5a;
    }
    shapes.push(("bytes flipped throughout", flipped));
    let mut cc = good.clone();
    for pkt in cc.chunks_mut(188).skip(10).step_by(3) {
        pkt[3] = (pkt[3] & 0xf0) | ((pkt[3] + 7) & 0x0f);
    }
    shapes.push(("continuity counters broken", cc));
    let mut lengths = good.clone();
    for pkt in lengths.chunks_mut(188).skip(5).step_by(5) {
        if pkt[1] & 0x40 != 0 && pkt[4..7] == [0, 0, 1] {
            pkt[8] = 0xff; // PES_packet_length far too long
            pkt[9] = 0xff;
        }
    }
    shapes.push(("PES lengths too long", lengths));
    for (name, data) in shapes {
        let _ = replay(name, &data);
    }
}
