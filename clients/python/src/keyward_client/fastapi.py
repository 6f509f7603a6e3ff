"""Protect FastAPI routes with keyward API keys.

.. code-block:: python

    app = FastAPI(lifespan=lifespan)  # the lifespan sets app.state.keyward

    @app.get("/graphs")
    async def graphs(key: Annotated[VerifiedKey, Depends(require_api_key("READ_GRAPH"))]):
        return {"user": key.user_id}

``require_api_key(*permissions)`` reads the key from ``X-API-Key`` (AutoGPT's header),
else from ``Authorization: Bearer``, asks keyward's verify API through an
:class:`~keyward_client.AsyncKeywardClient` holding the service token, and answers as
AutoGPT's external API and the Rust ``keyward-guard`` do:

- 401 ``{"detail": "Missing API key"}`` / ``{"detail": "Invalid API key"}``, with
  ``WWW-Authenticate: Bearer``;
- 403 ``{"detail": "Missing required permission(s): A, B"}`` (those missing, in the
  order required) or ``{"detail": "API key usage credits exhausted"}``;
- 429 ``{"detail": "Rate limit exceeded"}`` with ``Retry-After``;
- 503 ``{"detail": "The API key cannot be checked right now"}`` when keyward cannot be
  reached or fails;
- 500 ``{"detail": "Internal error"}`` when this service is misconfigured (keyward
  refuses its service token, or a permission name): logged as an error, and found at
  start-up by :func:`check_route_permissions`.

The client is the one given as ``client=``, else ``request.app.state.keyward``.
"""

# No `from __future__ import annotations` here: FastAPI reads the dependency's
# signature at run time, and a callable instance has no module globals to resolve
# string annotations with.

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Security, params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ._ops import MAX_CREDITS
from .client import AsyncKeywardClient
from .errors import (
    AuthenticationError,
    KeywardError,
    PermissionDeniedError,
    ServerError,
    TransportError,
    ValidationError,
)
from .models import Verification, VerifyCode

__all__ = [
    "ClientAddress",
    "ClientSource",
    "RequireApiKey",
    "VerifiedKey",
    "check_route_permissions",
    "require_api_key",
]

logger = logging.getLogger(__name__)

MISSING_KEY = "Missing API key"
INVALID_KEY = "Invalid API key"
RATE_LIMITED = "Rate limit exceeded"
CREDITS_EXHAUSTED = "API key usage credits exhausted"
ADDRESS_NOT_ALLOWED = "The API key may not be used from this address"
UNAVAILABLE = "The API key cannot be checked right now"
INTERNAL_ERROR = "Internal error"

#: Longer than any key keyward makes or imports: refused here as invalid, rather than
#: sent to keyward (whose request bodies stop at 64 KiB).
MAX_KEY_LENGTH = 1024

# keyward's rule for permission names (1-64 of A-Z, 0-9 and _, starting with a letter).
_PERMISSION_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

# What an HTTP header value must be to be read at all: visible ASCII and tabs, as for
# keyward-guard (http's HeaderValue::to_str).
_VISIBLE_ASCII = re.compile(r"[\t\x20-\x7e]*")

# For the OpenAPI document (/docs's "Authorize" button) only: the key is read from the
# headers by presented_key(), the same way keyward-guard reads it.
_X_API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="A keyward API key (agpt_...)"
)
_BEARER = HTTPBearer(
    auto_error=False,
    description="A keyward API key as a bearer token (Authorization: Bearer agpt_...)",
)


@dataclass(frozen=True)
class VerifiedKey:
    """Who a request that passed is from: the key's owner, the key, and all its permissions."""

    user_id: str
    key_id: str
    permissions: tuple[str, ...]
    #: The key's metadata (its owner's JSON object), if it has some.
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    #: Usage credits left after this request, for a key that has credits.
    remaining: int | None = None


