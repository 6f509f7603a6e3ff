//! The verification decision for a key found in storage (or the cache).
//!
//! Checked in this order, so the answer names the most lasting reason first:
//! `REVOKED` (terminal), `EXPIRED` (permanent unless the expiry moves), `SUSPENDED`
//! (reversible), `IP_NOT_ALLOWED` (the key is bound to networks the end client is not
//! in), then `INSUFFICIENT_PERMISSIONS`. `MALFORMED` and `NOT_FOUND` are
//! decided before a key is found; `RATE_LIMITED` belongs to the limiter and
//! `USAGE_EXCEEDED` to the key's usage credits, both after a key would pass.

use std::fmt;
use std::net::IpAddr;

use crate::model::{KeyStatus, expired};
use crate::network::AllowedNetworks;
use crate::permissions::PermissionSet;
use crate::time::Timestamp;

/// Whose limit refused a verification (`RATE_LIMITED`, `USAGE_EXCEEDED`): the key's
/// own, or its owner's, which all the owner's keys share.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LimitScope {
    Key,
    User,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::User => "user",
        }
    }
}

/// The outcome of a verification, as reported to the caller.
///
/// Each code is declared here once, with its wire name (the variant's name in
/// SCREAMING_SNAKE_CASE) and what it means (its `message`, shown in the OpenAPI
/// document and by the CLI). Everything else that depends on a code matches on it
/// with no catch-all arm, so a new code does not build until each place has decided
/// what it means there: the refusal a guard answers ([`Refusal::for_verdict`]), what
/// a failed attempt is ([`VerifyCode::is_failed_attempt`]), what a client behind a
/// proxy may learn ([`VerifyCode::is_disclosed`]), and the remote guard's cache.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    strum::EnumIter,
    strum::EnumCount,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumMessage,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    #[strum(message = "the key is active, unexpired, and holds every permission asked for")]
    Valid,
    #[strum(
        message = "not a key: wrong prefix, length, alphabet or checksum (nothing was looked up)"
    )]
    Malformed,
    #[strum(message = "no key has this secret")]
    NotFound,
    #[strum(message = "the key is suspended (its owner or the platform may reactivate it)")]
    Suspended,
    #[strum(message = "the key is revoked, for good")]
    Revoked,
    #[strum(message = "the key's expiry has passed")]
    Expired,
    #[strum(message = "the key lacks some of the permissions asked for")]
    InsufficientPermissions,
    #[strum(
        message = "the key, its owner (all their keys together), or the failing client, is over its rate limit: see retry_after and limit"
    )]
    RateLimited,
    #[strum(message = "the key's usage credits, or its owner's, are spent: see limit")]
    UsageExceeded,
    #[strum(
        message = "the key is bound to networks (allowed_ips) and the end client's address is in none of them, or was not given"
    )]
    IpNotAllowed,
}

impl VerifyCode {
    /// Every code, in declaration order.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }

    /// The code as the verify API spells it (`VALID`, `NOT_FOUND`, …).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// What the code means, in a few words.
    pub fn meaning(self) -> &'static str {
        strum::EnumMessage::get_message(&self).expect("every code is declared with its message")
    }

    pub fn is_valid(self) -> bool {
        self == Self::Valid
    }

    /// True for the answers a client guessing or replaying keys gets: what limits on
    /// failed attempts count. A key lacking a permission is the caller's own key used
    /// for the wrong thing, and a rate-limited attempt was not tried.
    pub fn is_failed_attempt(self) -> bool {
        match self {
            Self::Malformed | Self::NotFound | Self::Suspended | Self::Revoked | Self::Expired => {
                true
            }
            // A key used from outside its networks: likely a stolen one, tried.
            Self::IpNotAllowed => true,
            Self::Valid
            | Self::InsufficientPermissions
            | Self::RateLimited
            | Self::UsageExceeded => false,
        }
    }

    /// Whether a client behind a proxy may learn this code. A key's own state (unknown,
    /// suspended, revoked, expired, or not a key at all) is not told: those answer
    /// alike, so a client cannot probe keys through the proxy. A key refused for the
    /// client's address is told (403): its holder must learn why it fails from there.
    pub fn is_disclosed(self) -> bool {
        match self {
            Self::Malformed | Self::NotFound | Self::Suspended | Self::Revoked | Self::Expired => {
                false
            }
            Self::Valid
            | Self::InsufficientPermissions
            | Self::RateLimited
            | Self::UsageExceeded
            | Self::IpNotAllowed => true,
        }
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
    /// A good key used from outside the networks it is bound to.
    IpNotAllowed,
    /// The key could not be checked (the database or keyward unreachable).
    Unavailable,
    /// A verdict code this program does not know (from a newer keyward): refused,
    /// and named, never taken for another.
    Unrecognized(String),
}

