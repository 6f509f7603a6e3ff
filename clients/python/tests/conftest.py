from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from keyward_client import KeywardClient
from keyward_server import Keyward, run_keyward


@pytest.fixture(scope="session")
def keyward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyward]:
    """One keyward for the whole run; tests keep apart by using users of their own."""
    try:
        with run_keyward(tmp_path_factory.mktemp("keyward")) as server:
            yield server
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def user() -> str:
    """A user of this test's own."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def owner(keyward: Keyward, user: str) -> Iterator[KeywardClient]:
    """A client speaking for ``user`` (the management API)."""
    with KeywardClient(keyward.url, token=keyward.user_token(user)) as client:
        yield client


@pytest.fixture
def service(keyward: Keyward) -> Iterator[KeywardClient]:
    """A client with the service token (verify and admin APIs)."""
    with KeywardClient(keyward.url, token=keyward.service_token) as client:
        yield client


_addresses = itertools.count(1)


@pytest.fixture
def client_ip() -> str:
    """An end-client address of this test's own: keyward counts failed verifications per
    client, and tests must not add up to its limit together."""
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"
