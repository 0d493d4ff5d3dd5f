#!/usr/bin/env bash
# Benchmarks live_upload against ffmpeg's own HLS muxer on this machine and
# writes the figures into BENCHMARKS.md (between the bench markers):
#   1. segmenting cost: CPU (user+sys) and wall time for 10 min of 720p30 4 Mbps
#      and of 1080p60 12 Mbps, live_upload vs `ffmpeg -c copy -f hls`, median of
#      RUNS runs each, alternating;
#   1b. the same with fMP4 segments (BENCH_ONLY=fmp4): `live_upload --format fmp4`
#      vs `ffmpeg -c copy -bsf:a aac_adtstoasc -f hls -hls_segment_type fmp4`, and
#      what ffmpeg says on this input without the bitstream filter;
#   2. publish latency to Garage (segment cut -> playlist listing it readable)
#      beside a baseline of bare PUTs through the same client;
#   3. memory over an hour of media at full speed (scripts/longrun.sh 1);
#   4. CPU of live_upload while a 720p30 stream arrives at real speed;
#   and callgrind profiles of the segmenting path, TS and fMP4.
# Usage: scripts/bench.sh   (RUNS=5 MINUTES=10 LIVE_SECONDS=120 by default)
# BENCH_ONLY=latency (or a comma list of segmenting, fmp4, latency, realtime,
# memory, profile) runs only those parts; the report then keeps the other parts' raw
# figures from the last run (or, for a part never run in this checkout, its text
# already in BENCHMARKS.md) and dates each part.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${RUNS:-5}
minutes=${MINUTES:-10}
live=${LIVE_SECONDS:-120}
scripts/setup.sh --test
cargo build --release --locked --quiet --bin live_upload --example put_baseline
bin=target/release/live_upload
out=target/bench
mkdir -p "$out"
q=(-hide_banner -loglevel error -y)
want() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }

# --- inputs: one encoded minute, looped with continuous timestamps ---------
make_input() { # name size rate bitrate gop
  local name=$1 size=$2 rate=$3 rate_bits=$4 gop=$5
  [ -s "$out/$name-$minutes.ts" ] && return
  if [ ! -s "$out/$name-1min.ts" ]; then
  echo "bench: encoding $name"
  ffmpeg "${q[@]}" -f lavfi -i "testsrc2=size=$size:rate=$rate" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
    -c:v libx264 -preset veryfast -b:v "$rate_bits" -maxrate "$rate_bits" -bufsize "$rate_bits" \
    -g "$gop" -keyint_min "$gop" -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k \
    -f mpegts "$out/$name-1min.ts"
  fi
  ffmpeg "${q[@]}" -stream_loop $((minutes - 1)) -i "$out/$name-1min.ts" -c copy \
    -f mpegts "$out/$name-$minutes.ts"
}
make_input in720 1280x720 30 4M 60
make_input in1080 1920x1080 60 12M 120
make_input live720 1280x720 30 4M 30   # 1 s keyframes, for the latency run

# --- 1. segmenting cost ----------------------------------------------------
# outputs go to tmpfs, so that the kernel's writeback of gigabytes to disk
# does not land on whichever run happens to trigger it
tmp=/tmp
[ -w /dev/shm ] && tmp=/dev/shm
work=$(mktemp -d "$tmp/live_upload-bench.XXXXXX")
poller=""
trap 'rm -rf "$work"; [ -z "$poller" ] || kill "$poller" 2>/dev/null
      scripts/garage.sh stop "$out/garage" >/dev/null 2>&1 || true' EXIT
timed() { # label input command...   (appends to $csv)
  local label=$1 input=$2
  shift 2
  rm -rf "$work/run" && mkdir -p "$work/run/spool" "$work/run/ff"
  # user, system and wall seconds, minor page faults, peak RSS (kB)
  /usr/bin/time -f "%U,%S,%e,%R,%M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
    cat "$work/err" >&2; exit 1; }
  echo "$input,$label,$(cat "$work/time")" >> "$csv"
}
csv=$out/segmenting.csv
want segmenting && : > "$out/segmenting.csv"
want segmenting && for input in in720 in1080; do
  # one discarded pair first: the first run after an input is written pays
  # for warming caches, and the alternation would always give it to live_upload
  for i in $(seq 0 "$runs"); do
    lu=(timed live_upload "$input" "$bin" "$out/$input-$minutes.ts" 6 "$work/run/spool" live index.m3u8 ""
        "file://$work/run/www" bench -q)
    ff=(timed ffmpeg "$input" ffmpeg -v error -i "$out/$input-$minutes.ts" -c copy -f hls -hls_time 6
        -hls_list_size 5 "$work/run/ff/index.m3u8")
    if [ $((i % 2)) -eq 1 ]; then "${lu[@]}"; "${ff[@]}"; else "${ff[@]}"; "${lu[@]}"; fi
    if [ "$i" -eq 0 ]; then
      head -n -2 "$out/segmenting.csv" > "$out/segmenting.tmp" && mv "$out/segmenting.tmp" "$out/segmenting.csv"
    fi
  done
