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

impl std::str::FromStr for VerifyCode {
    type Err = ();

    /// The code as the verify API spells it (`VALID`, `NOT_FOUND`, …).
    fn from_str(text: &str) -> Result<Self, ()> {
        Self::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
            .ok_or(())
    }
}

impl fmt::Display for VerifyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request is not let through, in one vocabulary for every transport that
/// guards requests with keys: forward authentication, keyward-guard in both modes,
/// the Python client's FastAPI dependency. Each only renders it (its status and
/// message); none decides again what a verdict means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No key in the request.
    MissingKey,
    /// Malformed, unknown, suspended, revoked or expired: the same answer for all,
    /// so a client cannot tell a key's state.
    Invalid,
    /// A good key without some of the permissions: those missing, in the order the
    /// route requires them.
    MissingPermissions(Vec<String>),
    RateLimited {
        retry_after_seconds: u64,
    },
    UsageExceeded,
    /// The key could not be checked (the database or keyward unreachable).
    Unavailable,
}

impl Refusal {
    /// What a verification's `code` means for a request requiring `required` (in the
    /// route's order) of a key holding `held`; `None`: let it through.
    pub fn for_verdict<R: AsRef<str>>(
        code: VerifyCode,
        required: &[R],
        held: &[String],
        retry_after_seconds: Option<u64>,
    ) -> Option<Self> {
        match code {
            VerifyCode::Valid => None,
            VerifyCode::InsufficientPermissions => {
                Some(Self::MissingPermissions(Self::missing(required, held)))
            }
            VerifyCode::RateLimited => Some(Self::RateLimited {
                retry_after_seconds: retry_after_seconds.unwrap_or(1).max(1),
            }),
            VerifyCode::UsageExceeded => Some(Self::UsageExceeded),
            VerifyCode::Malformed
            | VerifyCode::NotFound
            | VerifyCode::Suspended
            | VerifyCode::Revoked
            | VerifyCode::Expired => Some(Self::Invalid),
        }
    }

    /// The names of `required` that `held` lacks, in `required`'s order.
    pub fn missing<R: AsRef<str>>(required: &[R], held: &[String]) -> Vec<String> {
        required
            .iter()
            .map(AsRef::as_ref)
            .filter(|name| !held.iter().any(|h| h == name))
            .map(str::to_owned)
            .collect()
    }

    /// The HTTP status every transport answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingKey | Self::Invalid => 401,
            Self::MissingPermissions(_) | Self::UsageExceeded => 403,
            Self::RateLimited { .. } => 429,
            Self::Unavailable => 503,
        }
    }

    /// The sentence a client reads: AutoGPT's words where it had them.
    pub fn message(&self) -> String {
        match self {
            Self::MissingKey => "Missing API key".into(),
            Self::Invalid => "Invalid API key".into(),
            Self::MissingPermissions(missing) => {
                format!("Missing required permission(s): {}", missing.join(", "))
            }
            Self::RateLimited { .. } => "Rate limit exceeded".into(),
            Self::UsageExceeded => "API key usage credits exhausted".into(),
            Self::Unavailable => "The API key cannot be checked right now".into(),
        }
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

    #[test]
    fn every_verdict_has_one_refusal_or_none() {
        let held = vec!["READ_GRAPH".to_owned()];
        let required = ["WRITE_GRAPH", "READ_GRAPH", "EXECUTE_GRAPH"];
        for code in VerifyCode::ALL {
            let refusal = Refusal::for_verdict(code, &required, &held, Some(7));
            match code {
                VerifyCode::Valid => assert_eq!(refusal, None),
                VerifyCode::InsufficientPermissions => {
                    let refusal = refusal.unwrap();
                    assert_eq!(
                        (refusal.status(), refusal.message().as_str()),
                        (
                            403,
                            "Missing required permission(s): WRITE_GRAPH, EXECUTE_GRAPH"
                        )
                    );
                }
                VerifyCode::RateLimited => {
                    assert_eq!(
                        refusal,
                        Some(Refusal::RateLimited {
                            retry_after_seconds: 7
                        })
                    )
                }
                VerifyCode::UsageExceeded => assert_eq!(refusal.unwrap().status(), 403),
                _ => assert_eq!(refusal, Some(Refusal::Invalid), "{code}"),
            }
            assert_eq!(code.as_str().parse::<VerifyCode>(), Ok(code));
        }
    }
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
