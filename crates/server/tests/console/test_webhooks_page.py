"""The operator's webhooks page: endpoints with their state, adding one (its signing
secret shown once), and the delivery log with each attempt's answer or error. One
endpoint is a local consumer answering 204, the other a closed port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, expect

from conftest import Server, open_page
from keyward_server import run_keyward
from test_screenshots import SIZES, shoot


class Consumer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1"}
    with run_keyward(tmp_path_factory.mktemp("keyward"), **settings) as keyward:
        yield Server(keyward)


@pytest.fixture(scope="module")
def endpoints(server: Server) -> Iterator[dict[str, str]]:
    consumer = ThreadingHTTPServer(("127.0.0.1", 0), Consumer)
    threading.Thread(target=consumer.serve_forever, daemon=True).start()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    with server.as_service() as client:
        billing = client.post("/api/admin/webhooks", json={
            "url": f"http://127.0.0.1:{consumer.server_port}/keyward-events",
            "events": ["api_key.created", "api_key.revoked", "api_key.credits_exhausted"],
            "description": "Billing",
        })
        billing.raise_for_status()
        sessions = client.post("/api/admin/webhooks", json={
            "url": f"http://127.0.0.1:{closed_port}/hooks/keys",
            "events": ["api_key.revoked", "api_key.suspended"],
            "description": "Session cache (down)",
        })
        sessions.raise_for_status()
    key = server.create_key("alice", "CI pipeline", ["READ_GRAPH"])
    with server.as_user("alice") as client:
        client.post(f"/api/api-keys/{key['api_key']['id']}/suspend").raise_for_status()
        client.delete(f"/api/api-keys/{key['api_key']['id']}").raise_for_status()
    time.sleep(3)  # delivered to one, a few failed attempts to the other
    yield {"billing": billing.json()["webhook"]["id"], "sessions": sessions.json()["webhook"]["id"]}
    consumer.shutdown()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_the_webhooks_page_shows_endpoints_and_their_delivery_log(
    browser: Browser, server: Server, endpoints: dict[str, str], scheme: str, size: str,
) -> None:
    width, height = SIZES[size]
    page, watch = open_page(browser, color_scheme=scheme, width=width, height=height)
    try:
        page.goto(f"{server.url}/console")
        page.get_by_label("Token").fill(server.keyward.service_token)
        page.get_by_role("button", name="Sign in").click()
        section = page.get_by_role("region", name="Webhooks")
        expect(section.get_by_role("heading", name="Webhooks")).to_be_visible()
        rows = section.locator("table.webhooks tbody tr")
        expect(rows).to_have_count(2)
        down = rows.filter(has_text="Session cache (down)")
        down.get_by_role("button", name="Deliveries").click()
        log = page.locator("#delivery-log table.deliveries")
        # The suspension is retried; the revocation waits behind it (a key's events
        # go in order).
        expect(log.locator("tbody tr")).to_have_count(2)
        expect(log.locator("tbody tr").last).to_contain_text("could not connect")
        expect(log.locator("tbody tr").first).to_contain_text("pending")
        shoot(page, f"webhooks-{scheme}-{size}", full_page=True)

        rows.filter(has_text="Billing").get_by_role("button", name="Deliveries").click()
        expect(log.locator("tbody tr").first).to_contain_text("delivered")
        expect(log.locator("tbody tr").first).to_contain_text("204")

        section.get_by_role("button", name="Add endpoint").click()
        dialog = page.get_by_role("dialog", name="Add a webhook endpoint")
        dialog.get_by_label("URL").fill(f"https://hooks-{scheme}-{size}.example.com/in")
        dialog.get_by_label("api_key.expiring").check()
        dialog.get_by_role("button", name="Add endpoint").click()
        shown = page.get_by_role("dialog", name="Endpoint added")
        secret = shown.get_by_label("Signing secret (whsec_…)").input_value()
        assert secret.startswith("whsec_"), secret
        shown.get_by_role("button", name="Done").click()
        page.get_by_role("dialog", name="Close without the signing secret?").get_by_role("button", name="Close").click()
        added = rows.filter(has_text=f"hooks-{scheme}-{size}.example.com")
        expect(added).to_have_count(1)
        added.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog", name="Delete this endpoint?").get_by_role("button", name="Delete").click()
        expect(added).to_have_count(0)
        expect(rows).to_have_count(2)
    finally:
        page.context.close()
    assert not watch.problems, "the browser reported:\n" + "\n".join(watch.problems)
