#!/usr/bin/env bash
# Forward authentication (GET /api/auth) with a scoped service credential as the proxy
# token, against the same with the static service token: one `keyward serve` (CPU 0)
# on SQLite, one valid key, wrk (one thread, 64 connections, CPU 1), the two proxy
# tokens alternating, RUNS runs of 10 s each. Prints req/s and p99 per run; a
# credential must cost no database read per request, so the two should be alike.
#
#   bench/credentials-http.sh [runs]
#
# Needs a release build (cargo build --release -p keyward), wrk, taskset and curl;
# listens on 127.0.0.1:18193; leaves nothing behind.
set -euo pipefail
RUNS=${1:-3}
ROOT=$(realpath "$(dirname "$0")/..")
BIN=$ROOT/target/release/keyward
PORT=18193
. "$ROOT/bench/lib.sh"
D=$(mktemp -d)
stop() {
    [ -f "$D/server.pid" ] || return 0
    kill -TERM "$(cat "$D/server.pid")" 2>/dev/null || true
    wait "$(cat "$D/server.pid")" 2>/dev/null || true
    rm -f "$D/server.pid"
}
trap 'stop; rm -rf "$D"' EXIT
bench_secrets
export KEYWARD_DATABASE_URL=sqlite://$D/keyward.db KEYWARD_LOG=warn
"$BIN" migrate
KEY=$("$BIN" keys create --user bench --name bench --permission READ_GRAPH --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["plain_text_key"])')
CREDENTIAL=$("$BIN" credentials create --name proxy --scope keys.verify --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
taskset -c 0 "$BIN" serve --bind "127.0.0.1:$PORT" 2>>"$D/server.log" &
echo $! >"$D/server.pid"
wait_ready "$PORT"
load() { # proxy-token seconds
    taskset -c 1 wrk -t1 -c64 -d"$2"s --latency \
        -H "X-Keyward-Proxy-Token: $1" -H "X-API-Key: $KEY" -H "X-Keyward-Permissions: READ_GRAPH" \
        "http://127.0.0.1:$PORT/api/auth" |
        awk '/Requests\/sec/ {rps=$2} $1 == "99%" {p99=$2} /Non-2xx/ {bad=$NF} END {print "req/s=" rps " p99=" p99 " non-2xx=" (bad ? bad : 0)}'
}
load "$KEYWARD_ADMIN_TOKEN" 3 >/dev/null   # warm both caches
load "$CREDENTIAL" 3 >/dev/null
for run in $(seq 1 "$RUNS"); do
    echo "run=$run static-token $(load "$KEYWARD_ADMIN_TOKEN" 10)"
    echo "run=$run credential   $(load "$CREDENTIAL" 10)"
done
