"""keyward's operations as plain request descriptions, shared by the sync and async clients.

Each function returns a :class:`Call`: method, path, body and how to read the answer.
The clients only send it; so both speak exactly the same API.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx

from . import models
from ._secret import Secret, reveal
from .errors import (
    KeywardError,
    RateLimitError,
    TransportError,
    UnexpectedResponseError,
    UnknownPermissionsError,
    ValidationError,
    error_class,
)

T = TypeVar("T")

KeyId = str | UUID


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this field as it is" in :meth:`KeywardClient.update_key` and
#: :meth:`KeywardClient.update_key_as_admin` (``None`` clears it).
UNSET = _Unset.UNSET
Unset = _Unset

#: The buckets of a usage history: UTC hours or days.
Granularity = Literal["hour", "day"]

#: keyward's upper bound for usage credits and verification cost.
MAX_CREDITS = 10**15


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[object], T]
    body: Any = None
    params: Mapping[str, str | int] | None = None
    #: A secret in the request (the key being verified), scrubbed from any error.
    secret: str | None = None
    #: Turns a 422 into this error class (permission checks).
    on_invalid: Callable[[ValidationError], KeywardError] | None = None


# --- answers ----------------------------------------------------------------------------


def _scrub(text: str | None, secret: str | None) -> str | None:
    if text is None or not secret:
        return text
    return text.replace(secret, "**********")


def parse_response(call: Call[T], response: httpx.Response) -> T:
    """The result of ``call`` from keyward's ``response``, or the matching error."""
    status = response.status_code
    if status >= 400:
        raise _error(call, response)
    try:
        data = response.json()
    except ValueError:
        raise UnexpectedResponseError(
            status,
            "Unexpected response from keyward",
            f"{call.method} {call.path}: the body is not JSON",
        ) from None
    try:
        return call.parse(data)
    except models.ShapeError as err:
        raise UnexpectedResponseError(
            status, "Unexpected response from keyward", f"{call.method} {call.path}: {err}"
        ) from None


def _error(call: Call[Any], response: httpx.Response) -> KeywardError:
    status = response.status_code
    message: str = response.reason_phrase or "Error"
    detail: str | None = None
    hint: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
        detail = body.get("detail") if isinstance(body.get("detail"), str) else None
        hint = body.get("hint") if isinstance(body.get("hint"), str) else None
    else:
        detail = f"{call.method} {call.path}: not keyward's error body"
    message = _scrub(message, call.secret) or "Error"
    detail = _scrub(detail, call.secret)
    hint = _scrub(hint, call.secret)
    cls = error_class(status)
    if cls is RateLimitError:
        return RateLimitError(status, message, detail, hint, retry_after=_retry_after(response))
    error = cls(status, message, detail, hint)
    if isinstance(error, ValidationError) and call.on_invalid is not None:
        return call.on_invalid(error)
    return error


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def transport_error(call: Call[Any], err: Exception) -> KeywardError:
    # The httpx error's own text, not its request: that would carry the body, and the key.
    detail = _scrub(f"{call.method} {call.path}: {type(err).__name__}: {err}", call.secret)
    return TransportError(None, "keyward cannot be reached", detail)


# --- requests ---------------------------------------------------------------------------


def _id(key_id: KeyId) -> str:
    # Quoted whole: an id can never reach another path.
    return quote(str(key_id), safe="")


def _names(permissions: Iterable[str]) -> list[str]:
    if isinstance(permissions, str):
        raise TypeError("permissions: give a list of names, not one string")
    names = list(permissions)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"permissions: names are strings, not {type(name).__name__}")
    return names


def _credits(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not 0 <= value <= MAX_CREDITS):
        raise ValueError(f"{name}: must be an integer from 0 to {MAX_CREDITS}")
    return value


