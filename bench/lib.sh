# Shared by bench/*-http.sh (sourced): throw-away secrets, the plaintexts out of
# `keyward keys create --json` output, and waiting for a server to be ready.

# Fresh secrets for a benchmark's own server (nothing they protect outlives it).
bench_secrets() {
    KEYWARD_PEPPER=$(head -c 32 /dev/urandom | base64)
    KEYWARD_JWT_SECRET=$(head -c 32 /dev/urandom | base64)
    KEYWARD_ADMIN_TOKEN=bench-admin-token-0123456789abcdef0123
    export KEYWARD_PEPPER KEYWARD_JWT_SECRET KEYWARD_ADMIN_TOKEN
}

# plain_keys FILE: the plain_text_key of each JSON object in FILE, one per line.
plain_keys() {
    python3 - "$1" <<'PY'
import json, sys
text, decoder, i = open(sys.argv[1]).read(), json.JSONDecoder(), 0
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    created, i = decoder.raw_decode(text, i)
    print(created["plain_text_key"])
PY
}

# wait_ready PORT: until /readyz answers 200 (15 s at most).
wait_ready() {
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
        sleep 0.05
    done
    echo "127.0.0.1:$1 never became ready" >&2
    return 1
}
