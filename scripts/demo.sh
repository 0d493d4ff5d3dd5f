#!/usr/bin/env bash
# A first look at live_upload, no cloud account needed: installs what is
# missing, builds, streams 30 seconds of a test pattern (at real speed) into a
# local directory, then prints the playlist and how to play it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
cargo build --release --locked --quiet

out=${DEMO_DIR:-/tmp/live_upload-demo}
rm -rf "$out"
mkdir -p "$out/spool"
echo "demo: streaming 30 s of a test pattern into file://$out/www (6 s segments)"
ffmpeg -hide_banner -loglevel error -re \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t 30 -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -c:a aac -b:a 128k \
  -f mpegts - |
  target/release/live_upload - 6 "$out/spool" live index.m3u8 "" "file://$out/www" live

echo
echo "demo: the final playlist, $out/www/live/index.m3u8:"
cat "$out/www/live/index.m3u8"
echo
echo "Play it:"
echo "  ffplay $out/www/live/index.m3u8"
echo "or serve it and open http://127.0.0.1:8000/live/index.m3u8 in Safari or an hls.js player:"
echo "  python3 -m http.server --bind 127.0.0.1 --directory $out/www 8000"
