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
#   5. ABR ladders (BENCH_ONLY=ladder): CPU of --ladder source,480p@1200k,360p@600k
#      on a minute of 720p30 against ffmpeg making the same ladder in one process,
#      alternating, with PSNR of each encoded rung; the ladder at real speed into
#      Garage (publish latency per rendition from its event journal, CPU);
#      --ladder streams against single-rendition runs; RssAnon over a long ladder
#      run (LADDER_MEMORY_MINUTES of media, 60 by default);
#   and callgrind profiles of the segmenting path, TS and fMP4.
# Usage: scripts/bench.sh   (RUNS=5 MINUTES=10 LIVE_SECONDS=120 LADDER_MEMORY_MINUTES=60 by default)
# BENCH_ONLY=latency (or a comma list of segmenting, fmp4, latency, realtime,
# memory, ladder, profile; ladder-cpu, ladder-live, ladder-streams, ladder-memory
# for one part of ladder) runs only those parts; the report then keeps the other parts' raw
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
if want segmenting || want fmp4; then make_input in1080 1920x1080 60 12M 120; fi
if want latency; then make_input live720 1280x720 30 4M 30; fi  # 1 s keyframes, for the latency run

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

# --- 5. ABR ladder ------------------------------------------------------------
# (a) CPU of --ladder against ffmpeg making the same ladder in one process, on
# the minute of 720p30 (keyframes every 2 s, so cuts every 6 s at 0, 6, 12...
# s of media), alternating, and PSNR of each encoded rung of the last pair
# against the source scaled with bicubic; (b) the ladder at real speed into
# Garage, with its event journal; (c) --ladder streams on an input carrying
# three video streams against a single-rendition run on its first stream
# alone; (d) RssAnon over a long ladder run at full speed.
ladder=source,480p@1200k,360p@600k
# its encoded rungs as ffmpeg is given them: folder, size, kbit/s
ladder_rungs=(480p-1200k 854x480 1200 360p-600k 640x360 600)
# BENCH_ONLY=ladder runs (a) to (d); ladder-cpu, ladder-live, ladder-streams and
# ladder-memory each one of them
want_ladder() { want ladder || want "ladder-$1"; }
if want_ladder cpu; then
  csv=$out/ladder-cpu.csv
  : > "$csv"
  : > "$out/ladder-psnr.csv"
  : > "$out/ladder-decode.csv"
  src=$out/in720-1min.ts
  # ffmpeg's side: split and scale in one filter graph, libx264 with what
  # src/transcode/ sets (the preset, capped VBR with maxrate 1.1x and a 2x
  # buffer, a 600-frame GOP, forced IDRs), an IDR forced every 6 s of media
  # (where live_upload cuts on this input), the source's video copied
  graph="[0:v]split=2[s1][s2]"
  maps=(-map 0:v -map 0:a)
  codecs=(-c:v:0 copy)
  n=1
  for ((r = 0; r < ${#ladder_rungs[@]}; r += 3)); do
    kbps=${ladder_rungs[r + 2]}
    graph+=";[s$n]scale=${ladder_rungs[r + 1]/x/:}:flags=bicubic[r$n]"
    maps+=(-map "[r$n]" -map 0:a)
    codecs+=(-c:v:$n libx264 -b:v:$n "${kbps}k" -maxrate:v:$n "$((kbps * 11 / 10))k"
             -bufsize:v:$n "$((kbps * 2))k")
    n=$((n + 1))
  done
  lu=(timeout 600 "$bin" "$src" 6 "$work/run/spool" live index.m3u8 "" "file://$work/run/www" bench -q
      --ladder "$ladder")
  ff=(timeout 600 ffmpeg -v error -i "$src" -filter_complex "$graph" "${maps[@]}" "${codecs[@]}"
      -preset veryfast -g 600 -forced-idr 1 -force_key_frames 'expr:gte(t,n_forced*6)' -fps_mode passthrough
      -pix_fmt yuv420p -c:a copy -f hls -hls_time 6 -hls_list_size 5 -master_pl_name master.m3u8
      -var_stream_map "v:0,a:0 v:1,a:1 v:2,a:2" -hls_segment_filename "$work/run/ff/%v/seg-%05d.ts"
      "$work/run/ff/%v/index.m3u8")
  shown() { # the arguments as a shell would take them back, quoted only where needed
    local a s=""
    for a in "$@"; do
      if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then s+=" $a"; else s+=" '${a//\'/\'\\\'\'}'"; fi
    done
    echo "${s# }"
  }
  ds=(timeout 600 ffmpeg -v error -i "$src" -filter_complex "$graph" -map '[r1]' -map '[r2]' -f null -)
  # the same on one thread, as live_upload decodes and scales
  ds1=(timeout 600 ffmpeg -v error -threads 1 -filter_threads 1 -i "$src" -filter_complex "$graph"
       -map '[r1]' -map '[r2]' -f null -)
  psnr() { # label folder-of-segments size rung  (appends to ladder-psnr.csv)
    local joined=$work/joined.ts frames line
    find "$2" -name '*.ts' | sort | xargs cat > "$joined"
    frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
      -of csv=p=0 "$joined" | awk 'NR == 1')
    line=$(ffmpeg -hide_banner -nostats -i "$joined" -i "$src" -lavfi \
      "[0:v]setpts=PTS-STARTPTS[e];[1:v]scale=${3/x/:}:flags=bicubic,setpts=PTS-STARTPTS[s];[e][s]psnr=shortest=1" \
      -f null - 2>&1 | grep -o 'PSNR y:.*')
    echo "$1,$4,$frames,$(stat -c %s "$joined"),$line" >> "$out/ladder-psnr.csv"
  }
  for i in $(seq 0 "$runs"); do
    run_lu() {
      timed live_upload in720 "${lu[@]}"
      if [ "$i" -eq "$runs" ]; then
        for ((r = 0; r < ${#ladder_rungs[@]}; r += 3)); do
          psnr live_upload "$work/run/www/bench/${ladder_rungs[r]}" "${ladder_rungs[r + 1]}" "${ladder_rungs[r]}"
        done
      fi
    }
    run_ff() {
      timed ffmpeg in720 "${ff[@]}"
      if [ "$i" -eq "$runs" ]; then
        for ((r = 0; r < ${#ladder_rungs[@]}; r += 3)); do
          psnr ffmpeg "$work/run/ff/$((r / 3 + 1))" "${ladder_rungs[r + 1]}" "${ladder_rungs[r]}"
        done
      fi
    }
    if [ $((i % 2)) -eq 1 ]; then run_lu; run_ff; else run_ff; run_lu; fi
    # for reference, after each pair: ffmpeg decoding and scaling alone (no
    # encoding), with its threads and on one thread
    csv=$out/ladder-decode.csv
    timed ffmpeg-decode-scale in720 "${ds[@]}"
    timed ffmpeg-decode-scale-1thread in720 "${ds1[@]}"
    csv=$out/ladder-cpu.csv
    if [ "$i" -eq 0 ]; then # the discarded pair, as above
      head -n -2 "$csv" > "$csv.tmp" && mv "$csv.tmp" "$csv"
      : > "$out/ladder-decode.csv"
    fi
  done
  for c in "$(shown "${lu[@]:2}")" "$(shown "${ff[@]:2}")" "$(shown "${ds[@]:2}")" \
           "$(shown "${ds1[@]:2}")"; do
    echo "$c" | sed -e "s|$work/run/|OUT/|g" -e "s|$src|INPUT.ts|g" -e "s|^$bin|live_upload|"
  done > "$out/ladder-commands.txt"
fi

if want_ladder live; then
  # (b) at real speed into Garage, 2 s segments, with the event journal
  scripts/garage.sh stop "$out/garage" >/dev/null 2>&1 || true
  rm -rf "$out/garage"
  WATCH_PID=$$ scripts/garage.sh start "$out/garage" > /dev/null
  set -a; . "$out/garage/env"; set +a
  BASELINE_PREFIX=warmup target/release/examples/put_baseline live "$GARAGE_S3" \
    "$out/in720-1min.ts" 500000 30 "$GARAGE_WEB" "$GARAGE_WEB_HOST" 100 > /dev/null
  head -1 /proc/stat > "$out/ladder-live-stat.txt"
  ffmpeg "${q[@]}" -re -stream_loop -1 -i "$out/in720-1min.ts" -t "$live" -c copy -f mpegts - |
    /usr/bin/time -f "%U,%S,%e" -o "$out/ladder-live-cpu.txt" \
      timeout $((live + 120)) "$bin" - 2 "$work/ladder-spool" live index.m3u8 "" live "ladder-$(date +%s)" \
      --endpoint-url "$GARAGE_S3" --path-style --ladder "$ladder" --events "$out/ladder-live.jsonl" -q \
      2> "$out/ladder-live.log"
  head -1 /proc/stat >> "$out/ladder-live-stat.txt"
  scripts/garage.sh stop "$out/garage" >/dev/null 2>&1 || true
fi

if want_ladder streams; then
  # (c) --ladder streams: one encoder's three aligned video streams (720p, 480p,
  # 360p, keyframes every 2 s) and audio, looped like the other inputs, against
  # runs on each video stream alone (with the audio), alternating
  if [ ! -s "$out/streams720-$minutes.ts" ]; then
    [ -s "$out/streams720-1min.ts" ] || ffmpeg "${q[@]}" -f lavfi -i "testsrc2=size=1280x720:rate=30" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 -map 0:v -map 0:v -map 0:v -map 1:a \
      -c:v libx264 -preset veryfast -g 60 -keyint_min 60 -sc_threshold 0 \
      -b:v:0 4M -maxrate:v:0 4M -bufsize:v:0 4M -s:v:1 854x480 -b:v:1 1200k -maxrate:v:1 1200k \
      -bufsize:v:1 1200k -s:v:2 640x360 -b:v:2 600k -maxrate:v:2 600k -bufsize:v:2 600k \
      -pix_fmt yuv420p -c:a aac -b:a 128k -f mpegts "$out/streams720-1min.ts"
    ffmpeg "${q[@]}" -stream_loop $((minutes - 1)) -i "$out/streams720-1min.ts" -map 0 -c copy \
      -f mpegts "$out/streams720-$minutes.ts"
  fi
  for v in 0 1 2; do
    [ -s "$out/stream$v-$minutes.ts" ] || ffmpeg "${q[@]}" -i "$out/streams720-$minutes.ts" -map "0:v:$v" \
      -map 0:a -c copy -f mpegts "$out/stream$v-$minutes.ts"
  done
  csv=$out/ladder-streams.csv
  : > "$csv"
  sides=(streams single0 single1 single2)
  for i in $(seq 0 "$runs"); do
    for k in 0 1 2 3; do # each round starts one side later
      side=${sides[(i + k) % 4]}
      if [ "$side" = streams ]; then
        timed streams streams720 timeout 600 "$bin" "$out/streams720-$minutes.ts" 6 "$work/run/spool" live \
          index.m3u8 "" "file://$work/run/www" bench -q --ladder streams
      else
        timed "$side" streams720 timeout 600 "$bin" "$out/stream${side#single}-$minutes.ts" 6 \
          "$work/run/spool" live index.m3u8 "" "file://$work/run/www" bench -q
      fi
    done
    if [ "$i" -eq 0 ]; then
      head -n -4 "$csv" > "$csv.tmp" && mv "$csv.tmp" "$csv"
    fi
  done
  for v in 0 1 2; do # width, height, bit/s over the minute
    size=$(ffprobe -v error -select_streams "v:$v" -show_entries stream=width,height -of csv=p=0 \
      "$out/streams720-1min.ts" | awk 'NR == 1')
    bits=$(ffprobe -v error -select_streams "v:$v" -show_entries packet=size -of csv=p=0 \
      "$out/streams720-1min.ts" | awk '{ s += $1 } END { print int(s * 8 / 60) }')
    echo "$size,$bits"
  done > "$out/ladder-streams-input.txt"
fi

if want_ladder memory; then
  # (d) RssAnon (and VmRSS, open descriptors) of the ladder over a long run at
  # full speed, sampled every second; bounded by the media's own duration
  mem_minutes=${LADDER_MEMORY_MINUTES:-60}
  rm -rf "$work/mem"
  mkdir -p "$work/mem"
  ffmpeg "${q[@]}" -stream_loop -1 -i "$out/in720-1min.ts" -t $((mem_minutes * 60)) -c copy -f mpegts - |
    "$bin" - 6 "$work/mem/spool" live index.m3u8 "" "file://$work/mem/www" mem -q --ladder "$ladder" \
      2> "$out/ladder-memory.log" &
  mem_pid=$!
  start=$(date +%s%N)
  : > "$out/ladder-memory.csv"
  while kill -0 "$mem_pid" 2>/dev/null; do
    s=$(awk '/^RssAnon:/ { a = $2 } /^VmRSS:/ { r = $2 } END { if (a) print a "," r }' \
        "/proc/$mem_pid/status" 2>/dev/null || true)
    cpu=$(awk '{ print $14 + $15 }' "/proc/$mem_pid/stat" 2>/dev/null || true)
    fds=$(ls "/proc/$mem_pid/fd" 2>/dev/null | wc -l || true)
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    [ -n "$s" ] && echo "$ms,$s,$fds,$cpu" >> "$out/ladder-memory.csv"
    if [ "$ms" -gt $((mem_minutes * 60000)) ]; then
      echo "bench: the ladder run took longer than its media; stopped" >&2
      kill "$mem_pid"
    fi
    sleep 1
  done
  status=0
  wait "$mem_pid" || status=$?
  segs=$(find "$work/mem/www/mem" -name '*.ts' | wc -l)
  ended=0
  tail -1 "$work/mem/www/mem/source/index.m3u8" 2>/dev/null | grep -q ENDLIST && ended=1
  # media minutes, wall ms, segments of all renditions, exit status, ENDLIST, clock ticks a second
  echo "$mem_minutes,$(( ($(date +%s%N) - start) / 1000000 )),$segs,$status,$ended,$(getconf CLK_TCK)" \
    > "$out/ladder-memory-run.txt"
fi

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
