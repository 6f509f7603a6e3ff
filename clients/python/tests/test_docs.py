"""The Python snippets of docs/INTEGRATIONS.md, run as documented against a real keyward.

The blocks between ``<!-- python-fastapi: begin -->`` and ``<!-- python-fastapi: end -->``,
and between ``<!-- autogpt-middleware: begin -->`` and ``<!-- autogpt-middleware: end -->``,
are executed as they stand: what the documentation shows is what is tested.
"""

from __future__ import annotations

import enum
import re
import socket
import sys
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from keyward_client import AuthenticationError, KeywardClient
from keyward_client.fastapi import check_route_permissions
from keyward_server import Keyward

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parents[3] / "docs" / "INTEGRATIONS.md"


def documented_snippet(name: str = "python-fastapi") -> str:
    text = DOC.read_text()
    block = re.search(
        rf"<!-- {name}: begin -->\s*```python\n(?P<code>.*?)```\s*<!-- {name}: end -->",
        text,
        re.DOTALL,
    )
    assert block, f"no {name} block in {DOC}"
    return block["code"]


def documented_app(url: str, service_token: str, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("KEYWARD_URL", url)
    monkeypatch.setenv("KEYWARD_SERVICE_TOKEN", service_token)
    namespace: dict[str, Any] = {"__name__": "integrations_snippet"}
    exec(compile(documented_snippet(), str(DOC), "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, FastAPI)
    return app


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.77", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as http:
            yield http


async def test_the_documented_fastapi_app_guards_its_routes(
    keyward: Keyward, owner: KeywardClient, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = owner.create_key("runner", ["EXECUTE_GRAPH"])
    reader = owner.create_key("reader", ["READ_GRAPH"])
    run_key = {"X-API-Key": executor.plain_text_key.reveal()}
    read_key = {"X-API-Key": reader.plain_text_key.reveal()}

    app = documented_app(keyward.url, keyward.service_token, monkeypatch)
    async with running(app) as http:
        # A valid key reaches the handler, which knows whose it is.
        response = await http.post("/graphs/run", headers=run_key)
        assert response.status_code == 200, response.text
        assert response.json() == {"user_id": user, "key_id": executor.api_key.id}
        assert (await http.get("/graphs", headers=read_key)).status_code == 200

        # No key, a wrong key, a key without the permission.
        missing = await http.post("/graphs/run")
        assert (missing.status_code, missing.json()) == (401, {"detail": "Missing API key"})
        assert missing.headers["www-authenticate"] == "Bearer"
        invalid = await http.post("/graphs/run", headers={"X-API-Key": "agpt_wrong"})
        assert (invalid.status_code, invalid.json()) == (401, {"detail": "Invalid API key"})
        denied = await http.post("/graphs/run", headers=read_key)
        assert (denied.status_code, denied.json()) == (
            403,
            {"detail": "Missing required permission(s): EXECUTE_GRAPH"},
        )
        denied = await http.get("/graphs", headers=run_key)
        assert (denied.status_code, denied.json()) == (
            403,
            {"detail": "Missing required permission(s): READ_GRAPH"},
        )

        # Revoked through the API: the very next request is refused.
        owner.revoke_key(executor.api_key.id)
        revoked = await http.post("/graphs/run", headers=run_key)
        assert (revoked.status_code, revoked.json()) == (401, {"detail": "Invalid API key"})


async def test_the_documented_fastapi_app_answers_503_while_keyward_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        app = documented_app(f"http://127.0.0.1:{sock.getsockname()[1]}", "t" * 32, monkeypatch)
        # It starts all the same (the permission check is put off), then answers 503.
        async with running(app) as http:
            response = await http.get("/graphs", headers={"X-API-Key": "agpt_whatever"})
    assert (response.status_code, response.json()) == (
        503,
        {"detail": "The API key cannot be checked right now"},
    )


async def test_the_documented_fastapi_app_refuses_to_start_with_a_wrong_service_token(
    keyward: Keyward, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = documented_app(keyward.url, "not-the-service-token", monkeypatch)
    with pytest.raises(AuthenticationError):
        async with running(app):
            pass


class APIKeyPermission(str, enum.Enum):
    """What the middleware imports from AutoGPT (``prisma.enums``): its permission names."""

    EXECUTE_GRAPH = "EXECUTE_GRAPH"
    READ_GRAPH = "READ_GRAPH"
    EXECUTE_BLOCK = "EXECUTE_BLOCK"
    READ_BLOCK = "READ_BLOCK"


def autogpt_external_api(
    url: str, service_token: str, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    """AutoGPT's external API routes, as its ``external/routes/v1.py`` writes them, on the
    documented replacement of ``external/middleware.py``."""
    permission = APIKeyPermission
    prisma = types.ModuleType("prisma")
    prisma_enums = types.ModuleType("prisma.enums")
    prisma_enums.APIKeyPermission = permission  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prisma", prisma)
    monkeypatch.setitem(sys.modules, "prisma.enums", prisma_enums)
    # Imported without keyward's settings (as AutoGPT's other processes do): no error.
    monkeypatch.delenv("KEYWARD_URL", raising=False)
    middleware: dict[str, Any] = {"__name__": "backend.server.external.middleware"}
    exec(compile(documented_snippet("autogpt-middleware"), str(DOC), "exec"), middleware)
    require_permission = middleware["require_permission"]
    monkeypatch.setenv("KEYWARD_URL", url)
    monkeypatch.setenv("KEYWARD_SERVICE_TOKEN", service_token)

    app = FastAPI()

    @app.get("/blocks", dependencies=[Depends(require_permission(permission.READ_BLOCK))])
    def get_graph_blocks() -> list[str]:
        return ["block"]

    @app.post("/graphs/{graph_id}/execute/{graph_version}")
    def execute_graph(
        graph_id: str,
        graph_version: int,
        api_key: Any = Depends(require_permission(permission.EXECUTE_GRAPH)),
    ) -> dict[str, Any]:
        return {"graph_id": graph_id, "user_id": api_key.user_id}

    return app


async def test_the_documented_autogpt_middleware_keeps_autogpts_routes_working(
    keyward: Keyward, owner: KeywardClient, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = owner.create_key("runner", ["EXECUTE_GRAPH"])
    reader = owner.create_key("reader", ["READ_BLOCK"])
    app = autogpt_external_api(keyward.url, keyward.service_token, monkeypatch)
    assert await check_route_permissions(app)
    async with running(app) as http:
        run_key = {"X-API-Key": runner.plain_text_key.reveal()}
        response = await http.post("/graphs/g1/execute/3", headers=run_key)
        assert response.status_code == 200, response.text
        assert response.json() == {"graph_id": "g1", "user_id": user}
        read_key = {"X-API-Key": reader.plain_text_key.reveal()}
        assert (await http.get("/blocks", headers=read_key)).json() == ["block"]

        missing = await http.get("/blocks")
        assert (missing.status_code, missing.json()) == (401, {"detail": "Missing API key"})
        invalid = await http.get("/blocks", headers={"X-API-Key": "agpt_wrong"})
        assert (invalid.status_code, invalid.json()) == (401, {"detail": "Invalid API key"})
        denied = await http.post("/graphs/g1/execute/3", headers=read_key)
        assert (denied.status_code, denied.json()) == (
            403,
            {"detail": "Missing required permission(s): EXECUTE_GRAPH"},
        )