done

# --- 1b. segmenting cost with fMP4 segments ---------------------------------
# the same inputs and alternation; ffmpeg's mp4 muxer needs the ADTS headers of
# the transport stream's AAC taken off (aac_adtstoasc), which live_upload's
# packager does itself. After every run, what it left is counted: the media
# segments and init segments in the output directory (and, for live_upload,
# init segments left in the spool), into fmp4-files.csv
left() { # input label dir
  local n bytes
  n=$(find "$3" -name '*.m4s' | wc -l)
  bytes=$(find "$3" -name '*.m4s' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  if [ "$n" -eq 0 ]; then echo "bench: $2 left no .m4s segment in $3" >&2; exit 1; fi
  echo "$1,$2,$n,$bytes,$(find "$3" -name '*.mp4' | wc -l),$(find "$work/run/spool" -name '*.mp4' | wc -l)" \
    >> "$out/fmp4-files.csv"
}
if want fmp4; then
  csv=$out/fmp4.csv
  : > "$csv"
  : > "$out/fmp4-files.csv"
  for input in in720 in1080; do
    for i in $(seq 0 "$runs"); do
      lu=("$bin" "$out/$input-$minutes.ts" 6 "$work/run/spool" live index.m3u8 "" "file://$work/run/www" bench -q
          --format fmp4)
      ff=(ffmpeg -v error -i "$out/$input-$minutes.ts" -c copy -bsf:a aac_adtstoasc -f hls
          -hls_segment_type fmp4 -hls_time 6 -hls_list_size 5 "$work/run/ff/index.m3u8")
      run_lu() {
        timed live_upload "$input" "${lu[@]}"
        left "$input" live_upload "$work/run/www"
      }
      run_ff() {
        timed ffmpeg "$input" "${ff[@]}"
        left "$input" ffmpeg "$work/run/ff"
      }
      if [ $((i % 2)) -eq 1 ]; then run_lu; run_ff; else run_ff; run_lu; fi
      if [ "$i" -eq 0 ]; then # the discarded pair, as above
        for f in "$csv" "$out/fmp4-files.csv"; do head -n -2 "$f" > "$f.tmp" && mv "$f.tmp" "$f"; done
      fi
    done
  done
  # the commands as run, with the machine's paths shortened
  for c in "$(printf '%q ' "${lu[@]}")" "$(printf '%q ' "${ff[@]}")"; do
    echo "${c% }" | sed -e "s|$work/run/|OUT/|g" -e "s|$out/$input-$minutes.ts|INPUT.ts|g" -e "s|^$bin|live_upload|"
  done > "$out/fmp4-commands.txt"
  # without the bitstream filter: ffmpeg's mp4 muxer refuses the ADTS audio
  rm -rf "$work/nobsf" && mkdir -p "$work/nobsf"
  nobsf=(ffmpeg -hide_banner -v error -i "$out/in720-1min.ts" -c copy -f hls -hls_segment_type fmp4 -hls_time 6
         -hls_list_size 5 "$work/nobsf/index.m3u8")
  status=0
  "${nobsf[@]}" > /dev/null 2> "$work/nobsf.err" || status=$?
  { # the version, the command, its exit status, the files it left, then its messages
    ffmpeg -version | sed -n '1s/ Copyright.*//p'
    echo "${nobsf[*]}" | sed -e "s|$work/nobsf/|OUT/|g" -e "s|$out/||g"
    echo "$status"
    (cd "$work/nobsf" && ls | tr '\n' ' ' | sed 's/ $//'; echo)
    cat "$work/nobsf.err"
  } > "$out/fmp4-nobsf.txt"
fi

# --- 2. publish latency against Garage --------------------------------------
if want latency; then
scripts/garage.sh stop "$out/garage" >/dev/null 2>&1 || true
rm -rf "$out/garage"
WATCH_PID=$$ scripts/garage.sh start "$out/garage" > /dev/null
set -a; . "$out/garage/env"; set +a
# a fresh Garage is slow for its first requests (tens of ms): warm it up, and
# discard that, before either side is measured
BASELINE_PREFIX=warmup target/release/examples/put_baseline live "$GARAGE_S3" \
  "$out/live720-1min.ts" 500000 30 "$GARAGE_WEB" "$GARAGE_WEB_HOST" 100 > /dev/null
prefix="latency-$(date +%s)"
python3 scripts/bench_poll.py "$GARAGE_WEB" "$GARAGE_WEB_HOST" "$prefix/index.m3u8" > "$out/first_seen.csv" &
poller=$!
# pre-encoded input replayed at real speed, so no encoder competes for the cores
ffmpeg "${q[@]}" -re -stream_loop -1 -i "$out/live720-1min.ts" -t "$live" -c copy -f mpegts - |
  /usr/bin/time -f "%U,%S,%e" -o "$out/latency-cpu.txt" \
    "$bin" - 1 "$work/lspool" live index.m3u8 "" live "$prefix" \
    --endpoint-url "$GARAGE_S3" --path-style -v 2> "$out/latency.log"
wait "$poller"
poller=""
size=$(awk '/ready:/ { for (i = 1; i <= NF; i++) if ($i == "bytes") print $(i-1) }' "$out/latency.log" |
  sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
# the baseline is watched by the same poller as the measured run: both
# latencies end when the poller first sees the new name in the playlist
python3 scripts/bench_poll.py "$GARAGE_WEB" "$GARAGE_WEB_HOST" baseline/index.m3u8 \
  > "$out/baseline_seen.csv" &
poller=$!
# the baseline's objects are pieces of the same input: real media, which Garage
# compresses and stores like a segment (made-up bytes compress to nothing, and
# the same bytes every round would be deduplicated)
target/release/examples/put_baseline live "$GARAGE_S3" "$out/live720-1min.ts" "$size" 100 "$GARAGE_WEB" \
  "$GARAGE_WEB_HOST" 1000 > "$out/baseline.txt"
kill "$poller"
poller=""
fi

# --- 4. real-time CPU into a local directory --------------------------------
want realtime && ffmpeg "${q[@]}" -re -stream_loop -1 -i "$out/in720-1min.ts" -t "$live" -c copy -f mpegts - |
  /usr/bin/time -f "%U,%S,%e" -o "$out/realtime-cpu.txt" \
    "$bin" - 6 "$work/rspool" live index.m3u8 "" "file://$work/rwww" live -q

# --- 3. memory over an hour of media ----------------------------------------
want memory && LONGRUN_DIR="$work/longrun" scripts/longrun.sh 1 > "$out/memory.md"

# --- profile of the segmenting path (instruction counts, 1 minute of 720p) ---
if want profile; then
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.live_upload" \
  "$bin" "$out/in720-1min.ts" 6 "$work/pspool" live index.m3u8 "" "file://$work/pwww" p -q \
  2> "$out/valgrind.log"
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.ffmpeg" \
  ffmpeg -v error -i "$out/in720-1min.ts" -c copy -f hls -hls_time 6 -hls_list_size 5 \
  "$work/pff.m3u8" 2>> "$out/valgrind.log"
callgrind_annotate --inclusive=no "$out/callgrind.live_upload" > "$out/profile.txt" 2>/dev/null
# the same with fMP4 segments, beside ffmpeg's fMP4 HLS muxer
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind-fmp4.live_upload" \
  "$bin" "$out/in720-1min.ts" 6 "$work/pfspool" live index.m3u8 "" "file://$work/pfwww" p -q --format fmp4 \
  2> "$out/valgrind-fmp4.log"
mkdir -p "$work/pff"
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind-fmp4.ffmpeg" \
  ffmpeg -v error -i "$out/in720-1min.ts" -c copy -bsf:a aac_adtstoasc -f hls -hls_segment_type fmp4 \
  -hls_time 6 -hls_list_size 5 "$work/pff/index.m3u8" 2>> "$out/valgrind-fmp4.log"
callgrind_annotate --inclusive=no "$out/callgrind-fmp4.live_upload" > "$out/profile-fmp4.txt" 2>/dev/null
fi

python3 scripts/bench_report.py "$out" "$minutes" "$runs" "$live"
