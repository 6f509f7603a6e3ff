//! Errors of key operations, in terms a transport can map to its own responses.

use keyward_core::credential::ServiceScope;
use keyward_core::input::ValidationErrors;
use keyward_core::lifecycle::LifecycleError;
use keyward_core::permissions::UnknownPermissions;
use keyward_core::rate::Wait;
use keyward_store::{StoreError, Unwritable};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is invalid; every problem is listed.
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    /// No such key for this owner (another user's key is not found either).
    #[error("key not found")]
    NotFound,
    /// No service credential with this id.
    #[error("credential not found")]
    NoSuchCredential,
    /// No webhook endpoint with this id.
    #[error("webhook not found")]
    NoSuchWebhook,
    /// No delivery with this id to this endpoint.
    #[error("delivery not found")]
    NoSuchDelivery,
    /// A service tried to give, or to manage a credential holding, a scope it does not
    /// hold itself (its own powers are the limit of what it can hand out).
    #[error("the caller does not hold the scope {scope}")]
    ScopeNotHeld { scope: ServiceScope },
    /// The credential is revoked: it cannot be rotated (revoking again succeeds).
    #[error("the credential is revoked")]
    CredentialRevoked,
    /// The key's status forbids the change.
    #[error(transparent)]
    Refused(#[from] LifecycleError),
    /// The owner already holds the maximum number of keys that are not revoked.
    #[error("key limit reached: at most {limit} keys that are not revoked")]
    LimitReached { limit: u32 },
    /// A verification asked for permissions that are not in the catalogue.
    #[error(transparent)]
    UnknownPermissions(#[from] UnknownPermissions),
    /// The database is unreachable or too busy; retrying later may succeed.
    #[error("storage unavailable")]
    Unavailable(#[source] StoreError),
    /// Too many changes by this user in a short time; retry after the wait.
    #[error("too many changes; retry in {} s", .retry_after.whole_seconds())]
    RateLimited { retry_after: Wait },
    /// This client presented too many secrets that did not authenticate; retry after
    /// the wait.
    #[error("too many failed attempts; retry in {} s", .retry_after.whole_seconds())]
    TooManyFailures { retry_after: Wait },
    /// A key's owner tried to set what only the platform sets: usage credits or a rate
    /// limit (billing and plans).
    #[error("{field} is set by the platform, not by the key's owner")]
    PlatformOnly { field: &'static str },
    /// The engine is shutting down; the operation did not run to completion.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// Anything else: a bug or a broken database. Details are for the logs.
    #[error("internal storage error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::LimitReached { limit } => Self::LimitReached { limit },
            StoreError::Lifecycle(e) => Self::Refused(e),
            e if e.is_unavailable() => Self::Unavailable(e),
            e => Self::Internal(e),
        }
    }
}

impl EngineError {
    /// Why the database cannot store changes, when that is what failed.
    pub fn unwritable(&self) -> Option<Unwritable> {
        match self {
            Self::Unavailable(err) | Self::Internal(err) => err.unwritable(),
            _ => None,
        }
    }
}
