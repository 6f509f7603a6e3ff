#!/usr/bin/env bash
# The first 10 s after a restart, with the cache warm-up at start and without it
# (KEYWARD_CACHE_WARMUP), against the steady state: two `keyward serve` on one
# PostgreSQL, instance A restarted (SIGTERM, start, /readyz) while B keeps running;
# wrk (one thread, 32 connections, CPU 1) verifies the same 10,000 of the seeded keys
# through A (CPU 0) before and after. Prints req/s and p99 per phase.
#
#   bench/warmup-http.sh POSTGRES_URL [keys] [runs]
#
# POSTGRES_URL names an empty database the script may fill (e.g. one made with
# createdb). Needs a release build of both (cargo build --release -p keyward, and
# cargo build --release -p keyward-bench --bin seed),
# wrk, taskset and curl; listens on 127.0.0.1:18191-18192; leaves nothing behind.
set -euo pipefail
URL=$1; KEYS=${2:-100000}; RUNS=${3:-3}
ROOT=$(realpath "$(dirname "$0")/..")
BIN=$ROOT/target/release/keyward; SEED=$ROOT/target/release/seed
LUA=$ROOT/bench/wrk/verify-many.lua
. "$ROOT/bench/lib.sh"
D=$(mktemp -d)
stop() {
    [ -f "$D/$1.pid" ] || return 0
    kill -TERM "$(cat "$D/$1.pid")" 2>/dev/null || true
    wait "$(cat "$D/$1.pid")" 2>/dev/null || true
    rm -f "$D/$1.pid"
}
trap 'stop a; stop b; rm -rf "$D"' EXIT
bench_secrets
export KEYWARD_DATABASE_URL=$URL KEYWARD_LOG=warn
"$SEED" --database-url "$URL" --keys "$KEYS" --keys-out "$D/keys.txt" >/dev/null
serve() { # name port cpu warmup
    KEYWARD_CACHE_WARMUP=$4 taskset -c "$3" "$BIN" serve --bind "127.0.0.1:$2" 2>>"$D/$1.log" &
    echo $! >"$D/$1.pid"
    wait_ready "$2"
}
load() { # seconds
    KEYS_FILE=$D/keys.txt KEYS_FIRST=0 KEYS_COUNT=10000 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
        taskset -c 1 wrk -t1 -c32 -d"$1"s --latency -s "$LUA" http://127.0.0.1:18191/api/api-keys/verify |
        awk '/Requests\/sec/ {rps=$2} $1 == "99%" {p99=$2} END {print "req/s=" rps " p99=" p99}'
}
serve b 18192 1 0
for run in $(seq 1 "$RUNS"); do
    for warmup in 10000 0; do
        serve a 18191 0 "$warmup"
        load 15 >/dev/null      # the keys become A's recent traffic (usage history)
        echo "run=$run warmup=$warmup steady     $(load 10)"
        stop a
        started=$(date +%s.%N)
        serve a 18191 0 "$warmup"
        ready=$(python3 -c "print(round($(date +%s.%N) - $started, 2))")
        echo "run=$run warmup=$warmup first_10s  $(load 10) (ready after ${ready} s)"
        stop a
    done
done
