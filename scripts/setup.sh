#!/usr/bin/env bash
# Installs what live_upload needs on Debian 12 (as root), skipping what is
# already there:
#   scripts/setup.sh          libav development files, ffmpeg, clang
#   scripts/setup.sh --test   the same, plus Garage 2.5.0 (the S3 server the tests run)
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
