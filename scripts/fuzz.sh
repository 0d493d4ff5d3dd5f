#!/usr/bin/env bash
# Fuzzes the segmenter (libav demuxing, cut decisions, the TS byte router) with
# arbitrary bytes, in memory, for SECONDS (default 600):
#   scripts/fuzz.sh [SECONDS]
# A crash leaves its input in fuzz/artifacts/segmenter/; fix it and copy the input
# to fuzz/regressions/, which the test suite replays.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
secs=${1:-600}
scripts/setup.sh
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

corpus=fuzz/corpus/segmenter
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ]; then
  echo "fuzz: making a seed corpus with ffmpeg"
  q=(-hide_banner -loglevel error -y)
  ffmpeg "${q[@]}" -f lavfi -i testsrc2=size=64x48:rate=10 -f lavfi -i sine -t 3 \
    -c:v libx264 -preset ultrafast -g 10 -c:a aac -b:a 32k -f mpegts "$corpus/av.ts"
  ffmpeg "${q[@]}" -f lavfi -i sine -t 3 -c:a aac -b:a 32k -f mpegts "$corpus/audio.ts"
  ffmpeg "${q[@]}" -f lavfi -i testsrc2=size=64x48:rate=10 -t 3 -c:v libx264 -preset ultrafast \
    -g 10 -output_ts_offset 95441 -f mpegts "$corpus/wrap.ts"
  ffmpeg "${q[@]}" -f lavfi -i testsrc2=size=64x48:rate=10 -f lavfi -i smptebars=size=64x48:rate=10 \
    -t 2 -map 0 -map 1 -c:v libx264 -preset ultrafast -g 10 \
    -program program_num=1:st=0 -program program_num=2:st=1 -f mpegts "$corpus/two-programs.ts"
  cat "$corpus/av.ts" "$corpus/audio.ts" > "$corpus/joined.ts"
fi

# cargo-fuzz passes sanitizer flags that need a nightly compiler; RUSTC_BOOTSTRAP
# lets the stable toolchain accept them
RUSTC_BOOTSTRAP=1 cargo fuzz run segmenter "$corpus" -- \
  -max_total_time="$secs" -max_len=300000 -rss_limit_mb=4096 -timeout=30 \
  -print_final_stats=1
