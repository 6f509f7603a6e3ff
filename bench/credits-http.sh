#!/usr/bin/env bash
# What credits that renew and users' shared limits cost verification: warm
# verification over HTTP, in one run, alternating, of 100 keys without limits on this
# build and on a build from before these features (each with its own SQLite
# database), of 100 keys with credits that do not renew (both builds), and on this
# build of 100 keys whose credits renew daily, 100 keys whose owners have a rate limit
# pool (never reached) and 100 keys whose owners have credits. The servers are pinned
# to CPU 0; wrk (one thread, 32 connections) runs on CPU 1. Prints req/s, p99 and mean
# latency per run.
#
#   bench/credits-http.sh target/release/keyward OLD/keyward [runs] [seconds]
#
# Needs wrk, taskset, curl and python3; listens on 127.0.0.1:18189 and :18190;
# leaves nothing behind.
set -euo pipefail
NEW=$(realpath "$1"); OLD=$(realpath "$2"); RUNS=${3:-3}; SECS=${4:-8}
LUA=$(realpath "$(dirname "$0")/wrk/verify-many.lua")
. "$(dirname "$0")/lib.sh"
D=$(mktemp -d)
stop_all() {
    for pid in "$D"/*.pid; do kill -TERM "$(cat "$pid")" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap stop_all EXIT
cd "$D"
bench_secrets
export KEYWARD_LOG=warn
# make BINARY DB NAME [FLAGS...] > FILE: 100 keys over 10 users (NAME0 … NAME9).
make() {
    local bin=$1 db=$2 name=$3
    shift 3
    KEYWARD_DATABASE_URL=sqlite://$D/$db.db "$bin" migrate >/dev/null
    for i in $(seq 1 100); do
        KEYWARD_DATABASE_URL=sqlite://$D/$db.db "$bin" keys create --user "$name$((i % 10))" \
            --name "$name$i" -p READ_GRAPH --json "$@"
    done
}
# limit_users NAME FLAGS...: the same limits for users NAME0 … NAME9 (this build).
limit_users() {
    local name=$1
    shift
    for i in $(seq 0 9); do
        KEYWARD_DATABASE_URL=sqlite://$D/new.db "$NEW" users set-limits "$name$i" "$@" >/dev/null
    done
}
# Credits that never run out within the run: the decrement, not USAGE_EXCEEDED.
MANY=1000000000000000
make "$OLD" old free >old-free.json
make "$OLD" old paid --remaining "$MANY" >old-paid.json
make "$NEW" new free >new-free.json
make "$NEW" new paid --remaining "$MANY" >new-paid.json
make "$NEW" new renew --refill "$MANY/day" >new-renew.json
make "$NEW" new pooled >new-pooled.json
limit_users pooled --rate-limit 1000000/1
make "$NEW" new owned >new-owned.json
limit_users owned --credits "$MANY"
for f in old-free old-paid new-free new-paid new-renew new-pooled new-owned; do
    plain_keys "$f.json" >"$f.txt"
done
KEYWARD_DATABASE_URL=sqlite://$D/old.db taskset -c 0 "$OLD" serve --bind 127.0.0.1:18189 2>/dev/null &
echo $! >old.pid
KEYWARD_DATABASE_URL=sqlite://$D/new.db taskset -c 0 "$NEW" serve --bind 127.0.0.1:18190 2>/dev/null &
echo $! >new.pid
wait_ready 18189
wait_ready 18190
# load PORT SECONDS KEYS_FILE: req/s, p99 and the mean latency.
load() {
    KEYS_FILE=$D/$3 KEYS_FIRST=0 KEYS_COUNT=100 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
        taskset -c 1 wrk -t1 -c32 -d"$2"s --latency -s "$LUA" "http://127.0.0.1:$1/api/api-keys/verify" |
        awk '/Requests\/sec/ {rps=$2} $1 == "Latency" && !mean {mean=$2} $1 == "99%" {p99=$2}
             END {print "req/s=" rps " p99=" p99 " mean=" mean}'
}
# Every key verifies VALID (a refusal would be cheaper).
check() { # PORT KEY
    curl -sf -H "Authorization: Bearer $KEYWARD_ADMIN_TOKEN" -H 'Content-Type: application/json' \
        --data "{\"key\":\"$2\",\"permissions\":[\"READ_GRAPH\"]}" \
        "http://127.0.0.1:$1/api/api-keys/verify" | python3 -c 'import json, sys; c = json.load(sys.stdin)["code"]; assert c == "VALID", c'
}
for f in old-free old-paid; do check 18189 "$(head -1 $f.txt)"; load 18189 2 $f.txt >/dev/null; done
for f in new-free new-paid new-renew new-pooled new-owned; do check 18190 "$(head -1 $f.txt)"; load 18190 2 $f.txt >/dev/null; done
for run in $(seq 1 "$RUNS"); do
    # Keys with credits write to SQLite: the last run's writes (checkpoints, usage
    # flushes) must not run beside the next measurement on CPU 0.
    sleep 3
    echo "before-build keys=free run=$run $(load 18189 "$SECS" old-free.txt)"
    echo "this-build keys=free run=$run $(load 18190 "$SECS" new-free.txt)"
    echo "this-build keys=user-pool run=$run $(load 18190 "$SECS" new-pooled.txt)"
    echo "before-build keys=credits run=$run $(load 18189 "$SECS" old-paid.txt)"
    echo "this-build keys=credits run=$run $(load 18190 "$SECS" new-paid.txt)"
    echo "this-build keys=renewing run=$run $(load 18190 "$SECS" new-renew.txt)"
    echo "this-build keys=user-credits run=$run $(load 18190 "$SECS" new-owned.txt)"
done
