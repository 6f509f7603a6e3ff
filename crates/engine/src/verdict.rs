//! What a verification answers: the found key as the cache holds it, the verdict, and
//! how a verification is asked for. A leaf: the cache stores these, the verifier
//! produces them, transports render them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::audit::Actor;
use keyward_core::credential::{CredentialId, Presented, ScopeSet, ServiceCredential};
use keyward_core::credits::{CreditGrant, Refill};
use keyward_core::model::{KeyId, KeyStatus, Metadata, UserId};
use keyward_core::network::AllowedNetworks;
use keyward_core::permissions::PermissionSet;
use keyward_core::rate::{RateLimit, Wait};
use keyward_core::time::Timestamp;
use keyward_core::verify::{KeyFacts, LimitScope, VerifyCode};

use crate::usage::UsageMark;

/// What verification knows of a found key (what the cache holds; never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub id: KeyId,
    pub user_id: UserId,
    pub status: KeyStatus,
    pub permissions: Vec<String>,
    pub permission_set: PermissionSet,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimit>,
    /// The owner's JSON object, returned with the verdict.
    pub metadata: Option<Metadata>,
    /// Whether the key has usage credits (taken from the database on each valid
    /// verification; their count is not cached).
    pub has_credits: bool,
    /// The rule its credits renew by: a verification that takes credits passes the
    /// latest boundary to the database, which refills when it is due.
    pub refill: Option<Refill>,
    /// What all of its owner's keys share.
    pub owner: OwnerLimits,
    /// The networks it may be used from; `None`: any.
    pub allowed_ips: Option<AllowedNetworks>,
    /// The latest use recorded for `last_used_at` (see [`UsageMark`]).
    pub usage: UsageMark,
}

impl VerifiedKey {
    /// Whether every use must reach keyward: the key (or its owner) has a rate limit
    /// or credits, or the key is bound to networks (decided per client). A verdict on
    /// such a key must not be reused.
    pub fn metered(&self) -> bool {
        self.rate_limit.is_some()
            || self.has_credits
            || self.allowed_ips.is_some()
            || self.owner.rate_limit.is_some()
            || self.owner.credits.is_some()
    }

    pub(crate) fn facts(&self) -> KeyFacts<'_> {
        KeyFacts {
            status: self.status,
            expires_at: self.expires_at,
            permissions: self.permission_set,
            allowed_ips: self.allowed_ips.as_ref(),
        }
    }
}

/// The limits a key's owner sets on all their keys, checked after the key's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnerLimits {
    pub rate_limit: Option<RateLimit>,
    pub credits: Option<OwnerCredits>,
}

/// An owner's credits: the rule they renew by, and, while the owner has no balance
/// yet, the default to make it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerCredits {
    pub refill: Option<Refill>,
    pub default: Option<CreditGrant>,
}

/// A service credential as the cache holds it: its record, which of its secrets the
/// hash is of, and its latest recorded use. Whether it authenticates is decided at
/// each use (expiry and grace periods pass while it is cached).
pub(crate) struct CredentialEntry {
    pub(crate) credential: ServiceCredential,
    pub(crate) presented: Presented,
    pub(crate) usage: UsageMark,
}

/// A service that presented a valid credential: who it is, for the audit trail, and
/// what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedCredential {
    pub id: CredentialId,
    pub name: String,
    pub scopes: ScopeSet,
}

impl AuthenticatedCredential {
    /// How the audit trail names it.
    pub fn actor(&self) -> Actor {
        Actor::Credential {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

/// The answer to a verification. `key` is present whenever a key was found, whatever
/// the code, so callers can log which key failed.
#[derive(Debug, Clone)]
pub struct Verification {
    pub code: VerifyCode,
    pub key: Option<Arc<VerifiedKey>>,
    /// With `RATE_LIMITED`: how long until the same request would be let through.
    pub retry_after: Option<Duration>,
    /// For a key with usage credits: how many are left after this verification.
    pub remaining: Option<u64>,
    /// For a found key whose credits renew: when they are next set back.
    pub next_refill_at: Option<Timestamp>,
    /// With `RATE_LIMITED` or `USAGE_EXCEEDED`: whose limit refused, the key's or its
    /// owner's (`None` for a failing client's).
    pub limit: Option<LimitScope>,
}

/// How a verification is asked for, beyond the key and the permissions.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    /// The end client's address, for the failed-attempt limit.
    pub client: Option<IpAddr>,
    /// The end client's address as the caller vouches for it, for a key bound to
    /// networks; `None`: not known, and such a key is refused (`IP_NOT_ALLOWED`).
    /// [`VerifyOptions::for_client`] sets it to `client`.
    pub vouched_client: Option<IpAddr>,
    /// Usage credits a valid verification takes from a key that has credits
    /// (default 1; 0 checks that credits are left without taking any).
    pub cost: u64,
}

impl VerifyOptions {
    /// The default options, on behalf of the end client at `client`.
    pub fn for_client(client: Option<IpAddr>) -> Self {
        Self {
            client,
            vouched_client: client,
            ..Self::default()
        }
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            client: None,
            vouched_client: None,
            cost: 1,
        }
    }
}

impl Verification {
    pub fn is_valid(&self) -> bool {
        self.code.is_valid()
    }

    /// [`Verification::retry_after`] in whole seconds, rounded up and at least 1: for
    /// a `Retry-After` header.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after.map(|wait| {
            u64::try_from(wait.as_micros().div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1)
        })
    }

    pub(crate) fn without_key(code: VerifyCode) -> Self {
        Self {
            code,
            key: None,
            retry_after: None,
            remaining: None,
            next_refill_at: None,
            limit: None,
        }
    }

    /// `RATE_LIMITED`, to be tried again after `wait`.
    pub(crate) fn refused(wait: Wait) -> Self {
        Self {
            retry_after: Some(wait.as_duration()),
            ..Self::without_key(VerifyCode::RateLimited)
        }
    }
}

/// A database read: what was found, and whether it may be cached.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) key: Option<Arc<VerifiedKey>>,
    pub(crate) cacheable: bool,
    /// A legacy key whose head failed too often: refused before any scrypt work.
    pub(crate) refused: Option<Wait>,
}

impl Loaded {
    pub(crate) fn found(key: Option<Arc<VerifiedKey>>, cacheable: bool) -> Self {
        Self {
            key,
            cacheable,
            refused: None,
        }
    }

    pub(crate) fn refused(wait: Wait) -> Self {
        Self {
            key: None,
            cacheable: false,
            refused: Some(wait),
        }
    }
}
