//! What the engine's handles and its background tasks share: the store, the cache, the
//! usage tracker, the limiters, and the clock. Its own module, so that the background
//! tasks and the verifier depend on it rather than on each other or on the engine.

use std::sync::{Arc, Mutex};

use keyward_core::credential::CredentialId;
use keyward_core::hash::KeyHash;
use keyward_core::model::{KeyId, UserId};
use keyward_core::time::Timestamp;
use keyward_store::{OwnerRecord, VerifyRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{VerifyCache, Watched};
use crate::config::EngineConfig;
use crate::flights::Flights;
use crate::history::HistoryTracker;
use crate::limits::ClientAddr;
use crate::metrics::VerifyMetrics;
use crate::quota::{LegacyHead, Quota, UserPool};
use crate::shared_limits::SharedLimits;
use crate::shared_values::SharedValues;
use crate::usage::{UsageMark, UsageTracker};
use crate::verdict::{CredentialEntry, KeyRules, Loaded, OwnerCredits, OwnerLimits, VerifiedKey};

/// Signals the background tasks to stop when the last [`Engine`] handle goes.
pub(crate) struct Lifetime(pub(crate) Arc<watch::Sender<bool>>);

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// What the engine's handles and its background tasks share.
pub(crate) struct Inner<S> {
    pub(crate) store: S,
    pub(crate) config: EngineConfig,
    pub(crate) cache: VerifyCache<VerifiedKey>,
    /// What the cached keys hold alike, kept once.
    pub(crate) shared_values: SharedValues,
    /// Service credentials by their secrets' hashes.
    pub(crate) credentials: VerifyCache<CredentialEntry>,
    /// Database reads of verifications in flight, shared by key.
    pub(crate) flights: Flights<Loaded>,
    pub(crate) usage: UsageTracker,
    /// Credentials' `last_used_at`, written with the keys'.
    pub(crate) credential_usage: UsageTracker<CredentialId>,
    /// Verifications per key and hour not written yet.
    pub(crate) history: HistoryTracker,
    pub(crate) metrics: VerifyMetrics,
    /// Keys' own verification limits.
    pub(crate) key_limits: Quota<KeyId>,
    /// Users' verification limits, one pool for all of a user's keys.
    pub(crate) user_pools: Quota<UserPool>,
    /// Keys refused for their rate limit, for `api_key.rate_limited`.
    pub(crate) rate_limit_notices: crate::notices::RateLimitNotices,
    /// Failed verifications per client address.
    pub(crate) client_failures: Quota<ClientAddr>,
    /// Changes per user.
    pub(crate) user_writes: Quota<UserId>,
    /// Failed legacy (AutoGPT) verifications per key head, before any scrypt work.
    pub(crate) head_failures: Quota<LegacyHead>,
    /// The store that holds the limits across instances, when one is configured.
    pub(crate) shared_limits: Option<Arc<SharedLimits>>,
    /// True from the start until the cache's warm-up has ended (or given up).
    pub(crate) warming: std::sync::atomic::AtomicBool,
    pub(crate) stop: Arc<watch::Sender<bool>>,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Held for the whole of a shutdown, so a second caller waits for the first.
    pub(crate) shutdown_done: tokio::sync::Mutex<bool>,
}

impl<S> Inner<S> {
    pub(crate) fn now(&self) -> Timestamp {
        (self.config.clock)()
    }

    /// Every cache the change feed keeps true.
    pub(crate) fn watched(&self) -> [&dyn Watched; 2] {
        [&self.cache, &self.credentials]
    }

    /// Drops `hashes` from every cache (after a change here, or one seen elsewhere).
    pub(crate) fn invalidate(&self, hashes: &[KeyHash]) {
        for cache in self.watched() {
            for hash in hashes {
                cache.invalidate(hash);
            }
        }
    }

    pub(crate) fn history_enabled(&self) -> bool {
        self.config.usage_history_days > 0
    }

    /// Counts a verification of a found key, if usage history is on.
    pub(crate) fn count_verification(&self, id: KeyId, at: Timestamp, valid: bool) {
        if self.history_enabled() {
            self.history.count(id, at, valid);
        }
    }

    /// What a key's owner's limits are: theirs when the platform set them, the
    /// deployment's defaults otherwise (with the balance kept for the default credits,
    /// once made).
    pub(crate) fn owner_limits(config: &EngineConfig, owner: Option<OwnerRecord>) -> OwnerLimits {
        match owner {
            Some(owner) => OwnerLimits {
                rate_limit: if owner.explicit {
                    owner.rate_limit
                } else {
                    config.default_user_rate_limit
                },
                // A balance kept for the default credits counts while there are
                // defaults: unset, they lift it.
                credits: (owner.has_credits
                    && (owner.explicit || config.default_user_credits.is_some()))
                .then_some(OwnerCredits {
                    refill: owner.refill,
                    default: None,
                }),
            },
            None => OwnerLimits {
                rate_limit: config.default_user_rate_limit,
                credits: config.default_user_credits.map(|grant| OwnerCredits {
                    refill: grant.refill,
                    default: Some(grant),
                }),
            },
        }
    }

    /// A stored key as the verifier and the cache hold it.
    pub(crate) fn verified_key(&self, record: VerifyRecord) -> Arc<VerifiedKey> {
        let permission_set = self.config.catalogue.set_of_known(&record.permissions);
        let owner = Self::owner_limits(&self.config, record.owner);
        let key = VerifiedKey::new(
            record.id,
            record.user_id,
            record.status,
            self.shared_values.permissions(record.permissions),
            permission_set,
            UsageMark::new(record.last_used_at),
        );
        Arc::new(
            key.with_rules(KeyRules {
                expires_at: record.expires_at,
                rate_limit: record.rate_limit,
                metadata: record.metadata,
                has_credits: record.remaining.is_some(),
                refill: record.refill,
                allowed_ips: record.allowed_ips,
            })
            .with_owner(self.shared_values.owner(owner)),
        )
    }
}
