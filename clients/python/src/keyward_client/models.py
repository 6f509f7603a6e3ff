"""What keyward answers, as frozen dataclasses.

Fields follow keyward's OpenAPI document (``keyward openapi``). Fields keyward adds
later are ignored, and an enum value this version does not know becomes ``UNKNOWN``,
so that an older client keeps working against a newer server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from ._secret import Secret


class VerifyCode(str, Enum):
    """Why a key passed verification or not."""

    VALID = "VALID"
    MALFORMED = "MALFORMED"
    NOT_FOUND = "NOT_FOUND"
    SUSPENDED = "SUSPENDED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    INSUFFICIENT_PERMISSIONS = "INSUFFICIENT_PERMISSIONS"
    RATE_LIMITED = "RATE_LIMITED"
    USAGE_EXCEEDED = "USAGE_EXCEEDED"
    #: The key is bound to networks and the end client's address is in none of them.
    IP_NOT_ALLOWED = "IP_NOT_ALLOWED"
    #: A code newer than this client.
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> VerifyCode:
        return cls.UNKNOWN

    def __str__(self) -> str:
        return self.value


class KeyStatus(str, Enum):
    """A key's stored status. Expiry is not a status: compare ``expires_at`` with now."""

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    REVOKED = "REVOKED"
    #: A status newer than this client.
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> KeyStatus:
        return cls.UNKNOWN

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` verifications per ``per_seconds`` (bursts of up to ``requests``)."""

    requests: int
    per_seconds: int

    def to_json(self) -> dict[str, int]:
        return {"requests": self.requests, "per_seconds": self.per_seconds}


@dataclass(frozen=True)
class Refill:
    """Usage credits set back to ``amount`` at every boundary of ``interval`` (UTC):
    ``"minute"``, ``"hour"``, ``"day"``, ``"week"`` (Mondays) or ``"month"`` (on the
    1st, or on ``day_of_month``; the last day of shorter months)."""

    amount: int
    interval: str
    day_of_month: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"amount": self.amount, "interval": self.interval}
        if self.day_of_month is not None:
            body["day_of_month"] = self.day_of_month
        return body


@dataclass(frozen=True)
class ApiKey:
    """An API key, without its secret."""

    id: str
    user_id: str
    name: str
    #: The key's first and last 8 characters, for display (``prefix****postfix``).
    prefix: str
    postfix: str
    status: KeyStatus
    permissions: tuple[str, ...]
    created_at: datetime
    description: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    rate_limit: RateLimit | None = None
    #: The owner's JSON object, returned by verification.
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    #: Usage credits left; ``None``: unlimited.
    remaining: int | None = None
    #: How the credits renew; ``None``: they do not.
    refill: Refill | None = None
    #: When the credits are next set back to ``refill.amount``.
    next_refill_at: datetime | None = None
    rotated_from: str | None = None
    rotated_to: str | None = None
    #: The networks (CIDR) it may be used from; ``None``: any address.
    allowed_ips: tuple[str, ...] | None = None

    @property
    def masked(self) -> str:
        """How to show the key to its owner: ``agpt_x7Q****k2N9dPqZ``."""
        return f"{self.prefix}****{self.postfix}"


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its plaintext, which keyward shows this once only."""

    api_key: ApiKey
    plain_text_key: Secret


@dataclass(frozen=True)
class RotatedKey:
    """The key that replaces a rotated one (with its plaintext), and the old key as it now is."""

    api_key: ApiKey
    plain_text_key: Secret
    previous_key: ApiKey


@dataclass(frozen=True)
class Verification:
    """keyward's verdict on a key. The key's fields are there whenever the key was found."""

    valid: bool
    code: VerifyCode
    key_id: str | None = None
    user_id: str | None = None
    permissions: tuple[str, ...] = ()
    expires_at: datetime | None = None
    #: With ``RATE_LIMITED``: seconds until the same request would pass.
    retry_after: float | None = None
    #: For a key with usage credits, after a ``VALID`` verification: how many are left.
    remaining: int | None = None
    #: For a key whose credits renew: when they are next set back.
    next_refill_at: datetime | None = None
    #: With ``RATE_LIMITED`` or ``USAGE_EXCEEDED``: whose limit refused, ``"key"`` or
    #: ``"user"`` (its owner's, shared by all their keys); ``None`` for a failing client.
    limit: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    #: When the key was found: whether it has a rate limit or usage credits, so that each
    #: use must reach keyward (a verdict on it must not be reused). Newer servers only.
    metered: bool | None = None
    #: The code as keyward sent it: with ``UNKNOWN``, the name of a code newer than
    #: this client (a refusal, named by it).
    code_name: str = ""

    @property
    def retry_after_seconds(self) -> int | None:
        """``retry_after`` in whole seconds, rounded up, at least 1 (for ``Retry-After``)."""
        if self.retry_after is None or not math.isfinite(self.retry_after):
            return None
        return max(1, math.ceil(self.retry_after))

    def missing_permissions(self, required: Iterable[str]) -> tuple[str, ...]:
        """Those of ``required`` the key does not hold, in the order given."""
        held = set(self.permissions)
        return tuple(name for name in required if name not in held)


@dataclass(frozen=True)
class Actor:
    """Who made a change: ``type`` ``user`` (the owner), ``admin`` (the static service
    token, the CLI) or ``credential`` (a service credential: ``id`` is its name)."""

    type: str
    id: str
    #: The service credential's id, for ``credential``.
    credential_id: str | None = None


@dataclass(frozen=True)
class KeyEvent:
    """One recorded change to a key: each changed field's value before and after."""

    id: int
    at: datetime
    actor: Actor
    action: str
    user_id: str
    changes: Mapping[str, Any] = field(hash=False)
    #: ``None`` for ``delete_user``, which lists the removed keys in ``changes``.
    key_id: str | None = None


@dataclass(frozen=True)
class EventPage:
    """A page of events, oldest first; ``next_after`` is the ``after`` of the next page."""

    events: tuple[KeyEvent, ...]
    next_after: int | None = None


@dataclass(frozen=True)
class DeletedUser:
    """A user whose keys were all removed."""

    user_id: str
    deleted_keys: int


@dataclass(frozen=True)
class UserCredits:
    """A balance all of a user's keys draw on (after their own credits)."""

    remaining: int
    refill: Refill | None = None
    #: When the balance is next set back to ``refill.amount`` (in answers only).
    next_refill_at: datetime | None = None


@dataclass(frozen=True)
class UserLimits:
    """Limits all of a user's keys share, each checked after the key's own: one rate
    limit pool and one credit balance. ``source`` is ``"user"`` when set for this user,
    ``"default"`` for the deployment's defaults."""

    user_id: str
    source: str
    rate_limit: RateLimit | None = None
    credits: UserCredits | None = None


@dataclass(frozen=True)
class UsageBucket:
    """Verifications in one UTC hour or day: ``valid`` answered VALID, ``refused`` found
    the key and refused it (suspended, revoked, expired, missing permissions, limits)."""

    start: datetime
    valid: int
    refused: int


@dataclass(frozen=True)
class Usage:
    """Verifications per bucket from ``start`` (inclusive) to ``end`` (exclusive), oldest
    first, every bucket of the range listed (zeros included). ``key_id`` is set for one
    key's usage, ``user_id`` for one user's (admin); neither for the whole deployment."""

    granularity: str
    start: datetime
    end: datetime
    buckets: tuple[UsageBucket, ...]
    key_id: str | None = None
    user_id: str | None = None


# --- reading keyward's JSON -------------------------------------------------------------


class ShapeError(ValueError):
    """A field of keyward's answer is missing or of the wrong type."""


_FRACTION = re.compile(r"(?P<head>[^.]*T\d\d:\d\d:\d\d)\.(?P<frac>\d+)(?P<tail>.*)")


def parse_datetime(text: str) -> datetime:
    """An RFC 3339 time as keyward writes it (``2026-11-28T09:30:00.000Z``), timezone-aware."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.10's fromisoformat takes only 3 or 6 fraction digits.
    match = _FRACTION.fullmatch(text)
    if match:
        frac = (match["frac"] + "000000")[:6]
        text = f"{match['head']}.{frac}{match['tail']}"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ShapeError(f"time without a timezone: {text!r}")
    return value


def format_datetime(value: datetime) -> str:
    """A timezone-aware time as RFC 3339."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("times sent to keyward must be timezone-aware")
    return value.isoformat()


class _Reader:
    """Typed access to the fields of one JSON object."""

    def __init__(self, data: object, what: str) -> None:
        if not isinstance(data, dict):
            raise ShapeError(f"{what}: expected a JSON object")
        self._data: dict[str, Any] = data
        self._what = what

    def _get(self, name: str, kinds: tuple[type, ...], optional: bool) -> Any:
        value = self._data.get(name)
        if value is None:
            if optional:
                return None
            raise ShapeError(f"{self._what}.{name}: missing")
        # bool is an int in Python, never in JSON.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ShapeError(f"{self._what}.{name}: unexpected type {type(value).__name__}")
        return value

    def text(self, name: str) -> str:
        value: str = self._get(name, (str,), False)
        return value

    def opt_text(self, name: str) -> str | None:
        value: str | None = self._get(name, (str,), True)
        return value

    def integer(self, name: str) -> int:
        value: int = self._get(name, (int,), False)
        return value

    def opt_integer(self, name: str) -> int | None:
        value: int | None = self._get(name, (int,), True)
        return value

    def boolean(self, name: str) -> bool:
        value: bool = self._get(name, (bool,), False)
        return value

    def opt_boolean(self, name: str) -> bool | None:
        value: bool | None = self._get(name, (bool,), True)
        return value

    def opt_number(self, name: str) -> float | None:
        value: int | float | None = self._get(name, (int, float), True)
        return None if value is None else float(value)

    def time(self, name: str) -> datetime:
        return self._parse_time(name, self.text(name))

    def opt_time(self, name: str) -> datetime | None:
        text = self.opt_text(name)
        return None if text is None else self._parse_time(name, text)

    def _parse_time(self, name: str, text: str) -> datetime:
        try:
            return parse_datetime(text)
        except ValueError as err:
            raise ShapeError(f"{self._what}.{name}: {err}") from None

    def strings(self, name: str) -> tuple[str, ...]:
        values: list[Any] | None = self._get(name, (list,), True)
        if values is None:
            return ()
        if not all(isinstance(v, str) for v in values):
            raise ShapeError(f"{self._what}.{name}: expected strings")
        return tuple(values)

    def opt_strings(self, name: str) -> tuple[str, ...] | None:
        values: list[Any] | None = self._get(name, (list,), True)
        return None if values is None else self.strings(name)

    def opt_mapping(self, name: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._get(name, (dict,), True)
        return value

    def mapping(self, name: str) -> dict[str, Any]:
        value: dict[str, Any] = self._get(name, (dict,), False)
        return value

    def array(self, name: str) -> list[Any]:
        value: list[Any] = self._get(name, (list,), False)
        return value


def api_key_from_json(data: object, what: str = "api_key") -> ApiKey:
    r = _Reader(data, what)
    rate_limit = _rate_limit(r.opt_mapping("rate_limit"), f"{what}.rate_limit")
    refill = _refill(r.opt_mapping("refill"), f"{what}.refill")
    return ApiKey(
        id=r.text("id"),
        user_id=r.text("user_id"),
        name=r.text("name"),
        prefix=r.text("prefix"),
        postfix=r.text("postfix"),
        status=KeyStatus(r.text("status")),
        permissions=r.strings("permissions"),
        created_at=r.time("created_at"),
        description=r.opt_text("description"),
        last_used_at=r.opt_time("last_used_at"),
        revoked_at=r.opt_time("revoked_at"),
        expires_at=r.opt_time("expires_at"),
        rate_limit=rate_limit,
        metadata=r.opt_mapping("metadata"),
        remaining=r.opt_integer("remaining"),
        refill=refill,
        next_refill_at=r.opt_time("next_refill_at"),
        rotated_from=r.opt_text("rotated_from"),
        rotated_to=r.opt_text("rotated_to"),
        allowed_ips=r.opt_strings("allowed_ips"),
    )


def api_keys_from_json(data: object) -> list[ApiKey]:
    if not isinstance(data, list):
        raise ShapeError("expected a JSON array of keys")
    return [api_key_from_json(item, f"keys[{i}]") for i, item in enumerate(data)]


def created_key_from_json(data: object) -> CreatedKey:
    r = _Reader(data, "created key")
    return CreatedKey(
        api_key=api_key_from_json(r.mapping("api_key")),
        plain_text_key=Secret(r.text("plain_text_key")),
    )


def rotated_key_from_json(data: object) -> RotatedKey:
    r = _Reader(data, "rotated key")
    return RotatedKey(
        api_key=api_key_from_json(r.mapping("api_key")),
        plain_text_key=Secret(r.text("plain_text_key")),
        previous_key=api_key_from_json(r.mapping("previous_key"), "previous_key"),
    )


def verification_from_json(data: object) -> Verification:
    r = _Reader(data, "verification")
    code = r.text("code")
    return Verification(
        valid=r.boolean("valid"),
        code=VerifyCode(code),
        code_name=code,
        key_id=r.opt_text("key_id"),
        user_id=r.opt_text("user_id"),
        permissions=r.strings("permissions"),
        expires_at=r.opt_time("expires_at"),
        retry_after=r.opt_number("retry_after"),
        remaining=r.opt_integer("remaining"),
        next_refill_at=r.opt_time("next_refill_at"),
        limit=r.opt_text("limit"),
        metadata=r.opt_mapping("metadata"),
        metered=r.opt_boolean("metered"),
    )


def event_page_from_json(data: object) -> EventPage:
    r = _Reader(data, "event page")
    events = []
    for i, item in enumerate(r.array("events")):
        er = _Reader(item, f"events[{i}]")
        ar = _Reader(er.mapping("actor"), f"events[{i}].actor")
        events.append(
            KeyEvent(
                id=er.integer("id"),
                at=er.time("at"),
                actor=Actor(
                    type=ar.text("type"),
                    id=ar.text("id"),
                    credential_id=ar.opt_text("credential_id"),
                ),
                action=er.text("action"),
                user_id=er.text("user_id"),
                changes=er.mapping("changes"),
                key_id=er.opt_text("key_id"),
            )
        )
    return EventPage(events=tuple(events), next_after=r.opt_integer("next_after"))


def _refill(data: Mapping[str, Any] | None, what: str) -> Refill | None:
    if data is None:
        return None
    rr = _Reader(data, what)
    return Refill(
        amount=rr.integer("amount"),
        interval=rr.text("interval"),
        day_of_month=rr.opt_integer("day_of_month"),
    )


def _rate_limit(data: Mapping[str, Any] | None, what: str) -> RateLimit | None:
    if data is None:
        return None
    lr = _Reader(data, what)
    return RateLimit(requests=lr.integer("requests"), per_seconds=lr.integer("per_seconds"))


def user_limits_from_json(data: object) -> UserLimits:
    r = _Reader(data, "user limits")
    credits_json = r.opt_mapping("credits")
    credits = None
    if credits_json is not None:
        cr = _Reader(credits_json, "user limits.credits")
        credits = UserCredits(
            remaining=cr.integer("remaining"),
            refill=_refill(cr.opt_mapping("refill"), "user limits.credits.refill"),
            next_refill_at=cr.opt_time("next_refill_at"),
        )
    return UserLimits(
        user_id=r.text("user_id"),
        source=r.text("source"),
        rate_limit=_rate_limit(r.opt_mapping("rate_limit"), "user limits.rate_limit"),
        credits=credits,
    )


def deleted_user_from_json(data: object) -> DeletedUser:
    r = _Reader(data, "deleted user")
    return DeletedUser(user_id=r.text("user_id"), deleted_keys=r.integer("deleted_keys"))


def usage_from_json(data: object) -> Usage:
    r = _Reader(data, "usage")
    buckets = []
    for i, item in enumerate(r.array("buckets")):
        br = _Reader(item, f"buckets[{i}]")
        buckets.append(
            UsageBucket(start=br.time("start"), valid=br.integer("valid"), refused=br.integer("refused"))
        )
    return Usage(
        granularity=r.text("granularity"),
        start=r.time("from"),
        end=r.time("to"),
        buckets=tuple(buckets),
        key_id=r.opt_text("key_id"),
        user_id=r.opt_text("user_id"),
    )
