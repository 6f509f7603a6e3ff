#!/usr/bin/env bash
# What the features that touch verification cost, against builds from before them:
# warm verification over HTTP, in one run, alternating, of
#   - 100 keys without any of them, on this build and on each OLD build (each with its
#     own SQLite database: an old build cannot open a newer schema);
#   - on this build: the same keys verified with a service credential (keys.verify)
#     instead of the static token; keys bound to networks (the client inside one);
#     keys whose owners share a rate limit (never reached); keys with credits that
#     renew daily (the one write on the verify path).
# Webhooks have their own script (bench/webhooks-http.sh: a consumer must answer).
# The servers are pinned to CPU 0 (one at a time under load); wrk (one thread, 32
# connections) runs on CPU 1. Prints req/s, p99 and mean latency per run.
#
#   bench/features-http.sh target/release/keyward OLD/keyward[,OLDER/keyward…] [runs] [seconds]
#
# OLD is a build from before the features, e.g. of 9e8d2e1 (the end of round 2):
#   git worktree add /tmp/round2 9e8d2e1 && (cd /tmp/round2 && cargo build --release -p keyward)
# Needs wrk, taskset, curl and python3; listens on 127.0.0.1:18220 and up; leaves
# nothing behind.
set -euo pipefail
NEW=$(realpath "$1"); IFS=, read -r -a OLDS <<<"$2"; RUNS=${3:-3}; SECS=${4:-8}
for i in "${!OLDS[@]}"; do OLDS[i]=$(realpath "${OLDS[i]}"); done
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
    local bin=$1 db=$2 name=$3 i
    shift 3
    KEYWARD_DATABASE_URL=sqlite://$D/$db.db "$bin" migrate >/dev/null
    for i in $(seq 1 100); do
        KEYWARD_DATABASE_URL=sqlite://$D/$db.db "$bin" keys create --user "$name$((i % 10))" \
            --name "$name$i" -p READ_GRAPH --json "$@"
    done
}
new() { KEYWARD_DATABASE_URL=sqlite://$D/new.db "$NEW" "$@"; }
make "$NEW" new plain >new-plain.json
make "$NEW" new bound --allowed-ip 198.51.100.0/24,2001:db8::/32 >new-bound.json
make "$NEW" new pooled >new-pooled.json
for i in $(seq 0 9); do new users set-limits "pooled$i" --rate-limit 1000000/1 >/dev/null; done
make "$NEW" new renew --refill 1000000000000000/day >new-renew.json
CREDENTIAL=$(new credentials create --name bench --scope keys.verify --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
for f in new-plain new-bound new-pooled new-renew; do plain_keys "$f.json" >"$f.txt"; done
PORTS=()
for i in "${!OLDS[@]}"; do
    make "${OLDS[i]}" "old$i" plain >"old$i.json"
    plain_keys "old$i.json" >"old$i.txt"
    KEYWARD_DATABASE_URL=sqlite://$D/old$i.db taskset -c 0 "${OLDS[i]}" serve --bind "127.0.0.1:$((18221 + i))" 2>/dev/null &
    echo $! >"old$i.pid"
    PORTS+=("$((18221 + i))")
done
KEYWARD_DATABASE_URL=sqlite://$D/new.db taskset -c 0 "$NEW" serve --bind 127.0.0.1:18220 2>/dev/null &
echo $! >new.pid
for port in 18220 "${PORTS[@]}"; do wait_ready "$port"; done
# load PORT SECONDS KEYS_FILE [TOKEN] [CLIENT_IP]: req/s, p99 and the mean latency.
load() {
    KEYS_FILE=$D/$3 KEYS_FIRST=0 KEYS_COUNT=100 WRK_THREADS=1 ADMIN_TOKEN=${4:-$KEYWARD_ADMIN_TOKEN} \
        CLIENT_IP=${5:-} taskset -c 1 wrk -t1 -c32 -d"$2"s --latency -s "$LUA" "http://127.0.0.1:$1/api/api-keys/verify" |
        awk '/Requests\/sec/ {rps=$2} $1 == "Latency" && !mean {mean=$2} $1 == "99%" {p99=$2}
             /Non-2xx/ {bad=$NF} END {print "req/s=" rps " p99=" p99 " mean=" mean " non_2xx=" (bad ? bad : 0)}'
}
# Every key verifies VALID in its setting (a refusal would be cheaper).
check() { # PORT KEY [TOKEN] [CLIENT_IP]
    curl -sf -H "Authorization: Bearer ${3:-$KEYWARD_ADMIN_TOKEN}" -H 'Content-Type: application/json' \
        --data "{\"key\":\"$2\",\"permissions\":[\"READ_GRAPH\"]${4:+,\"client_ip\":\"$4\"}}" \
        "http://127.0.0.1:$1/api/api-keys/verify" |
        python3 -c 'import json, sys; c = json.load(sys.stdin)["code"]; assert c == "VALID", c'
}
check 18220 "$(head -1 new-plain.txt)"
check 18220 "$(head -1 new-plain.txt)" "$CREDENTIAL"
check 18220 "$(head -1 new-bound.txt)" "" 198.51.100.7
check 18220 "$(head -1 new-pooled.txt)"
check 18220 "$(head -1 new-renew.txt)"
for i in "${!OLDS[@]}"; do check "${PORTS[i]}" "$(head -1 "old$i.txt")"; done
for run in $(seq 1 "$RUNS"); do
    for i in "${!OLDS[@]}"; do
        load "${PORTS[i]}" 2 "old$i.txt" >/dev/null
        echo "build=${OLDS[i]} keys=plain run=$run $(load "${PORTS[i]}" "$SECS" "old$i.txt")"
    done
    load 18220 2 new-plain.txt >/dev/null
    echo "build=this keys=plain run=$run $(load 18220 "$SECS" new-plain.txt)"
    echo "build=this keys=plain token=credential run=$run $(load 18220 "$SECS" new-plain.txt "$CREDENTIAL")"
    echo "build=this keys=bound run=$run $(load 18220 "$SECS" new-bound.txt "" 198.51.100.7)"
    echo "build=this keys=pooled run=$run $(load 18220 "$SECS" new-pooled.txt)"
    echo "build=this keys=renewing-credits run=$run $(load 18220 "$SECS" new-renew.txt)"
done
