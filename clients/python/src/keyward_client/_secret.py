"""A string that does not show itself: API keys and tokens."""

from __future__ import annotations

import hmac
from typing import final

_REDACTED = "**********"


@final
class Secret:
    """Holds a secret string; ``repr()``, ``str()`` and f-strings show ``**********``.

    Call :meth:`reveal` where the value is really needed (to hand a new key to its
    owner, or to send it somewhere).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_REDACTED}')"

    # str() and format() too: a secret interpolated into a log line stays hidden.
    def __str__(self) -> str:
        return _REDACTED

    def __format__(self, format_spec: str) -> str:
        return format(_REDACTED, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time: comparing secrets must not tell how much of them matched.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def reveal(value: str | Secret) -> str:
    """The plain string of a value that may or may not be wrapped."""
    return value.reveal() if isinstance(value, Secret) else value
