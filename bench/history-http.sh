#!/usr/bin/env bash
# Warm verification over HTTP with the usage history on (KEYWARD_USAGE_HISTORY_DAYS=30)
# and off (0), alternating in one run on the same 100 keys: the server pinned to CPU 0,
# wrk (one thread, 32 connections) to CPU 1. Prints req/s per run.
#
#   bench/history-http.sh target/release/keyward [runs] [seconds]
#
# Needs wrk, taskset and curl; listens on 127.0.0.1:18181; leaves nothing behind.
set -euo pipefail
BIN=$(realpath "$1"); RUNS=${2:-5}; SECS=${3:-8}
LUA=$(realpath "$(dirname "$0")/wrk/verify-many.lua")
. "$(dirname "$0")/lib.sh"
D=$(mktemp -d)
trap 'kill -TERM "$(cat "$D/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$D"' EXIT
cd "$D"
bench_secrets
export KEYWARD_DATABASE_URL=sqlite://$D/k.db KEYWARD_LOG=warn
"$BIN" migrate >/dev/null
for i in $(seq 1 100); do
    "$BIN" keys create --user "u$((i % 10))" --name "k$i" -p READ_GRAPH --json
done >created.json
plain_keys created.json >keys.txt
serve() {
    KEYWARD_USAGE_HISTORY_DAYS=$1 taskset -c 0 "$BIN" serve --bind 127.0.0.1:18181 2>/dev/null &
    echo $! >pid
    wait_ready 18181
}
load() {
    KEYS_FILE=$D/keys.txt KEYS_FIRST=0 KEYS_COUNT=100 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
        taskset -c 1 wrk -t1 -c32 -d"$1"s -s "$LUA" http://127.0.0.1:18181/api/api-keys/verify |
        awk '/Requests\/sec/ {print $2}'
}
for run in $(seq 1 "$RUNS"); do
    for days in 30 0; do
        serve "$days"
        load 2 >/dev/null
        echo "history_days=$days run=$run req/s=$(load "$SECS")"
        kill -TERM "$(cat pid)"
        wait "$(cat pid)" 2>/dev/null || true
    done
done
