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
///
/// Kept small, as there is one per cached key: what every key has is inline, the
/// permission names are shared between keys holding the same list, and what few keys
/// have (an expiry, a rate limit, metadata, credits, networks) is in one box that a
/// key without any of it does not have. An owner's limits are shared too: the
/// deployment's defaults by every key of an owner without limits of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub id: KeyId,
    pub user_id: UserId,
    pub status: KeyStatus,
    /// Permission names, in the order stored.
    pub permissions: Arc<[String]>,
    pub permission_set: PermissionSet,
    /// The latest use recorded for `last_used_at` (see [`UsageMark`]).
    pub usage: UsageMark,
    rules: Option<Box<KeyRules>>,
    owner: Option<Arc<OwnerLimits>>,
}

/// What a key may have beyond its status and permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRules {
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
    /// The networks it may be used from; `None`: any.
    pub allowed_ips: Option<AllowedNetworks>,
}

const NO_RULES: KeyRules = KeyRules {
    expires_at: None,
    rate_limit: None,
    metadata: None,
    has_credits: false,
    refill: None,
    allowed_ips: None,
};

const NO_OWNER_LIMITS: OwnerLimits = OwnerLimits {
    rate_limit: None,
    credits: None,
};

impl VerifiedKey {
    /// A found key with no rules beyond its status and permissions and no owner limits
    /// (see [`VerifiedKey::with_rules`], [`VerifiedKey::with_owner`]).
    pub fn new(
        id: KeyId,
        user_id: UserId,
        status: KeyStatus,
        permissions: Arc<[String]>,
        permission_set: PermissionSet,
        usage: UsageMark,
    ) -> Self {
        Self {
            id,
            user_id,
            status,
            permissions,
            permission_set,
            usage,
            rules: None,
            owner: None,
        }
    }

    /// With these rules (kept only if there are any).
    #[must_use]
    pub fn with_rules(mut self, rules: KeyRules) -> Self {
        self.rules = (rules != NO_RULES).then(|| Box::new(rules));
        self
    }

    /// With its owner's limits (kept only if there are any; pass the same `Arc` for
    /// owners whose limits are alike).
    #[must_use]
    pub fn with_owner(mut self, owner: Arc<OwnerLimits>) -> Self {
        self.owner = (*owner != NO_OWNER_LIMITS).then_some(owner);
        self
    }

    fn rules(&self) -> &KeyRules {
        self.rules.as_deref().unwrap_or(&NO_RULES)
    }

    pub fn expires_at(&self) -> Option<Timestamp> {
        self.rules().expires_at
    }

    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rules().rate_limit
    }

    /// The owner's JSON object, returned with the verdict.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.rules().metadata.as_ref()
    }

    /// Whether the key has usage credits (their count is not cached).
    pub fn has_credits(&self) -> bool {
        self.rules().has_credits
    }

    /// The rule its credits renew by.
    pub fn refill(&self) -> Option<Refill> {
        self.rules().refill
    }

    /// The networks it may be used from; `None`: any.
    pub fn allowed_ips(&self) -> Option<&AllowedNetworks> {
        self.rules().allowed_ips.as_ref()
    }

    /// What all of its owner's keys share.
    pub fn owner(&self) -> &OwnerLimits {
        self.owner.as_deref().unwrap_or(&NO_OWNER_LIMITS)
    }

    /// Whether every use must reach keyward: the key (or its owner) has a rate limit
    /// or credits, or the key is bound to networks (decided per client). A verdict on
    /// such a key must not be reused.
    pub fn metered(&self) -> bool {
        let rules = self.rules();
        let owner = self.owner();
        rules.rate_limit.is_some()
            || rules.has_credits
            || rules.allowed_ips.is_some()
            || owner.rate_limit.is_some()
            || owner.credits.is_some()
    }

    pub(crate) fn facts(&self) -> KeyFacts<'_> {
        KeyFacts {
            status: self.status,
            expires_at: self.expires_at(),
            permissions: self.permission_set,
            allowed_ips: self.allowed_ips(),
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
