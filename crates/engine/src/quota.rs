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
//!   the same moment cannot all slip under the limit); a failure is counted in the
//!   shared store, and once something has failed here, its attempts are counted
//!   there before they are made (and given back when they succeed). Things that do
//!   not fail make no round trip.
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

/// A user's pool: the verifications of all their keys, under the user's rate limit
/// (not their changes, which [`UserId`] counts).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UserPool(pub(crate) UserId);

impl LimitKey for UserPool {
    const KIND: &'static str = "pool";
    fn bytes(&self) -> Vec<u8> {
        self.0.as_str().as_bytes().to_vec()
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
    /// Only with a shared store: what it said and what this instance has seen.
    seen: Option<Seen<K>>,
}

struct Seen<K> {
    /// Refusals from the shared store, until the moment their wait ends, under the
    /// quota they were given for: a key given a new quota (on any instance) is asked
    /// about afresh once this instance sees the new quota.
    refused_until: Cache<K, (Instant, RateLimit)>,
    /// Things whose attempts failed here within their limit's period: their attempts
    /// are counted in the shared store before they are made (see [`Quota::admit`]).
    failing_until: Cache<K, Instant>,
}

/// Where an admitted attempt was counted, so its outcome is settled in the same place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// In this instance only; a failure is then counted in the shared store.
    Here,
    /// In this instance and in the shared store; a success gives both back.
    Everywhere,
}

fn wait_until(until: Instant) -> Option<Wait> {
    let left = until.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| Wait(u64::try_from(left.as_micros()).unwrap_or(u64::MAX).max(1)))
}

impl<K: LimitKey> Quota<K> {
    /// Keeps the state of up to `capacity` things here.
    pub(crate) fn new(capacity: u64, shared: Option<Arc<SharedLimits>>) -> Self {
        let entries = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        Self {
            local: Limiter::new(capacity),
            seen: shared.as_ref().map(|_| Seen {
                refused_until: Cache::new(entries),
                failing_until: Cache::new(entries),
            }),
            shared,
        }
    }

    /// The store's name for `key` under `limit`: a new quota is a new name, so it
    /// starts afresh on every instance at once, and a late request counted under the
    /// old quota cannot weigh on the new one.
    fn name(key: &K, limit: RateLimit) -> String {
        let mut bytes = key.bytes();
        bytes.extend_from_slice(&limit.requests().to_be_bytes());
        bytes.extend_from_slice(&limit.per_seconds().to_be_bytes());
        SharedLimits::name(K::KIND, &bytes)
    }

    /// The shared store to ask now, if any: configured and not known to be down.
    fn shared(&self) -> Option<&SharedLimits> {
        self.shared.as_deref().filter(|shared| shared.is_up())
    }

    /// A refusal the shared store gave for `key` under `limit` that still runs.
    fn known_refusal(&self, key: &K, limit: RateLimit) -> Option<Wait> {
        let refused_until = &self.seen.as_ref()?.refused_until;
        let (until, given_under) = refused_until.get(key)?;
        match wait_until(until).filter(|_| given_under == limit) {
            Some(wait) => Some(wait),
            None => {
                refused_until.remove(key);
                None
            }
        }
    }

    fn remember_refusal(&self, key: &K, limit: RateLimit, wait: Wait) {
        if let Some(seen) = &self.seen {
            let until = Instant::now() + wait.as_duration();
            seen.refused_until.insert(key.clone(), (until, limit));
        }
    }

    fn failing(&self, key: &K) -> bool {
        let Some(seen) = &self.seen else {
            return false;
        };
        seen.failing_until.get(key).and_then(wait_until).is_some()
    }

    /// Takes one request for `key` at `now`, or says how long to wait.
    pub(crate) async fn take(&self, key: &K, limit: RateLimit, now: Timestamp) -> Result<(), Wait> {
        if let Some(wait) = self.known_refusal(key, limit) {
            return Err(wait);
        }
        if let Some(shared) = self.shared() {
            match shared.take(Self::name(key, limit), limit).await {
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

    /// Before an attempt whose failures are limited. Refused while `key` is known to
    /// be over its limit; otherwise the attempt takes its place here, so attempts made
    /// at the same moment cannot all slip under the limit. Once `key` has failed here
    /// (within its limit's period), its attempts also take their place in the shared
    /// store first, so a client spreading guesses over instances is held to the limit
    /// in the attempts actually made, not only in the answers; the first attempt on
    /// an instance that has not seen it fail makes no round trip, so a client that does
    /// not fail costs the shared store nothing. Over N instances, at most N attempts
    /// per period are made beyond the limit (each instance's first), and each of those
    /// is answered as refused if the store says the limit was already reached.
    pub(crate) async fn admit(
        &self,
        key: &K,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<Admitted, Wait> {
        if let Some(wait) = self.known_refusal(key, limit) {
            return Err(wait);
        }
        self.local.check(key, limit, now)?;
        let Some(shared) = self.shared().filter(|_| self.failing(key)) else {
            return Ok(Admitted::Here);
        };
        match shared.take(Self::name(key, limit), limit).await {
            Ok(Ok(())) => Ok(Admitted::Everywhere),
            Ok(Err(wait)) => {
                // Not made: its place here is given back.
                self.local.refund(key, limit);
                self.remember_refusal(key, limit, wait);
                Err(wait)
            }
            Err(_) => Ok(Admitted::Here),
        }
    }

    /// After an admitted attempt failed. Counted in the shared store if it was not
    /// already; when that says `key` was over its limit, the attempt is to be answered
    /// as refused, and this instance refuses `key` until the wait has passed.
    pub(crate) async fn failed(
        &self,
        key: &K,
        limit: RateLimit,
        admitted: Admitted,
    ) -> Result<(), Wait> {
        let Some(seen) = &self.seen else {
            return Ok(());
        };
        let period = std::time::Duration::from_secs(u64::from(limit.per_seconds()));
        seen.failing_until
            .insert(key.clone(), Instant::now() + period);
        let Some(shared) = self.shared().filter(|_| admitted == Admitted::Here) else {
            return Ok(());
        };
        match shared.take(Self::name(key, limit), limit).await {
            Ok(Err(wait)) => {
                self.remember_refusal(key, limit, wait);
                Err(wait)
            }
            Ok(Ok(())) | Err(_) => Ok(()),
        }
    }

    /// After an admitted attempt did not fail: gives its place back, where it took one.
    pub(crate) async fn succeeded(&self, key: &K, limit: RateLimit, admitted: Admitted) {
        self.local.refund(key, limit);
        if admitted == Admitted::Everywhere
            && let Some(shared) = &self.shared
        {
            shared.refund(&Self::name(key, limit), limit).await;
        }
    }

    /// Carries the state of `from` over to `to` under `limit` (a key replaced by a
    /// rotation keeps what it has used of its quota), unless `to` already has its own.
    pub(crate) async fn copy(&self, from: &K, to: &K, limit: Option<RateLimit>) {
        self.local.copy(from, to);
        if let (Some(shared), Some(limit)) = (&self.shared, limit) {
            shared
                .copy(&Self::name(from, limit), &Self::name(to, limit))
                .await;
        }
    }

    /// Drops what this instance knows of `key`: its next request starts a fresh quota
    /// here. In the shared store a new quota has a new name (see [`Quota::name`]).
    pub(crate) fn forget(&self, key: &K) {
        self.local.forget(key);
        if let Some(seen) = &self.seen {
            seen.refused_until.remove(key);
        }
    }
}
