//! Verification results by key hash.
//!
//! Filling the cache after a database read races with invalidation: a reader may
//! fetch a row, a revocation may commit and invalidate, and the reader may then insert
//! the row it read before the revocation. To close that window every invalidation
//! bumps an epoch first; a reader notes the epoch before its read, inserts, and
//! removes its own entry again if the epoch moved in between. Either the invalidation
//! happened before that check (the reader removes the entry) or after the insert (the
//! invalidation removes it): a stale positive cannot survive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyward_core::hash::KeyHash;
use moka::sync::Cache;

use crate::config::EngineConfig;
use crate::engine::VerifiedKey;

pub(crate) struct VerifyCache {
    found: Cache<KeyHash, Arc<VerifiedKey>>,
    missing: Cache<KeyHash, ()>,
    epoch: AtomicU64,
}

pub(crate) enum Lookup {
    Found(Arc<VerifiedKey>),
    Missing,
    /// Not cached: read the database, then [`VerifyCache::fill`] with this epoch.
    Unknown {
        epoch: u64,
    },
}

impl VerifyCache {
    pub(crate) fn new(config: &EngineConfig) -> Self {
        Self {
            found: Cache::builder()
                .max_capacity(config.cache_capacity)
                .time_to_live(config.cache_ttl)
                .build(),
            missing: Cache::builder()
                .max_capacity(config.negative_cache_capacity)
                .time_to_live(config.negative_cache_ttl)
                .build(),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn lookup(&self, hash: &KeyHash) -> Lookup {
        // Read the epoch before the caches, so a fill after a miss compares against
        // a value no newer than what was looked at.
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(key) = self.found.get(hash) {
            return Lookup::Found(key);
        }
        if self.missing.contains_key(hash) {
            return Lookup::Missing;
        }
        Lookup::Unknown { epoch }
    }

    pub(crate) fn fill(&self, hash: KeyHash, value: Option<Arc<VerifiedKey>>, epoch: u64) {
        match value {
            Some(key) => self.found.insert(hash, key),
            None => self.missing.insert(hash, ()),
        }
        if self.epoch.load(Ordering::SeqCst) != epoch {
            self.found.invalidate(&hash);
            self.missing.invalidate(&hash);
        }
    }

    pub(crate) fn invalidate(&self, hash: &KeyHash) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.invalidate(hash);
        self.missing.invalidate(hash);
    }

    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.invalidate_all();
        self.missing.invalidate_all();
    }

    pub(crate) fn entry_count(&self) -> u64 {
        // The count is maintained lazily; settle it first.
        self.found.run_pending_tasks();
        self.found.entry_count()
    }
}
