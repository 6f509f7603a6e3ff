"""The web console in a real Chromium, against a real keyward: what a user and an
operator do with it, checked in the page and through the API."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import Page, expect

from conftest import Server, Watch


def sign_in(page: Page, server: Server, token: str) -> None:
    page.goto(f"{server.url}/console")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def row(page: Page, name: str):
    return page.locator("table.keys tbody tr", has=page.get_by_role("link", name=name, exact=True))


def read_show_once(page: Page) -> str:
    dialog = page.get_by_role("dialog", name="Your new key")
    expect(dialog.get_by_text("It will not be shown again")).to_be_visible()
    key = dialog.get_by_label("Your new API key").input_value()
    dialog.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status")).to_have_text("Copied to the clipboard")
    assert page.evaluate("navigator.clipboard.readText()") == key
    # Closing asks first; the key stays until the person is sure.
    dialog.get_by_role("button", name="Done").click()
    confirm = page.get_by_role("dialog", name="Close without the key?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Done").click()
    confirm.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    return key


def test_a_user_creates_suspends_reactivates_rotates_and_revokes_a_key(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    sign_in(page, server, server.token("alice"))
    expect(page.get_by_text("Signed in as alice")).to_be_visible()
    expect(page.get_by_role("heading", name="No API keys yet")).to_be_visible()

    # Create key: name, description, one permission, expiry in 30 days.
    page.get_by_role("button", name="Create key").first.click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill("deploy bot")
    dialog.get_by_label("Description (optional)").fill("pushes releases")
    dialog.get_by_label("READ_GRAPH").check()
    dialog.get_by_label("Expires").select_option("30")
    dialog.get_by_role("button", name="Create key").click()
    key = read_show_once(page)
    assert key.startswith("agpt_")
    assert server.verify(key, ["READ_GRAPH"]) == "VALID"

    listed = row(page, "deploy bot")
    expect(listed).to_contain_text("Active")
    expect(listed).to_contain_text(f"{key[:8]}…{key[-8:]}")
    expect(listed).to_contain_text("READ_GRAPH")
    assert key not in page.content()

    # The key's page: edit, suspend, reactivate.
    listed.get_by_role("link", name="deploy bot").click()
    expect(page.get_by_role("heading", name="deploy bot", level=1)).to_be_visible()
    page.get_by_label("Name", exact=True).fill("deploy robot")
    page.get_by_label("WRITE_GRAPH").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="deploy robot", level=1)).to_be_visible()
    assert server.verify(key, ["WRITE_GRAPH"]) == "VALID"

    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("button", name="Reactivate")).to_be_visible()
    expect(page.locator(".details")).to_contain_text("Suspended")
    assert server.verify(key) == "SUSPENDED"
    page.get_by_role("button", name="Reactivate").click()
    expect(page.get_by_role("button", name="Suspend")).to_be_visible()
    assert server.verify(key) == "VALID"

    # Rotate with an hour's grace: both keys work, the new one shown once.
    page.get_by_role("button", name="Rotate").click()
    rotate = page.get_by_role("dialog", name="Rotate “deploy robot”")
    rotate.get_by_label("Grace period for the old key").select_option("3600")
    rotate.get_by_role("button", name="Rotate").click()
    new_key = read_show_once(page)
    assert new_key != key
    assert server.verify(new_key, ["READ_GRAPH", "WRITE_GRAPH"]) == "VALID"
    assert server.verify(key) == "VALID"
    expect(page.get_by_role("link", name="the previous key")).to_be_visible()

    # The audit trail tells the story so far.
    trail = page.get_by_role("region", name="Audit trail")
    expect(trail).to_contain_text("create")

    # Revoke, behind a confirmation naming the key.
    page.get_by_role("button", name="Revoke").click()
    confirm = page.get_by_role("dialog", name="Revoke this key?")
    expect(confirm).to_contain_text("deploy robot")
    confirm.get_by_role("button", name="Revoke").click()
    expect(page.locator(".details")).to_contain_text("Revoked")
    expect(page.get_by_role("button", name="Suspend")).to_have_count(0)
    assert server.verify(new_key) == "REVOKED"

    # The list: the old key rotating out, the new one revoked.
    page.get_by_role("link", name="← All keys").click()
    rows = page.locator("table.keys tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-state='Revoked']")).to_have_count(1)
    expect(page.locator("tr[data-state='Rotating out']")).to_have_count(1)

    # Sorting by name, both ways, from the keyboard.
    page.get_by_role("button", name="Name").focus()
    page.keyboard.press("Enter")
    expect(page.locator("th[aria-sort='ascending']")).to_have_text("Name ▲")
    page.keyboard.press("Enter")
    expect(page.locator("th[aria-sort='descending']")).to_have_text("Name ▼")


def test_another_users_keys_never_appear(page: tuple[Page, Watch], server: Server) -> None:
    page, watch = page
    bobs = server.create_key("bob", "bob's secret project")
    carols = server.create_key("carol", "carol's key")
    sign_in(page, server, server.token("carol"))
    expect(row(page, "carol's key")).to_be_visible()
    expect(row(page, "carol's key")).to_contain_text("Never")
    expect(page.get_by_text("bob's secret project")).to_have_count(0)
    # Not even by its address: the API answers 404, the page says so.
    bob_id = bobs["api_key"]["id"]
    watch.allow(404, bob_id)
    page.goto(f"{server.url}/console#/keys/{bob_id}")
    expect(page.get_by_role("alert")).to_contain_text("not found")
    expect(page.get_by_text("bob's secret project")).to_have_count(0)
    assert carols["api_key"]["user_id"] == "carol"


def test_a_console_link_says_whose_it_is_signs_in_and_leaves_no_token_in_the_address(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    link = server.console_link("--user", "dave")
    assert link.startswith(f"{server.url}/console#token=")
    page.goto(link)
    # A link may be anyone's: it names its user and signs in only when asked to.
    dialog = page.get_by_role("dialog", name="Sign in as dave?")
    expect(dialog).to_contain_text("signs this tab in as dave")
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.length") == 0
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0

    page.goto(link)
    dialog = page.get_by_role("dialog", name="Sign in as dave?")
    expect(dialog.get_by_role("button", name="Sign in as dave")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_have_text("Signed in as dave")
    assert "token" not in page.url
    stored = page.evaluate("sessionStorage.getItem('keyward.token')")
    assert stored == link.split("#token=", 1)[1]


def test_a_link_for_someone_else_asks_before_switching_and_staying_is_the_default(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    alice = server.token("alice")
    sign_in(page, server, alice)
    expect(page.locator("#who")).to_have_text("Signed in as alice")

    # A link someone sent, with their own token: asked, both named, nothing changed yet.
    link = server.console_link("--user", "mallory")
    page.goto(link)
    dialog = page.get_by_role("dialog", name="Sign in as mallory?")
    expect(dialog).to_contain_text("holds a token for mallory")
    expect(dialog).to_contain_text("signed in as alice")
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('keyward.token')") == alice
    expect(dialog.get_by_role("button", name="Stay signed in as alice")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    expect(page.locator("#who")).to_have_text("Signed in as alice")
    assert page.evaluate("sessionStorage.getItem('keyward.token')") == alice

    # Escape keeps the session too; an operator link is asked about the same way.
    page.goto(server.console_link("--admin"))
    dialog = page.get_by_role("dialog", name="Sign in as the operator (service token or credential)?")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.locator("#who")).to_have_text("Signed in as alice")

    # Chosen on purpose, the switch happens.
    page.goto(server.console_link("--user", "mallory"))
    page.get_by_role("button", name="Sign in as mallory").click()
    expect(page.locator("#who")).to_have_text("Signed in as mallory")

    # A fresh link for the same person signs in without a question.
    page.goto(server.console_link("--user", "mallory"))
    expect(page.locator("#who")).to_have_text("Signed in as mallory")
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_signing_out_forgets_the_token(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    sign_in(page, server, server.token("erin"))
    expect(page.get_by_text("Signed in as erin")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_expired_token_returns_to_sign_in_with_the_reason(page: tuple[Page, Watch], server: Server) -> None:
    page, watch = page
    watch.allow(401, "/api/")
    sign_in(page, server, server.expired_token("frank"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("expired")
    assert page.evaluate("sessionStorage.length") == 0


def test_the_operator_finds_a_users_keys_and_acts_on_them(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    first = server.create_key("grace", "grace one")
    second = server.create_key("grace", "grace two")
    server.create_key("heidi", "heidi's key")
    sign_in(page, server, server.keyward.service_token)
    expect(page.get_by_text("Operator (service token)")).to_be_visible()

    page.get_by_role("search").get_by_label("User id").fill("grace")
    page.get_by_role("button", name="Find keys").click()
    expect(page.locator("table.keys tbody tr")).to_have_count(2)
    expect(page.locator("table.keys").get_by_text("heidi's key")).to_have_count(0)

    one = page.locator("tr", has_text="grace one")
    one.get_by_role("button", name="Revoke").click()
    confirm = page.get_by_role("dialog", name="Revoke this key?")
    expect(confirm).to_contain_text("grace one")
    confirm.get_by_role("button", name="Revoke").click()
    expect(page.locator("tr", has_text="grace one")).to_contain_text("Revoked")
    assert server.verify(first["plain_text_key"]) == "REVOKED"

    two = page.locator("tr", has_text="grace two")
    two.get_by_role("button", name="Suspend").click()
    expect(page.locator("tr", has_text="grace two")).to_contain_text("Suspended")
    assert server.verify(second["plain_text_key"]) == "SUSPENDED"

    # Credits and a rate limit, the platform's to set.
    page.locator("tr", has_text="grace two").get_by_role("button", name="Limits").click()
    limits = page.get_by_role("dialog")
    limits.get_by_label("Usage credits left").fill("500")
    limits.get_by_label("Requests").fill("10")
    limits.get_by_label("Per seconds").fill("60")
    limits.get_by_label("Every").select_option("month")
    limits.get_by_label("Back to").fill("1000")
    limits.get_by_label("Day of month").fill("15")
    limits.get_by_role("button", name="Save").click()
    expect(limits).to_be_hidden()
    with server.as_user("grace") as client:
        key = client.get(f"/api/api-keys/{second['api_key']['id']}").json()
    assert key["remaining"] == 500
    assert key["rate_limit"] == {"requests": 10, "per_seconds": 60}
    assert key["refill"] == {"amount": 1000, "interval": "month", "day_of_month": 15}
    assert key["next_refill_at"].endswith("T00:00:00.000Z")
    # Opened again, the dialog shows the rule; "Never" stops the renewal.
    page.locator("tr", has_text="grace two").get_by_role("button", name="Limits").click()
    limits = page.get_by_role("dialog")
    expect(limits.get_by_label("Back to")).to_have_value("1000")
    limits.get_by_label("Every").select_option("")
    limits.get_by_role("button", name="Save").click()
    expect(limits).to_be_hidden()
    with server.as_user("grace") as client:
        key = client.get(f"/api/api-keys/{second['api_key']['id']}").json()
    assert (key["refill"], key["remaining"]) == (None, 500)

    # The audit feed, filtered to the user: the revocation is there, by the service.
    feed = page.get_by_role("region", name="Audit feed")
    feed.get_by_label("User id").fill("grace")
    feed.get_by_label("Action").select_option("revoke")
    feed.get_by_role("button", name="Filter").click()
    expect(feed.locator("ol.events > li")).to_have_count(1)
    expect(feed.locator("ol.events > li")).to_contain_text("revoke of grace")


def test_a_support_credential_sees_only_what_its_scopes_allow(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    server.create_key("judy", "judy's key")
    sign_in(page, server, server.credential("support", ["keys.read"]))
    expect(page.get_by_text("Operator (credential support)")).to_be_visible()
    expect(page.locator("#scopes")).to_contain_text("usage.read, audit.read")

    page.get_by_role("search").get_by_label("User id").fill("judy")
    page.get_by_role("button", name="Find keys").click()
    expect(page.locator("table.keys tbody tr")).to_have_count(1)
    # Reading only: no action on the key, no usage chart, no audit feed.
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(page.get_by_role("button", name="Suspend")).to_have_count(0)
    expect(page.get_by_role("button", name="Limits")).to_have_count(0)
    expect(page.get_by_role("region", name="Audit feed")).to_have_count(0)
    expect(page.get_by_text("Verifications of every key")).to_have_count(0)


def focused_is(page: Page, locator) -> bool:
    return bool(locator.evaluate("element => element === document.activeElement"))


def test_the_console_works_from_the_keyboard(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    server.open_console_link(page, "ivan")
    expect(page.get_by_role("heading", name="No API keys yet")).to_be_visible()
    create = page.get_by_role("button", name="Create key").first
    for _ in range(10):
        page.keyboard.press("Tab")
        if focused_is(page, create):
            break
    else:
        raise AssertionError("Tab never reached Create key")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create key")
    assert focused_is(page, dialog.get_by_label("Name"))
    page.keyboard.type("typed key")
    page.keyboard.press("Tab")  # description
    page.keyboard.press("Tab")  # the first permission
    page.keyboard.press("Space")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # submits the form from the name field
    shown = page.get_by_role("dialog", name="Your new key")
    key = shown.get_by_label("Your new API key").input_value()
    # Escape asks before the key is gone; the safe choice (Cancel) has the focus.
    page.keyboard.press("Escape")
    confirm = page.get_by_role("dialog", name="Close without the key?")
    assert focused_is(page, confirm.get_by_role("button", name="Cancel"))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(shown).to_be_hidden()
    assert server.verify(key, ["IDENTITY"]) == "VALID"
    expect(row(page, "typed key")).to_contain_text("IDENTITY")


def test_a_key_can_expire_on_a_chosen_date_or_never(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    server.open_console_link(page, "judy")
    for name, choice, date in [("dated", "date", "2031-05-17"), ("forever", "never", None)]:
        page.get_by_role("button", name="Create key").first.click()
        dialog = page.get_by_role("dialog", name="Create key")
        dialog.get_by_label("Name").fill(name)
        expect(dialog.get_by_label("Expiry date")).to_be_hidden()
        dialog.get_by_label("Expires").select_option(choice)
        if date:
            dialog.get_by_label("Expiry date").fill(date)
        dialog.get_by_role("button", name="Create key").click()
        shown = page.get_by_role("dialog", name="Your new key")
        shown.get_by_role("button", name="Done").click()
        page.get_by_role("dialog", name="Close without the key?").get_by_role("button", name="Close").click()
        expect(row(page, name)).to_be_visible()
    with server.as_user("judy") as client:
        keys = {key["name"]: key for key in client.get("/api/api-keys").json()}
    # The end of that day, in the browser's time zone.
    assert keys["dated"]["expires_at"][:10] in ("2031-05-17", "2031-05-18")
    assert keys["forever"]["expires_at"] is None
    expect(row(page, "forever")).to_contain_text("Never")


def test_a_key_reported_leaked_shows_a_banner_with_where_it_was_seen(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    created = server.create_key("lena", "ci token")
    key = created["plain_text_key"]
    # Anyone holding the key may report it, with any URL: it is shown as text, never
    # as a link.
    url = "javascript:alert(1)//https://github.com/acme/app/blob/main/.env#L3"
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/api/api-keys/report-leak", json={"key": key, "url": url}).status_code == 202
    deadline = time.monotonic() + 5
    while server.verify(key) != "REVOKED":
        assert time.monotonic() < deadline, "the report was not acted on"
        time.sleep(0.05)

    sign_in(page, server, server.token("lena"))
    row(page, "ci token").get_by_role("link", name="ci token").click()
    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("This key was found leaked")
    expect(banner).to_contain_text("(reported by report)")
    expect(banner).to_contain_text(url)
    expect(banner).to_contain_text("It was revoked")
    assert banner.locator("a").count() == 0
    expect(page.locator(".events")).to_contain_text("leaked")

    # A key never reported has no banner.
    server.create_key("lena", "quiet")
    page.get_by_role("link", name="← All keys").click()
    row(page, "quiet").get_by_role("link", name="quiet").click()
    expect(page.get_by_role("heading", name="quiet", level=1)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)


def test_an_owner_binds_a_key_to_networks_on_its_page(page: tuple[Page, Watch], server: Server) -> None:
    page, watch = page
    key = server.create_key("nora", "office")["plain_text_key"]
    sign_in(page, server, server.token("nora"))
    row(page, "office").get_by_role("link", name="office").click()
    details = page.locator(".details")
    expect(details).to_contain_text("Any address")

    # A mistake is told, field by field, and nothing changes.
    watch.allow(422, "/api/api-keys/")
    page.get_by_label("Networks it may be used from").fill("203.0.113.0/24\nnot-a-network")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("is not an IP address or CIDR network")).to_be_visible()
    assert server.verify(key) == "VALID"

    page.get_by_label("Networks it may be used from").fill("203.0.113.7/24\n2001:db8::/32")
    page.get_by_role("button", name="Save changes").click()
    expect(details).to_contain_text("203.0.113.0/24, 2001:db8::/32")
    # Verified for no client at all: refused, as for one outside the networks.
    assert server.verify(key) == "IP_NOT_ALLOWED"
    expect(page.locator(".events")).to_contain_text("allowed_ips")

    page.get_by_label("Networks it may be used from").fill("")
    page.get_by_role("button", name="Save changes").click()
    expect(details).to_contain_text("Any address")
    assert server.verify(key) == "VALID"


def test_an_owner_sees_when_their_credits_renew(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    server.create_key("olga", "metered")
    with server.as_user("olga") as client:
        key_id = client.get("/api/api-keys").json()[0]["id"]
    with server.as_service() as service:
        changed = service.patch(
            f"/api/admin/api-keys/{key_id}", json={"refill": {"amount": 50, "interval": "day"}}
        )
        assert changed.status_code == 200, changed.text
    sign_in(page, server, server.token("olga"))
    row(page, "metered").get_by_role("link", name="metered").click()
    details = page.locator(".details")
    expect(details).to_contain_text("Back to 50 every day; next")
    expect(details.locator("dd", has_text="Back to 50")).not_to_contain_text("—")


def test_the_operator_sets_the_limits_a_users_keys_share(page: tuple[Page, Watch], server: Server) -> None:
    page, _ = page
    server.create_key("kim", "kim's key")
    sign_in(page, server, server.keyward.service_token)
    page.get_by_role("search").get_by_label("User id").fill("kim")
    page.get_by_role("button", name="Find keys").click()
    panel = page.get_by_role("region", name="Limits of kim")
    expect(panel).to_contain_text("The deployment's defaults")

    panel.get_by_role("button", name="Shared limits").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Requests").fill("10")
    dialog.get_by_label("Per seconds").fill("60")
    dialog.get_by_label("Every").select_option("week")
    dialog.get_by_label("Back to").fill("7")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(panel).to_contain_text("Set for this user")
    expect(panel).to_contain_text("10 per 60 s, all keys together")
    expect(panel).to_contain_text("Back to 7 every week; next")
    with server.as_service() as service:
        limits = service.get("/api/admin/users/kim/limits").json()
    assert limits["rate_limit"] == {"requests": 10, "per_seconds": 60}
    assert limits["credits"]["remaining"] == 7
    assert limits["credits"]["refill"] == {"amount": 7, "interval": "week"}

    panel.get_by_role("button", name="Back to defaults").click()
    expect(panel).to_contain_text("The deployment's defaults")
    with server.as_service() as service:
        assert service.get("/api/admin/users/kim/limits").json()["source"] == "default"
