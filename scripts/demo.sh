#!/usr/bin/env bash
# A first look at live_upload, no cloud account needed: installs what is
# missing, builds, starts `live_upload serve` on a local directory, streams a
# test pattern into it at real speed, and prints the URL of the player page.
#
#   DEMO_SECONDS   how long the stream lasts (default 60)
#   DEMO_LISTEN    where serve listens (default 127.0.0.1:8080)
#   DEMO_DIR       the work directory (default /tmp/live_upload-demo)
#   DEMO_WAIT      1: keep serving after the stream ends until Ctrl-C (the default
#                  when standard input is a terminal); 0: check the playlist
#                  through serve, stop and exit (for scripted runs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
cargo build --release --locked --quiet --bin live_upload

seconds=${DEMO_SECONDS:-60}
listen=${DEMO_LISTEN:-127.0.0.1:8080}
out=${DEMO_DIR:-/tmp/live_upload-demo}
if [ -t 0 ]; then wait_default=1; else wait_default=0; fi
keep=${DEMO_WAIT:-$wait_default}
rm -rf "$out"
mkdir -p "$out/spool" "$out/www"

serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

target/release/live_upload serve "file://$out/www" --listen "$listen" \
  --index live/index.m3u8 >"$out/serve.out" &
serve_pid=$!
for _ in $(seq 50); do
  [ -s "$out/serve.out" ] && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "demo: live_upload serve did not start (see above)" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/.* at \(http:.*\)$/\1/p' "$out/serve.out")
echo
echo "demo: streaming $seconds s of a test pattern into file://$out/www (2 s segments)"
echo "demo: open $url in a browser (it waits for the first segments)"
echo

ffmpeg -hide_banner -loglevel error -re \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$seconds" -c:v libx264 -preset veryfast -g 60 -keyint_min 60 -sc_threshold 0 \
  -pix_fmt yuv420p -c:a aac -b:a 128k -f mpegts - |
  target/release/live_upload - 2 "$out/spool" live index.m3u8 "" "file://$out/www" live

echo
echo "demo: the stream ended; the final playlist, as ${url}live/index.m3u8 serves it:"
curl -fsS "${url}live/index.m3u8"
echo
echo "Also: ffplay ${url}live/index.m3u8"
if [ "$keep" = 1 ]; then
  echo "demo: still serving at $url; Ctrl-C to stop"
  wait "$serve_pid" || true
  serve_pid=""
fi
