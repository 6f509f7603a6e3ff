//! What both backends do alike with key rows: the column list, decoding helpers, and
//! the lifecycle decision on a row read inside a transaction.

use keyward_core::lifecycle::{self, KeyState, Mutation, Outcome};
use keyward_core::model::ApiKey;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;

use crate::StoreError;

/// Columns of a full key row, in the order the backends' `key_from_row` reads them.
macro_rules! key_columns {
    () => {
        "id, user_id, name, description, prefix, postfix, status, permissions, \
         created_at, last_used_at, revoked_at, expires_at, rate_limit_requests, \
         rate_limit_per_seconds"
    };
}
pub(crate) use key_columns;

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn timestamp(
    millis: Option<i64>,
    column: &str,
) -> Result<Option<Timestamp>, StoreError> {
    millis
        .map(|ms| Timestamp::from_millis(ms).map_err(|_| corrupt(column)))
        .transpose()
}

/// A rate limit from its two columns (both NULL: none).
pub(crate) fn rate_limit(
    requests: Option<i64>,
    per_seconds: Option<i64>,
) -> Result<Option<RateLimit>, StoreError> {
    match (requests, per_seconds) {
        (None, None) => Ok(None),
        (Some(requests), Some(per_seconds)) => {
            let requests = u32::try_from(requests).map_err(|_| corrupt("rate_limit_requests"))?;
            let per_seconds =
                u32::try_from(per_seconds).map_err(|_| corrupt("rate_limit_per_seconds"))?;
            RateLimit::new(requests, per_seconds)
                .map(Some)
                .map_err(|_| corrupt("rate_limit"))
        }
        _ => Err(corrupt("rate_limit")),
    }
}

/// A rate limit as its two columns.
pub(crate) fn rate_limit_columns(limit: Option<RateLimit>) -> (Option<i64>, Option<i64>) {
    (
        limit.map(|l| i64::from(l.requests())),
        limit.map(|l| i64::from(l.per_seconds())),
    )
}

/// The state to write for `mutation` on the stored `key`, or `None` when the change is
/// already in effect (nothing to write).
pub(crate) fn decide(
    key: &ApiKey,
    mutation: &Mutation,
    now: Timestamp,
) -> Result<Option<KeyState>, StoreError> {
    let state = KeyState {
        status: key.status,
        revoked_at: key.revoked_at,
        permissions: key.permissions.clone(),
        rate_limit: key.rate_limit,
    };
    Ok(match lifecycle::apply(&state, mutation, now)? {
        Outcome::Unchanged => None,
        Outcome::Changed(new) => Some(new),
    })
}

/// The key as it is once `state` is written.
pub(crate) fn with_state(mut key: ApiKey, state: KeyState) -> ApiKey {
    key.status = state.status;
    key.revoked_at = state.revoked_at;
    key.permissions = state.permissions;
    key.rate_limit = state.rate_limit;
    key
}
