#!/usr/bin/env bash
# What binding keys to networks costs verification: warm verification over HTTP of
# 100 keys without networks on this build and on a build from before networks
# existed (each with its own database), and of 100 keys bound to two networks (with
# the end client inside one), in one run, alternating. The servers are pinned to
# CPU 0; wrk (one thread, 32 connections) runs on CPU 1. Prints req/s, p99 and mean
# latency per run.
#
#   bench/networks-http.sh target/release/keyward OLD/keyward [runs] [seconds]
#
# Needs wrk, taskset, curl and python3; listens on 127.0.0.1:18187 and :18188;
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
KEYWARD_DATABASE_URL=sqlite://$D/old.db "$OLD" migrate >/dev/null
KEYWARD_DATABASE_URL=sqlite://$D/new.db "$NEW" migrate >/dev/null
for i in $(seq 1 100); do
    KEYWARD_DATABASE_URL=sqlite://$D/old.db "$OLD" keys create --user "u$((i % 10))" --name "k$i" -p READ_GRAPH --json
done >old.json
for i in $(seq 1 100); do
    KEYWARD_DATABASE_URL=sqlite://$D/new.db "$NEW" keys create --user "u$((i % 10))" --name "k$i" -p READ_GRAPH --json
done >free.json
for i in $(seq 1 100); do
    KEYWARD_DATABASE_URL=sqlite://$D/new.db "$NEW" keys create --user "u$((i % 10))" --name "b$i" -p READ_GRAPH \
        --allowed-ip 198.51.100.0/24,2001:db8::/32 --json
done >bound.json
plain_keys old.json >old.txt
plain_keys free.json >free.txt
plain_keys bound.json >bound.txt
KEYWARD_DATABASE_URL=sqlite://$D/old.db taskset -c 0 "$OLD" serve --bind 127.0.0.1:18187 2>/dev/null &
echo $! >old.pid
KEYWARD_DATABASE_URL=sqlite://$D/new.db taskset -c 0 "$NEW" serve --bind 127.0.0.1:18188 2>/dev/null &
echo $! >new.pid
wait_ready 18187
wait_ready 18188
# load PORT SECONDS KEYS_FILE [CLIENT_IP]: req/s, p99 and the mean latency.
load() {
    KEYS_FILE=$D/$3 KEYS_FIRST=0 KEYS_COUNT=100 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN CLIENT_IP=${4:-} \
        taskset -c 1 wrk -t1 -c32 -d"$2"s --latency -s "$LUA" "http://127.0.0.1:$1/api/api-keys/verify" |
        awk '/Requests\/sec/ {rps=$2} $1 == "Latency" && !mean {mean=$2} $1 == "99%" {p99=$2}
             END {print "req/s=" rps " p99=" p99 " mean=" mean}'
}
# Every key verifies VALID in its setting (a refusal would be cheaper).
check() { # PORT KEY [CLIENT_IP]
    curl -sf -H "Authorization: Bearer $KEYWARD_ADMIN_TOKEN" -H 'Content-Type: application/json' \
        --data "{\"key\":\"$2\",\"permissions\":[\"READ_GRAPH\"]${3:+,\"client_ip\":\"$3\"}}" \
        "http://127.0.0.1:$1/api/api-keys/verify" | python3 -c 'import json, sys; c = json.load(sys.stdin)["code"]; assert c == "VALID", c'
}
check 18187 "$(head -1 old.txt)"
check 18188 "$(head -1 free.txt)"
check 18188 "$(head -1 bound.txt)" 198.51.100.7
load 18187 2 old.txt >/dev/null
load 18188 2 free.txt >/dev/null
load 18188 2 bound.txt 198.51.100.7 >/dev/null
for run in $(seq 1 "$RUNS"); do
    echo "before-networks keys=free run=$run $(load 18187 "$SECS" old.txt)"
    echo "this-build keys=free run=$run $(load 18188 "$SECS" free.txt)"
    echo "this-build keys=bound run=$run $(load 18188 "$SECS" bound.txt 198.51.100.7)"
done
