//! The verification decision for a key found in storage (or the cache).
//!
//! Checked in this order, so the answer names the most lasting reason first:
//! `REVOKED` (terminal), `EXPIRED` (permanent unless the expiry moves), `SUSPENDED`
//! (reversible), then `INSUFFICIENT_PERMISSIONS`. `MALFORMED` and `NOT_FOUND` are
//! decided before a key is found; `RATE_LIMITED` belongs to the limiter and
//! `USAGE_EXCEEDED` to the key's usage credits, both after a key would pass.

use std::fmt;

use crate::model::KeyStatus;
use crate::permissions::PermissionSet;
use crate::time::Timestamp;

/// The outcome of a verification, as reported to the caller.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum VerifyCode {
    Valid,
    Malformed,
    NotFound,
    Suspended,
    Revoked,
    Expired,
    InsufficientPermissions,
    RateLimited,
    /// The key's usage credits are spent.
    UsageExceeded,
}

impl VerifyCode {
    pub const ALL: [VerifyCode; 9] = [
        Self::Valid,
        Self::Malformed,
        Self::NotFound,
        Self::Suspended,
        Self::Revoked,
        Self::Expired,
        Self::InsufficientPermissions,
        Self::RateLimited,
        Self::UsageExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Malformed => "MALFORMED",
            Self::NotFound => "NOT_FOUND",
            Self::Suspended => "SUSPENDED",
            Self::Revoked => "REVOKED",
            Self::Expired => "EXPIRED",
            Self::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Self::RateLimited => "RATE_LIMITED",
            Self::UsageExceeded => "USAGE_EXCEEDED",
        }
    }

    pub fn is_valid(self) -> bool {
        self == Self::Valid
    }

    /// True for the answers a client guessing or replaying keys gets: what limits on
    /// failed attempts count. A key lacking a permission is the caller's own key used
    /// for the wrong thing, and a rate-limited attempt was not tried.
    pub fn is_failed_attempt(self) -> bool {
        matches!(
            self,
            Self::Malformed | Self::NotFound | Self::Suspended | Self::Revoked | Self::Expired
        )
    }
}

impl fmt::Display for VerifyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the decision needs to know about a stored key.
#[derive(Clone, Copy, Debug)]
pub struct KeyFacts {
    pub status: KeyStatus,
    pub expires_at: Option<Timestamp>,
    pub permissions: PermissionSet,
}

/// Decides whether a found key passes at `now` with `required` permissions.
pub fn decide(key: &KeyFacts, now: Timestamp, required: PermissionSet) -> VerifyCode {
    match key.status {
        KeyStatus::Revoked => VerifyCode::Revoked,
        _ if key.expires_at.is_some_and(|at| now >= at) => VerifyCode::Expired,
        KeyStatus::Suspended => VerifyCode::Suspended,
        KeyStatus::Active if !key.permissions.contains_all(required) => {
            VerifyCode::InsufficientPermissions
        }
        KeyStatus::Active => VerifyCode::Valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Catalogue;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn facts(status: KeyStatus, expires_at: Option<i64>) -> KeyFacts {
        KeyFacts {
            status,
            expires_at: expires_at.map(at),
            permissions: Catalogue::default().set_of(&["READ_GRAPH"]).unwrap(),
        }
    }

    #[test]
    fn an_active_key_with_the_permissions_is_valid() {
        let c = Catalogue::default();
        let read = c.set_of(&["READ_GRAPH"]).unwrap();
        assert_eq!(
            decide(&facts(KeyStatus::Active, None), at(10), read),
            VerifyCode::Valid
        );
        assert_eq!(
            decide(
                &facts(KeyStatus::Active, Some(11)),
                at(10),
                PermissionSet::EMPTY
            ),
            VerifyCode::Valid
        );
    }

    #[test]
    fn a_key_is_expired_from_its_expiry_instant_on() {
        let key = facts(KeyStatus::Active, Some(10));
        assert_eq!(decide(&key, at(9), PermissionSet::EMPTY), VerifyCode::Valid);
        assert_eq!(
            decide(&key, at(10), PermissionSet::EMPTY),
            VerifyCode::Expired
        );
    }

    #[test]
    fn the_most_lasting_reason_is_reported_first() {
        let none = PermissionSet::EMPTY;
        assert_eq!(
            decide(&facts(KeyStatus::Revoked, Some(1)), at(10), none),
            VerifyCode::Revoked
        );
        assert_eq!(
            decide(&facts(KeyStatus::Suspended, Some(1)), at(10), none),
            VerifyCode::Expired
        );
        assert_eq!(
            decide(&facts(KeyStatus::Suspended, None), at(10), none),
            VerifyCode::Suspended
        );
    }

    #[test]
    fn a_missing_permission_fails_an_active_key() {
        let c = Catalogue::default();
        let needs = c.set_of(&["READ_GRAPH", "EXECUTE_GRAPH"]).unwrap();
        assert_eq!(
            decide(&facts(KeyStatus::Active, None), at(10), needs),
            VerifyCode::InsufficientPermissions
        );
    }
}
