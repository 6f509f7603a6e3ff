"""Python client for keyward, the self-hosted API key service.

- :class:`KeywardClient` / :class:`AsyncKeywardClient`: every call of keyward's HTTP API.
- :mod:`keyward_client.fastapi` (extra ``[fastapi]``): ``require_api_key(...)``, a FastAPI
  dependency that answers refused keys as AutoGPT's external API did.
"""

from ._ops import UNSET
from ._secret import Secret
from .client import DEFAULT_TIMEOUT, AsyncKeywardClient, KeywardClient
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    KeywardError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    UnknownPermissionsError,
    ValidationError,
)
from .models import (
    Actor,
    ApiKey,
    CreatedKey,
    DeletedUser,
    EventPage,
    KeyEvent,
    KeyStatus,
    RateLimit,
    Refill,
    RotatedKey,
    Usage,
    UsageBucket,
    UserCredits,
    UserLimits,
    Verification,
    VerifyCode,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "UNSET",
    "Actor",
    "ApiKey",
    "AsyncKeywardClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "CreatedKey",
    "DeletedUser",
    "EventPage",
    "KeyEvent",
    "KeyStatus",
    "KeywardClient",
    "KeywardError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "Refill",
    "RotatedKey",
    "Secret",
    "ServerError",
    "TransportError",
    "UnexpectedResponseError",
    "UnknownPermissionsError",
    "Usage",
    "UsageBucket",
    "UserCredits",
    "UserLimits",
    "ValidationError",
    "Verification",
    "VerifyCode",
]
