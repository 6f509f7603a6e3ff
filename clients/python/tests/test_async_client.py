"""AsyncKeywardClient against a real keyward: the same calls, awaited."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from keyward_client import (
    AsyncKeywardClient,
    AuthenticationError,
    KeyStatus,
    NotFoundError,
    RateLimit,
    TransportError,
    UnknownPermissionsError,
    VerifyCode,
)
from keyward_server import Keyward

pytestmark = pytest.mark.anyio


async def test_every_management_call_works_awaited(keyward: Keyward, user: str) -> None:
    async with AsyncKeywardClient(keyward.url, token=keyward.user_token(user)) as owner:
        created = await owner.create_key(
            "async",
            ["READ_GRAPH"],
            description="d",
            expires_at=datetime.now(timezone.utc) + timedelta(days=1),
            metadata={"a": 1},
        )
        key_id = created.api_key.id
        assert [k.id for k in await owner.list_keys()] == [key_id]
        assert (await owner.get_key(key_id)).name == "async"
        assert (await owner.suspend_key(key_id)).status is KeyStatus.SUSPENDED
        assert (await owner.reactivate_key(key_id)).status is KeyStatus.ACTIVE
        assert (await owner.set_permissions(key_id, ["EXECUTE_GRAPH"])).permissions == (
            "EXECUTE_GRAPH",
        )
        assert (await owner.update_key(key_id, name="renamed", description=None)).name == "renamed"
        rotated = await owner.rotate_key(key_id, grace_seconds=0)
        assert rotated.previous_key.id == key_id
        revoked = await owner.revoke_key(rotated.api_key.id)
        assert revoked.status is KeyStatus.REVOKED
        events = await owner.list_key_events(key_id)
        assert [e.action for e in events.events][:3] == ["create", "suspend", "reactivate"]
        with pytest.raises(NotFoundError):
            await owner.get_key("01900000-0000-7000-8000-000000000000")


async def test_verify_and_admin_calls_work_awaited(keyward: Keyward, user: str) -> None:
    async with (
        AsyncKeywardClient(keyward.url, token=keyward.user_token(user)) as owner,
        owner.with_token(keyward.service_token) as service,
    ):
        created = await owner.create_key("k", ["READ_GRAPH"])
        verdict = await service.verify(created.plain_text_key, ["READ_GRAPH"])
        assert (verdict.code, verdict.user_id) == (VerifyCode.VALID, user)
        denied = await service.verify(created.plain_text_key, ["EXECUTE_GRAPH"])
        assert denied.code is VerifyCode.INSUFFICIENT_PERMISSIONS
        await service.check_permissions(["READ_GRAPH"])
        with pytest.raises(UnknownPermissionsError) as unknown:
            await service.check_permissions(["NOPE"])
        assert unknown.value.unknown == ("NOPE",)
        page = await service.list_events(user_id=user)
        assert [e.action for e in page.events] == ["create"]
        assert (await service.delete_user(user)).deleted_keys == 1
        assert (await service.verify(created.plain_text_key)).code is VerifyCode.NOT_FOUND
        with pytest.raises(AuthenticationError):
            await owner.list_events()
    # with_token shares the pool: the first client closed it, and the second is done too.


async def test_admin_key_calls_work_awaited(keyward: Keyward, user: str) -> None:
    limit = RateLimit(requests=100, per_seconds=60)
    async with (
        AsyncKeywardClient(keyward.url, token=keyward.service_token) as service,
        service.with_token(keyward.user_token(user)) as owner,
    ):
        created = await service.create_key_for_user(
            user,
            "provisioned",
            ["READ_GRAPH"],
            description="d",
            expires_at=datetime.now(timezone.utc) + timedelta(days=1),
            metadata={"a": 1},
            rate_limit=limit,
            remaining=10,
        )
        key = created.api_key
        assert (key.user_id, key.remaining, key.rate_limit) == (user, 10, limit)
        assert await owner.list_keys() == [key]
        verdict = await service.verify(created.plain_text_key, ["READ_GRAPH"])
        assert (verdict.code, verdict.remaining) == (VerifyCode.VALID, 9)
        topped = await service.update_key_as_admin(key.id, remaining=20, name="renamed")
        assert (topped.remaining, topped.rate_limit, topped.name) == (20, limit, "renamed")
        lifted = await service.update_key_as_admin(key.id, remaining=None, rate_limit=None)
        assert (lifted.remaining, lifted.rate_limit, lifted.name) == (None, None, "renamed")
        assert await owner.get_key(key.id) == lifted
        with pytest.raises(AuthenticationError):
            await owner.update_key_as_admin(key.id, remaining=None)


async def test_unreachable_keyward_is_a_transport_error_awaited() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with AsyncKeywardClient(url, token="t") as client:
            with pytest.raises(TransportError):
                await client.verify("agpt_x")


async def test_an_injected_http_client_is_left_open() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer service-token"
        return httpx.Response(200, json={"valid": False, "code": "MALFORMED"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        async with AsyncKeywardClient(
            "http://127.0.0.1:9", token="service-token", http_client=http
        ) as client:
            assert (await client.verify("x")).code is VerifyCode.MALFORMED
        assert not http.is_closed
