#!/usr/bin/env bash
# docs/OPERATIONS.md's figures: `keyward backup` of a SQLite database of KEYS keys
# while `keyward serve` answers verifications under wrk (one thread, 32 connections,
# CPU 1; the server on CPU 0), and `keyward copy` of that database to PostgreSQL
# (fresh), again (nothing changed: only compared), and back to a fresh SQLite file.
# Prints each run's seconds and keys per second, then the medians.
#
#   bench/operations.sh POSTGRES_ADMIN_URL [keys] [runs]
#
# POSTGRES_ADMIN_URL names a server where the script may create and drop databases
# (kw_bench_ops_N). Needs release builds (cargo build --release -p keyward, and
# cargo build --release -p keyward-bench --bin seed), wrk, taskset, curl and psql;
# listens on 127.0.0.1:18193; leaves nothing behind.
set -euo pipefail
ADMIN_URL=$1; KEYS=${2:-100000}; RUNS=${3:-3}
ROOT=$(realpath "$(dirname "$0")/..")
BIN=$ROOT/target/release/keyward; SEED=$ROOT/target/release/seed
LUA=$ROOT/bench/wrk/verify-many.lua
. "$ROOT/bench/lib.sh"
D=$(mktemp -d)
DATABASES=()
with_db() { # ADMIN_URL NAME: the URL of database NAME on the same server
    python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$1" "$2"
}
cleanup() {
    [ -f "$D/serve.pid" ] && { kill -TERM "$(cat "$D/serve.pid")" 2>/dev/null || true; wait "$(cat "$D/serve.pid")" 2>/dev/null || true; }
    for db in "${DATABASES[@]}"; do psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$D"
}
trap cleanup EXIT
bench_secrets
export KEYWARD_LOG=warn
SOURCE=sqlite://$D/keyward.db
"$SEED" --database-url "$SOURCE" --keys "$KEYS" --keys-out "$D/keys.txt" >/dev/null
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
seconds() { python3 -c "print(round($(date +%s.%N) - $1, 3))"; }

KEYWARD_DATABASE_URL=$SOURCE taskset -c 0 "$BIN" serve --bind 127.0.0.1:18193 2>>"$D/serve.log" &
echo $! >"$D/serve.pid"
wait_ready 18193
KEYS_FILE=$D/keys.txt KEYS_FIRST=0 KEYS_COUNT=10000 WRK_THREADS=1 ADMIN_TOKEN=$KEYWARD_ADMIN_TOKEN \
    taskset -c 1 wrk -t1 -c32 -d$((RUNS * 10 + 10))s -s "$LUA" http://127.0.0.1:18193/api/api-keys/verify \
    >"$D/wrk.txt" &
WRK=$!
sleep 3
for run in $(seq 1 "$RUNS"); do
    started=$(date +%s.%N)
    KEYWARD_DATABASE_URL=$SOURCE "$BIN" backup --to "$D/backup-$run.db" >/dev/null
    took=$(seconds "$started")
    echo "$took" >>"$D/backup.txt"
    echo "run=$run backup_while_serving seconds=$took size=$(du -h "$D/backup-$run.db" | cut -f1)"
    sleep 5
done
wait "$WRK"
echo "wrk during the backups: $(awk '/Requests\/sec/ {print $2 " req/s"}' "$D/wrk.txt")"
kill -TERM "$(cat "$D/serve.pid")"; wait "$(cat "$D/serve.pid")" || true; rm -f "$D/serve.pid"

for run in $(seq 1 "$RUNS"); do
    db=kw_bench_ops_$run; DATABASES+=("$db")
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
    target=$(with_db "$ADMIN_URL" "$db")
    for phase in to_postgres unchanged back_to_sqlite; do
        case $phase in
            to_postgres|unchanged) args=(--from "$SOURCE" --to "$target") ;;
            back_to_sqlite) rm -f "$D/back.db"*; args=(--from "$target" --to "sqlite://$D/back.db") ;;
        esac
        started=$(date +%s.%N)
        "$BIN" copy "${args[@]}" --json >"$D/report.json" 2>/dev/null
        took=$(seconds "$started")
        python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); assert r["equal"], r' "$D/report.json"
        rate=$(python3 -c "print(round($KEYS / $took))")
        echo "$rate" >>"$D/$phase.txt"
        echo "run=$run copy_$phase seconds=$took keys_per_s=$rate"
    done
done
echo "medians: backup_while_serving $(median <"$D/backup.txt") s; copy keys/s: to_postgres $(median <"$D/to_postgres.txt"), unchanged $(median <"$D/unchanged.txt"), back_to_sqlite $(median <"$D/back_to_sqlite.txt")"