impl Refusal {
    /// What a verification's `code` means for a request requiring `required` (in the
    /// route's order) of a key holding `held`; `None`: let it through. A code as sent
    /// that no [`VerifyCode`] names is [`Refusal::Unrecognized`] (see
    /// [`Refusal::for_code`]).
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
            VerifyCode::IpNotAllowed => Some(Self::IpNotAllowed),
            VerifyCode::Malformed
            | VerifyCode::NotFound
            | VerifyCode::Suspended
            | VerifyCode::Revoked
            | VerifyCode::Expired => Some(Self::Invalid),
        }
    }

    /// [`Refusal::for_verdict`] for a code as the verify API sent it.
    pub fn for_code<R: AsRef<str>>(
        code: &str,
        required: &[R],
        held: &[String],
        retry_after_seconds: Option<u64>,
    ) -> Option<Self> {
        match code.parse::<VerifyCode>() {
            Ok(code) => Self::for_verdict(code, required, held, retry_after_seconds),
            Err(_) => Some(Self::Unrecognized(code.to_owned())),
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
            Self::MissingKey | Self::Invalid | Self::Unrecognized(_) => 401,
            Self::MissingPermissions(_) | Self::UsageExceeded | Self::IpNotAllowed => 403,
            Self::RateLimited { .. } => 429,
            Self::Unavailable => 503,
        }
    }

    /// A short title, for error bodies that have one besides the sentence.
    pub fn title(&self) -> &'static str {
        match self {
            Self::MissingKey => "Missing API key",
            Self::Invalid | Self::Unrecognized(_) => "Invalid API key",
            Self::MissingPermissions(_) => "Missing required permission(s)",
            Self::RateLimited { .. } => "Too many requests",
            Self::UsageExceeded => "Usage credits exhausted",
            Self::IpNotAllowed => "Address not allowed",
            Self::Unavailable => "Service unavailable",
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
            Self::IpNotAllowed => "The API key may not be used from this address".into(),
            Self::Unavailable => "The API key cannot be checked right now".into(),
            Self::Unrecognized(code) => format!("The API key was refused ({code})"),
        }
    }
}

/// What the decision needs to know about a stored key.
#[derive(Clone, Copy, Debug)]
pub struct KeyFacts<'a> {
    pub status: KeyStatus,
    pub expires_at: Option<Timestamp>,
    pub permissions: PermissionSet,
    /// The networks it may be used from; `None`: any.
    pub allowed_ips: Option<&'a AllowedNetworks>,
}

/// Who a verification is for and when: the end client's address (as the caller
/// vouches for it; `None`: not given) and the time.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub now: Timestamp,
    pub client: Option<IpAddr>,
}

