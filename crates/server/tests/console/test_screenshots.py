"""Screenshots of each screen, light and dark, at desktop and phone width, into
target/console-screenshots/ (KEYWARD_CONSOLE_SCREENSHOTS elsewhere). The pages are
watched as in the other tests: no console error, no CSP violation, in any of them."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from conftest import SCREENSHOTS, Server, open_page

SIZES = {"desktop": (1280, 800), "phone": (375, 812)}


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(150)  # the toast and dialogs settle
    # Nothing wider than the window: no sideways scrolling, at phone width too.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: {overflow} px wider than the window"
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="module")
def seeded(server: Server) -> dict[str, str]:
    ci = server.create_key("alice", "CI pipeline", ["READ_GRAPH", "EXECUTE_GRAPH"])
    bot = server.create_key("alice", "Support bot", ["READ_GRAPH"])
    old = server.create_key("alice", "Old laptop", [])
    for _ in range(6):
        server.verify(ci["plain_text_key"], ["READ_GRAPH"])
    server.verify(ci["plain_text_key"], ["WRITE_GRAPH"])  # refused: insufficient
    server.verify(bot["plain_text_key"])
    with server.as_user("alice") as client:
        client.post(f"/api/api-keys/{bot['api_key']['id']}/suspend").raise_for_status()
        client.delete(f"/api/api-keys/{old['api_key']['id']}").raise_for_status()
    return {"ci": ci["api_key"]["id"]}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_every_screen_renders_cleanly(browser: Browser, server: Server, seeded: dict[str, str], scheme: str, size: str) -> None:
    width, height = SIZES[size]
    page, watch = open_page(browser, color_scheme=scheme, width=width, height=height)
    suffix = f"{scheme}-{size}"
    try:
        page.goto(f"{server.url}/console")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        shoot(page, f"sign-in-{suffix}")

        server.open_console_link(page, "alice")
        expect(page.locator("table.keys tbody tr", has_text="CI pipeline")).to_be_visible()
        # Each key's sparkline of the last 48 hours.
        expect(page.get_by_role("img", name="7 verifications in 48 hours")).to_be_visible()
        expect(page.get_by_role("img", name="1 verification in 48 hours")).to_be_visible()
        shoot(page, f"keys-{suffix}", full_page=True)

        page.get_by_role("button", name="Create key").click()
        dialog = page.get_by_role("dialog", name="Create key")
        dialog.get_by_label("Name").fill(f"Staging ({scheme}, {size})")
        dialog.get_by_label("READ_GRAPH").check()
        shoot(page, f"create-{suffix}")
        dialog.get_by_role("button", name="Create key").click()
        expect(page.get_by_role("dialog", name="Your new key")).to_be_visible()
        shoot(page, f"show-once-{suffix}")
        page.get_by_role("button", name="Done").click()
        page.get_by_role("dialog", name="Close without the key?").get_by_role("button", name="Close").click()

        page.goto(f"{server.url}/console#/keys/{seeded['ci']}")
        expect(page.get_by_role("heading", name="CI pipeline", level=1)).to_be_visible()
        # The usage chart of the verifications above, hourly, then daily.
        chart = page.get_by_role("img", name="6 valid and 1 refused verifications, per hour, last 48 hours")
        expect(chart).to_be_visible()
        page.get_by_role("button", name="30 days").click()
        expect(page.get_by_role("img", name="6 valid and 1 refused verifications, per day, last 30 days")).to_be_visible()
        page.get_by_role("button", name="48 hours").click()
        expect(chart).to_be_visible()
        shoot(page, f"key-{suffix}", full_page=True)

        page.get_by_role("button", name="Sign out").click()
        page.get_by_label("Token").fill(server.keyward.service_token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("search").get_by_label("User id").fill("alice")
        page.get_by_role("button", name="Find keys").click()
        expect(page.locator("table.keys tbody tr").first).to_be_visible()
        # The deployment's verifications and alice's: 8 in all, all hers.
        expect(page.get_by_role("img", name="7 valid and 1 refused verifications, per hour, last 48 hours")).to_have_count(2)
        shoot(page, f"operator-{suffix}", full_page=True)
    finally:
        page.context.close()
    assert not watch.problems, "the browser reported:\n" + "\n".join(watch.problems)
