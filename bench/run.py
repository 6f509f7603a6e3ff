#!/usr/bin/env python3
"""keyward's benchmark suite: one command, one table.

    python3 bench/run.py            # everything, 3 runs each (about 20 minutes)
    python3 bench/run.py --quick    # 1 run each, smaller data set: a smoke test

Builds the release binaries, seeds databases through the store (`seed`), then
measures with wrk (installed from Debian's packages if missing) against
`keyward serve` and against `baseline` (the same HTTP stack doing no work), side
by side in the same run. Prints a Markdown table (medians, min-max) and the ratios
checked against the targets in docs/PERFORMANCE.md; `--json FILE` keeps the raw runs.

Needs: Linux, Python 3.9+, root or passwordless apt for wrk and PostgreSQL on a fresh
machine (PostgreSQL runs as a throw-away cluster through .ci/postgres; --no-postgres
skips it).
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
WRK_DIR = ROOT / "bench" / "wrk"
KEYWARD_PORT = 18080
BASELINE_PORT = 18090


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- processes ------------------------------------------------------------------

class Server:
    """A server process (keyward or baseline), optionally pinned to CPUs."""

    def __init__(self, name, argv, port, env, cpus=None, log_path=None):
        self.name, self.port = name, port
        if cpus is not None:
            argv = ["taskset", "-c", cpus] + argv
        self.log = open(log_path or os.devnull, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited at start-up (see {log_path})")
            try:
                status, _ = http_get(port, "/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"{name} did not become ready")
            time.sleep(0.1)
        # taskset execs the server: the pid is the server's.
        self.pid = self.proc.pid

    def memory_kib(self):
        fields = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0])
        return fields

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http_get(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def scrape(port):
    """keyward's /metrics as {name{labels}: value}."""
    _, body = http_get(port, "/metrics")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def metric(values, name):
    return values.get(name, 0.0)


# --- wrk ------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * UNITS[match.group(2)]


def wrk(url, threads, connections, seconds, script=None, env=None, cpus=None):
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        argv += ["-s", str(script)]
    argv.append(url)
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + argv
    env = dict(os.environ, **(env or {}), WRK_THREADS=str(threads))
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": to_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99_ms": to_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
    }
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = errors.group(1) if errors else ""
    return result


def cpu_seconds(pids):
    """User + system CPU time used so far by the processes `pids`."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(data_dir):
    """CPU used so far by a PostgreSQL cluster: the postmaster, its live backends, and
    (through the postmaster's cutime/cstime) the backends that have exited."""
    try:
        with open(Path(data_dir) / "postmaster.pid") as f:
            postmaster = f.readline().strip()
        with open(f"/proc/{postmaster}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == postmaster:
                    children.append(pid)
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK") + cpu_seconds(children)


def ensure_tool(tool, package):
    if shutil.which(tool):
        return
    log(f"installing {package} (Debian package)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(sudo + ["apt-get", "install", "-y", package], check=True, env=env,
                   stdout=subprocess.DEVNULL)


# --- JWTs for key creation --------------------------------------------------------

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret, user):
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "iat": now, "exp": now + 3600}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256)
    return f"{header}.{claims}.{b64(signature.digest())}"


# --- the suite ------------------------------------------------------------------

