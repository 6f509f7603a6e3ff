#!/usr/bin/env bash
# Warm verification over HTTP of keys with a rate limit (never reached: 1,000,000 a
# second) and without one, with the limits held per instance and in Redis
# (KEYWARD_RATE_LIMIT_STORE), alternating in one run on the same 100 + 100 keys. The
# server is pinned to CPU 0; wrk (one thread, 32 connections) and redis-server share
# CPU 1. Prints req/s, p99 and mean latency per run, with 32 connections and (for the
# limited keys) with one, and what one Redis round trip takes on the same cores.
#
#   bench/limits-http.sh target/release/keyward[,other/keyward…] [runs] [seconds]
#
# Several builds, comma-separated, take turns within each run (compare a change with
# the build before it, side by side).
#
# Needs wrk, taskset, curl and redis-server; listens on 127.0.0.1:18181 (keyward) and
# 127.0.0.1:18379 (Redis); leaves nothing behind.
set -euo pipefail
IFS=, read -r -a BINS <<<"$1"; RUNS=${2:-3}; SECS=${3:-8}
for i in "${!BINS[@]}"; do BINS[i]=$(realpath "${BINS[i]}"); done
BIN=${BINS[0]}
LUA=$(realpath "$(dirname "$0")/wrk/verify-many.lua")
SRC=$(realpath "$(dirname "$0")/../crates/engine/src/shared_limits.rs")
. "$(dirname "$0")/lib.sh"
D=$(mktemp -d)
stop_all() {
    kill -TERM "$(cat "$D/pid" 2>/dev/null)" 2>/dev/null || true
    kill -TERM "$(cat "$D/redis.pid" 2>/dev/null)" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap stop_all EXIT
cd "$D"
bench_secrets
export KEYWARD_DATABASE_URL=sqlite://$D/k.db KEYWARD_LOG=warn
"$BIN" migrate >/dev/null
for i in $(seq 1 100); do
    "$BIN" keys create --user "u$((i % 10))" --name "limited$i" -p READ_GRAPH --rate-limit 1000000/1 --json
done >limited.json
for i in $(seq 1 100); do
    "$BIN" keys create --user "u$((i % 10))" --name "free$i" -p READ_GRAPH --json
done >free.json
plain_keys limited.json >limited.txt
plain_keys free.json >free.txt
taskset -c 1 redis-server --port 18379 --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$D" >/dev/null 2>&1 &
echo $! >redis.pid
for _ in $(seq 100); do redis-cli -p 18379 ping >/dev/null 2>&1 && break; sleep 0.05; done
# serve BINARY STORE
serve() {
    KEYWARD_RATE_LIMIT_STORE=$2 taskset -c 0 "$1" serve --bind 127.0.0.1:18181 2>/dev/null &
    echo $! >pid
    wait_ready 18181
}
# load SECONDS KEYS_FILE CONNECTIONS: req/s, p99 and the mean latency.
load() {
    KEYS_FILE=$D/$2 KEYS_FIRST=0 KEYS_COUNT=100 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
        taskset -c 1 wrk -t1 -c"$3" -d"$1"s --latency -s "$LUA" http://127.0.0.1:18181/api/api-keys/verify |
        awk '/Requests\/sec/ {rps=$2} $1 == "Latency" && !mean {mean=$2} $1 == "99%" {p99=$2}
             END {print "req/s=" rps " p99=" p99 " mean=" mean}'
}
# rtt: one Redis round trip, from CPU 0 (where keyward runs) to redis-server, one
# request at a time: PING, and the limits' script deciding one name.
rtt() {
    local sha
    sha=$(redis-cli -p 18379 script load "$(sed -n '/^const TAKE/,/^";/p' "$SRC" | sed '1d;$d')")
    for command in "PING" "EVALSHA $sha 1 keyward:limit:bench 1 1000000000"; do
        # shellcheck disable=SC2086
        taskset -c 0 redis-benchmark -p 18379 -c 1 -n 20000 -q $command 2>/dev/null |
            tr '\r' '\n' | awk -v c="${command%% *}" '/requests per second/ {
                for (i = 2; i <= NF; i++) if ($i == "requests") rps = $(i - 1)
                p50 = $NF == "msec" ? $(NF - 1) : "?"; sub(/^p50=/, "", p50)
                printf "redis round trip (%s, one at a time): mean %.1f us (%s/s), p50 %s ms\n", c, 1e6 / rps, rps, p50
            }'
    done
}
for run in $(seq 1 "$RUNS"); do
    rtt | sed "s/^/run=$run /"
    for bin in "${BINS[@]}"; do
        label=$bin
        ((${#BINS[@]} > 1)) || label=""
        for store in "" "redis://127.0.0.1:18379/0"; do
            serve "$bin" "$store"
            for keys in limited.txt free.txt; do
                load 2 "$keys" 32 >/dev/null
                echo "${label:+bin=$label }store=${store:-per-instance} keys=${keys%.txt} c=32 run=$run $(load "$SECS" "$keys" 32)"
            done
            # One connection: each request waits for the one before, so the mean
            # latency shows what a round trip to Redis adds to one verification.
            echo "${label:+bin=$label }store=${store:-per-instance} keys=limited c=1 run=$run $(load "$SECS" limited.txt 1)"
            kill -TERM "$(cat pid)"
            wait "$(cat pid)" 2>/dev/null || true
        done
    done
done
# Proof the Redis runs went through Redis: one script call per limited verification.
echo "redis: $(redis-cli -p 18379 info commandstats | grep -o 'cmdstat_evalsha:calls=[0-9]*')"
