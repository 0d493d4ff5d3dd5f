#!/usr/bin/env bash
# A throw-away single-node Garage S3 server on 127.0.0.1, for tests and benchmarks.
#
#   scripts/garage.sh start DIR   start a node with its config and data in DIR; creates an
#                                 access key and the bucket `live` (website access allowed)
#                                 and writes the environment to use to DIR/env
#   scripts/garage.sh stop DIR    stop it
#
# With WATCH_PID set, the node also stops (and DIR is removed) once that process exits,
# so a test run cannot leave it behind. Needs `garage` 2.5.0 (scripts/setup.sh --test).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
export PATH="$HOME/.cargo/bin:$PATH"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop() {
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$dir/pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid"
  fi
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

command -v garage >/dev/null || { echo "garage is not installed: run scripts/setup.sh --test" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# four consecutive free ports: S3 API, RPC, web, admin
base=""
for _ in $(seq 100); do
  b=$(( 20000 + RANDOM % 20000 ))
  if port_free "$b" && port_free $((b + 1)) && port_free $((b + 2)) && port_free $((b + 3)); then
    base=$b; break
  fi
done
[ -n "$base" ] || { echo "no free ports found" >&2; exit 1; }

secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((base + 1))"
rpc_public_addr = "127.0.0.1:$((base + 1))"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$base"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:$((base + 2))"
root_domain = ".web.garage.localhost"
index = "index.html"

[admin]
api_bind_addr = "127.0.0.1:$((base + 3))"
TOML

g() { garage -c "$dir/garage.toml" "$@"; }
setsid garage -c "$dir/garage.toml" server >"$dir/server.log" 2>&1 < /dev/null &
echo $! > "$dir/pid"

for _ in $(seq 100); do
  g status >/dev/null 2>&1 && break
  sleep 0.2
done
g status >/dev/null 2>&1 || { echo "garage did not start; see $dir/server.log" >&2; stop; exit 1; }

node=$(g node id -q 2>/dev/null | cut -d@ -f1)
g layout assign -z dc1 -c 1G "$node" >/dev/null
g layout apply --version 1 >/dev/null
keyinfo=$(g key create test-key)
key_id=$(sed -n 's/^Key ID: *//p' <<<"$keyinfo")
key_secret=$(sed -n 's/^Secret key: *//p' <<<"$keyinfo")
g bucket create live >/dev/null
g bucket allow --read --write --owner live --key test-key >/dev/null
g bucket website --allow live >/dev/null

cat > "$dir/env" <<ENV
AWS_ACCESS_KEY_ID=$key_id
AWS_SECRET_ACCESS_KEY=$key_secret
AWS_REGION=garage
GARAGE_S3=http://127.0.0.1:$base
GARAGE_WEB=http://127.0.0.1:$((base + 2))
GARAGE_WEB_HOST=live.web.garage.localhost
GARAGE_BUCKET=live
GARAGE_CONFIG=$dir/garage.toml
ENV

if [ -n "${WATCH_PID:-}" ]; then
  setsid bash -c "while kill -0 $WATCH_PID 2>/dev/null; do sleep 1; done; '$0' stop '$dir'; rm -rf '$dir'" \
    >/dev/null 2>&1 < /dev/null &
fi
cat "$dir/env"
