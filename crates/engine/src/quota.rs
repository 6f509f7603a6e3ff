//! One kind of limit (keys' own, failing clients, users' changes, legacy heads): held
//! across instances by the shared store when one is configured and answering, by this
//! instance otherwise. The one place that decides which.
//!
//! Two ways of counting:
//!
//! - [`Quota::take`], for requests that are limited whatever their outcome (a key's
//!   verifications, a user's changes): one round trip to the shared store per request,
//!   only for things that have a limit;
//! - [`Quota::admit`], then [`Quota::failed`] or [`Quota::succeeded`], for limits on
//!   failures: every attempt takes a place in this instance first (attempts made at
//!   the same moment cannot all slip under the limit, and no round trip is made for
//!   attempts that succeed), and only a failure is counted in the shared store.
//!
//! A refusal from the shared store is remembered here until its wait has passed, so a
//! client hammering a refused key or address makes no further round trips.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use keyward_core::model::{KeyId, UserId};
use keyward_core::rate::{RateLimit, Wait};
use keyward_core::time::Timestamp;
use quick_cache::sync::Cache;

use crate::limits::{ClientAddr, Limiter};
use crate::shared_limits::SharedLimits;

/// What a limited thing is called in the shared store: its kind and its bytes.
pub(crate) trait LimitKey: Eq + Hash + Clone {
    const KIND: &'static str;
    fn bytes(&self) -> Vec<u8>;
}

impl LimitKey for KeyId {
    const KIND: &'static str = "key";
    fn bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl LimitKey for UserId {
    const KIND: &'static str = "user";
    fn bytes(&self) -> Vec<u8> {
        self.as_str().as_bytes().to_vec()
    }
}

impl LimitKey for ClientAddr {
    const KIND: &'static str = "client";
    fn bytes(&self) -> Vec<u8> {
        match self.ip() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        }
    }
}

/// A legacy (AutoGPT) key's head, whose failures are limited before scrypt runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LegacyHead(pub(crate) String);

impl LimitKey for LegacyHead {
    const KIND: &'static str = "head";
    fn bytes(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }
}

pub(crate) struct Quota<K> {
    local: Limiter<K>,
    shared: Option<Arc<SharedLimits>>,
    /// Refusals from the shared store, until the moment their wait ends, under the
    /// quota they were given for: a key given a new quota (on any instance) is asked
    /// about afresh once this instance sees the new quota.
    /// Only with a shared store.
    refused_until: Option<Cache<K, (Instant, RateLimit)>>,
}

impl<K: LimitKey> Quota<K> {
    /// Keeps the state of up to `capacity` things here.
    pub(crate) fn new(capacity: u64, shared: Option<Arc<SharedLimits>>) -> Self {
        let entries = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        Self {
            local: Limiter::new(capacity),
            refused_until: shared.as_ref().map(|_| Cache::new(entries)),
            shared,
        }
    }

    fn name(key: &K) -> String {
        SharedLimits::name(K::KIND, &key.bytes())
    }

    /// The shared store to ask now, if any: configured and not known to be down.
    fn shared(&self) -> Option<&SharedLimits> {
        self.shared.as_deref().filter(|shared| shared.is_up())
    }

    /// A refusal the shared store gave for `key` under `limit` that still runs.
    fn known_refusal(&self, key: &K, limit: RateLimit) -> Option<Wait> {
        let refused_until = self.refused_until.as_ref()?;
        let (until, given_under) = refused_until.get(key)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || given_under != limit {
            refused_until.remove(key);
            return None;
        }
        Some(Wait(
            u64::try_from(left.as_micros()).unwrap_or(u64::MAX).max(1),
        ))
    }

    fn remember_refusal(&self, key: &K, limit: RateLimit, wait: Wait) {
        if let Some(refused_until) = &self.refused_until {
            let until = Instant::now() + wait.as_duration();
            refused_until.insert(key.clone(), (until, limit));
        }
    }

    /// Takes one request for `key` at `now`, or says how long to wait.
    pub(crate) async fn take(&self, key: &K, limit: RateLimit, now: Timestamp) -> Result<(), Wait> {
        if let Some(wait) = self.known_refusal(key, limit) {
            return Err(wait);
        }
        if let Some(shared) = self.shared() {
            match shared.take(&Self::name(key), limit).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(wait)) => {
                    self.remember_refusal(key, limit, wait);
                    return Err(wait);
                }
                // Unreachable: this instance decides, at once.
                Err(_) => {}
            }
        }
        self.local.check(key, limit, now)
    }

    /// Before an attempt whose failures are limited: refused while `key` is known to
    /// be over its limit; otherwise the attempt takes its place here.
    pub(crate) fn admit(&self, key: &K, limit: RateLimit, now: Timestamp) -> Result<(), Wait> {
        if let Some(wait) = self.known_refusal(key, limit) {
            return Err(wait);
        }
        self.local.check(key, limit, now)
    }

    /// After an admitted attempt failed: counts the failure in the shared store. When
    /// that says `key` was already over its limit, the attempt is to be answered as
    /// refused (as it would have been had the store been asked first), and this
    /// instance refuses `key` until the wait has passed.
    pub(crate) async fn failed(&self, key: &K, limit: RateLimit) -> Result<(), Wait> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        match shared.take(&Self::name(key), limit).await {
            Ok(Err(wait)) => {
                self.remember_refusal(key, limit, wait);
                Err(wait)
            }
            Ok(Ok(())) | Err(_) => Ok(()),
        }
    }

    /// After an admitted attempt did not fail: gives its place back.
    pub(crate) fn succeeded(&self, key: &K, limit: RateLimit) {
        self.local.refund(key, limit);
    }

    /// Carries the state of `from` over to `to` (a key replaced by a rotation keeps
    /// what it has used of its quota), unless `to` already has its own.
    pub(crate) async fn copy(&self, from: &K, to: &K) {
        self.local.copy(from, to);
        if let Some(shared) = &self.shared {
            shared.copy(&Self::name(from), &Self::name(to)).await;
        }
    }

    /// Drops what is known of `key`: its next request starts a fresh quota.
    pub(crate) async fn forget(&self, key: &K) {
        self.local.forget(key);
        if let Some(refused_until) = &self.refused_until {
            refused_until.remove(key);
        }
        if let Some(shared) = &self.shared {
            shared.forget(&Self::name(key)).await;
        }
    }
}
