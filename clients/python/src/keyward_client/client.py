"""The clients: :class:`KeywardClient` (blocking) and :class:`AsyncKeywardClient` (asyncio).

Both take the same arguments and have the same methods; the async ones are coroutines.
The ``token`` is a user's JWT for the management calls (``/api/api-keys``), or the
service token (``KEYWARD_ADMIN_TOKEN``) for :meth:`verify`, :meth:`check_permissions`
and the admin calls.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _ops, models
from ._ops import UNSET, Call, ClientIp, Granularity, KeyId, Unset
from ._secret import Secret, reveal

__all__ = ["DEFAULT_TIMEOUT", "AsyncKeywardClient", "KeywardClient"]

T = TypeVar("T")

#: Seconds for connecting and for each read; keyward answers verifications in
#: microseconds, so waiting longer mostly delays the 503 a caller gets.
DEFAULT_TIMEOUT = 5.0

_USER_AGENT = "keyward-client-python/0.1.0"


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    # httpx builds a context (loading the CA bundle, ~50 ms) per client; one serves all.
    return httpx.create_ssl_context()


class _Base:
    def __init__(
        self,
        base_url: str,
        token: str | Secret | None,
        timeout: float | httpx.Timeout,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        self._base_url = base_url.rstrip("/")
        self._token = None if token is None else Secret(reveal(token))
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)

    @property
    def base_url(self) -> str:
        return self._base_url

    def _request_args(self, call: Call[Any]) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        # Per request rather than on the httpx client: an injected client is left untouched.
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        args: dict[str, Any] = {
            "method": call.method,
            "url": self._base_url + call.path,
            "headers": headers,
            "timeout": self._timeout,
        }
        if call.body is not None:
            args["json"] = call.body
        if call.params:
            args["params"] = dict(call.params)
        return args

    def __repr__(self) -> str:
        token = "None" if self._token is None else repr(self._token)
        return f"{type(self).__name__}(base_url={self._base_url!r}, token={token})"


class KeywardClient(_Base):
    """A blocking client for keyward's HTTP API.

    ``transport`` (an ``httpx`` transport, e.g. for tests) or ``http_client`` (an
    ``httpx.Client`` you configured and close yourself) may replace the default
    connection pool. ``timeout`` applies to every request either way.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | Secret | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout)
        if http_client is not None and transport is not None:
            raise ValueError("give transport or http_client, not both")
        self._owns_http = http_client is None
        self._http = (
            httpx.Client(transport=transport, verify=_tls()) if http_client is None else http_client
        )

    def with_token(self, token: str | Secret | None) -> KeywardClient:
        """The same client speaking with another token (one user's JWT, say), sharing the
        connection pool. Closing it does not close this one."""
        return KeywardClient(
            self._base_url, token=token, timeout=self._timeout, http_client=self._http
        )

    def _run(self, call: Call[T]) -> T:
        try:
            response = self._http.request(**self._request_args(call))
        except httpx.HTTPError as err:
            raise _ops.transport_error(call, err) from None
        return _ops.parse_response(call, response)

    def close(self) -> None:
        """Closes the connection pool (unless it was given as ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> KeywardClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the caller's keys (user JWT) -------------------------------------------------

    def create_key(
        self,
        name: str,
        permissions: Iterable[str] = (),
        *,
        description: str | None = None,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        allowed_ips: Iterable[str] | None = None,
    ) -> models.CreatedKey:
        """Creates a key. Its plaintext is in the result only (``plain_text_key``).

        Usage credits and a rate limit are the platform's to set:
        :meth:`create_key_for_user` (service token)."""
        return self._run(
            _ops.create_key(
                name,
                permissions,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                allowed_ips=allowed_ips,
            )
        )

    def list_keys(self) -> list[models.ApiKey]:
        """The caller's keys, newest first, every status."""
        return self._run(_ops.list_keys())

    def get_key(self, key_id: KeyId) -> models.ApiKey:
        return self._run(_ops.get_key(key_id))

    def revoke_key(self, key_id: KeyId) -> models.ApiKey:
        """Revokes a key for good (again: no change)."""
        return self._run(_ops.revoke_key(key_id))

    def suspend_key(self, key_id: KeyId) -> models.ApiKey:
        """Suspends a key: it fails verification until reactivated."""
        return self._run(_ops.suspend_key(key_id))

    def reactivate_key(self, key_id: KeyId) -> models.ApiKey:
        return self._run(_ops.reactivate_key(key_id))

    def set_permissions(self, key_id: KeyId, permissions: Iterable[str]) -> models.ApiKey:
        """Replaces a key's permissions."""
        return self._run(_ops.set_permissions(key_id, permissions))

    def update_key(
        self,
        key_id: KeyId,
        *,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset | None = UNSET,
        allowed_ips: Iterable[str] | Unset | None = UNSET,
    ) -> models.ApiKey:
        """Changes the fields given; ``None`` clears ``description``, ``expires_at``
        (never expires) or ``metadata``. Usage credits and the rate limit are the
        platform's to change: :meth:`update_key_as_admin` (service token)."""
        return self._run(
            _ops.update_key(
                key_id,
                name=name,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                allowed_ips=allowed_ips,
            )
        )

    def rotate_key(self, key_id: KeyId, *, grace_seconds: int | None = None) -> models.RotatedKey:
        """Replaces a key by a new one; the old one works ``grace_seconds`` more
        (keyward's default: an hour; 0: ends at once)."""
        return self._run(_ops.rotate_key(key_id, grace_seconds))

    def list_key_events(
        self, key_id: KeyId, *, after: int | None = None, limit: int | None = None
    ) -> models.EventPage:
        """A page of a key's audit trail, oldest first."""
        return self._run(_ops.list_key_events(key_id, after, limit))

    # --- anyone with a token ------------------------------------------------------------

    def list_permissions(self) -> tuple[str, ...]:
        """The permission names keyward accepts, in catalogue order (a user's JWT or the
        service token)."""
        return self._run(_ops.list_permissions())

    # --- services (service token) -------------------------------------------------------

    def verify(
        self,
        key: str | Secret,
        permissions: Iterable[str] = (),
        *,
        client_ip: ClientIp | None = None,
        cost: int | None = None,
    ) -> models.Verification:
        """keyward's verdict on ``key`` needing all of ``permissions``.

        ``client_ip``: the end client's address, for keyward's failed-attempt limit.
        ``cost``: usage credits a valid verification takes (keyward's default: 1).
        An invalid key is a :class:`Verification` with ``valid=False``, not an error.
        """
        return self._run(_ops.verify(key, permissions, client_ip, cost))

    def check_permissions(self, permissions: Iterable[str]) -> None:
        """Raises :class:`UnknownPermissionsError` when keyward's catalogue lacks one of
        ``permissions``; call it at start-up for the names your routes require."""
        self._run(_ops.check_permissions(permissions))

    def list_events(
        self,
        *,
        user_id: str | None = None,
        since: datetime | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> models.EventPage:
        """A page of the audit trail across keys, oldest first (admin)."""
        return self._run(_ops.list_events(user_id, since, after, limit))

    def delete_user(self, user_id: str) -> models.DeletedUser:
        """Deletes all of a user's keys (admin): they fail verification at once."""
        return self._run(_ops.delete_user(user_id))

    def get_user_limits(self, user_id: str) -> models.UserLimits:
        """The limits all of a user's keys share: theirs, or the deployment's defaults (admin)."""
        return self._run(_ops.get_user_limits(user_id))

    def set_user_limits(
        self,
        user_id: str,
        *,
        rate_limit: models.RateLimit | None = None,
        credits: int | None = None,
        refill: models.Refill | None = None,
    ) -> models.UserLimits:
        """Sets the limits all of a user's keys share, in place of the defaults (admin):
        one ``rate_limit`` pool, and one balance of ``credits`` (default: the refill's
        amount) renewed by ``refill``. A limit not given is none."""
        return self._run(
            _ops.set_user_limits(user_id, rate_limit=rate_limit, credits=credits, refill=refill)
        )

    def delete_user_limits(self, user_id: str) -> models.UserLimits:
        """Removes a user's own limits; answers the defaults that now apply (admin)."""
        return self._run(_ops.delete_user_limits(user_id))

    def key_usage(
        self,
        key_id: KeyId,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity = "hour",
    ) -> models.Usage:
        """The key's verifications per UTC hour (by default the last 48) or day (the last
        30), VALID and refused, oldest first."""
        return self._run(_ops.key_usage(key_id, since, until, granularity))

    def usage(
        self,
        *,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity = "hour",
    ) -> models.Usage:
        """Verifications of one user's keys, or of every key (admin), per hour or day."""
        return self._run(_ops.usage(user_id, since, until, granularity))

    def list_keys_of_user(self, user_id: str) -> list[models.ApiKey]:
        """A user's keys, newest first, every status (admin)."""
        return self._run(_ops.list_keys_of_user(user_id))

    def suspend_key_as_admin(self, key_id: KeyId) -> models.ApiKey:
        """Suspends any user's key (admin); recorded as the service's change."""
        return self._run(_ops.suspend_key_as_admin(key_id))

    def reactivate_key_as_admin(self, key_id: KeyId) -> models.ApiKey:
        """Reactivates any user's suspended key (admin)."""
        return self._run(_ops.reactivate_key_as_admin(key_id))

    def revoke_key_as_admin(self, key_id: KeyId) -> models.ApiKey:
        """Revokes any user's key for good (admin)."""
        return self._run(_ops.revoke_key_as_admin(key_id))

    def create_key_for_user(
        self,
        user_id: str,
        name: str,
        permissions: Iterable[str] = (),
        *,
        description: str | None = None,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        rate_limit: models.RateLimit | None = None,
        remaining: int | None = None,
        allowed_ips: Iterable[str] | None = None,
        refill: models.Refill | None = None,
    ) -> models.CreatedKey:
        """Creates a key on ``user_id``'s behalf (admin), with the usage credits
        (``remaining``, renewed by ``refill``) and ``rate_limit`` only the platform sets. It counts toward the
        user's key limit; its plaintext is in the result only (``plain_text_key``)."""
        return self._run(
            _ops.create_key_for_user(
                user_id,
                name,
                permissions,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                rate_limit=rate_limit,
                remaining=remaining,
                allowed_ips=allowed_ips,
                refill=refill,
            )
        )

    def update_key_as_admin(
        self,
        key_id: KeyId,
        *,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset | None = UNSET,
        remaining: int | Unset | None = UNSET,
        rate_limit: models.RateLimit | Unset | None = UNSET,
        allowed_ips: Iterable[str] | Unset | None = UNSET,
        refill: models.Refill | Unset | None = UNSET,
    ) -> models.ApiKey:
        """Changes the fields given of any user's key (admin): as :meth:`update_key`,
        plus ``remaining`` (a top-up; ``None``: unlimited), ``refill`` (``None``: the
        credits stop renewing) and ``rate_limit`` (``None`` removes it)."""
        return self._run(
            _ops.update_key_as_admin(
                key_id,
                name=name,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                remaining=remaining,
                rate_limit=rate_limit,
                allowed_ips=allowed_ips,
                refill=refill,
            )
        )


class AsyncKeywardClient(_Base):
    """The asyncio twin of :class:`KeywardClient`: same arguments, same methods, awaited.

    Create one per application (one connection pool) and close it with ``aclose()`` or
    ``async with``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | Secret | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout)
        if http_client is not None and transport is not None:
            raise ValueError("give transport or http_client, not both")
        self._owns_http = http_client is None
        self._http = (
            httpx.AsyncClient(transport=transport, verify=_tls())
            if http_client is None
            else http_client
        )

    def with_token(self, token: str | Secret | None) -> AsyncKeywardClient:
        """See :meth:`KeywardClient.with_token`."""
        return AsyncKeywardClient(
            self._base_url, token=token, timeout=self._timeout, http_client=self._http
        )

    async def _run(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(**self._request_args(call))
        except httpx.HTTPError as err:
            raise _ops.transport_error(call, err) from None
        return _ops.parse_response(call, response)

    async def aclose(self) -> None:
        """Closes the connection pool (unless it was given as ``http_client``)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncKeywardClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def create_key(
        self,
        name: str,
        permissions: Iterable[str] = (),
        *,
        description: str | None = None,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        allowed_ips: Iterable[str] | None = None,
    ) -> models.CreatedKey:
        return await self._run(
            _ops.create_key(
                name,
                permissions,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                allowed_ips=allowed_ips,
            )
        )

    async def list_keys(self) -> list[models.ApiKey]:
        return await self._run(_ops.list_keys())

    async def get_key(self, key_id: KeyId) -> models.ApiKey:
        return await self._run(_ops.get_key(key_id))

    async def revoke_key(self, key_id: KeyId) -> models.ApiKey:
        return await self._run(_ops.revoke_key(key_id))

    async def suspend_key(self, key_id: KeyId) -> models.ApiKey:
        return await self._run(_ops.suspend_key(key_id))

    async def reactivate_key(self, key_id: KeyId) -> models.ApiKey:
        return await self._run(_ops.reactivate_key(key_id))

    async def set_permissions(self, key_id: KeyId, permissions: Iterable[str]) -> models.ApiKey:
        return await self._run(_ops.set_permissions(key_id, permissions))

    async def update_key(
        self,
        key_id: KeyId,
        *,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset | None = UNSET,
        allowed_ips: Iterable[str] | Unset | None = UNSET,
    ) -> models.ApiKey:
        return await self._run(
            _ops.update_key(
                key_id,
                name=name,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                allowed_ips=allowed_ips,
            )
        )

    async def rotate_key(
        self, key_id: KeyId, *, grace_seconds: int | None = None
    ) -> models.RotatedKey:
        return await self._run(_ops.rotate_key(key_id, grace_seconds))

    async def list_key_events(
        self, key_id: KeyId, *, after: int | None = None, limit: int | None = None
    ) -> models.EventPage:
        return await self._run(_ops.list_key_events(key_id, after, limit))

    async def verify(
        self,
        key: str | Secret,
        permissions: Iterable[str] = (),
        *,
        client_ip: ClientIp | None = None,
        cost: int | None = None,
    ) -> models.Verification:
        return await self._run(_ops.verify(key, permissions, client_ip, cost))

    async def check_permissions(self, permissions: Iterable[str]) -> None:
        await self._run(_ops.check_permissions(permissions))

    async def list_permissions(self) -> tuple[str, ...]:
        return await self._run(_ops.list_permissions())

    async def list_events(
        self,
        *,
        user_id: str | None = None,
        since: datetime | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> models.EventPage:
        return await self._run(_ops.list_events(user_id, since, after, limit))

    async def delete_user(self, user_id: str) -> models.DeletedUser:
        return await self._run(_ops.delete_user(user_id))

    async def get_user_limits(self, user_id: str) -> models.UserLimits:
        return await self._run(_ops.get_user_limits(user_id))

    async def set_user_limits(
        self,
        user_id: str,
        *,
        rate_limit: models.RateLimit | None = None,
        credits: int | None = None,
        refill: models.Refill | None = None,
    ) -> models.UserLimits:
        return await self._run(
            _ops.set_user_limits(user_id, rate_limit=rate_limit, credits=credits, refill=refill)
        )

    async def delete_user_limits(self, user_id: str) -> models.UserLimits:
        return await self._run(_ops.delete_user_limits(user_id))

    async def key_usage(
        self,
        key_id: KeyId,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity = "hour",
    ) -> models.Usage:
        return await self._run(_ops.key_usage(key_id, since, until, granularity))

    async def usage(
        self,
        *,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity = "hour",
    ) -> models.Usage:
        return await self._run(_ops.usage(user_id, since, until, granularity))

    async def list_keys_of_user(self, user_id: str) -> list[models.ApiKey]:
        return await self._run(_ops.list_keys_of_user(user_id))

    async def suspend_key_as_admin(self, key_id: KeyId) -> models.ApiKey:
        return await self._run(_ops.suspend_key_as_admin(key_id))

    async def reactivate_key_as_admin(self, key_id: KeyId) -> models.ApiKey:
        return await self._run(_ops.reactivate_key_as_admin(key_id))

    async def revoke_key_as_admin(self, key_id: KeyId) -> models.ApiKey:
        return await self._run(_ops.revoke_key_as_admin(key_id))

    async def create_key_for_user(
        self,
        user_id: str,
        name: str,
        permissions: Iterable[str] = (),
        *,
        description: str | None = None,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        rate_limit: models.RateLimit | None = None,
        remaining: int | None = None,
        allowed_ips: Iterable[str] | None = None,
        refill: models.Refill | None = None,
    ) -> models.CreatedKey:
        return await self._run(
            _ops.create_key_for_user(
                user_id,
                name,
                permissions,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                rate_limit=rate_limit,
                remaining=remaining,
                allowed_ips=allowed_ips,
                refill=refill,
            )
        )

    async def update_key_as_admin(
        self,
        key_id: KeyId,
        *,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset | None = UNSET,
        remaining: int | Unset | None = UNSET,
        rate_limit: models.RateLimit | Unset | None = UNSET,
        allowed_ips: Iterable[str] | Unset | None = UNSET,
        refill: models.Refill | Unset | None = UNSET,
    ) -> models.ApiKey:
        return await self._run(
            _ops.update_key_as_admin(
                key_id,
                name=name,
                description=description,
                expires_at=expires_at,
                metadata=metadata,
                remaining=remaining,
                rate_limit=rate_limit,
                allowed_ips=allowed_ips,
                refill=refill,
            )
        )