class ClientAddress(Enum):
    """Which address keyward is told is the end client's: its failed-attempt limit
    counts per client, and a key bound to networks (``allowed_ips``) is only accepted
    from an address inside them."""

    #: The connection's peer (``request.client``). Behind a reverse proxy, run uvicorn
    #: with ``--proxy-headers --forwarded-allow-ips=<proxy>`` so that this is the client.
    PEER = "peer"
    #: The last ``X-Forwarded-For`` entry (the one your proxy appended), else the peer.
    #: Only right when every request comes through that proxy.
    LAST_FORWARDED_FOR = "last-forwarded-for"
    #: None: failed attempts are not counted per client, and a key bound to networks is
    #: refused (``IP_NOT_ALLOWED``).
    NONE = "none"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents: ``X-API-Key``, else ``Authorization: Bearer <key>``.

    A present ``X-API-Key`` wins even when blank (then there is no key), as in
    keyward-guard.
    """
    key = headers.get("x-api-key")
    if key is not None and _VISIBLE_ASCII.fullmatch(key):
        return key.strip() or None
    authorization = headers.get("authorization")
    if authorization is None or not _VISIBLE_ASCII.fullmatch(authorization):
        return None
    scheme, space, token = authorization.partition(" ")
    if not space or scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _ip(text: str | None) -> str | None:
    # keyward takes plain addresses: no IPv6 zone ("%eth0"), as Rust's IpAddr parses them.
    if not text or "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _refusal(status: int, detail: str, headers: dict[str, str] | None = None) -> HTTPException:
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return HTTPException(status_code=status, detail=detail, headers=headers)


#: What ``client=`` takes: the client, or a function returning it.
ClientSource = AsyncKeywardClient | Callable[[], AsyncKeywardClient]


def _resolve(source: ClientSource | None) -> AsyncKeywardClient | None:
    if source is None or isinstance(source, AsyncKeywardClient):
        return source
    return source()


class RequireApiKey:
    """The dependency :func:`require_api_key` makes. ``permissions`` is what it requires."""

    def __init__(
        self,
        permissions: tuple[str, ...],
        *,
        client: ClientSource | None,
        cost: int | None,
        client_address: ClientAddress,
    ) -> None:
        self.permissions = permissions
        self.client = client
        self.cost = cost
        self.client_address = client_address

    def __repr__(self) -> str:
        names = ", ".join(repr(p) for p in self.permissions)
        return f"require_api_key({names})"

    async def __call__(
        self,
        request: Request,
        # Declared for the OpenAPI document; the values are read by presented_key().
        _x_api_key: Annotated[str | None, Security(_X_API_KEY)] = None,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> VerifiedKey:
        key = presented_key(request.headers)
        if key is None:
            raise _refusal(401, MISSING_KEY)
        if len(key) > MAX_KEY_LENGTH:
            raise _refusal(401, INVALID_KEY)
        client = self._client_for(request)
        try:
            verification = await client.verify(
                key, self.permissions, client_ip=self._client_ip(request), cost=self.cost
            )
        except (TransportError, ServerError) as err:
            logger.warning("keyward could not verify a key: %s", err)
            raise _refusal(503, UNAVAILABLE) from None
        except (AuthenticationError, PermissionDeniedError) as err:
            logger.error(
                "keyward refused the service credential (%s): give the AsyncKeywardClient "
                "a credential holding keys.verify (keyward credentials create --scope "
                "keys.verify)",
                err,
            )
            raise _refusal(500, INTERNAL_ERROR) from None
        except ValidationError as err:
            logger.error(
                "keyward refused the permissions required by %r (%s): use names from "
                "keyward's catalogue; check_route_permissions(app) at start-up finds these",
                self,
                err,
            )
            raise _refusal(500, INTERNAL_ERROR) from None
        except KeywardError as err:
            logger.warning("keyward could not verify a key: %s", err)
            raise _refusal(503, UNAVAILABLE) from None
        except Exception as err:
            # Anything else (a closed client, one bound to another event loop) fails
            # closed too, as a 503 rather than a 500 carrying a traceback whose frames
            # hold the key. Only the exception's type and text are logged.
            logger.error("keyward could not be asked: %s: %s", type(err).__name__, err)
            raise _refusal(503, UNAVAILABLE) from None
        return self._decide(verification)

    def _decide(self, verification: Verification) -> VerifiedKey:
        code = verification.code
        if code is VerifyCode.UNKNOWN:
            # A code newer than this client: refused, by its name (as keyward-guard does),
            # never taken for another.
            name = verification.code_name
            shown = name if _PERMISSION_NAME.fullmatch(name) else "an unknown code"
            raise _refusal(401, f"The API key was refused ({shown})")
        found = verification.user_id is not None and verification.key_id is not None
        if code is VerifyCode.VALID and verification.valid:
            if verification.user_id is None or verification.key_id is None:
                logger.warning("keyward answered VALID without the key's identity")
                raise _refusal(503, UNAVAILABLE)
            return VerifiedKey(
                user_id=verification.user_id,
                key_id=verification.key_id,
                permissions=verification.permissions,
                metadata=verification.metadata,
                remaining=verification.remaining,
            )
        if code is VerifyCode.INSUFFICIENT_PERMISSIONS and found:
            missing = verification.missing_permissions(self.permissions)
            raise _refusal(403, f"Missing required permission(s): {', '.join(missing)}")
        if code is VerifyCode.RATE_LIMITED:
            seconds = verification.retry_after_seconds or 1
            raise _refusal(429, RATE_LIMITED, {"Retry-After": str(seconds)})
        if code is VerifyCode.USAGE_EXCEEDED:
            raise _refusal(403, CREDITS_EXHAUSTED)
        if code is VerifyCode.IP_NOT_ALLOWED:
            raise _refusal(403, ADDRESS_NOT_ALLOWED)
        raise _refusal(401, INVALID_KEY)

    def _client_for(self, request: Request) -> AsyncKeywardClient:
        try:
            client = _resolve(self.client)
        except Exception as err:
            logger.error(
                "%r: the keyward client could not be made: %s: %s", self, type(err).__name__, err
            )
            raise _refusal(500, INTERNAL_ERROR) from None
        if client is None:
            client = getattr(request.app.state, "keyward", None)
        if not isinstance(client, AsyncKeywardClient):
            logger.error(
                "%r has no keyward client: pass client=... or set app.state.keyward to an "
                "AsyncKeywardClient (in the app's lifespan)",
                self,
            )
            raise _refusal(500, INTERNAL_ERROR)
        return client

    def _client_ip(self, request: Request) -> str | None:
        # A link-local peer's zone says which interface, not who: dropped.
        peer = _ip(request.client.host.split("%", 1)[0]) if request.client else None
        if self.client_address is ClientAddress.PEER:
            return peer
        if self.client_address is ClientAddress.LAST_FORWARDED_FOR:
            values = request.headers.getlist("x-forwarded-for")
            if not values:
                return peer
            # Not an address (``unknown``, ``ip:port``): none, rather than the proxy's
            # own, which would put every client behind one failure counter.
            return _ip(values[-1].rsplit(",", 1)[-1].strip())
        return None


def require_api_key(
    *permissions: str,
    client: ClientSource | None = None,
    cost: int | None = None,
    client_address: ClientAddress = ClientAddress.PEER,
) -> RequireApiKey:
    """A FastAPI dependency: the request needs a valid key holding all of ``permissions``
    (none: any valid key). It returns a :class:`VerifiedKey`.

    Use it as ``key: Annotated[VerifiedKey, Depends(require_api_key("READ_GRAPH"))]``,
    or in ``dependencies=[Depends(require_api_key(...))]`` of a route or router.

    ``client``: the :class:`AsyncKeywardClient` (with the service token) to ask, or a
    function returning it (called at each request: e.g. a ``functools.cache``'d factory,
    so that the client is made at the first request rather than at import); by default
    ``request.app.state.keyward``. ``cost``: usage credits each request takes
    from a key that has credits (keyward's default: 1). ``client_address``: see
    :class:`ClientAddress`.

    Names that can never be permission names raise ``ValueError`` here; names keyward's
    catalogue lacks are found by :func:`check_route_permissions`.
    """
    names: list[str] = []
    for name in permissions:
        if not isinstance(name, str) or not _PERMISSION_NAME.fullmatch(name):
            raise ValueError(
                f"permission name {name!r} must be 1-64 characters of A-Z, 0-9 and _, "
                "starting with a letter"
            )
        if name not in names:
            names.append(name)
    if cost is not None and (isinstance(cost, bool) or not 0 <= cost <= MAX_CREDITS):
        raise ValueError(f"cost: must be an integer from 0 to {MAX_CREDITS}")
    return RequireApiKey(tuple(names), client=client, cost=cost, client_address=client_address)


def _find(node: object, found: list[RequireApiKey], seen: set[int]) -> None:
    """Every require_api_key dependency reachable from ``node``: routes, routers (as
    included, with their own dependencies), route dependencies and their sub-dependencies.

    Duck-typed over FastAPI's route objects, which change between versions (since 0.13x
    an included router stays one object instead of being copied into the app's routes).
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, RequireApiKey):
        found.append(node)
        return
    if isinstance(node, Dependant):
        if node.call is not None:
            _find(node.call, found, seen)
        for sub in node.dependencies:
            _find(sub, found, seen)
        return
    if isinstance(node, params.Depends):
        call = node.dependency
        if isinstance(call, RequireApiKey):
            _find(call, found, seen)
        elif call is not None:
            try:
                _find(get_dependant(path="", call=call), found, seen)
            except Exception:  # a dependency FastAPI itself will judge; not ours to fail on
                logger.debug("could not inspect dependency %r", call, exc_info=True)
        return
    for name in ("router", "original_router", "include_context", "dependant"):
        child = getattr(node, name, None)
        if child is not None:
            _find(child, found, seen)
    for name in ("routes", "dependencies"):
        children = getattr(node, name, None)
        if isinstance(children, (list, tuple)):
            for child in children:
                _find(child, found, seen)