class Suite:
    def __init__(self, args):
        self.args = args
        if args.work:
            # A kept work directory: its seeded databases (and their pepper) are reused.
            self.work = args.work
            self.work.mkdir(parents=True, exist_ok=True)
            pepper = self.work / "pepper"
            if not pepper.exists():
                pepper.write_text(secrets.token_urlsafe(32))
            self.pepper = pepper.read_text()
        else:
            self.work = Path(tempfile.mkdtemp(prefix="keyward-bench-"))
            self.pepper = secrets.token_urlsafe(32)
        self.jwt_secret = secrets.token_urlsafe(32)
        self.admin_token = secrets.token_urlsafe(32)
        self.results = {}
        self.servers = []
        self.pg_env = None

    # environment and helpers

    def keyward_env(self, database_url):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_")}
        env.update(
            KEYWARD_DATABASE_URL=database_url,
            KEYWARD_PEPPER=self.pepper,
            KEYWARD_JWT_SECRET=self.jwt_secret,
            KEYWARD_ADMIN_TOKEN=self.admin_token,
            KEYWARD_BIND=f"127.0.0.1:{KEYWARD_PORT}",
            KEYWARD_LOG="warn",
            # Every run starts with an empty cache (the cold runs need it; the warm runs
            # fill theirs): the start-up warm-up is measured by bench/warmup-http.sh.
            KEYWARD_CACHE_WARMUP="0",
        )
        return env

    def keyward(self, database_url, cpus=None, tag="keyward"):
        server = Server(tag, [str(RELEASE / "keyward"), "serve"], KEYWARD_PORT,
                        self.keyward_env(database_url), cpus, self.work / f"{tag}.log")
        self.servers.append(server)
        return server

    def baseline(self, cpus=None):
        server = Server("baseline", [str(RELEASE / "baseline"), "--bind",
                                     f"127.0.0.1:{BASELINE_PORT}"],
                        BASELINE_PORT, dict(os.environ), cpus, self.work / "baseline.log")
        self.servers.append(server)
        return server

    def stop(self, server):
        server.stop()
        self.servers.remove(server)

    def seed(self, database_url, keys, keys_out):
        done = Path(f"{keys_out}.seeded")
        # SQLite files outlive a run; the PostgreSQL cluster is thrown away with it.
        reusable = self.args.work and database_url.startswith("sqlite:")
        if reusable and done.exists() and done.read_text().startswith(f"{keys} "):
            log(f"reusing the {keys:,} keys seeded in {keys_out}")
            return done.read_text().split(" ", 1)[1]
        log(f"seeding {keys:,} keys into {database_url.split('@')[-1]}")
        out = subprocess.run(
            [str(RELEASE / "seed"), "--database-url", database_url, "--keys", str(keys),
             "--keys-out", str(keys_out)],
            env=dict(os.environ, KEYWARD_PEPPER=self.pepper), check=True,
            capture_output=True, text=True).stdout
        log(out.strip())
        done.write_text(f"{keys} {out.strip()}")
        return out.strip()

    def verify_load(self, server, keys_file, first, count, threads, seconds, cpus=None):
        """wrk on the verify route; keyward's runs also report what its metrics saw."""
        before = scrape(server.port) if server.name.startswith("keyward") else None
        pg = self.pg_env and self.pg_env.get("KEYWARD_PG_DIR")
        cpu_before = cpu_seconds([server.pid])
        pg_before = postgres_cpu_seconds(pg) if pg else 0
        result = wrk(f"http://127.0.0.1:{server.port}/api/api-keys/verify", threads,
                     self.args.connections, seconds, WRK_DIR / "verify-many.lua",
                     {"KEYS_FILE": str(keys_file), "KEYS_FIRST": str(first),
                      "KEYS_COUNT": str(count), "ADMIN_TOKEN": self.admin_token}, cpus)
        # CPU per request: the server's, and PostgreSQL's while it serves it.
        requests = max(result["requests"], 1)
        result["cpu_us_per_req"] = (cpu_seconds([server.pid]) - cpu_before) / requests * 1e6
        if pg:
            result["pg_cpu_us_per_req"] = (postgres_cpu_seconds(pg) - pg_before) / requests * 1e6
        if before is not None:
            after = scrape(server.port)
            delta = lambda name: metric(after, name) - metric(before, name)
            hits = delta("keyward_cache_hits_total")
            misses = delta("keyward_cache_misses_total")
            valid = delta('keyward_verify_total{code="VALID"}')
            # Out of what the server answered (wrk leaves out replies still in flight).
            answered = sum(metric(after, name) - metric(before, name)
                           for name in after if name.startswith("keyward_verify_total{"))
            result["cache_hit_ratio"] = hits / max(hits + misses, 1)
            result["valid_ratio"] = valid / max(answered, 1)
        if result["non_2xx"] or result["socket_errors"]:
            log(f"warning: {server.name}: {result['non_2xx']} non-2xx, "
                f"socket errors: {result['socket_errors'] or 'none'}")
        return result

    def warm_up(self, server, keys_file, first, count, cpus=None):
        """Caches the hot set, then lets the usage flush that follows its first
        uses go by: the runs measure the steady state, in which a key's use is
        written once per resolution period (60 s), not on every run."""
        threads = 1 if cpus else 2
        self.verify_load(server, keys_file, first, count, threads, 2, cpus=cpus)
        time.sleep(2.5)

    def record(self, name, result):
        self.results.setdefault(name, []).append(result)
        extra = ""
        if "cache_hit_ratio" in result:
            extra = (f", cache hits {result['cache_hit_ratio']:.1%}, "
                     f"valid {result['valid_ratio']:.1%}")
        if "cpu_us_per_req" in result:
            extra += f", server CPU {result['cpu_us_per_req']:.1f} µs/req"
        if "pg_cpu_us_per_req" in result:
            extra += f", PostgreSQL CPU {result['pg_cpu_us_per_req']:.1f} µs/req"
        log(f"{name}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms{extra}")

    # scenarios

    def warm(self, small_db, small_keys, large_db, large_keys):
        a = self.args
        hot = min(a.small_keys, 10_000)
        # Pinned: servers on CPU 0, wrk (one thread) on CPU 1.
        log("warm cache, pinned (server on CPU 0, wrk on CPU 1)")
        k = self.keyward(small_db, cpus="0")
        b = self.baseline(cpus="0")
        self.warm_up(k, small_keys, 0, hot, cpus="1")
        self.verify_load(b, small_keys, 0, hot, 1, 2, cpus="1")
        for _ in range(a.runs):
            for name, server in (("warm_pinned_keyward", k), ("warm_pinned_baseline", b)):
                self.record(name, self.verify_load(server, small_keys, 0, hot, 1,
                                                   a.duration, cpus="1"))
        self.stop(k)
        self.stop(b)

        # Unpinned: everything shares both CPUs; 10k and 1M keys stored, same hot set.
        log("warm cache, unpinned; 10k keys stored vs 1M keys stored")
        b = self.baseline()
        for _ in range(a.runs):
            for name, db, keys in (("warm_keyward", small_db, small_keys),
                                   ("warm_keyward_large", large_db, large_keys)):
                k = self.keyward(db)
                self.warm_up(k, keys, 0, hot)
                self.record(name, self.verify_load(k, keys, 0, hot, 2, a.duration))
                self.stop(k)
            self.record("warm_baseline", self.verify_load(b, small_keys, 0, hot, 2, a.duration))
        self.stop(b)

    def cold(self, name, db, keys_file, total_keys, warm_name=None):
        """Every key presented once, on a fresh server (empty cache) per run."""
        a = self.args
        log(f"cold cache: {name}")
        # Key slices are disjoint between runs: no run sees a key an earlier one read.
        # The warm run needs only its hot set; the cold runs share the rest, and are
        # short enough that no key is presented twice.
        hot = min(total_keys // (a.runs + 1), 10_000) if warm_name else 0
        per_run = (total_keys - hot) // a.runs
        for run in range(a.runs):
            k = self.keyward(db)
            wrk(f"http://127.0.0.1:{k.port}/healthz", 2, a.connections, 1)  # connections
            # One wrk thread: wrk starts each thread as soon as its script has built its
            # requests, and counts from when the last has, so with two threads over a
            # large slice the first one's head start inflated the rate. One thread
            # sends more than the cold path answers.
            result = self.verify_load(k, keys_file, run * per_run, per_run, 1, a.cold_duration)
            if result["requests"] > per_run:
                log(f"warning: {name}: {result['requests']} requests for {per_run} keys; "
                    "some were repeats (seed more keys or shorten --duration)")
            result.update({f"mem_{k_}": v for k_, v in k.memory_kib().items()})
            self.record(name, result)
            self.stop(k)
        if warm_name:
            # The warm path on the same database, same settings, for the ratio.
            k = self.keyward(db)
            first = a.runs * per_run
            self.warm_up(k, keys_file, first, hot)
            for _ in range(a.runs):
                self.record(warm_name, self.verify_load(k, keys_file, first, hot, 2, a.duration))
            self.stop(k)

    def memory(self, db, keys_file, total_keys):
        """RSS with many keys stored, the cache filled to its default capacity, under load."""
        a = self.args
        log("memory: fill the cache past its default capacity (100,000), then load it")
        k = self.keyward(db)
        start = k.memory_kib()["VmRSS"]
        fill = min(total_keys, 150_000)
        samples = []
        deadline = time.time() + 120
        # Present `fill` distinct keys (several wrk rounds if needed), then hot load.
        result = self.verify_load(k, keys_file, 0, fill, 2, max(a.duration, 20))
        while scrape(k.port).get("keyward_cache_entries", 0) < min(fill, 100_000) * 0.99 \
                and time.time() < deadline and total_keys >= 100_000:
            result = self.verify_load(k, keys_file, 0, fill, 2, 10)
        samples.append(k.memory_kib()["VmRSS"])
        loaded = self.verify_load(k, keys_file, 0, fill, 2, a.duration)
        samples.append(k.memory_kib()["VmRSS"])
        entries = scrape(k.port).get("keyward_cache_entries", 0)
        mem = k.memory_kib()
        self.results["memory"] = [{
            "rss_idle_kib": start, "rss_loaded_kib": max(samples), "hwm_kib": mem["VmHWM"],
            "cache_entries": entries, "rps_during": loaded["rps"], "keys_stored": total_keys,
        }]
        log(f"memory: idle {start / 1024:.0f} MiB, under load {max(samples) / 1024:.0f} MiB, "
            f"peak {mem['VmHWM'] / 1024:.0f} MiB, {entries:,.0f} cache entries")
        self.stop(k)

    def usage_writes(self, db, keys_file):
        """last_used_at: database writes for 10,000 verifications of 1,000 keys in 10 s."""
        log("last_used_at: 10,000 verifications of 1,000 keys over 10 s")
        with open(keys_file) as f:
            keys = [next(f).strip() for _ in range(1_000)]
        k = self.keyward(db)
        before = scrape(k.port)
        conn = http.client.HTTPConnection("127.0.0.1", k.port)
        headers = {"Authorization": f"Bearer {self.admin_token}",
                   "Content-Type": "application/json"}
        started = time.monotonic()
        valid = 0
        for i in range(10_000):
            # Paced: 1,000 per second, each key once per second.
            wait = started + i / 1_000 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            body = json.dumps({"key": keys[i % 1_000], "permissions": ["READ_GRAPH"]})
            conn.request("POST", "/api/api-keys/verify", body, headers)
            valid += json.loads(conn.getresponse().read())["valid"]
        elapsed = time.monotonic() - started
        time.sleep(2.5)  # the last flush (every second)
        after = scrape(k.port)
        delta = lambda name: int(metric(after, name) - metric(before, name))
        self.results["usage"] = [{
            "verifications": 10_000, "valid": valid, "seconds": round(elapsed, 2),
            "flushes": delta("keyward_usage_flushes_total"),
            "rows_written": delta("keyward_usage_keys_flushed_total"),
            "failed_flushes": delta("keyward_usage_flush_failures_total"),
        }]
        log(f"last_used_at: {self.results['usage'][0]}")
        self.stop(k)

    def creation(self):
        a = self.args
        log("key creation over HTTP (fresh SQLite database per run)")
        tokens = self.work / "tokens"
        tokens.write_text("".join(jwt(self.jwt_secret, f"load-{i}") + "\n"
                                  for i in range(1_000)))
        for run in range(a.runs):
            db = f"sqlite://{self.work}/create-{run}.db"
            k = self.keyward(db)
            result = wrk(f"http://127.0.0.1:{k.port}/", 2, 16, a.duration,
                         WRK_DIR / "create.lua", {"TOKENS_FILE": str(tokens)})
            self.record("create", result)
            if result["non_2xx"]:
                log(f"warning: {result['non_2xx']} creates failed")
            self.stop(k)

    def in_process(self):
        log("in-process verification (divan)")
        runs = []
        for _ in range(self.args.runs):
            out = subprocess.run(["cargo", "bench", "--locked", "-p", "keyward-bench",
                                  "--bench", "verify", "--bench", "http", "--",
                                  "--sample-count", "500", "--sample-size", "100"], cwd=ROOT,
                                 check=True, capture_output=True, text=True).stdout
            runs.append(parse_divan(out))
        self.results["in_process"] = runs
        log(f"in-process: {runs[-1]}")

    # postgres

    def start_postgres(self):
        ensure_tool("taskset", "util-linux")
        self.pg_env = dict(os.environ, KEYWARD_PG_DIR=str(self.work / "pg"),
                           KEYWARD_PG_PORT=str(free_port()))
        # The cluster's files must be reachable by the postgres user.
        os.chmod(self.work, 0o755)
        url = subprocess.run([str(ROOT / ".ci" / "postgres"), "start"], env=self.pg_env,
                             check=True, capture_output=True, text=True).stdout.strip()
        return url

    def postgres_sizes(self, url):
        """The keys' table and its indexes on disk, after VACUUM ANALYZE."""
        subprocess.run(["psql", url, "-qAtc", "VACUUM ANALYZE api_keys"], check=True)
        out = subprocess.run(
            ["psql", url, "-qAtc",
             "SELECT pg_relation_size('api_keys'), pg_indexes_size('api_keys'), "
             "pg_total_relation_size('api_keys'), "
             "pg_relation_size('api_keys_key_hash'), pg_database_size(current_database())"],
            check=True, capture_output=True, text=True).stdout.strip()
        table, indexes, total, hash_index, database = map(int, out.split("|"))
        sizes = {"table": table, "indexes": indexes, "total": total,
                 "hash_index": hash_index, "database": database}
        log(f"PostgreSQL: {sizes}")
        return sizes

    def stop_postgres(self):
        if self.pg_env:
            subprocess.run([str(ROOT / ".ci" / "postgres"), "stop"], env=self.pg_env,
                           check=False, capture_output=True)
            self.pg_env = None

    def run(self):
        a = self.args
        ensure_tool("wrk", "wrk")
        ensure_tool("taskset", "util-linux")
        if os.cpu_count() < 2:
            raise SystemExit("the pinned runs need two CPUs")
        log("building release binaries")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "keyward",
                        "-p", "keyward-bench"], cwd=ROOT, check=True)
        w = self.work
        small_db, small_keys = f"sqlite://{w}/small.db", w / "small.keys"
        large_db, large_keys = f"sqlite://{w}/large.db", w / "large.keys"
        want = lambda group: not a.only or group in a.only
        if want("warm") or want("memory") or want("usage"):
            self.seed(small_db, a.small_keys, small_keys)
        if want("warm") or want("cold_sqlite") or want("memory"):
            self.results["seed_large"] = self.seed(large_db, a.large_keys, large_keys)
        if want("warm"):
            self.warm(small_db, small_keys, large_db, large_keys)
        if want("cold_sqlite"):
            self.cold("cold_sqlite", large_db, large_keys, a.large_keys, warm_name="warm_sqlite")
        if not a.no_postgres and want("cold_postgres"):
            pg_url = self.start_postgres()
            pg_keys = w / "pg.keys"
            self.results["seed_postgres"] = self.seed(pg_url, a.postgres_keys, pg_keys)
            self.results["postgres_bytes"] = self.postgres_sizes(pg_url)
            self.cold("cold_postgres", pg_url, pg_keys, a.postgres_keys,
                      warm_name="warm_postgres")
            self.stop_postgres()
        if want("memory"):
            self.memory(large_db, large_keys, a.large_keys)
        if want("usage"):
            self.usage_writes(small_db, small_keys)
        if want("creation"):
            self.creation()
        if not a.no_in_process and want("in_process"):
            self.in_process()
        self.scripts(want)

    def scripts(self, want):
        """The scenarios kept as scripts of their own (bench/*.sh): their lines are
        printed after the table as they are. Those comparing with a build from before
        a change run when --before names one."""
        a = self.args
        new = str(ROOT / "target" / "release" / "keyward")
        load = str(ROOT / "target" / "release" / "sockload")
        seed = str(ROOT / "target" / "release" / "seed")
        runs, secs = str(a.runs), str(a.duration)
        both = f"{new},{a.before}" if a.before else new
        plan = [
            ("cache_memory", ["cache-memory.sh", new, seed, "100000", "1000000"], []),
            ("read_through", ["read-through.sh", both, seed, runs, secs], []),
            ("unix_socket", ["unix-socket.sh", new, load, runs, secs], [("nginx", "nginx")]),
            ("shared_limits", ["limits-http.sh", both, runs, secs],
             [("redis-server", "redis-server")]),
        ]
        if a.before:
            plan.append(("features", ["features-http.sh", new, a.before, runs, secs], []))
        for name, command, tools in plan:
            if a.only and name not in a.only:
                continue
            for tool, package in tools:
                ensure_tool(tool, package)
            log(f"{name}: bench/{command[0]}")
            out = subprocess.run(["bash", str(ROOT / "bench" / command[0])] + command[1:],
                                 cwd=ROOT, check=True, capture_output=True, text=True).stdout
            self.results.setdefault("scripts", {})[name] = out.splitlines()

    def cleanup(self):
        for server in list(self.servers):
            server.stop()
        self.stop_postgres()
        if not self.args.keep and not self.args.work:
            shutil.rmtree(self.work, ignore_errors=True)


