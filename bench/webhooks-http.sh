#!/usr/bin/env bash
# What webhooks cost verification: warm verification over HTTP with no endpoint, then
# with one subscribed to every event type (a local consumer answering 204), in one run
# on the same keys, alternating: 100 keys without credits, and 100 with credits (the
# one write on the verify path, whose low and exhausted events webhooks announce).
# The server is pinned to CPU 0; wrk (one thread, 32 connections) and the consumer
# share CPU 1. Prints req/s, p99 and mean latency per run.
#
#   bench/webhooks-http.sh target/release/keyward [runs] [seconds]
#
# Needs wrk, taskset, curl and python3; listens on 127.0.0.1:18185 (keyward) and
# 127.0.0.1:18186 (the consumer); leaves nothing behind.
set -euo pipefail
BIN=$(realpath "$1"); RUNS=${2:-3}; SECS=${3:-8}
LUA=$(realpath "$(dirname "$0")/wrk/verify-many.lua")
. "$(dirname "$0")/lib.sh"
D=$(mktemp -d)
stop_all() {
    kill -TERM "$(cat "$D/pid" 2>/dev/null)" 2>/dev/null || true
    kill -TERM "$(cat "$D/consumer.pid" 2>/dev/null)" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap stop_all EXIT
cd "$D"
bench_secrets
export KEYWARD_DATABASE_URL=sqlite://$D/k.db KEYWARD_LOG=warn KEYWARD_WEBHOOK_ALLOW_PRIVATE=true
"$BIN" migrate >/dev/null
for i in $(seq 1 100); do
    "$BIN" keys create --user "u$((i % 10))" --name "free$i" -p READ_GRAPH --json
done >free.json
for i in $(seq 1 100); do
    "$BIN" keys create --user "u$((i % 10))" --name "metered$i" -p READ_GRAPH --remaining 1000000000 --json
done >metered.json
plain_keys free.json >free.txt
plain_keys metered.json >metered.txt
cat >consumer.py <<'PY'
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Consumer(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *_):
        pass
ThreadingHTTPServer(("127.0.0.1", 18186), Consumer).serve_forever()
PY
taskset -c 1 python3 consumer.py &
echo $! >consumer.pid
taskset -c 0 "$BIN" serve --bind 127.0.0.1:18185 2>/dev/null &
echo $! >pid
wait_ready 18185
admin() { # METHOD PATH [BODY]
    curl -sf -X "$1" -H "Authorization: Bearer $KEYWARD_ADMIN_TOKEN" -H 'Content-Type: application/json' \
        ${3:+--data "$3"} "http://127.0.0.1:18185$2"
}
EVENTS='["api_key.created","api_key.updated","api_key.suspended","api_key.reactivated","api_key.rotated","api_key.revoked","api_key.expiring","api_key.expired","api_key.leaked","api_key.credits_low","api_key.credits_exhausted","api_key.rate_limited"]'
webhooks() { # none | configured
    for id in $(admin GET /api/admin/webhooks | python3 -c 'import json, sys; print(" ".join(w["id"] for w in json.load(sys.stdin)))'); do
        admin DELETE "/api/admin/webhooks/$id" >/dev/null
    done
    if [ "$1" = configured ]; then
        admin POST /api/admin/webhooks "{\"url\": \"http://127.0.0.1:18186/in\", \"events\": $EVENTS}" >/dev/null
    fi
}
# load SECONDS KEYS_FILE: req/s, p99 and the mean latency.
load() {
    KEYS_FILE=$D/$2 KEYS_FIRST=0 KEYS_COUNT=100 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
        taskset -c 1 wrk -t1 -c32 -d"$1"s --latency -s "$LUA" http://127.0.0.1:18185/api/api-keys/verify |
        awk '/Requests\/sec/ {rps=$2} $1 == "Latency" && !mean {mean=$2} $1 == "99%" {p99=$2}
             END {print "req/s=" rps " p99=" p99 " mean=" mean}'
}
load 2 free.txt >/dev/null
load 2 metered.txt >/dev/null
for run in $(seq 1 "$RUNS"); do
    for mode in none configured; do
        webhooks "$mode"
        for keys in free.txt metered.txt; do
            echo "webhooks=$mode keys=${keys%.txt} run=$run $(load "$SECS" "$keys")"
        done
    done
done
# The endpoint received what it subscribed to (the scan's events included).
admin GET /api/admin/webhooks | python3 -c 'import json, sys; w = json.load(sys.stdin); print("endpoints:", len(w), "last success:", w[0]["last_success_at"] if w else None)'