def _create_body(
    name: str,
    permissions: Iterable[str],
    description: str | None,
    expires_at: datetime | None,
    metadata: Mapping[str, Any] | None,
    allowed_ips: Iterable[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "permissions": _names(permissions)}
    if description is not None:
        body["description"] = description
    if expires_at is not None:
        body["expires_at"] = models.format_datetime(expires_at)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if allowed_ips is not None:
        body["allowed_ips"] = _networks(allowed_ips)
    return body


def _networks(allowed_ips: Iterable[str]) -> list[str]:
    # A lone string would be sent as its characters' list: refused here, by name.
    if isinstance(allowed_ips, str):
        raise TypeError("allowed_ips must be an iterable of networks, not one string")
    return list(allowed_ips)


def create_key(
    name: str,
    permissions: Iterable[str],
    *,
    description: str | None,
    expires_at: datetime | None,
    metadata: Mapping[str, Any] | None,
    allowed_ips: Iterable[str] | None = None,
) -> Call[models.CreatedKey]:
    # No credits or rate limit: they are the platform's (create_key_for_user).
    body = _create_body(name, permissions, description, expires_at, metadata, allowed_ips)
    return Call("POST", "/api/api-keys", models.created_key_from_json, body)


def list_keys() -> Call[list[models.ApiKey]]:
    return Call("GET", "/api/api-keys", models.api_keys_from_json)


def get_key(key_id: KeyId) -> Call[models.ApiKey]:
    return Call("GET", f"/api/api-keys/{_id(key_id)}", models.api_key_from_json)


def revoke_key(key_id: KeyId) -> Call[models.ApiKey]:
    return Call("DELETE", f"/api/api-keys/{_id(key_id)}", models.api_key_from_json)


def suspend_key(key_id: KeyId) -> Call[models.ApiKey]:
    return Call("POST", f"/api/api-keys/{_id(key_id)}/suspend", models.api_key_from_json)


def reactivate_key(key_id: KeyId) -> Call[models.ApiKey]:
    return Call("POST", f"/api/api-keys/{_id(key_id)}/reactivate", models.api_key_from_json)


def set_permissions(key_id: KeyId, permissions: Iterable[str]) -> Call[models.ApiKey]:
    return Call(
        "PUT",
        f"/api/api-keys/{_id(key_id)}/permissions",
        models.api_key_from_json,
        {"permissions": _names(permissions)},
    )


def _update_body(
    name: str | Unset,
    description: str | Unset | None,
    expires_at: datetime | Unset | None,
    metadata: Mapping[str, Any] | Unset | None,
    allowed_ips: Iterable[str] | Unset | None = UNSET,
) -> dict[str, Any]:
    # Only the fields given are sent: absent leaves a field alone, null clears it.
    body: dict[str, Any] = {}
    if not isinstance(name, Unset):
        body["name"] = name
    if not isinstance(description, Unset):
        body["description"] = description
    if not isinstance(expires_at, Unset):
        body["expires_at"] = None if expires_at is None else models.format_datetime(expires_at)
    if not isinstance(metadata, Unset):
        body["metadata"] = None if metadata is None else dict(metadata)
    if not isinstance(allowed_ips, Unset):
        body["allowed_ips"] = None if allowed_ips is None else _networks(allowed_ips)
    return body


def update_key(
    key_id: KeyId,
    *,
    name: str | Unset,
    description: str | Unset | None,
    expires_at: datetime | Unset | None,
    metadata: Mapping[str, Any] | Unset | None,
    allowed_ips: Iterable[str] | Unset | None = UNSET,
) -> Call[models.ApiKey]:
    body = _update_body(name, description, expires_at, metadata, allowed_ips)
    return Call("PATCH", f"/api/api-keys/{_id(key_id)}", models.api_key_from_json, body)


def rotate_key(key_id: KeyId, grace_seconds: int | None) -> Call[models.RotatedKey]:
    # keyward wants a JSON body here even when every field is left out.
    body = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
    return Call("POST", f"/api/api-keys/{_id(key_id)}/rotate", models.rotated_key_from_json, body)


def _paging(after: int | None, limit: int | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {}
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = limit
    return params


def list_key_events(key_id: KeyId, after: int | None, limit: int | None) -> Call[models.EventPage]:
    return Call(
        "GET",
        f"/api/api-keys/{_id(key_id)}/events",
        models.event_page_from_json,
        params=_paging(after, limit),
    )


def list_events(
    user_id: str | None, since: datetime | None, after: int | None, limit: int | None
) -> Call[models.EventPage]:
    params = _paging(after, limit)
    if user_id is not None:
        params["user_id"] = user_id
    if since is not None:
        params["since"] = models.format_datetime(since)
    return Call("GET", "/api/admin/events", models.event_page_from_json, params=params)


def _limits_path(user_id: str) -> str:
    return f"/api/admin/users/{quote(user_id, safe='')}/limits"


def get_user_limits(user_id: str) -> Call[models.UserLimits]:
    return Call("GET", _limits_path(user_id), models.user_limits_from_json)


def set_user_limits(
    user_id: str,
    *,
    rate_limit: models.RateLimit | None,
    credits: int | None,
    refill: models.Refill | None,
) -> Call[models.UserLimits]:
    body: dict[str, Any] = {}
    if rate_limit is not None:
        body["rate_limit"] = rate_limit.to_json()
    if credits is not None or refill is not None:
        grant: dict[str, Any] = {}
        if credits is not None:
            grant["remaining"] = _credits("credits", credits)
        if refill is not None:
            grant["refill"] = refill.to_json()
        body["credits"] = grant
    return Call("PUT", _limits_path(user_id), models.user_limits_from_json, body)


def delete_user_limits(user_id: str) -> Call[models.UserLimits]:
    return Call("DELETE", _limits_path(user_id), models.user_limits_from_json)


def delete_user(user_id: str) -> Call[models.DeletedUser]:
    return Call(
        "DELETE",
        f"/api/admin/users/{quote(user_id, safe='')}",
        models.deleted_user_from_json,
    )


def create_key_for_user(
    user_id: str,
    name: str,
    permissions: Iterable[str],
    *,
    description: str | None,
    expires_at: datetime | None,
    metadata: Mapping[str, Any] | None,
    rate_limit: models.RateLimit | None,
    remaining: int | None,
    allowed_ips: Iterable[str] | None = None,
    refill: models.Refill | None = None,
) -> Call[models.CreatedKey]:
    body = _create_body(name, permissions, description, expires_at, metadata, allowed_ips)
    if rate_limit is not None:
        body["rate_limit"] = rate_limit.to_json()
    if remaining is not None:
        body["remaining"] = _credits("remaining", remaining)
    if refill is not None:
        body["refill"] = refill.to_json()
    return Call(
        "POST",
        f"/api/admin/users/{quote(user_id, safe='')}/api-keys",
        models.created_key_from_json,
        body,
    )


def update_key_as_admin(
    key_id: KeyId,
    *,
    name: str | Unset,
    description: str | Unset | None,
    expires_at: datetime | Unset | None,
    metadata: Mapping[str, Any] | Unset | None,
    remaining: int | Unset | None,
    rate_limit: models.RateLimit | Unset | None,
    allowed_ips: Iterable[str] | Unset | None = UNSET,
    refill: models.Refill | Unset | None = UNSET,
) -> Call[models.ApiKey]:
    body = _update_body(name, description, expires_at, metadata, allowed_ips)
    if not isinstance(remaining, Unset):
        body["remaining"] = _credits("remaining", remaining)
    if not isinstance(refill, Unset):
        body["refill"] = None if refill is None else refill.to_json()
    if not isinstance(rate_limit, Unset):
        body["rate_limit"] = None if rate_limit is None else rate_limit.to_json()
    return Call("PATCH", f"/api/admin/api-keys/{_id(key_id)}", models.api_key_from_json, body)


def list_keys_of_user(user_id: str) -> Call[list[models.ApiKey]]:
    return Call(
        "GET", f"/api/admin/users/{quote(user_id, safe='')}/api-keys", models.api_keys_from_json
    )


def suspend_key_as_admin(key_id: KeyId) -> Call[models.ApiKey]:
    return Call("POST", f"/api/admin/api-keys/{_id(key_id)}/suspend", models.api_key_from_json)


def reactivate_key_as_admin(key_id: KeyId) -> Call[models.ApiKey]:
    return Call("POST", f"/api/admin/api-keys/{_id(key_id)}/reactivate", models.api_key_from_json)


def revoke_key_as_admin(key_id: KeyId) -> Call[models.ApiKey]:
    return Call("DELETE", f"/api/admin/api-keys/{_id(key_id)}", models.api_key_from_json)


def _usage_params(
    since: datetime | None, until: datetime | None, granularity: Granularity
) -> dict[str, str | int]:
    params: dict[str, str | int] = {"granularity": granularity}
    if since is not None:
        params["from"] = models.format_datetime(since)
    if until is not None:
        params["to"] = models.format_datetime(until)
    return params


def key_usage(
    key_id: KeyId, since: datetime | None, until: datetime | None, granularity: Granularity
) -> Call[models.Usage]:
    return Call(
        "GET",
        f"/api/api-keys/{_id(key_id)}/usage",
        models.usage_from_json,
        params=_usage_params(since, until, granularity),
    )


def usage(
    user_id: str | None, since: datetime | None, until: datetime | None, granularity: Granularity
) -> Call[models.Usage]:
    params = _usage_params(since, until, granularity)
    if user_id is not None:
        params["user_id"] = user_id
    return Call("GET", "/api/admin/usage", models.usage_from_json, params=params)


ClientIp = str | ipaddress.IPv4Address | ipaddress.IPv6Address


def verify(
    key: str | Secret,
    permissions: Iterable[str],
    client_ip: ClientIp | None,
    cost: int | None,
) -> Call[models.Verification]:
    plain = reveal(key)
    body: dict[str, Any] = {"key": plain, "permissions": _names(permissions)}
    if client_ip is not None:
        body["client_ip"] = str(client_ip)
    if cost is not None:
        body["cost"] = _credits("cost", cost)
    return Call(
        "POST",
        "/api/api-keys/verify",
        models.verification_from_json,
        body,
        secret=plain,
    )


def list_permissions() -> Call[tuple[str, ...]]:
    def parse(data: object) -> tuple[str, ...]:
        names = data.get("permissions") if isinstance(data, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise models.ShapeError("permissions: expected a list of names")
        return tuple(names)

    return Call("GET", "/api/permissions", parse)


# keyward's detail: "permissions: unknown permission(s): A, B" (on create: "; allowed: ...").
_UNKNOWN = re.compile(r"unknown permission\(s\): (?P<names>[^;]+)")

# Not a key: a string that can never be one, so checking names tells nothing about keys.
_PROBE_KEY = "keyward-client-permission-check"


def check_permissions(permissions: Iterable[str]) -> Call[None]:
    names = _names(permissions)

    def unknown(error: ValidationError) -> KeywardError:
        match = _UNKNOWN.search(error.detail or "")
        found = tuple(match["names"].strip().split(", ")) if match else tuple(names)
        return UnknownPermissionsError(
            error.status,
            error.message,
            error.detail,
            error.hint or "Use names from keyward's permission catalogue (KEYWARD_PERMISSIONS).",
            unknown=found,
        )

    # The verify API checks the names before the key, and names the unknown ones (the
    # catalogue route, GET /api/permissions, would only list the known ones).
    return Call(
        "POST",
        "/api/api-keys/verify",
        lambda _data: None,
        {"key": _PROBE_KEY, "permissions": names},
        on_invalid=unknown,
    )
