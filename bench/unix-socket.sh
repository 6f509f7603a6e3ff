#!/usr/bin/env bash
# keyward over loopback TCP against a Unix socket (KEYWARD_BIND=unix:…), alternating in
# one run, warm keys:
#   - the bare verify route, with one client for both (`sockload`: wrk has no Unix
#     sockets), 32 connections;
#   - forward auth through nginx (auth_request, as docs/INTEGRATIONS.md configures it:
#     a connection to keyward per check), and the same with kept-alive upstream
#     connections; wrk with 32 connections sends one valid key to nginx, which serves
#     a static file once keyward says yes.
# keyward is pinned to CPU 0; the load generator and nginx share CPU 1.
#
#   bench/unix-socket.sh target/release/keyward target/release/sockload [runs] [seconds]
#
# Needs wrk, nginx, taskset and curl; listens on 127.0.0.1:18201 (keyward over TCP),
# 127.0.0.1:18280-18281 (nginx) and a socket in a temporary directory; leaves nothing
# behind.
set -euo pipefail
BIN=$(realpath "$1"); LOAD=$(realpath "$2"); RUNS=${3:-3}; SECS=${4:-8}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
. "$(dirname "$0")/lib.sh"
D=$(mktemp -d)
stop_all() {
    kill -TERM "$(cat "$D/pid" 2>/dev/null)" 2>/dev/null || true
    kill -TERM "$(cat "$D/nginx.pid" 2>/dev/null)" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap stop_all EXIT
cd "$D"
bench_secrets
export KEYWARD_DATABASE_URL=sqlite://$D/k.db KEYWARD_LOG=warn
"$BIN" migrate >/dev/null
for i in $(seq 1 100); do
    "$BIN" keys create --user "u$((i % 10))" --name "k$i" -p READ_GRAPH --json
done >keys.json
plain_keys keys.json >keys.txt
KEY=$(head -1 keys.txt)
SOCKET=$D/keyward.sock
mkdir -p www && echo ok >www/index.html
# nginx: one server per way of reaching keyward, each asking it per request.
cat >nginx.conf <<EOF
worker_processes 1;
pid $D/nginx.pid;
error_log $D/nginx.log warn;
$([ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $D/body; proxy_temp_path $D/proxy; fastcgi_temp_path $D/fastcgi;
    uwsgi_temp_path $D/uwsgi; scgi_temp_path $D/scgi;
    upstream keyward_tcp { server 127.0.0.1:18201; keepalive 32; }
    upstream keyward_unix { server unix:$SOCKET; keepalive 32; }
    server {
        listen 127.0.0.1:18280;
        root $D/www;
        location / { auth_request /_auth; }
        location = /_auth {
            internal;
            proxy_pass \$keyward_auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Keyward-Proxy-Token "$KEYWARD_ADMIN_TOKEN";
            proxy_set_header X-Keyward-Permissions "READ_GRAPH";
        }
        # Which keyward: set per run by the request's port below (the same file).
        set \$keyward_auth http://127.0.0.1:18201/api/auth;
        if (-f $D/over-unix) { set \$keyward_auth http://unix:$SOCKET:/api/auth; }
    }
    server {
        listen 127.0.0.1:18281;
        root $D/www;
        location / { auth_request /_auth; }
        location = /_auth {
            internal;
            proxy_pass http://\$keyward_pool/api/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Keyward-Proxy-Token "$KEYWARD_ADMIN_TOKEN";
            proxy_set_header X-Keyward-Permissions "READ_GRAPH";
        }
        set \$keyward_pool keyward_tcp;
        if (-f $D/over-unix) { set \$keyward_pool keyward_unix; }
    }
}
EOF
taskset -c 1 "$NGINX" -p "$D" -c nginx.conf -g "daemon on;" 2>/dev/null
for _ in $(seq 100); do [ -s nginx.pid ] && break; sleep 0.05; done
serve() {
    taskset -c 0 "$BIN" serve --bind "$1" 2>/dev/null &
    echo $! >pid
    for _ in $(seq 300); do
        if [ "${1#unix:}" != "$1" ]; then
            curl -sf --unix-socket "$SOCKET" http://localhost/readyz >/dev/null && return 0
        else
            curl -sf "http://$1/readyz" >/dev/null && return 0
        fi
        sleep 0.05
    done
    echo "keyward on $1 never became ready" >&2
    return 1
}
wrk_nginx() {
    taskset -c 1 wrk -t1 -c32 -d"$1"s --latency -H "X-API-Key: $KEY" "http://127.0.0.1:$2/" |
        awk '/Requests\/sec/ {rps=$2} $1 == "Latency" && !mean {mean=$2} $1 == "99%" {p99=$2}
             /Non-2xx/ {bad=$NF} END {print "req/s=" rps " mean=" mean " p99=" p99 " non_2xx=" (bad ? bad : 0)}'
}
for run in $(seq 1 "$RUNS"); do
    for via in tcp unix; do
        if [ "$via" = unix ]; then
            bind=unix:$SOCKET; touch over-unix; target=(--unix "$SOCKET")
        else
            bind=127.0.0.1:18201; rm -f over-unix; target=(--tcp 127.0.0.1:18201)
        fi
        serve "$bind"
        taskset -c 1 "$LOAD" "${target[@]}" --keys keys.txt --token "$KEYWARD_ADMIN_TOKEN" \
            --connections 32 --seconds 2 >/dev/null
        echo "via=$via route=verify run=$run $(taskset -c 1 "$LOAD" "${target[@]}" --keys keys.txt \
            --token "$KEYWARD_ADMIN_TOKEN" --connections 32 --seconds "$SECS")"
        wrk_nginx 2 18280 >/dev/null
        echo "via=$via route=nginx-auth-request run=$run $(wrk_nginx "$SECS" 18280)"
        wrk_nginx 2 18281 >/dev/null
        echo "via=$via route=nginx-auth-request-keepalive run=$run $(wrk_nginx "$SECS" 18281)"
        kill -TERM "$(cat pid)"
        wait "$(cat pid)" 2>/dev/null || true
    done
done
