"""require_api_key in a real FastAPI app, asking a real keyward.

The answers are those of AutoGPT's external API and of the Rust keyward-guard.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from keyward_client import (
    AsyncKeywardClient,
    AuthenticationError,
    KeywardClient,
    RateLimit,
    UnknownPermissionsError,
)
from keyward_client.fastapi import (
    ClientAddress,
    VerifiedKey,
    check_route_permissions,
    require_api_key,
)
from keyward_server import Keyward

pytestmark = pytest.mark.anyio

UNKNOWN_KEY = "agpt_" + "A" * 43


def make_app(url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """A service with a route per case, its keyward client made in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncKeywardClient(url, token=token, transport=transport) as keyward:
            app.state.keyward = keyward
            yield

    app = FastAPI(lifespan=lifespan)

    def identity(key: VerifiedKey) -> dict[str, Any]:
        return {"user_id": key.user_id, "key_id": key.key_id, "permissions": list(key.permissions)}

    @app.get("/graphs")
    async def list_graphs(
        key: Annotated[VerifiedKey, Depends(require_api_key("READ_GRAPH"))],
    ) -> dict[str, Any]:
        return identity(key)

    @app.post("/graphs/{graph_id}/execute")
    async def execute_graph(
        graph_id: str, key: Annotated[VerifiedKey, Depends(require_api_key("EXECUTE_GRAPH"))]
    ) -> dict[str, Any]:
        return {"graph_id": graph_id, **identity(key)}

    @app.put(
        "/graphs/{graph_id}",
        dependencies=[Depends(require_api_key("EXECUTE_GRAPH", "READ_GRAPH", "WRITE_GRAPH"))],
    )
    async def write_graph(graph_id: str) -> dict[str, str]:
        return {"graph_id": graph_id}

    @app.get("/me")
    async def me(key: Annotated[VerifiedKey, Depends(require_api_key())]) -> dict[str, Any]:
        return {**identity(key), "remaining": key.remaining, "metadata": key.metadata}

    @app.post("/expensive")
    async def expensive(
        key: Annotated[VerifiedKey, Depends(require_api_key(cost=2))],
    ) -> dict[str, Any]:
        return {"remaining": key.remaining}

    return app