async def check_route_permissions(app: FastAPI, client: AsyncKeywardClient | None = None) -> bool:
    """Asks keyward whether it knows every permission the app's routes require through
    :func:`require_api_key` (also checking the service token). Call it in the lifespan,
    once ``app.state.keyward`` is set: a wrong name then stops the start-up.

    Raises :class:`~keyward_client.UnknownPermissionsError` (naming them) or
    :class:`~keyward_client.AuthenticationError` (a wrong service token). When keyward
    cannot be reached it logs a warning and returns ``False``, so that the service can
    start before keyward does; otherwise it returns ``True``.
    """
    # Each dependency asks its own client (or the app's), so names are checked per client.
    by_client: dict[int, tuple[AsyncKeywardClient, set[str]]] = {}
    default = client if client is not None else getattr(app.state, "keyward", None)
    found: list[RequireApiKey] = []
    _find(app, found, set())
    for dependency in found:
        own = _resolve(dependency.client)
        asker = own if own is not None else default
        if not isinstance(asker, AsyncKeywardClient):
            raise RuntimeError(
                f"{dependency!r} has no keyward client: pass client=... or set "
                "app.state.keyward before checking"
            )
        by_client.setdefault(id(asker), (asker, set()))[1].update(dependency.permissions)
    try:
        for asker, names in by_client.values():
            await asker.check_permissions(sorted(names))
    except (TransportError, ServerError) as err:
        logger.warning("keyward could not be asked about the routes' permissions: %s", err)
        return False
    return True
