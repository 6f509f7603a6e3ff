"""Fixtures of the console's browser suite: one keyward per test module, Debian's
Chromium driven by Playwright, and pages that fail the test on any console error or
Content-Security-Policy violation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "clients" / "python" / "tests"))

from keyward_server import Keyward, run_keyward  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

SCREENSHOTS = Path(os.environ.get("KEYWARD_CONSOLE_SCREENSHOTS", REPO / "target" / "console-screenshots"))


@dataclass
class Server:
    """The running keyward, with what the tests need to act beside the browser."""

    keyward: Keyward

    @property
    def url(self) -> str:
        return self.keyward.url

    def token(self, user: str) -> str:
        return self.keyward.user_token(user)

    def expired_token(self, user: str) -> str:
        """A JWT signed with the server's secret that expired an hour ago."""
        now = int(time.time())
        segment = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
        signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment({'sub': user, 'iat': now - 7200, 'exp': now - 3600})}"
        secret = self.keyward.env["KEYWARD_JWT_SECRET"].encode()
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    def console_link(self, *token_args: str) -> str:
        """What `keyward token … --console` prints for this server."""
        env = dict(self.keyward.env)
        env["KEYWARD_BIND"] = self.url.removeprefix("http://")
        done = subprocess.run(
            [str(self.keyward.binary), "token", *token_args, "--console"],
            env=env, capture_output=True, text=True, check=True, timeout=30,
        )
        return done.stdout.strip()

    def open_console_link(self, page: Page, user: str) -> None:
        """Opens the console link of `user` in `page` and agrees to sign in as them."""
        page.goto(self.console_link("--user", user))
        page.get_by_role("dialog", name=f"Sign in as {user}?").get_by_role("button", name=f"Sign in as {user}").click()

    def as_user(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token(user)}"})

    def as_service(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.keyward.service_token}"})

    def create_key(self, user: str, name: str, permissions: list[str] | None = None) -> dict:
        with self.as_user(user) as client:
            answer = client.post("/api/api-keys", json={"name": name, "permissions": permissions or []})
            answer.raise_for_status()
            return answer.json()

    def credential(self, name: str, scopes: list[str]) -> str:
        """A service credential holding `scopes`; its secret."""
        with self.as_service() as client:
            answer = client.post("/api/admin/credentials", json={"name": name, "scopes": scopes})
            answer.raise_for_status()
            return str(answer.json()["secret"])

    def verify(self, key: str, permissions: list[str] | None = None) -> str:
        with self.as_service() as client:
            answer = client.post("/api/api-keys/verify", json={"key": key, "permissions": permissions or []})
            answer.raise_for_status()
            return str(answer.json()["code"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_keyward(tmp_path_factory.mktemp("keyward")) as keyward:
        yield Server(keyward)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    chromium = os.environ.get("KEYWARD_TEST_CHROMIUM")
    if not chromium:
        pytest.skip("set KEYWARD_TEST_CHROMIUM to a chromium binary")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watch:
    """Console errors and CSP violations of a page; `allow` names expected failed loads."""

    problems: list[str] = field(default_factory=list)
    allowed: list[tuple[int, str]] = field(default_factory=list)

    def allow(self, status: int, url_part: str) -> None:
        """A request answering `status` whose URL contains `url_part` is expected; the
        browser logs it as a failed resource load, which is not a fault of the page."""
        self.allowed.append((status, url_part))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        text = message.text
        url = (message.location or {}).get("url", "")
        if text.startswith("Failed to load resource") and any(
            f"status of {status}" in text and part in url for status, part in self.allowed
        ):
            return
        if message.type == "warning" and "Content Security Policy" not in text:
            return
        self.problems.append(f"{message.type}: {text} ({url})")


def open_page(browser: Browser, *, color_scheme: str = "light", width: int = 1280, height: int = 800) -> tuple[Page, Watch]:
    context = browser.new_context(
        color_scheme=color_scheme,  # type: ignore[arg-type]
        viewport={"width": width, "height": height},
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()
    watch = Watch()
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.problems.append(f"uncaught: {error}"))
    # CSP violations, reported by the page itself as well as in the console.
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.set_default_timeout(10_000)
    return page, watch


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[tuple[Page, Watch]]:
    page, watch = open_page(browser)
    yield page, watch
    page.context.close()
    assert not watch.problems, "the browser reported:\n" + "\n".join(watch.problems)