@asynccontextmanager
async def running(
    app: FastAPI, client_ip: str = "198.51.100.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, and an HTTP client calling it in-process from ``client_ip``."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as http:
            yield http


@pytest.fixture
async def service_http(keyward: Keyward, client_ip: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(make_app(keyward.url, keyward.service_token), client_ip) as http:
        yield http


def refused(response: httpx.Response, status: int, detail: str) -> bool:
    assert response.status_code == status, response.text
    assert response.json() == {"detail": detail}
    assert response.headers["content-type"] == "application/json"
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    return True


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


# --- the verdicts -----------------------------------------------------------------------


async def test_a_valid_key_reaches_the_handler_with_its_identity(
    service_http: httpx.AsyncClient, owner: KeywardClient, user: str
) -> None:
    created = owner.create_key("svc", ["READ_GRAPH", "EXECUTE_GRAPH"])
    response = await service_http.post(
        "/graphs/g1/execute", headers=key_header(created.plain_text_key.reveal())
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "graph_id": "g1",
        "user_id": user,
        "key_id": created.api_key.id,
        "permissions": ["EXECUTE_GRAPH", "READ_GRAPH"],
    }


async def test_a_key_as_bearer_token_is_accepted_too(
    service_http: httpx.AsyncClient, owner: KeywardClient, user: str
) -> None:
    key = owner.create_key("svc", ["READ_GRAPH"], metadata={"plan": "pro"}).plain_text_key.reveal()
    for authorization in (f"Bearer {key}", f"bearer   {key}  "):
        response = await service_http.get("/me", headers={"Authorization": authorization})
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == user
        assert response.json()["metadata"] == {"plan": "pro"}


async def test_no_key_is_401_missing_api_key(service_http: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "   "},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Token {UNKNOWN_KEY}"},
    ):
        response = await service_http.get("/graphs", headers=headers)
        assert refused(response, 401, "Missing API key"), headers


async def test_a_blank_x_api_key_hides_a_bearer_key_as_in_keyward_guard(
    service_http: httpx.AsyncClient, owner: KeywardClient
) -> None:
    key = owner.create_key("svc", ["READ_GRAPH"]).plain_text_key.reveal()
    response = await service_http.get(
        "/graphs", headers={"X-API-Key": "", "Authorization": f"Bearer {key}"}
    )
    assert refused(response, 401, "Missing API key")


async def test_an_invalid_key_is_401_invalid_api_key(service_http: httpx.AsyncClient) -> None:
    for key in ("not-a-key", UNKNOWN_KEY, "agpt_" + "x" * 5000):
        response = await service_http.get("/graphs", headers=key_header(key))
        assert refused(response, 401, "Invalid API key"), key[:20]


async def test_an_under_permissioned_key_is_403_naming_the_missing_permissions(
    service_http: httpx.AsyncClient, owner: KeywardClient
) -> None:
    key = owner.create_key("reader", ["READ_GRAPH"]).plain_text_key.reveal()
    response = await service_http.post("/graphs/g1/execute", headers=key_header(key))
    assert refused(response, 403, "Missing required permission(s): EXECUTE_GRAPH")
    response = await service_http.put("/graphs/g1", headers=key_header(key))
    assert refused(response, 403, "Missing required permission(s): EXECUTE_GRAPH, WRITE_GRAPH")
    assert (await service_http.get("/graphs", headers=key_header(key))).status_code == 200


async def test_a_revoked_key_is_refused_by_the_next_request(
    service_http: httpx.AsyncClient, owner: KeywardClient
) -> None:
    created = owner.create_key("svc", ["READ_GRAPH"])
    headers = key_header(created.plain_text_key.reveal())
    assert (await service_http.get("/graphs", headers=headers)).status_code == 200
    owner.revoke_key(created.api_key.id)
    assert refused(await service_http.get("/graphs", headers=headers), 401, "Invalid API key")


async def test_a_suspended_key_is_refused_until_reactivated(
    service_http: httpx.AsyncClient, owner: KeywardClient
) -> None:
    created = owner.create_key("svc", ["READ_GRAPH"])
    headers = key_header(created.plain_text_key.reveal())
    owner.suspend_key(created.api_key.id)
    assert refused(await service_http.get("/graphs", headers=headers), 401, "Invalid API key")
    owner.reactivate_key(created.api_key.id)
    assert (await service_http.get("/graphs", headers=headers)).status_code == 200


async def test_an_expired_key_is_401(service_http: httpx.AsyncClient, owner: KeywardClient) -> None:
    created = owner.create_key("svc", ["READ_GRAPH"])
    owner.rotate_key(created.api_key.id, grace_seconds=0)
    response = await service_http.get(
        "/graphs", headers=key_header(created.plain_text_key.reveal())
    )
    assert refused(response, 401, "Invalid API key")


async def test_a_rate_limited_key_is_429_with_retry_after(
    service_http: httpx.AsyncClient, owner: KeywardClient, service: KeywardClient
) -> None:
    created = owner.create_key("svc", ["READ_GRAPH"])
    # The rate limit is the platform's to set (service token).
    limit = RateLimit(requests=1, per_seconds=60)
    service.update_key_as_admin(created.api_key.id, rate_limit=limit)
    headers = key_header(created.plain_text_key.reveal())
    assert (await service_http.get("/graphs", headers=headers)).status_code == 200
    response = await service_http.get("/graphs", headers=headers)
    assert refused(response, 429, "Rate limit exceeded")
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_a_key_out_of_credits_is_403_and_routes_take_their_cost(
    service_http: httpx.AsyncClient, service: KeywardClient, user: str
) -> None:
    created = service.create_key_for_user(user, "svc", remaining=3)
    headers = key_header(created.plain_text_key.reveal())
    first = await service_http.post("/expensive", headers=headers)
    assert first.status_code == 200 and first.json() == {"remaining": 1}
    response = await service_http.post("/expensive", headers=headers)
    assert refused(response, 403, "API key usage credits exhausted")
    assert (await service_http.get("/me", headers=headers)).json()["remaining"] == 0


async def test_an_end_client_failing_too_often_is_429_and_others_are_not(
    keyward: Keyward, client_ip: str
) -> None:
    app = make_app(keyward.url, keyward.service_token)
    async with running(app, client_ip) as attacker:
        # keyward allows 60 failures a minute, refilled one a second: on a slow machine a
        # few more than 60 pass before the first refusal, never fewer.
        failures = 0
        while True:
            response = await attacker.get("/graphs", headers=key_header(UNKNOWN_KEY))
            if response.status_code != 401:
                break
            failures += 1
            assert failures < 200, "never limited"
        assert failures >= 60
        assert refused(response, 429, "Rate limit exceeded")
        assert int(response.headers["retry-after"]) >= 1
    async with running(app, "198.51.100.200") as bystander:
        response = await bystander.get("/graphs", headers=key_header(UNKNOWN_KEY))
        assert refused(response, 401, "Invalid API key")


# --- keyward out of reach, or the service misconfigured ----------------------------------


@pytest.fixture
def dead_url() -> Iterator[str]:
    # Bound but not listening: connections to it are refused for as long as it is held.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_unreachable_keyward_is_503(dead_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with running(make_app(dead_url, "service-token")) as http:
        response = await http.get("/graphs", headers=key_header(UNKNOWN_KEY))
    assert refused(response, 503, "The API key cannot be checked right now")
    assert "keyward could not verify a key" in caplog.text
    assert UNKNOWN_KEY not in caplog.text


async def test_a_closed_client_is_503_and_the_key_stays_out_of_the_log(
    keyward: Keyward, owner: KeywardClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = owner.create_key("closed", ["READ_GRAPH"])
    plain = created.plain_text_key.reveal()
    closed = AsyncKeywardClient(keyward.url, token=keyward.service_token)
    await closed.aclose()
    app = FastAPI()

    @app.get("/graphs", dependencies=[Depends(require_api_key("READ_GRAPH", client=closed))])
    async def graphs() -> None:
        raise AssertionError("never reached")

    async with running(app) as http:
        response = await http.get("/graphs", headers=key_header(plain))
    assert refused(response, 503, "The API key cannot be checked right now")
    assert "Traceback" not in response.text
    assert plain not in caplog.text


async def test_a_client_factory_is_called_at_the_request_not_at_declaration(
    keyward: Keyward, owner: KeywardClient
) -> None:
    made: list[AsyncKeywardClient] = []

    def factory() -> AsyncKeywardClient:
        if not made:
            made.append(AsyncKeywardClient(keyward.url, token=keyward.service_token))
        return made[0]

    app = FastAPI()

    @app.get("/graphs", dependencies=[Depends(require_api_key("READ_GRAPH", client=factory))])
    async def graphs() -> str:
        return "ok"

    assert made == []
    created = owner.create_key("factory", ["READ_GRAPH"])
    async with running(app) as http:
        assert await check_route_permissions(app)
        for _ in range(2):
            response = await http.get("/graphs", headers=key_header(created.plain_text_key.reveal()))
            assert response.json() == "ok"
    assert len(made) == 1
    await made[0].aclose()


async def test_a_failing_client_factory_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    def factory() -> AsyncKeywardClient:
        raise KeyError("KEYWARD_URL")

    app = FastAPI()

    @app.get("/graphs", dependencies=[Depends(require_api_key(client=factory))])
    async def graphs() -> None:
        raise AssertionError("never reached")

    async with running(app) as http:
        response = await http.get("/graphs", headers=key_header(UNKNOWN_KEY))
    assert refused(response, 500, "Internal error")
    assert "KEYWARD_URL" in caplog.text


async def test_keyward_answering_5xx_is_503() -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": "Service unavailable", "detail": None})

    app = make_app("http://127.0.0.1:9", "t", transport=httpx.MockTransport(failing))
    async with running(app) as http:
        response = await http.get("/graphs", headers=key_header(UNKNOWN_KEY))
    assert refused(response, 503, "The API key cannot be checked right now")


async def test_a_verdict_code_newer_than_the_client_refuses_by_its_name() -> None:
    # Even with valid: true and an identity: what the code means is the newer server's.
    def newer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"valid": True, "code": "GEO_BLOCKED", "key_id": "k1", "user_id": "alice",
                  "permissions": ["READ_GRAPH"], "metered": False},
        )

    app = make_app("http://127.0.0.1:9", "t", transport=httpx.MockTransport(newer))
    async with running(app) as http:
        response = await http.get("/graphs", headers=key_header(UNKNOWN_KEY))
    assert refused(response, 401, "The API key was refused (GEO_BLOCKED)")


