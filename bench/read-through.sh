#!/usr/bin/env bash
# Warm verification against read-through (KEYWARD_CACHE_CAPACITY=1: every verification
# reads SQLite), on the same 10,000 keys of a 1,000,000-key database, alternating in
# one run; for several builds, comma-separated, side by side. The server is pinned to
# CPU 0, wrk (one thread, 64 connections) to CPU 1. Prints req/s, p99 and mean.
#
#   bench/read-through.sh target/release/keyward[,other/keyward…] target/release/seed [runs] [seconds]
#
# Needs wrk, taskset and curl; listens on 127.0.0.1:18211; leaves nothing behind.
set -euo pipefail
IFS=, read -r -a BINS <<<"$1"; SEED=$(realpath "$2"); RUNS=${3:-3}; SECS=${4:-10}
for i in "${!BINS[@]}"; do BINS[i]=$(realpath "${BINS[i]}"); done
LUA=$(realpath "$(dirname "$0")/wrk/verify-many.lua")
. "$(dirname "$0")/lib.sh"
D=$(mktemp -d)
stop_all() {
    kill -TERM "$(cat "$D/pid" 2>/dev/null)" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap stop_all EXIT
cd "$D"
bench_secrets
export KEYWARD_DATABASE_URL=sqlite://$D/k.db KEYWARD_LOG=warn KEYWARD_CACHE_WARMUP=0
"$SEED" --database-url "$KEYWARD_DATABASE_URL" --keys 1000000 --keys-out keys.txt >/dev/null
load() {
    KEYS_FILE=$D/keys.txt KEYS_FIRST=0 KEYS_COUNT=10000 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
        taskset -c 1 wrk -t1 -c64 -d"$1"s --latency -s "$LUA" http://127.0.0.1:18211/api/api-keys/verify |
        awk '/Requests\/sec/ {rps=$2} $1 == "Latency" && !mean {mean=$2} $1 == "99%" {p99=$2}
             /Non-2xx/ {bad=$NF} END {print "req/s=" rps " p99=" p99 " mean=" mean " non_2xx=" (bad ? bad : 0)}'
}
for run in $(seq 1 "$RUNS"); do
    for bin in "${BINS[@]}"; do
        for capacity in 100000 1; do
            KEYWARD_CACHE_CAPACITY=$capacity taskset -c 0 "$bin" serve --bind 127.0.0.1:18211 2>/dev/null &
            echo $! >pid
            wait_ready 18211
            # The first use of each key is written (last_used_at, history): let those
            # writes pass before measuring the steady state.
            load 4 >/dev/null
            sleep 2
            echo "bin=$bin cache=$capacity run=$run $(load "$SECS")"
            kill -TERM "$(cat pid)"
            wait "$(cat pid)" 2>/dev/null || true
        done
    done
done
