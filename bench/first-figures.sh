#!/usr/bin/env bash
# First figures for one instance on SQLite: verify (warm cache) and /healthz side by
# side, then key creation. Needs wrk (apt-get install -y wrk) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/keyward
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
for v in $(env | grep -o '^KEYWARD_[A-Z_]*' || true); do unset "$v"; done
"$bin" serve --bind 127.0.0.1:18080 2> server.log &
server=$!
until curl -sf http://127.0.0.1:18080/readyz >/dev/null; do sleep 0.2; done
token=$("$bin" token --user bench)
export ADMIN_TOKEN=$("$bin" token --admin)
export KEY=$(curl -s -X POST http://127.0.0.1:18080/api/api-keys \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"name": "bench", "permissions": ["READ_GRAPH"]}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["plain_text_key"])')
for i in $(seq 1 200); do "$bin" token --user "load$i"; done > tokens
export TOKENS_FILE=$work/tokens
lua=$OLDPWD/bench/wrk
echo "== verify (warm cache)"
wrk -t2 -c64 -d10s --latency -s "$lua/verify.lua" http://127.0.0.1:18080/api/api-keys/verify | grep -E 'Requests/sec|50%|99%'
echo "== /healthz"
wrk -t2 -c64 -d10s --latency http://127.0.0.1:18080/healthz | grep -E 'Requests/sec|50%|99%'
echo "== key creation"
wrk -t2 -c16 -d5s --latency -s "$lua/create.lua" http://127.0.0.1:18080/ | grep -E 'Requests/sec|50%|99%|Non-2xx'
