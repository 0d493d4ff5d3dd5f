#!/usr/bin/env bash
# Installs what live_upload needs on Debian 12 (as root), skipping what is
# already there:
#   scripts/setup.sh          libav development files, ffmpeg, clang; hls.js for the
#                             player page of `live_upload serve` when npm is there
#   scripts/setup.sh --test   the same, plus Garage 2.5.0 (the S3 server the tests run),
#                             Debian's chromium, node and npm, and hls.js and
#                             playwright-core (for the browser test) in target/npm
# Nothing third-party is copied into the repository: npm packages go to target/npm,
# and playwright never downloads a browser (the test drives Debian's chromium).
set -euo pipefail

want_garage=0
for arg in "$@"; do
  case "$arg" in
    --test) want_garage=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

GARAGE_VERSION=2.5.0
PACKAGES=(ffmpeg libavformat-dev libavcodec-dev libavutil-dev libavfilter-dev libavdevice-dev
          libswscale-dev libswresample-dev pkg-config clang libclang-dev curl ca-certificates
          python3 time valgrind)

if ((want_garage)); then
  PACKAGES+=(chromium)
  # node and npm from Debian, unless a node (e.g. from NodeSource) is already there
  command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (or install: ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: no Rust toolchain found (cargo); install one with rustup first" >&2
    exit 1
  fi
fi

if ((want_garage)); then
  if ! garage --version 2>/dev/null | grep -q "[:v]$GARAGE_VERSION"; then
    echo "setup: building Garage $GARAGE_VERSION from crates.io (about 15 minutes, once)"
    cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
      --no-default-features --features bundled-libs,sqlite
  fi
fi

# hls.js for the player page (the version src/serve/player.rs names for its CDN
# fallback) and, for the browser test, playwright-core (a version that runs on
# Debian 12's node 18), both in target/npm.
HLS_JS_VERSION=1.7.4
PLAYWRIGHT_VERSION=1.58.0
npm_dir="$(cd "$(dirname "$0")/.." && pwd)/target/npm"
npm_want=()
installed_version() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$npm_dir/node_modules/$1/package.json" 2>/dev/null || true
}
[ "$(installed_version hls.js)" = "$HLS_JS_VERSION" ] || npm_want+=("hls.js@$HLS_JS_VERSION")
if ((want_garage)); then
  [ "$(installed_version playwright-core)" = "$PLAYWRIGHT_VERSION" ] ||
    npm_want+=("playwright-core@$PLAYWRIGHT_VERSION")
fi
if ((${#npm_want[@]})); then
  if command -v npm >/dev/null 2>&1; then
    echo "setup: installing ${npm_want[*]} into $npm_dir"
    mkdir -p "$npm_dir"
    # keep the already installed package when adding the other one
    for pkg in hls.js playwright-core; do
      v=$(installed_version "$pkg")
      if [ -n "$v" ] && [[ " ${npm_want[*]} " != *" $pkg@"* ]]; then npm_want+=("$pkg@$v"); fi
    done
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$npm_dir" --no-save --no-audit \
      --no-fund --loglevel=error "${npm_want[@]}" >/dev/null
  elif ((want_garage)); then
    echo "setup: npm is missing; cannot install ${npm_want[*]}" >&2
    exit 1
  else
    echo "setup: no npm: the player page of live_upload serve will load hls.js from a CDN"
  fi
fi
