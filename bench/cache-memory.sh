#!/usr/bin/env bash
# Memory per cached key: for each N, a fresh `keyward serve` (cache large enough for N,
# warm-up off) verifies N distinct keys once each over one connection; once the load
# has stopped and the usage flush has run, (RSS after - RSS before) / N. Keys have the
# seed's default permissions (two) and no metadata. The keys are seeded once, for the
# largest N, into a SQLite file every server opens.
#
#   bench/cache-memory.sh target/release/keyward target/release/seed [N ...]
#
# N defaults to 100000 and 1000000. Needs wrk and curl; listens on 127.0.0.1:18191;
# leaves nothing behind.
set -euo pipefail
BIN=$(realpath "$1"); SEED=$(realpath "$2"); shift 2
SIZES=("${@:-100000 1000000}")
read -r -a SIZES <<<"${SIZES[*]}"
LUA=$(realpath "$(dirname "$0")/wrk/verify-once.lua")
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
MAX=0
for n in "${SIZES[@]}"; do ((n > MAX)) && MAX=$n; done
"$SEED" --database-url "$KEYWARD_DATABASE_URL" --keys "$MAX" --keys-out keys.txt >/dev/null
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$(cat pid)/status"; }
entries() {
    curl -sf -H "Authorization: Bearer $KEYWARD_ADMIN_TOKEN" http://127.0.0.1:18191/metrics |
        awk '$1 == "keyward_cache_entries" {print $2}'
}
for n in "${SIZES[@]}"; do
    KEYWARD_CACHE_CAPACITY=$((n + n / 10)) "$BIN" serve --bind 127.0.0.1:18191 2>/dev/null &
    echo $! >pid
    wait_ready 18191
    sleep 2
    before=$(rss_kib)
    KEYS_FILE=$D/keys.txt KEYS_FIRST=0 KEYS_COUNT=$n ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
        wrk -t1 -c1 -d3600s -s "$LUA" http://127.0.0.1:18191/api/api-keys/verify >/dev/null 2>wrk.txt
    # The usage flush (every second) and the history's, then nothing runs.
    sleep 4
    after=$(rss_kib)
    cached=$(entries)
    echo "keys=$n cached=$cached rss_before_kib=$before rss_after_kib=$after" \
        "bytes_per_key=$(((after - before) * 1024 / n))" "$(cat wrk.txt)"
    kill -TERM "$(cat pid)"
    wait "$(cat pid)" 2>/dev/null || true
done
