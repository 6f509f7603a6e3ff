#!/usr/bin/env python3
"""Revocation propagation between two keyward instances on one PostgreSQL.

Starts two `keyward serve` processes (A and B) on the given database, then for each
trial: creates a key through A, verifies it through B (so B caches it), revokes it
through A, and measures the time from A's 200 to B's first REVOKED answer, polling B
as fast as one keep-alive connection allows. Prints p50/p90/p99/max in milliseconds.

    python3 bench/propagation.py --database-url postgres://USER:PASSWORD@HOST:5432/DATABASE

Standard library only. Build the binary first: cargo build --release.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time


def start(binary, env):
    proc = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found = threading.Event()
    address = []

    def read():
        for line in proc.stderr:
            match = re.search(r"http://(127\.0\.0\.1:\d+)", line)
            if match and not found.is_set():
                address.append(match.group(1))
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(30):
        proc.kill()
        sys.exit("the server did not start")
    return proc, address[0]


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, address):
        host, port = address.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def call(self, method, path, token, body=None):
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.status != 200:
            sys.exit(f"{method} {path}: {response.status} {payload!r}")
        return json.loads(payload)


def percentile(sorted_values, p):
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--binary", default="target/release/keyward")
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_")}
    env.update(
        KEYWARD_DATABASE_URL=args.database_url,
        KEYWARD_PEPPER=secrets.token_urlsafe(32),
        KEYWARD_JWT_SECRET=secrets.token_urlsafe(32),
        KEYWARD_ADMIN_TOKEN=secrets.token_urlsafe(24),
        KEYWARD_LOG="warn,keyward=info",
    )
    a, a_address = start(args.binary, env)
    b, b_address = start(args.binary, env)
    try:
        token = subprocess.run(
            [args.binary, "token", "--user", "propagation-bench"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()
        admin = env["KEYWARD_ADMIN_TOKEN"]
        to_a, to_b = Client(a_address), Client(b_address)
        # Let B's change feed subscribe before measuring.
        time.sleep(1)
        samples, polls = [], []
        for _ in range(args.trials):
            created = to_a.call("POST", "/api/api-keys", token, {"name": "bench", "permissions": []})
            key, key_id = created["plain_text_key"], created["api_key"]["id"]
            verdict = to_b.call("POST", "/api/api-keys/verify", admin, {"key": key})
            assert verdict["code"] == "VALID", verdict
            to_a.call("DELETE", f"/api/api-keys/{key_id}", token)
            revoked_at = time.perf_counter()
            count = 0
            while True:
                count += 1
                verdict = to_b.call("POST", "/api/api-keys/verify", admin, {"key": key})
                if verdict["code"] == "REVOKED":
                    break
                if time.perf_counter() - revoked_at > 5:
                    sys.exit("B still answers VALID 5 s after the revocation")
            samples.append((time.perf_counter() - revoked_at) * 1000)
            polls.append(count)
        samples.sort()
        print(f"trials: {len(samples)}  (B answered REVOKED on its first poll in "
              f"{sum(1 for p in polls if p == 1)} of them)")
        print("propagation from A's 200 to B's first REVOKED, ms:")
        print(f"  p50 {percentile(samples, 50):.3f}  p90 {percentile(samples, 90):.3f}  "
              f"p99 {percentile(samples, 99):.3f}  max {samples[-1]:.3f}  "
              f"mean {statistics.mean(samples):.3f}")
    finally:
        for proc in (a, b):
            proc.terminate()
        for proc in (a, b):
            proc.wait(10)


if __name__ == "__main__":
    main()
