"""Errors raised by the clients.

Every error is a :class:`KeywardError` carrying keyward's error body
(``{"message", "detail", "hint"}``) and the HTTP status. Messages never contain a key
or token: they come from keyward's answer, which never echoes one, and the clients
scrub the key being verified out of them all the same.
"""

from __future__ import annotations


class KeywardError(Exception):
    """keyward refused a request, answered something unexpected, or could not be reached.

    ``status`` is the HTTP status (``None`` when no answer came), ``message`` keyward's
    short, stable description, ``detail`` the specifics and ``hint`` what to do.
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        # All of them in args, so that errors pickle and unpickle (multiprocessing).
        super().__init__(status, message, detail, hint)
        self.status = status
        self.message = message
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        text = self.message if self.status is None else f"{self.status} {self.message}"
        if self.detail:
            text += f": {self.detail}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"detail={self.detail!r}, hint={self.hint!r})"
        )


class TransportError(KeywardError):
    """No answer: keyward could not be reached, or did not answer in time."""


class UnexpectedResponseError(KeywardError):
    """An answer that is not keyward's documented shape (a proxy's error page, say)."""


class BadRequestError(KeywardError):
    """400: the operation is not allowed in the key's state (revoked, not suspended, ...)."""


class AuthenticationError(KeywardError):
    """401: the user JWT, the service credential or the service token is missing,
    expired, revoked or wrong."""


class PermissionDeniedError(KeywardError):
    """403: the service credential lacks the scope the call needs (``detail`` names
    it), or a user set what only the platform sets."""


class NotFoundError(KeywardError):
    """404: no key with this id among the caller's keys."""


class ConflictError(KeywardError):
    """409: the user holds the maximum number of keys."""


class ValidationError(KeywardError):
    """422: invalid fields, e.g. a permission name outside keyward's catalogue."""


class UnknownPermissionsError(ValidationError):
    """Permission names that keyward's catalogue does not have (``unknown``)."""

    def __init__(
        self,
        status: int | None,
        message: str,
        detail: str | None = None,
        hint: str | None = None,
        *,
        unknown: tuple[str, ...] = (),
    ) -> None:
        super().__init__(status, message, detail, hint)
        self.unknown = unknown


class RateLimitError(KeywardError):
    """429: too many changes by this user; ``retry_after`` seconds until the next may pass."""

    def __init__(
        self,
        status: int | None,
        message: str,
        detail: str | None = None,
        hint: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, detail, hint)
        self.retry_after = retry_after


class ServerError(KeywardError):
    """5xx: keyward failed, or its database is unavailable (503)."""


_BY_STATUS: dict[int, type[KeywardError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class(status: int) -> type[KeywardError]:
    """The error class for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, KeywardError)
