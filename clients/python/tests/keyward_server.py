"""A throw-away keyward server for the tests, started as .ci/schemathesis does.

The binary is ``$KEYWARD_BIN``, else the repository's ``target/debug/keyward``. It runs
on a fresh SQLite database in a temporary directory, on a free 127.0.0.1 port that it
picks itself (``KEYWARD_BIND=127.0.0.1:0``) and reports in its JSON log.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
READY_TIMEOUT = 60.0


def keyward_binary() -> Path:
    configured = os.environ.get("KEYWARD_BIN")
    return Path(configured).resolve() if configured else REPO / "target" / "debug" / "keyward"


@dataclass
class Keyward:
    """A running keyward: its URL, its service token, and user tokens on demand."""

    url: str
    service_token: str
    binary: Path
    env: Mapping[str, str]
    _tokens: dict[str, str] = field(default_factory=dict)

    def user_token(self, user: str) -> str:
        """A JWT for ``user``, minted by ``keyward token`` with the server's secret."""
        if user not in self._tokens:
            done = subprocess.run(
                [str(self.binary), "token", "--user", user, "--ttl", "1h"],
                env=dict(self.env),
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
            self._tokens[user] = done.stdout.strip()
        return self._tokens[user]


def _address(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        address = record.get("address") if isinstance(record, dict) else None
        if isinstance(address, str):
            return address
    return None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def run_keyward(workdir: Path, **settings: str) -> Iterator[Keyward]:
    """Runs keyward in ``workdir`` until the block ends. ``settings``: more ``KEYWARD_*``
    variables (without the prefix), e.g. ``USER_WRITE_LIMIT="3"``."""
    binary = keyward_binary()
    if not binary.is_file():
        raise RuntimeError(
            f"no keyward binary at {binary}: build it (cargo build) or set KEYWARD_BIN"
        )
    # Nothing from the caller's environment (a PostgreSQL URL, a key prefix...) leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_")}
    env.update(
        KEYWARD_BIND="127.0.0.1:0",
        KEYWARD_DATABASE_URL=f"sqlite://{workdir}/keyward.db",
        KEYWARD_JWT_SECRET=secrets.token_urlsafe(32),
        KEYWARD_ADMIN_TOKEN=secrets.token_urlsafe(32),
        KEYWARD_PEPPER=secrets.token_urlsafe(32),
        KEYWARD_LOG_FORMAT="json",
        KEYWARD_LOG="info",
        # Tests make many changes a minute; the limit is tested on a server of its own.
        KEYWARD_USER_WRITE_LIMIT="0",
    )
    env.update({f"KEYWARD_{name}": value for name, value in settings.items()})
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "serve"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        url = None
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"keyward exited with {process.returncode}; its log:\n{log.read_text()}"
                )
            url = url or _address(log)
            if url and _ready(url):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"keyward not ready after {READY_TIMEOUT:.0f} s; its log:\n{log.read_text()}"
                )
            time.sleep(0.05)
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"keyward listens on {url}, not on 127.0.0.1")
        yield Keyward(url=url, service_token=env["KEYWARD_ADMIN_TOKEN"], binary=binary, env=env)
    finally:
        process.kill()
        process.wait(timeout=30)
