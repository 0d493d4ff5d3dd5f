#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root): installs what is
# missing (libav, ffmpeg, Garage), checks formatting and lints, and runs every
# test. The tests start and stop their own Garage server on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --test
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
rm -f target/fault-report.txt
cargo test --all-targets --locked
# the fault test's figures (faults injected, retries, catch-up, memory)
if [ -f target/fault-report.txt ]; then
  echo "--- target/fault-report.txt"
  cat target/fault-report.txt
fi
