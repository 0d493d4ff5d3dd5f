#!/usr/bin/env bash
# What an archive costs in uploads (not part of CI): a 4-hour event at 2-second
# segments, fed at RATE times real speed (default 100, slow enough that no
# version is merged into the next while one is being written, as at real speed)
# into a local destination with --archive, once per --archive-every value; the bytes of every playlist version published are
# counted by live_upload itself (its closing summary line). Writes the table
# into BENCHMARKS.md between the archive-bench markers
# (scripts/bench_archive_report.py).
#   scripts/bench_archive.sh [HOURS [RATE]]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
hours=${1:-4}
rate=${2:-100}
scripts/setup.sh
cargo build --release --locked --quiet

work=${BENCH_ARCHIVE_DIR:-/tmp/live_upload-bench-archive}
rm -rf "$work"
mkdir -p "$work"
src="$work/loop.ts"
# one minute of small video with a keyframe every second, looped; the media's
# bitrate does not change what playlists cost
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 -c:v libx264 -preset ultrafast \
  -g 30 -pix_fmt yuv420p -c:a aac -b:a 64k -f mpegts "$src"

seconds=$((hours * 3600))
results="$work/results.tsv"
: > "$results"
for every in 2 10 60 300; do
  rm -rf "$work/www" "$work/spool"
  start=$(date +%s%N)
  ffmpeg -hide_banner -loglevel error -readrate "$rate" -stream_loop -1 -i "$src" -c copy \
    -t "$seconds" -f mpegts - |
    target/release/live_upload - 2 "$work/spool" live index.m3u8 https://cdn.example/live/ \
      "file://$work/www" live --archive archive.m3u8 --archive-every "$every" 2>"$work/log-$every.txt"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  line=$(grep "published .* archive version" "$work/log-$every.txt")
  final=$(stat -c %s "$work/www/live/archive.m3u8")
  echo "bench_archive: --archive-every $every: $line"
  printf '%s\t%s\t%s\t%s\n' "$every" "$ms" "$final" "$line" >> "$results"
done

python3 scripts/bench_archive_report.py "$results" "$hours" "$rate"