def parse_divan(out):
    """{bench name: median ns} from divan's table."""
    medians, parents = {}, []
    for line in out.splitlines():
        match = re.match(r"^([│ ]*)[├╰]─ (\S+)\s+(.*)$", line)
        if not match:
            continue
        depth = len(match.group(1)) // 3
        parents = parents[:depth] + [match.group(2)]
        cells = [c.strip() for c in match.group(3).split("│")]
        if len(cells) >= 3 and cells[2]:
            value, unit = cells[2].split()
            scale = {"ps": 1e-3, "ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
            medians["/".join(parents)] = float(value) * scale
    return medians


# --- the report -----------------------------------------------------------------

def summary(values):
    return statistics.median(values), min(values), max(values)


def fmt_range(values, spec="{:,.0f}"):
    med, lo, hi = summary(values)
    if len(values) == 1:
        return spec.format(med)
    return f"{spec.format(med)} ({spec.format(lo)}–{spec.format(hi)})"


def cpu_cell(runs):
    """The server's CPU per request (and PostgreSQL's, when it served)."""
    cpu = [r["cpu_us_per_req"] for r in runs if "cpu_us_per_req" in r]
    pg = [r["pg_cpu_us_per_req"] for r in runs if "pg_cpu_us_per_req" in r]
    cell = f"{statistics.median(cpu):.1f}" if cpu else "–"
    if pg:
        cell += f" (+ PostgreSQL {statistics.median(pg):.1f})"
    return cell


def report(results, args):
    lines = []
    out = lines.append
    out(f"Runs per figure: {args.runs}; wrk {args.connections} connections, "
        f"{args.duration} s per run. Median (min–max).\n")
    out("| scenario | req/s | p50 ms | p99 ms | cache hits | valid | server CPU µs/req |")
    out("|---|---|---|---|---|---|---|")
    names = {
        "warm_pinned_keyward": "verify, warm, pinned (server CPU 0, wrk CPU 1)",
        "warm_pinned_baseline": "baseline, pinned",
        "warm_keyward": "verify, warm, unpinned, 10k keys stored",
        "warm_keyward_large": f"verify, warm, unpinned, {args.large_keys:,} keys stored",
        "warm_baseline": "baseline, unpinned",
        "cold_sqlite": f"verify, cold, SQLite, {args.large_keys:,} keys stored",
        "cold_postgres": f"verify, cold, PostgreSQL, {args.postgres_keys:,} keys stored",
        "warm_sqlite": "verify, warm, SQLite, same database and settings as cold",
        "warm_postgres": "verify, warm, PostgreSQL (same server settings)",
        "create": "key creation, SQLite (keys/s)",
    }
    for key, label in names.items():
        runs = results.get(key)
        if not runs:
            continue
        hit = [r["cache_hit_ratio"] for r in runs if "cache_hit_ratio" in r]
        valid = [r["valid_ratio"] for r in runs if "valid_ratio" in r]
        out(f"| {label} | {fmt_range([r['rps'] for r in runs])} "
            f"| {fmt_range([r['p50_ms'] for r in runs], '{:.2f}')} "
            f"| {fmt_range([r['p99_ms'] for r in runs], '{:.2f}')} "
            f"| {f'{statistics.median(hit):.1%}' if hit else '–'} "
            f"| {f'{statistics.median(valid):.1%}' if valid else '–'} "
            f"| {cpu_cell(runs)} |")

    def med(key, field="rps"):
        runs = results.get(key)
        return statistics.median(r[field] for r in runs) if runs else None

    checks = []

    def check(label, value, target, ok, unit=""):
        if value is None:
            return
        checks.append(f"| {label} | {value}{unit} | {target} | {'met' if ok else 'NOT MET'} |")

    for suffix, label in (("_pinned", "pinned"), ("", "unpinned")):
        k, b = med(f"warm{suffix}_keyward"), med(f"warm{suffix}_baseline")
        if k and b:
            check(f"warm verify / baseline req/s, {label}", f"{k / b:.0%}", "≥ 80 %", k / b >= 0.8)
            kp, bp = med(f"warm{suffix}_keyward", "p99_ms"), med(f"warm{suffix}_baseline", "p99_ms")
            check(f"warm verify p99 / baseline p99, {label}", f"{kp / bp:.2f}×", "≤ 1.5×",
                  kp / bp <= 1.5)
    # The warm figure measured next to the cold runs, on the same database.
    cold, warm_large = med("cold_sqlite"), med("warm_sqlite") or med("warm_keyward_large")
    if cold and warm_large:
        check("cold / warm req/s, SQLite (same database)", f"{cold / warm_large:.0%}", "≥ 50 %",
              cold / warm_large >= 0.5)
    cold_pg, warm_pg = med("cold_postgres"), med("warm_postgres")
    if cold_pg and warm_pg:
        check("cold / warm req/s, PostgreSQL", f"{cold_pg / warm_pg:.0%}", "≥ 35 %",
              cold_pg / warm_pg >= 0.35)
    small, large = med("warm_keyward"), med("warm_keyward_large")
    if small and large:
        check(f"warm req/s, {args.large_keys:,} keys / 10k keys stored", f"{large / small:.1%}",
              "≥ 90 %", large / small >= 0.9)
    if results.get("in_process"):
        runs = results["in_process"]
        names = sorted({n for r in runs for n in r})
        for name in names:
            ns = statistics.median(r[name] for r in runs if name in r)
            target, ok = "–", True
            if name in ("warm_cache_hit", "warm_cache_hit_with_permission_names"):
                target, ok = "≤ 2 µs", ns <= 2_000
            elif name.startswith("malformed_rejection/"):
                target, ok = "≤ 200 ns", ns <= 200
            check(f"in-process {name}", f"{ns:,.0f}", target, ok, " ns")
    if results.get("usage"):
        u = results["usage"][0]
        per_flush = u["rows_written"] / max(u["flushes"], 1)
        check("last_used_at writes for 10,000 verifications of 1,000 keys in 10 s",
              f"{u['flushes']} batched writes, {u['rows_written']:,} rows "
              f"(≤ {per_flush:,.0f} rows per write)",
              "≤ 1 row per key per flush", per_flush <= 1_000 and u["failed_flushes"] == 0)
    if results.get("memory"):
        m = results["memory"][0]
        mib = m["hwm_kib"] / 1024
        check(f"peak RSS, {m['keys_stored']:,} keys stored, {m['cache_entries']:,.0f} cached, "
              f"under load", f"{mib:.0f}", "≤ 150 MB", mib * 1.048576 <= 150, " MiB")
    create = med("create")
    if create:
        check("key creation over HTTP, SQLite", f"{create:,.0f}", "≥ 1,000 keys/s",
              create >= 1_000, " keys/s")
    out("")
    out("| target | measured (median) | target | |")
    out("|---|---|---|---|")
    lines.extend(checks)
    if results.get("postgres_bytes"):
        b, n = results["postgres_bytes"], args.postgres_keys
        lines.append(f"\nPostgreSQL, {n:,} keys: table {b['table'] / n:.0f} B/key, indexes "
                     f"{b['indexes'] / n:.0f} B/key (hash index {b['hash_index'] / n:.0f}), "
                     f"database {b['database'] / 2**20:,.0f} MiB")
    for key in ("seed_large", "seed_postgres"):
        if results.get(key):
            out(f"\n{key}: {results[key]}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--cold-duration", type=int, default=6,
                        help="seconds per cold run (every key presented once: the runs "
                             "must not outlast the seeded keys)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--small-keys", type=int, default=10_000)
    parser.add_argument("--large-keys", type=int, default=1_000_000)
    parser.add_argument("--postgres-keys", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="1 run of 5 s each, 200k keys: checks the suite works")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--work", type=Path,
                        help="work directory to keep and reuse (seeded SQLite databases)")
    parser.add_argument("--only", type=lambda v: set(v.split(",")), default=set(),
                        help="comma-separated: warm, cold_sqlite, cold_postgres, memory, "
                             "usage, creation, in_process, cache_memory, read_through, "
                             "unix_socket, shared_limits, features")
    parser.add_argument("--before", type=Path,
                        help="a keyward binary built from before a change (e.g. of 9e8d2e1, "
                             "before service credentials, webhooks, renewing credits, user "
                             "pools and networks): compared side by side with this build")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration, args.cold_duration = 1, 5, 3
        args.large_keys, args.postgres_keys = 200_000, 100_000
    suite = Suite(args)
    try:
        suite.run()
    finally:
        suite.cleanup()
    table = report(suite.results, args)
    print(table)
    for name, lines in suite.results.get("scripts", {}).items():
        print(f"\n{name}:")
        print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "results": suite.results}, indent=2, default=str))


if __name__ == "__main__":
    main()
