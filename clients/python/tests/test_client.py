"""KeywardClient against a real keyward: every call, every verdict, every error."""

from __future__ import annotations

import json
import pickle
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from keyward_client import (
    UNSET,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    KeyStatus,
    KeywardClient,
    KeywardError,
    NotFoundError,
    PermissionDeniedError,
    RateLimit,
    RateLimitError,
    Refill,
    Secret,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    UnknownPermissionsError,
    ValidationError,
    VerifyCode,
)
from keyward_client.errors import error_class
from keyward_server import Keyward, run_keyward

# The shape of AutoGPT's keys, which keyward looks up as imported keys: well-formed, unknown.
UNKNOWN_KEY = "agpt_" + "A" * 43


def soon(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


# --- the caller's keys ------------------------------------------------------------------


def test_create_key_returns_the_key_and_its_plaintext_once(owner: KeywardClient, user: str) -> None:
    expires = soon(3600)
    created = owner.create_key(
        "CI pipeline",
        ["READ_GRAPH", "EXECUTE_GRAPH", "READ_GRAPH"],
        description="deploys",
        expires_at=expires,
        metadata={"team": "infra", "n": 1},
    )
    key = created.api_key
    plain = created.plain_text_key.reveal()
    assert plain.startswith("agpt_")
    assert key.user_id == user
    assert key.name == "CI pipeline"
    assert key.description == "deploys"
    assert key.status is KeyStatus.ACTIVE
    assert key.permissions == ("EXECUTE_GRAPH", "READ_GRAPH")  # catalogue order, once each
    assert key.prefix == plain[:8] and key.postfix == plain[-8:]
    assert key.masked == f"{plain[:8]}****{plain[-8:]}"
    assert key.expires_at is not None and abs(key.expires_at - expires) < timedelta(seconds=1)
    assert key.rate_limit is None and key.remaining is None  # the platform's to set
    assert key.metadata == {"team": "infra", "n": 1}
    assert key.created_at.tzinfo is not None
    assert key.last_used_at is None and key.revoked_at is None
    # Not retrievable again: the key as listed has no plaintext anywhere.
    assert plain not in repr(owner.get_key(key.id))


def test_create_key_with_defaults_makes_an_identity_only_key(owner: KeywardClient) -> None:
    key = owner.create_key("bare").api_key
    assert key.permissions == ()
    assert key.expires_at is None and key.rate_limit is None and key.remaining is None
    assert key.metadata is None and key.description is None


def test_list_keys_shows_the_callers_keys_newest_first(
    owner: KeywardClient, keyward: Keyward
) -> None:
    first = owner.create_key("first").api_key
    second = owner.create_key("second").api_key
    assert [k.id for k in owner.list_keys()] == [second.id, first.id]
    with owner.with_token(keyward.user_token("someone-else")) as other:
        assert other.list_keys() == []


def test_get_key_returns_one_key(owner: KeywardClient) -> None:
    created = owner.create_key("one", ["READ_GRAPH"]).api_key
    assert owner.get_key(created.id) == created


def test_suspend_then_reactivate_switches_verification(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("k", ["READ_GRAPH"])
    key_id = created.api_key.id
    assert owner.suspend_key(key_id).status is KeyStatus.SUSPENDED
    assert owner.suspend_key(key_id).status is KeyStatus.SUSPENDED  # again: no change
    assert service.verify(created.plain_text_key).code is VerifyCode.SUSPENDED
    assert owner.reactivate_key(key_id).status is KeyStatus.ACTIVE
    assert service.verify(created.plain_text_key).code is VerifyCode.VALID
    with pytest.raises(BadRequestError) as refused:
        owner.reactivate_key(key_id)
    assert refused.value.status == 400
    assert refused.value.hint == "Only SUSPENDED keys can be reactivated."


def test_revoke_is_for_good(owner: KeywardClient, service: KeywardClient) -> None:
    created = owner.create_key("k", ["READ_GRAPH"])
    key_id = created.api_key.id
    revoked = owner.revoke_key(key_id)
    assert revoked.status is KeyStatus.REVOKED and revoked.revoked_at is not None
    assert owner.revoke_key(key_id).revoked_at == revoked.revoked_at
    assert service.verify(created.plain_text_key).code is VerifyCode.REVOKED
    with pytest.raises(BadRequestError, match="revoked"):
        owner.suspend_key(key_id)


def test_set_permissions_replaces_them(owner: KeywardClient, service: KeywardClient) -> None:
    created = owner.create_key("k", ["READ_GRAPH"])
    changed = owner.set_permissions(created.api_key.id, ["EXECUTE_GRAPH", "WRITE_GRAPH"])
    assert changed.permissions == ("EXECUTE_GRAPH", "WRITE_GRAPH")
    verdict = service.verify(created.plain_text_key, ["READ_GRAPH"])
    assert verdict.code is VerifyCode.INSUFFICIENT_PERMISSIONS


def test_update_key_changes_the_fields_given_and_none_clears(owner: KeywardClient) -> None:
    key = owner.create_key("old", description="d", metadata={"a": 1}, expires_at=soon(3600)).api_key
    renamed = owner.update_key(key.id, name="new")
    assert renamed.name == "new"
    assert (renamed.description, renamed.metadata) == ("d", {"a": 1})
    assert renamed.expires_at == key.expires_at
    cleared = owner.update_key(key.id, description=None, metadata=None, expires_at=None)
    assert cleared.name == "new"
    assert (cleared.description, cleared.metadata, cleared.expires_at) == (None, None, None)
    changed = owner.update_key(key.id, metadata={"b": [1, 2]}, name=UNSET)
    assert (changed.name, changed.metadata) == ("new", {"b": [1, 2]})


def test_update_key_refuses_an_expiry_in_the_past(owner: KeywardClient) -> None:
    key = owner.create_key("k").api_key
    with pytest.raises(ValidationError) as refused:
        owner.update_key(key.id, expires_at=soon(-60))
    assert refused.value.status == 422
    assert refused.value.detail == "expires_at: must be in the future"


def test_naive_times_are_refused_before_sending(owner: KeywardClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        owner.create_key("k", expires_at=datetime.now() + timedelta(days=1))


def test_rotate_key_replaces_it_and_the_old_one_works_through_the_grace_period(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("k", ["READ_GRAPH"], metadata={"a": 1})
    rotated = owner.rotate_key(created.api_key.id, grace_seconds=600)
    assert rotated.api_key.id != created.api_key.id
    assert rotated.api_key.rotated_from == created.api_key.id
    assert rotated.previous_key.rotated_to == rotated.api_key.id
    assert rotated.api_key.permissions == ("READ_GRAPH",)
    assert rotated.api_key.metadata == {"a": 1}
    assert rotated.plain_text_key != created.plain_text_key
    assert service.verify(rotated.plain_text_key).code is VerifyCode.VALID
    assert service.verify(created.plain_text_key).code is VerifyCode.VALID
    with pytest.raises(BadRequestError):
        owner.rotate_key(created.api_key.id)


def test_rotate_key_with_default_grace(owner: KeywardClient) -> None:
    created = owner.create_key("k")
    rotated = owner.rotate_key(created.api_key.id)
    assert rotated.previous_key.expires_at is not None
    left = rotated.previous_key.expires_at - datetime.now(timezone.utc)
    assert timedelta(minutes=59) < left <= timedelta(hours=1)


def test_list_key_events_tells_every_change_page_by_page(owner: KeywardClient, user: str) -> None:
    key = owner.create_key("k", ["READ_GRAPH"]).api_key
    owner.suspend_key(key.id)
    owner.reactivate_key(key.id)
    owner.set_permissions(key.id, ["EXECUTE_GRAPH"])
    page = owner.list_key_events(key.id, limit=2)
    assert [e.action for e in page.events] == ["create", "suspend"]
    assert page.next_after is not None
    rest = owner.list_key_events(key.id, after=page.next_after)
    assert [e.action for e in rest.events] == ["reactivate", "set_permissions"]
    assert rest.next_after is None
    change = rest.events[1]
    assert change.key_id == key.id and change.user_id == user
    assert change.actor.type == "user" and change.actor.id == user
    assert change.changes["permissions"] == {"before": ["READ_GRAPH"], "after": ["EXECUTE_GRAPH"]}
    assert change.at.tzinfo is not None


def test_a_keys_usage_counts_its_verifications_per_hour(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("counted", ["READ_GRAPH"])
    for _ in range(3):
        assert service.verify(created.plain_text_key, ["READ_GRAPH"]).code is VerifyCode.VALID
    assert service.verify(created.plain_text_key, ["WRITE_GRAPH"]).code is not VerifyCode.VALID
    usage = owner.key_usage(created.api_key.id)
    assert (usage.key_id, usage.granularity) == (created.api_key.id, "hour")
    assert len(usage.buckets) >= 48
    assert usage.buckets == tuple(sorted(usage.buckets, key=lambda b: b.start))
    assert (sum(b.valid for b in usage.buckets), sum(b.refused for b in usage.buckets)) == (3, 1)
    days = owner.key_usage(created.api_key.id, granularity="day")
    assert days.buckets[-1].valid == 3
    assert days.start.tzinfo is not None


def test_a_usage_range_keyward_refuses_is_a_bad_request(owner: KeywardClient) -> None:
    created = owner.create_key("range")
    now = datetime.now(timezone.utc)
    with pytest.raises(BadRequestError):
        owner.key_usage(created.api_key.id, since=now, until=now - timedelta(hours=1))


# --- the admin calls (service token) -----------------------------------------------------


def test_admin_lists_events_across_keys_for_one_user(
    owner: KeywardClient, service: KeywardClient, user: str
) -> None:
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = owner.create_key("a").api_key
    second = owner.create_key("b").api_key
    page = service.list_events(user_id=user, since=started, limit=10)
    assert [(e.action, e.key_id) for e in page.events] == [
        ("create", first.id),
        ("create", second.id),
    ]
    assert service.list_events(user_id=user, after=page.events[0].id).events[0].key_id == second.id


def test_admin_deletes_a_user_and_their_keys_stop_verifying(
    keyward: Keyward, service: KeywardClient
) -> None:
    user = "odd/user id"  # quoted in the path, as any user id must be
    with KeywardClient(keyward.url, token=keyward.user_token(user)) as owner:
        created = owner.create_key("k")
        owner.create_key("k2")
        deleted = service.delete_user(user)
        assert (deleted.user_id, deleted.deleted_keys) == (user, 2)
        assert owner.list_keys() == []
    assert service.verify(created.plain_text_key).code is VerifyCode.NOT_FOUND


def test_admin_creates_a_key_for_a_user_with_credits_and_a_rate_limit(
    keyward: Keyward, service: KeywardClient
) -> None:
    user = f"odd/user id {uuid.uuid4().hex[:8]}"  # quoted in the path
    expires = soon(3600)
    created = service.create_key_for_user(
        user,
        "provisioned",
        ["READ_GRAPH", "EXECUTE_GRAPH", "READ_GRAPH"],
        description="by the platform",
        expires_at=expires,
        metadata={"plan": "pro"},
        rate_limit=RateLimit(requests=10, per_seconds=60),
        remaining=100,
    )
    key = created.api_key
    plain = created.plain_text_key.reveal()
    assert plain.startswith("agpt_") and key.masked == f"{plain[:8]}****{plain[-8:]}"
    assert (key.user_id, key.name, key.description) == (user, "provisioned", "by the platform")
    assert key.status is KeyStatus.ACTIVE
    assert key.permissions == ("EXECUTE_GRAPH", "READ_GRAPH")
    assert key.expires_at is not None and abs(key.expires_at - expires) < timedelta(seconds=1)
    assert key.metadata == {"plan": "pro"}
    assert key.rate_limit == RateLimit(requests=10, per_seconds=60)
    assert key.remaining == 100
    # The owner sees it among their keys, credits and rate limit included.
    with KeywardClient(keyward.url, token=keyward.user_token(user)) as owner:
        assert owner.list_keys() == [key]
        assert plain not in repr(owner.get_key(key.id))
    verdict = service.verify(plain, ["READ_GRAPH"])
    assert (verdict.code, verdict.user_id, verdict.remaining) == (VerifyCode.VALID, user, 99)
    created_event = service.list_events(user_id=user).events[0]
    assert (created_event.action, created_event.actor.type) == ("create", "admin")
    assert created_event.changes["remaining"] == {"before": None, "after": 100}


def test_admin_create_for_a_user_counts_toward_their_key_limit(strict_keyward: Keyward) -> None:
    with KeywardClient(strict_keyward.url, token=strict_keyward.service_token) as service:
        service.create_key_for_user("provisioned-once", "only")
        with pytest.raises(ConflictError):
            service.create_key_for_user("provisioned-once", "another", remaining=5)


def test_admin_create_for_a_user_refuses_an_invalid_user_id(service: KeywardClient) -> None:
    with pytest.raises(ValidationError) as refused:
        service.create_key_for_user(" padded ", "k")
    assert (refused.value.detail or "").startswith("user_id:")


def test_admin_update_tops_up_and_removes_credits_and_sets_and_removes_a_rate_limit(
    owner: KeywardClient, service: KeywardClient, user: str
) -> None:
    created = owner.create_key("k", ["READ_GRAPH"], description="d", metadata={"a": 1})
    key_id = created.api_key.id
    limit = RateLimit(requests=5, per_seconds=10)
    limited = service.update_key_as_admin(key_id, remaining=5, rate_limit=limit)
    assert (limited.remaining, limited.rate_limit) == (5, limit)
    # The fields left out stay as they are.
    assert (limited.name, limited.description, limited.metadata) == ("k", "d", {"a": 1})
    assert service.verify(created.plain_text_key).remaining == 4
    topped = service.update_key_as_admin(key_id, remaining=50)
    assert (topped.remaining, topped.rate_limit) == (50, limit)
    unlimited = service.update_key_as_admin(key_id, remaining=None, rate_limit=None)
    assert (unlimited.remaining, unlimited.rate_limit) == (None, None)
    assert owner.get_key(key_id) == unlimited
    # The owner's fields too: None clears them, as in update_key.
    edited = service.update_key_as_admin(
        key_id, name="renamed", description=None, metadata=None, expires_at=soon(3600)
    )
    assert (edited.name, edited.description, edited.metadata) == ("renamed", None, None)
    assert edited.expires_at is not None
    assert service.update_key_as_admin(key_id, expires_at=None, name=UNSET).expires_at is None
    # Recorded as the platform's change, not the owner's.
    last = owner.list_key_events(key_id).events[-1]
    assert (last.action, last.actor.type, last.actor.id, last.user_id) == (
        "edit",
        "admin",
        "service",
        user,
    )
    assert last.changes["expires_at"]["after"] is None


def test_admin_update_refuses_unknown_and_revoked_keys(
    owner: KeywardClient, service: KeywardClient
) -> None:
    with pytest.raises(NotFoundError):
        service.update_key_as_admin("01900000-0000-7000-8000-000000000000", remaining=1)
    key = owner.create_key("k").api_key
    owner.revoke_key(key.id)
    with pytest.raises(BadRequestError):
        service.update_key_as_admin(key.id, remaining=1)


def test_admin_lists_suspends_reactivates_and_revokes_a_users_keys_and_reads_their_usage(
    keyward: Keyward, service: KeywardClient
) -> None:
    user = f"operated-{uuid.uuid4().hex[:8]}"
    with KeywardClient(keyward.url, token=keyward.user_token(user)) as owner:
        created = owner.create_key("operated")
    key_id = created.api_key.id
    assert [k.id for k in service.list_keys_of_user(user)] == [key_id]
    assert service.suspend_key_as_admin(key_id).status is KeyStatus.SUSPENDED
    assert service.verify(created.plain_text_key).code is VerifyCode.SUSPENDED
    assert service.reactivate_key_as_admin(key_id).status is KeyStatus.ACTIVE
    assert service.verify(created.plain_text_key).code is VerifyCode.VALID
    assert service.revoke_key_as_admin(key_id).status is KeyStatus.REVOKED
    usage = service.usage(user_id=user)
    assert usage.user_id == user and usage.key_id is None
    assert (sum(b.valid for b in usage.buckets), sum(b.refused for b in usage.buckets)) == (1, 1)
    assert service.usage().user_id is None


def test_the_admin_calls_need_the_service_token(owner: KeywardClient, user: str) -> None:
    key = owner.create_key("k").api_key
    with pytest.raises(AuthenticationError):
        owner.update_key_as_admin(key.id, remaining=None)
    with pytest.raises(AuthenticationError):
        owner.create_key_for_user(user, "k", remaining=1_000_000)


def _credential(keyward: Keyward, name: str, scopes: list[str]) -> str:
    """A service credential made with the static token; its secret."""
    answer = httpx.post(
        keyward.url + "/api/admin/credentials",
        json={"name": name, "scopes": scopes},
        headers={"Authorization": f"Bearer {keyward.service_token}"},
    )
    assert answer.status_code == 200, answer.text
    secret = answer.json()["secret"]
    assert secret.startswith("kwsvc_")
    return str(secret)


def test_a_service_credential_does_what_its_scopes_allow_and_is_named_in_the_trail(
    keyward: Keyward, owner: KeywardClient, service: KeywardClient, user: str
) -> None:
    key = owner.create_key("k", ["READ_GRAPH"])
    gateway = _credential(keyward, "gateway", ["keys.verify"])
    billing = _credential(keyward, "billing", ["keys.write"])
    with KeywardClient(keyward.url, token=gateway) as client:
        assert client.verify(key.plain_text_key.reveal(), ["READ_GRAPH"]).code is VerifyCode.VALID
        with pytest.raises(PermissionDeniedError) as refused:
            client.update_key_as_admin(key.api_key.id, remaining=10)
        assert refused.value.status == 403 and "keys.write" in (refused.value.detail or "")
    with KeywardClient(keyward.url, token=billing) as client:
        assert client.update_key_as_admin(key.api_key.id, remaining=10).remaining == 10
    events = service.list_events(user_id=user).events
    actor = events[-1].actor
    assert (actor.type, actor.id) == ("credential", "billing")
    assert actor.credential_id is not None
    assert events[0].actor.credential_id is None


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "/api/api-keys", {"name": "k", "permissions": [], "remaining": 5}),
        ("PATCH", "/api/api-keys/{id}", {"remaining": None}),
        ("PATCH", "/api/api-keys/{id}", {"rate_limit": None}),
        ("PUT", "/api/api-keys/{id}/rate-limit", {"rate_limit": None}),
    ],
)
def test_an_owner_setting_credits_or_a_rate_limit_is_refused_with_403(
    keyward: Keyward, owner: KeywardClient, user: str, method: str, route: str, body: object
) -> None:
    # The client has no way to ask this any more; the raw route still answers 403,
    # and a 403 from keyward reads as the client's error for that status.
    key = owner.create_key("k").api_key
    answer = httpx.request(
        method,
        keyward.url + route.format(id=key.id),
        json=body,
        headers={"Authorization": f"Bearer {keyward.user_token(user)}"},
    )
    assert answer.status_code == 403
    assert answer.json()["message"] == "Set by the platform"
    with answering(403, answer.content) as client, pytest.raises(error_class(403)) as refused:
        client.list_keys()
    assert type(refused.value) is error_class(403) and isinstance(refused.value, KeywardError)
    assert (refused.value.status, refused.value.message) == (403, "Set by the platform")
    assert "PATCH /api/admin/api-keys/{id}" in (refused.value.hint or "")
    assert owner.get_key(key.id) == key  # nothing changed


# --- verification ---------------------------------------------------------------------


def test_verify_valid_key_tells_who_it_is(
    owner: KeywardClient, service: KeywardClient, user: str
) -> None:
    created = owner.create_key("k", ["READ_GRAPH", "EXECUTE_GRAPH"], metadata={"plan": "pro"})
    verdict = service.verify(created.plain_text_key.reveal(), ["EXECUTE_GRAPH"])
    assert verdict.valid is True
    assert verdict.code is VerifyCode.VALID
    assert verdict.user_id == user
    assert verdict.key_id == created.api_key.id
    assert verdict.permissions == ("EXECUTE_GRAPH", "READ_GRAPH")
    assert verdict.metadata == {"plan": "pro"}
    assert verdict.expires_at is None and verdict.remaining is None
    assert verdict.retry_after is None and verdict.retry_after_seconds is None


def test_verify_malformed_key(service: KeywardClient) -> None:
    verdict = service.verify("not a key")
    assert (verdict.valid, verdict.code, verdict.key_id) == (False, VerifyCode.MALFORMED, None)


def test_verify_unknown_key(service: KeywardClient) -> None:
    verdict = service.verify(UNKNOWN_KEY)
    assert (verdict.valid, verdict.code) == (False, VerifyCode.NOT_FOUND)


def test_verify_expired_key_after_rotation_without_grace(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("k")
    owner.rotate_key(created.api_key.id, grace_seconds=0)
    verdict = service.verify(created.plain_text_key)
    assert (verdict.valid, verdict.code) == (False, VerifyCode.EXPIRED)
    assert verdict.expires_at is not None


def test_verify_expired_key_once_its_expiry_passes(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("k")
    owner.update_key(created.api_key.id, expires_at=soon(0.5))
    assert service.verify(created.plain_text_key).code is VerifyCode.VALID
    time.sleep(0.7)
    assert service.verify(created.plain_text_key).code is VerifyCode.EXPIRED


def test_verify_insufficient_permissions_names_the_key(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("k", ["READ_GRAPH"])
    verdict = service.verify(created.plain_text_key, ["READ_GRAPH", "EXECUTE_GRAPH"])
    assert (verdict.valid, verdict.code) == (False, VerifyCode.INSUFFICIENT_PERMISSIONS)
    assert verdict.key_id == created.api_key.id
    assert verdict.missing_permissions(["EXECUTE_GRAPH", "READ_GRAPH", "WRITE_GRAPH"]) == (
        "EXECUTE_GRAPH",
        "WRITE_GRAPH",
    )


def test_verify_rate_limited_past_the_keys_limit(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("k")
    limit = RateLimit(requests=2, per_seconds=60)
    service.update_key_as_admin(created.api_key.id, rate_limit=limit)
    assert service.verify(created.plain_text_key).valid
    assert service.verify(created.plain_text_key).valid
    verdict = service.verify(created.plain_text_key)
    assert (verdict.valid, verdict.code) == (False, VerifyCode.RATE_LIMITED)
    assert verdict.retry_after is not None and 0 < verdict.retry_after <= 30
    assert verdict.retry_after_seconds is not None and 1 <= verdict.retry_after_seconds <= 30


def test_verify_usage_exceeded_when_credits_run_out(service: KeywardClient, user: str) -> None:
    created = service.create_key_for_user(user, "k", remaining=3)
    assert service.verify(created.plain_text_key, cost=2).remaining == 1
    assert service.verify(created.plain_text_key, cost=0).remaining == 1  # only checks
    verdict = service.verify(created.plain_text_key, cost=2)
    assert (verdict.valid, verdict.code) == (False, VerifyCode.USAGE_EXCEEDED)
    assert service.verify(created.plain_text_key).remaining == 0
    assert service.verify(created.plain_text_key).code is VerifyCode.USAGE_EXCEEDED
    service.update_key_as_admin(created.api_key.id, remaining=None)  # the limit lifted
    assert service.verify(created.plain_text_key).code is VerifyCode.VALID


def test_credits_that_renew_show_their_rule_and_next_refill(
    service: KeywardClient, user: str
) -> None:
    refill = Refill(amount=100, interval="month", day_of_month=15)
    created = service.create_key_for_user(user, "monthly", refill=refill)
    key = created.api_key
    assert (key.remaining, key.refill) == (100, refill)
    assert key.next_refill_at is not None and key.next_refill_at.day == 15
    assert key.next_refill_at > datetime.now(timezone.utc)
    verdict = service.verify(created.plain_text_key)
    assert (verdict.remaining, verdict.next_refill_at) == (99, key.next_refill_at)
    daily = service.update_key_as_admin(key.id, refill=Refill(amount=5, interval="day"))
    assert daily.refill == Refill(amount=5, interval="day")
    assert daily.next_refill_at is not None and daily.next_refill_at.hour == 0
    stopped = service.update_key_as_admin(key.id, refill=None)
    assert (stopped.refill, stopped.next_refill_at, stopped.remaining) == (None, None, 99)


def test_a_users_keys_share_the_limits_the_platform_sets(
    service: KeywardClient, user: str
) -> None:
    assert service.get_user_limits(user).source == "default"
    one = service.create_key_for_user(user, "one").plain_text_key
    two = service.create_key_for_user(user, "two").plain_text_key
    limits = service.set_user_limits(user, credits=3, refill=Refill(amount=3, interval="day"))
    assert (limits.source, limits.rate_limit) == ("user", None)
    assert limits.credits is not None and limits.credits.remaining == 3
    assert limits.credits.next_refill_at is not None
    codes = [service.verify(key).code for key in (one, two, one)]
    assert codes == [VerifyCode.VALID] * 3
    refused = service.verify(two)
    assert (refused.code, refused.limit) == (VerifyCode.USAGE_EXCEEDED, "user")
    cleared = service.delete_user_limits(user)
    assert (cleared.source, cleared.credits) == ("default", None)
    assert service.get_user_limits(user) == cleared
    with pytest.raises(NotFoundError):
        service.delete_user_limits(user)


def test_an_owner_binds_a_key_to_networks_and_verification_follows_the_client(
    owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("office", allowed_ips=["203.0.113.0/24", "2001:db8::1"])
    assert created.api_key.allowed_ips == ("203.0.113.0/24", "2001:db8::1/128")
    key = created.plain_text_key
    assert service.verify(key, client_ip="203.0.113.9").code is VerifyCode.VALID
    assert service.verify(key, client_ip="198.51.100.9").code is VerifyCode.IP_NOT_ALLOWED
    assert service.verify(key).code is VerifyCode.IP_NOT_ALLOWED  # no client: refused
    freed = owner.update_key(created.api_key.id, allowed_ips=None)
    assert freed.allowed_ips is None
    assert service.verify(key).code is VerifyCode.VALID
    with pytest.raises(TypeError, match="not one string"):
        owner.create_key("k", allowed_ips="10.0.0.0/8")


def test_verify_rate_limits_a_client_that_fails_too_often(
    service: KeywardClient, client_ip: str
) -> None:
    # keyward's default: 60 failed verifications a minute per client, refilled one a
    # second: on a slow machine a few more than 60 pass before the first refusal.
    failures = 0
    while True:
        code = service.verify(UNKNOWN_KEY, client_ip=client_ip).code
        if code is not VerifyCode.NOT_FOUND:
            break
        failures += 1
        assert failures < 200, "never limited"
    assert failures >= 60
    assert code is VerifyCode.RATE_LIMITED
    assert service.verify(UNKNOWN_KEY, client_ip="198.19.255.254").code is VerifyCode.NOT_FOUND


def test_the_permission_catalogue_is_listed_to_users_and_services(
    service: KeywardClient, owner: KeywardClient
) -> None:
    catalogue = (
        "IDENTITY", "EXECUTE_GRAPH", "READ_GRAPH", "WRITE_GRAPH", "EXECUTE_BLOCK", "READ_BLOCK",
        "READ_STORE", "WRITE_LIBRARY", "USE_TOOLS", "MANAGE_INTEGRATIONS", "READ_INTEGRATIONS",
        "DELETE_INTEGRATIONS",
    )  # fmt: skip
    assert service.list_permissions() == catalogue
    assert owner.list_permissions() == catalogue


def test_check_permissions_accepts_catalogue_names(service: KeywardClient) -> None:
    catalogue = service.list_permissions()
    assert "READ_GRAPH" in catalogue and "EXECUTE_GRAPH" in catalogue
    # Every name of the catalogue passes (no error), and so does none; a name outside
    # it does not.
    service.check_permissions(catalogue)
    service.check_permissions([])
    with pytest.raises(UnknownPermissionsError):
        service.check_permissions([*catalogue, "NOT_IN_THE_CATALOGUE"])


def test_check_permissions_names_the_unknown_ones(service: KeywardClient) -> None:
    with pytest.raises(UnknownPermissionsError) as refused:
        service.check_permissions(["READ_GRAPH", "READ_GRAPHS", "BOGUS"])
    assert refused.value.status == 422
    assert refused.value.unknown == ("READ_GRAPHS", "BOGUS")
    assert "READ_GRAPHS, BOGUS" in str(refused.value)


def test_permissions_given_as_one_string_are_refused(service: KeywardClient) -> None:
    with pytest.raises(TypeError, match="not one string"):
        service.verify(UNKNOWN_KEY, "READ_GRAPH")


# --- errors -----------------------------------------------------------------------------


def test_a_bad_user_token_is_an_authentication_error(keyward: Keyward) -> None:
    with KeywardClient(keyward.url, token="not-a-jwt") as client:
        with pytest.raises(AuthenticationError) as refused:
            client.list_keys()
    assert refused.value.status == 401
    assert refused.value.message == "Not authenticated"
    assert refused.value.detail == "the token is not valid"


def test_a_bad_service_token_is_an_authentication_error(keyward: Keyward) -> None:
    with KeywardClient(keyward.url, token="x" * 32) as client:
        with pytest.raises(AuthenticationError, match="service token is not valid"):
            client.verify(UNKNOWN_KEY)


def test_a_user_jwt_cannot_verify(owner: KeywardClient) -> None:
    with pytest.raises(AuthenticationError):
        owner.verify(UNKNOWN_KEY)


def test_an_unknown_key_id_is_not_found(owner: KeywardClient) -> None:
    calls: list[Callable[[], object]] = [
        lambda: owner.get_key("01900000-0000-7000-8000-000000000000"),
        lambda: owner.revoke_key("not-a-uuid"),
        lambda: owner.list_key_events("../../verify"),  # quoted: stays one path segment
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as missing:
            call()
        assert missing.value.status == 404
        assert missing.value.message == "API key not found"


def test_another_users_key_is_not_found(owner: KeywardClient, keyward: Keyward) -> None:
    key = owner.create_key("mine").api_key
    with owner.with_token(keyward.user_token("intruder")) as intruder:
        with pytest.raises(NotFoundError):
            intruder.suspend_key(key.id)


def test_an_unknown_permission_is_a_validation_error(
    owner: KeywardClient, service: KeywardClient
) -> None:
    with pytest.raises(ValidationError) as on_create:
        owner.create_key("k", ["BOGUS"])
    assert on_create.value.status == 422
    assert (on_create.value.detail or "").startswith("permissions: unknown permission(s): BOGUS")
    with pytest.raises(ValidationError, match="BOGUS"):
        service.verify(UNKNOWN_KEY, ["BOGUS"])


def test_out_of_range_credits_are_refused_before_sending(service: KeywardClient) -> None:
    with pytest.raises(ValueError, match="remaining"):
        service.create_key_for_user("u", "k", remaining=-1)
    with pytest.raises(ValueError, match="remaining"):
        service.update_key_as_admin("01900000-0000-7000-8000-000000000000", remaining=10**16)
    with pytest.raises(ValueError, match="remaining"):
        service.update_key_as_admin("01900000-0000-7000-8000-000000000000", remaining=True)
    with pytest.raises(ValueError, match="cost"):
        service.verify(UNKNOWN_KEY, cost=10**16)


@pytest.fixture(scope="module")
def strict_keyward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyward]:
    """A keyward with small limits: 3 changes a minute per user, 1 key per user."""
    with run_keyward(
        tmp_path_factory.mktemp("strict"), USER_WRITE_LIMIT="3", MAX_KEYS_PER_USER="1"
    ) as server:
        yield server


def test_too_many_changes_is_a_rate_limit_error_with_retry_after(
    strict_keyward: Keyward,
) -> None:
    with KeywardClient(strict_keyward.url, token=strict_keyward.user_token("busy")) as owner:
        key = owner.create_key("k").api_key
        owner.suspend_key(key.id)
        owner.reactivate_key(key.id)
        with pytest.raises(RateLimitError) as limited:
            owner.suspend_key(key.id)
    assert limited.value.status == 429
    assert limited.value.retry_after is not None and 1 <= limited.value.retry_after <= 60
    assert limited.value.message == "Too many requests"


def test_one_key_too_many_is_a_conflict(strict_keyward: Keyward) -> None:
    with KeywardClient(strict_keyward.url, token=strict_keyward.user_token("hoarder")) as owner:
        owner.create_key("only")
        with pytest.raises(ConflictError) as refused:
            owner.create_key("another")
    assert refused.value.status == 409
    assert refused.value.hint == "Revoke keys you no longer use."


@pytest.fixture
def dead_url() -> Iterator[str]:
    # Bound but not listening: connections to it are refused for as long as it is held.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_keyward_is_a_transport_error(dead_url: str) -> None:
    with KeywardClient(dead_url, token="t") as client:
        with pytest.raises(TransportError) as failed:
            client.verify("agpt_secret_key_material_0123456789")
    assert failed.value.status is None
    assert failed.value.message == "keyward cannot be reached"
    assert "ConnectError" in str(failed.value)
    assert "agpt_secret" not in str(failed.value) + repr(failed.value)


def answering(status: int, body: bytes, content_type: str = "application/json") -> KeywardClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return KeywardClient("http://127.0.0.1:9", transport=httpx.MockTransport(handler))


def test_a_5xx_is_a_server_error() -> None:
    body = json.dumps(
        {
            "message": "Service unavailable",
            "detail": "the database cannot be reached",
            "hint": "Retry in a few seconds.",
        }
    ).encode()
    with answering(503, body) as client, pytest.raises(ServerError) as failed:
        client.list_keys()
    assert (failed.value.status, failed.value.message) == (503, "Service unavailable")
    assert failed.value.hint == "Retry in a few seconds."


def test_a_proxy_error_page_is_still_an_error_by_status() -> None:
    with answering(502, b"<html>Bad Gateway</html>", "text/html") as client:
        with pytest.raises(ServerError) as failed:
            client.list_keys()
    assert (failed.value.status, failed.value.message) == (502, "Bad Gateway")


def test_an_answer_of_the_wrong_shape_is_an_unexpected_response() -> None:
    with answering(200, b"<html>hello</html>", "text/html") as client:
        with pytest.raises(UnexpectedResponseError, match="not JSON"):
            client.list_keys()
    with answering(200, b'{"valid": "yes", "code": "VALID"}') as client:
        with pytest.raises(UnexpectedResponseError, match=r"verification\.valid"):
            client.verify(UNKNOWN_KEY)


def test_a_newer_servers_extra_fields_and_codes_are_tolerated() -> None:
    body = b'{"valid": false, "code": "IP_BLOCKED", "metered": true, "future": {"x": 1}}'
    with answering(200, body) as client:
        verdict = client.verify(UNKNOWN_KEY)
    assert verdict.code is VerifyCode.UNKNOWN and verdict.valid is False
    assert verdict.metered is True


def test_errors_survive_pickling() -> None:
    error = RateLimitError(429, "Too many requests", "d", "h", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.message, copy.detail, copy.hint) == (
        429,
        "Too many requests",
        "d",
        "h",
    )
    assert isinstance(copy, KeywardError)


# --- secrets ----------------------------------------------------------------------------


def test_plaintext_keys_never_show_in_reprs(owner: KeywardClient) -> None:
    created = owner.create_key("k")
    rotated = owner.rotate_key(created.api_key.id)
    for secret, holder in ((created.plain_text_key, created), (rotated.plain_text_key, rotated)):
        plain = secret.reveal()
        for shown in (
            repr(holder),
            str(holder),
            repr(secret),
            str(secret),
            f"{secret}",
            f"{secret:>40}",
        ):
            assert plain not in shown
        assert "**********" in repr(holder)


def test_tokens_never_show_in_the_clients_repr(keyward: Keyward) -> None:
    with KeywardClient(keyward.url, token=keyward.service_token) as client:
        assert keyward.service_token not in repr(client)
        assert (
            repr(client) == f"KeywardClient(base_url={keyward.url!r}, token=Secret('**********'))"
        )


def test_the_key_being_verified_never_shows_in_errors(keyward: Keyward) -> None:
    key = "agpt_this_is_the_end_clients_secret_key_0123"
    with KeywardClient(keyward.url, token=keyward.service_token) as client:
        with pytest.raises(ValidationError) as refused:
            client.verify(key, ["BOGUS"])
    assert key not in str(refused.value) and key not in repr(refused.value)
    # Even if keyward ever echoed it, the client scrubs it.
    echo = json.dumps({"message": "Invalid request", "detail": f"key {key} is odd"}).encode()
    with answering(422, echo) as client, pytest.raises(ValidationError) as echoed:
        client.verify(Secret(key))
    assert key not in str(echoed.value)
    assert echoed.value.detail == "key ********** is odd"


def test_secrets_compare_by_value() -> None:
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert len({Secret("a"), Secret("a")}) == 1
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        KeywardClient("127.0.0.1:8080")