async def test_an_unknown_permission_is_a_logged_500_without_a_stack_trace(
    keyward: Keyward, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(keyward.url, keyward.service_token)

    @app.get("/typo", dependencies=[Depends(require_api_key("READ_GRAPHS"))])
    async def typo() -> None:
        raise AssertionError("never reached")

    async with running(app) as http:
        response = await http.get("/typo", headers=key_header(UNKNOWN_KEY))
    assert refused(response, 500, "Internal error")
    assert "Traceback" not in response.text
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "require_api_key('READ_GRAPHS')" in errors[0].getMessage()
    assert "unknown permission(s): READ_GRAPHS" in errors[0].getMessage()


async def test_check_route_permissions_stops_the_start_up_on_an_unknown_name(
    keyward: Keyward,
) -> None:
    # Wherever the dependency is: on an included router, on the include, on the app,
    # or inside another dependency.
    for declare in ("router", "include", "app", "nested"):
        wrong = require_api_key("MANAGE_EVERYTHING")
        app = make_app(keyward.url, keyward.service_token)
        if declare == "app":
            app.router.dependencies.append(Depends(wrong))
        router = APIRouter(
            prefix="/admin", dependencies=[Depends(wrong)] if declare == "router" else []
        )

        async def current_admin(key: VerifiedKey = Depends(wrong)) -> str:
            return key.user_id

        @router.get("/stats", dependencies=[Depends(current_admin)] if declare == "nested" else [])
        async def stats() -> None:
            return None

        app.include_router(router, dependencies=[Depends(wrong)] if declare == "include" else [])
        async with app.router.lifespan_context(app):
            with pytest.raises(UnknownPermissionsError) as unknown:
                await check_route_permissions(app)
        assert unknown.value.unknown == ("MANAGE_EVERYTHING",), declare


async def test_check_route_permissions_passes_for_known_names(keyward: Keyward) -> None:
    app = make_app(keyward.url, keyward.service_token)
    async with app.router.lifespan_context(app):
        assert await check_route_permissions(app) is True


async def test_check_route_permissions_lets_the_service_start_before_keyward(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(dead_url, "service-token")
    async with app.router.lifespan_context(app):
        assert await check_route_permissions(app) is False
    assert "could not be asked" in caplog.text


async def test_a_wrong_service_token_is_a_logged_500_and_fails_the_start_up(
    keyward: Keyward, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(keyward.url, "not-the-service-token")
    async with running(app) as http:
        response = await http.get("/graphs", headers=key_header(UNKNOWN_KEY))
        assert refused(response, 500, "Internal error")
        assert "refused the service credential" in caplog.text
        with pytest.raises(AuthenticationError):
            await check_route_permissions(app)


async def test_without_a_keyward_client_the_route_answers_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/graphs", dependencies=[Depends(require_api_key("READ_GRAPH"))])
    async def graphs() -> None:
        raise AssertionError("never reached")

    async with running(app) as http:
        response = await http.get("/graphs", headers=key_header(UNKNOWN_KEY))
    assert refused(response, 500, "Internal error")
    assert "app.state.keyward" in caplog.text


async def test_a_client_given_to_the_dependency_is_used(
    keyward: Keyward, owner: KeywardClient
) -> None:
    keyward_client = AsyncKeywardClient(keyward.url, token=keyward.service_token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with keyward_client:
            yield

    app = FastAPI(lifespan=lifespan)  # nothing in app.state

    # The older default-value style works too (and the annotation here may be a string:
    # this module has `from __future__ import annotations`; the default is a value).
    @app.get("/graphs")
    async def graphs(
        key: VerifiedKey = Depends(require_api_key("READ_GRAPH", client=keyward_client)),
    ) -> str:
        return key.key_id

    created = owner.create_key("svc", ["READ_GRAPH"])
    async with running(app) as http:
        response = await http.get("/graphs", headers=key_header(created.plain_text_key.reveal()))
        assert response.json() == created.api_key.id
        assert await check_route_permissions(app) is True


# --- the end client's address ----------------------------------------------------------


def recording_app(client_address: ClientAddress, seen: list[Any]) -> FastAPI:
    def verify(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content).get("client_ip"))
        return httpx.Response(200, json={"valid": False, "code": "NOT_FOUND"})

    app = make_app("http://127.0.0.1:9", "t", transport=httpx.MockTransport(verify))

    @app.get("/addr", dependencies=[Depends(require_api_key(client_address=client_address))])
    async def addr() -> None:
        return None

    return app


@pytest.mark.parametrize(
    ("client_address", "peer", "forwarded", "expected"),
    [
        (ClientAddress.PEER, "203.0.113.9", None, "203.0.113.9"),
        (ClientAddress.PEER, "2001:db8::1", None, "2001:db8::1"),
        (ClientAddress.PEER, "testclient", None, None),
        (ClientAddress.LAST_FORWARDED_FOR, "10.0.0.2", "1.1.1.1, 203.0.113.50", "203.0.113.50"),
        # Not an address: none, not the proxy's (which all clients would share).
        (ClientAddress.LAST_FORWARDED_FOR, "10.0.0.2", "garbage", None),
        (ClientAddress.LAST_FORWARDED_FOR, "10.0.0.2", "203.0.113.50:4711", None),
        (ClientAddress.LAST_FORWARDED_FOR, "10.0.0.2", None, "10.0.0.2"),
        (ClientAddress.NONE, "203.0.113.9", "203.0.113.50", None),
    ],
)
async def test_keyward_is_told_the_end_clients_address(
    client_address: ClientAddress, peer: str, forwarded: str | None, expected: str | None
) -> None:
    seen: list[Any] = []
    headers = key_header(UNKNOWN_KEY)
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    async with running(recording_app(client_address, seen), peer) as http:
        assert (await http.get("/addr", headers=headers)).status_code == 401
    assert seen == [expected]


# --- declaring routes ---------------------------------------------------------------------


def test_impossible_permission_names_are_refused_at_declaration() -> None:
    for name in ("read_graph", "", "READ GRAPH", "X" * 65):
        with pytest.raises(ValueError, match="permission name"):
            require_api_key(name)
    with pytest.raises(ValueError, match="cost"):
        require_api_key(cost=-1)
    assert require_api_key("A", "B", "A").permissions == ("A", "B")


async def test_a_cors_preflight_is_answered_without_a_key(keyward: Keyward) -> None:
    app = make_app(keyward.url, keyward.service_token)
    app.add_middleware(
        CORSMiddleware, allow_origins=["https://app.test"], allow_headers=["X-API-Key"]
    )
    async with running(app) as http:
        response = await http.options(
            "/graphs",
            headers={
                "Origin": "https://app.test",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.test"
        # A plain OPTIONS is not a route here: 405, not a key refusal.
        assert (await http.options("/graphs")).status_code == 405


async def test_the_openapi_document_shows_both_ways_to_send_the_key(keyward: Keyward) -> None:
    async with running(make_app(keyward.url, keyward.service_token)) as http:
        spec = (await http.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A keyward API key (agpt_...)",
    }
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert {"APIKeyHeader": []} in spec["paths"]["/graphs"]["get"]["security"]


async def test_every_verdict_is_answered_as_keywards_forward_authentication_answers(
    service_http: httpx.AsyncClient,
    keyward: Keyward,
    owner: KeywardClient,
    service: KeywardClient,
    user: str,
) -> None:
    """One vocabulary for refusals: this dependency, keyward-guard and forward
    authentication give the same status and sentence for every verdict (the Rust side
    compares the guard with forward authentication)."""
    import asyncio
    from datetime import datetime, timedelta, timezone

    def key(name: str, permissions: tuple[str, ...] = ("READ_GRAPH",), **platform: Any) -> str:
        if platform:
            created = service.create_key_for_user(user, name, permissions, **platform)
        else:
            created = owner.create_key(name, permissions)
        return created.plain_text_key.reveal()

    def key_with_id(name: str) -> tuple[str, str]:
        created = owner.create_key(name, ("READ_GRAPH",))
        return str(created.api_key.id), created.plain_text_key.reveal()

    suspended_id, suspended = key_with_id("suspended")
    owner.suspend_key(suspended_id)
    revoked_id, revoked = key_with_id("revoked")
    owner.revoke_key(revoked_id)
    soon = datetime.now(timezone.utc) + timedelta(milliseconds=600)
    expired = owner.create_key("expired", ("READ_GRAPH",), expires_at=soon).plain_text_key.reveal()
    limited = key("limited", rate_limit=RateLimit(requests=1, per_seconds=3600))
    assert service.verify(limited).valid
    cases: dict[str, str | None] = {
        "no key": None,
        "VALID": key("valid"),
        "MALFORMED": "agpt_not-a-key",
        "NOT_FOUND": UNKNOWN_KEY,
        "SUSPENDED": suspended,
        "REVOKED": revoked,
        "EXPIRED": expired,
        "INSUFFICIENT_PERMISSIONS": key("narrow", ("EXECUTE_GRAPH",)),
        "RATE_LIMITED": limited,
        "USAGE_EXCEEDED": key("spent", remaining=0),
        # Bound to a network the test's clients (loopback) are not in.
        "IP_NOT_ALLOWED": key("elsewhere", allowed_ips=["203.0.113.0/24"]),
    }
    await asyncio.sleep(0.8)
    async with httpx.AsyncClient(base_url=keyward.url) as proxy:
        for case, presented in cases.items():
            headers = {} if presented is None else key_header(presented)
            ours = await service_http.get("/graphs", headers=headers)
            theirs = await proxy.get(
                "/api/auth",
                headers={
                    **headers,
                    "X-Keyward-Proxy-Token": keyward.service_token,
                    "X-Keyward-Permissions": "READ_GRAPH",
                },
            )
            assert ours.status_code == theirs.status_code, case
            if ours.status_code != 200:
                assert ours.json()["detail"] == theirs.json()["detail"], case
            assert ("retry-after" in ours.headers) == ("retry-after" in theirs.headers), case