/// Decides whether a found key passes in `context` with `required` permissions.
pub fn decide(key: &KeyFacts<'_>, context: Context, required: PermissionSet) -> VerifyCode {
    let admitted = || {
        key.allowed_ips
            .is_none_or(|allowed| allowed.admit(context.client))
    };
    match key.status {
        KeyStatus::Revoked => VerifyCode::Revoked,
        _ if expired(key.expires_at, context.now) => VerifyCode::Expired,
        KeyStatus::Suspended => VerifyCode::Suspended,
        KeyStatus::Active if !admitted() => VerifyCode::IpNotAllowed,
        KeyStatus::Active if !key.permissions.contains_all(required) => {
            VerifyCode::InsufficientPermissions
        }
        KeyStatus::Active => VerifyCode::Valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal each code means, written out for every code: a code added to
    /// [`VerifyCode`] without a line here fails this test (the expected table is
    /// checked to cover them all).
    #[test]
    fn every_verdict_has_one_refusal_or_none() {
        let held = vec!["READ_GRAPH".to_owned()];
        let required = ["WRITE_GRAPH", "READ_GRAPH", "EXECUTE_GRAPH"];
        let missing =
            Refusal::MissingPermissions(vec!["WRITE_GRAPH".into(), "EXECUTE_GRAPH".into()]);
        let expected = [
            (VerifyCode::Valid, None),
            (VerifyCode::Malformed, Some(Refusal::Invalid)),
            (VerifyCode::NotFound, Some(Refusal::Invalid)),
            (VerifyCode::Suspended, Some(Refusal::Invalid)),
            (VerifyCode::Revoked, Some(Refusal::Invalid)),
            (VerifyCode::Expired, Some(Refusal::Invalid)),
            (VerifyCode::InsufficientPermissions, Some(missing)),
            (
                VerifyCode::RateLimited,
                Some(Refusal::RateLimited {
                    retry_after_seconds: 7,
                }),
            ),
            (VerifyCode::UsageExceeded, Some(Refusal::UsageExceeded)),
            (VerifyCode::IpNotAllowed, Some(Refusal::IpNotAllowed)),
        ];
        let listed: Vec<VerifyCode> = expected.iter().map(|(code, _)| *code).collect();
        assert_eq!(listed, VerifyCode::all().collect::<Vec<_>>());
        for (code, refusal) in expected {
            assert_eq!(
                Refusal::for_verdict(code, &required, &held, Some(7)),
                refusal,
                "{code}"
            );
            assert_eq!(code.as_str().parse::<VerifyCode>(), Ok(code));
            assert!(!code.meaning().is_empty());
        }
    }

    #[test]
    fn a_code_this_program_does_not_know_is_refused_by_its_name() {
        let refusal = Refusal::for_code("GEO_BLOCKED", &["READ_GRAPH"], &[], None).unwrap();
        assert_eq!(refusal, Refusal::Unrecognized("GEO_BLOCKED".into()));
        assert_eq!(refusal.status(), 401);
        assert_eq!(refusal.message(), "The API key was refused (GEO_BLOCKED)");
        assert_eq!(Refusal::for_code("VALID", &[] as &[&str], &[], None), None);
    }

    #[test]
    fn only_a_keys_own_state_is_kept_from_clients_behind_a_proxy() {
        let hidden: Vec<_> = VerifyCode::all().filter(|c| !c.is_disclosed()).collect();
        assert!(
            VerifyCode::IpNotAllowed.is_failed_attempt() && VerifyCode::IpNotAllowed.is_disclosed()
        );
        assert_eq!(
            hidden,
            [
                VerifyCode::Malformed,
                VerifyCode::NotFound,
                VerifyCode::Suspended,
                VerifyCode::Revoked,
                VerifyCode::Expired
            ]
        );
    }

    use crate::permissions::Catalogue;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn facts(status: KeyStatus, expires_at: Option<i64>) -> KeyFacts<'static> {
        KeyFacts {
            status,
            expires_at: expires_at.map(at),
            permissions: Catalogue::default().set_of(&["READ_GRAPH"]).unwrap(),
            allowed_ips: None,
        }
    }

    fn decide(key: &KeyFacts<'_>, now: Timestamp, required: PermissionSet) -> VerifyCode {
        super::decide(key, Context { now, client: None }, required)
    }

    #[test]
    fn a_key_bound_to_networks_passes_only_for_a_client_in_them() {
        let allowed = AllowedNetworks::parse(&["203.0.113.0/24"]).unwrap();
        let key = KeyFacts {
            allowed_ips: Some(&allowed),
            ..facts(KeyStatus::Active, None)
        };
        let read = Catalogue::default().set_of(&["READ_GRAPH"]).unwrap();
        let write = Catalogue::default().set_of(&["WRITE_GRAPH"]).unwrap();
        let from = |client: Option<&str>| Context {
            now: at(10),
            client: client.map(|c| c.parse().unwrap()),
        };
        assert_eq!(
            super::decide(&key, from(Some("203.0.113.4")), read),
            VerifyCode::Valid
        );
        assert_eq!(
            super::decide(&key, from(Some("198.51.100.4")), read),
            VerifyCode::IpNotAllowed
        );
        assert_eq!(
            super::decide(&key, from(None), read),
            VerifyCode::IpNotAllowed
        );
        // Before permissions: the key is not usable from there at all.
        assert_eq!(
            super::decide(&key, from(Some("198.51.100.4")), write),
            VerifyCode::IpNotAllowed
        );
        // After the key's own state: a revoked key is revoked from anywhere.
        let revoked = KeyFacts {
            status: KeyStatus::Revoked,
            ..key
        };
        assert_eq!(
            super::decide(&revoked, from(None), read),
            VerifyCode::Revoked
        );
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
