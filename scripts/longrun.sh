#!/usr/bin/env bash
# Long run (not part of CI): HOURS of media (default 4) pushed at full speed into a
# local destination; samples live_upload's anonymous memory (RssAnon) and open
# descriptors every 0.5 s and prints a Markdown summary. (Without --delete-old: at
# full speed its deletions, due in wall-clock time, would all still be queued.)
#   scripts/longrun.sh [HOURS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
hours=${1:-4}
scripts/setup.sh
cargo build --release --locked --quiet

work=${LONGRUN_DIR:-/tmp/live_upload-longrun}
rm -rf "$work"
mkdir -p "$work"
src="$work/loop.ts"
# one minute of 640x360 at about 2 Mbps, looped; ffmpeg keeps timestamps going
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=640x360:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 -c:v libx264 -preset veryfast \
  -b:v 2M -g 60 -pix_fmt yuv420p -c:a aac -b:a 96k -f mpegts "$src"

seconds=$((hours * 3600))
start=$(date +%s%N)
ffmpeg -hide_banner -loglevel error -stream_loop -1 -i "$src" -c copy -t "$seconds" -f mpegts - |
  target/release/live_upload - 6 "$work/spool" live index.m3u8 "" "file://$work/www" live \
    -q 2>"$work/live_upload.log" &
pid=$(pgrep -n -f "live_upload - 6 $work/spool")
echo "longrun: $hours h of media into $work/www (live_upload pid $pid)"
: > "$work/samples.csv"
while kill -0 "$pid" 2>/dev/null; do
  anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l || true)
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  [ -n "$anon" ] && echo "$((ms / 1000)).$(printf %03d $((ms % 1000))),$anon,$rss,$fds" >> "$work/samples.csv"
  sleep 0.5
done
wait || true
elapsed=$(( ($(date +%s%N) - start) / 1000000000 ))
segments=$(ls "$work/www/live" | grep -c '\.ts$' || true)
tail -1 "$work/www/live/index.m3u8" | grep -q ENDLIST || { echo "longrun: no ENDLIST"; exit 1; }

python3 - "$work/samples.csv" "$elapsed" "$hours" "$segments" <<'PY'
import sys
rows = [tuple(float(x) for x in l.split(",")) for l in open(sys.argv[1]) if l.strip()]
elapsed, hours, kept = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
speed = hours * 3600 / elapsed
def at(frac):
    t = elapsed * frac
    return min(rows, key=lambda r: abs(r[0] - t))
first_min = [r for r in rows if r[0] * speed >= 300] or rows  # after 5 minutes of media
print(f"| media | wall time | speed | RssAnon after 5 min of media | RssAnon at the end | growth | peak VmRSS | open fds (min-max after 5 min) |")
print(f"|---|---|---|---|---|---|---|---|")
a0, a1 = first_min[0][1], rows[-1][1]
print(f"| {hours:g} h | {elapsed:.0f} s | {speed:.0f}x | {a0:.0f} kB | {a1:.0f} kB | {a1 - a0:+.0f} kB | "
      f"{max(r[2] for r in rows):.0f} kB | {min(r[3] for r in first_min):.0f}-{max(r[3] for r in first_min):.0f} |")
print()
print("RssAnon (kB) across the run:", ", ".join(f"{int(at(f)[1])} at {f:.0%}" for f in (0.1, 0.25, 0.5, 0.75, 1.0)))
print(f"segments published: {kept}")
PY
