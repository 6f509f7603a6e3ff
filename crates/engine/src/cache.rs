//! Verification results by key hash (and, in a cache of their own, service
//! credentials by their secrets' hashes).
//!
//! Filling the cache after a database read races with invalidation: a reader may
//! fetch a row, a revocation may commit and invalidate, and the reader may then insert
//! the row it read before the revocation. To close that window, every invalidation
//! bumps an epoch, and a reader notes the epoch before its database read and inserts
//! only if it has not moved. The check-and-insert and the bump-and-remove run under
//! the same lock (one of a set of stripes, chosen by hash), so one always happens
//! wholly before the other: a stale positive is never inserted after an invalidation
//! has finished, not even for an instant.
//!
//! The stripe locks are taken only on misses and mutations; a cache hit takes none
//! (only the read lock of one of the cache's own shards).
//!
//! The maps are `quick_cache` (sharded, CLOCK-like eviction): a hit is one hash
//! lookup under a shard's read lock. Entries carry their own expiry, checked on
//! lookup. Keys are HMAC outputs, uniformly random and unpredictable without the
//! pepper, so their first bytes serve as the hash: nothing to compute, and no way
//! for a client to aim keys at one bucket.
//!
//! While changes made elsewhere cannot be seen (the store's change feed is down, or
//! not yet up), the cache is suspended: every verification reads the database, so no
//! instance ever answers from an entry another instance's change made stale. The feed
//! must also keep confirming that it watches: each confirmation extends a lease, and
//! once the lease lapses (a connection that died without an error) the cache is not
//! consulted until the next confirmation.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use keyward_core::hash::KeyHash;
use quick_cache::UnitWeighter;
use quick_cache::sync::{Cache, DefaultLifecycle};

use crate::config::EngineConfig;

const STRIPES: usize = 64;

/// A cached verification result and when it stops being trusted (ms after `origin`).
struct Found<V> {
    key: Arc<V>,
    until: u64,
}

impl<V> Clone for Found<V> {
    fn clone(&self) -> Self {
        Self {
            key: Arc::clone(&self.key),
            until: self.until,
        }
    }
}

type Map<V> = Cache<KeyHash, V, UnitWeighter, KeyBytes, DefaultLifecycle<KeyHash, V>>;

fn map<V: Clone>(capacity: u64) -> Map<V> {
    let items = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
    Cache::with(
        items,
        capacity.max(1),
        UnitWeighter,
        KeyBytes,
        DefaultLifecycle::default(),
    )
}

/// Hashes a [`KeyHash`] by taking its bytes as they are (see the module docs).
#[derive(Clone, Copy, Default)]
struct KeyBytes;

impl BuildHasher for KeyBytes {
    type Hasher = TakeBytes;
    fn build_hasher(&self) -> TakeBytes {
        TakeBytes(0)
    }
}

struct TakeBytes(u64);

impl Hasher for TakeBytes {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(word);
        }
    }
}

pub(crate) struct VerifyCache<V> {
    found: Map<Found<V>>,
    /// Hashes known not to exist, with when that stops being trusted.
    missing: Map<u64>,
    ttl: u64,
    negative_ttl: u64,
    epoch: AtomicU64,
    stripes: Vec<Mutex<()>>,
    /// True while the cache must not be trusted (changes elsewhere are not seen).
    suspended: AtomicBool,
    /// Milliseconds after `origin` until which the change feed's last confirmation
    /// lets the cache be trusted.
    lease_until: AtomicU64,
    origin: Instant,
}

pub(crate) enum Lookup<V> {
    Found(Arc<V>),
    Missing,
    /// Not cached: read the database, then [`VerifyCache::fill`] with this epoch.
    Unknown {
        epoch: u64,
    },
}

fn lock(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Send + Sync> VerifyCache<V> {
    /// A cache of the configured sizes (the keys').
    pub(crate) fn new(config: &EngineConfig) -> Self {
        Self::sized(
            config.cache_capacity,
            config.negative_cache_capacity,
            config,
        )
    }

    /// A cache of `found` entries and `missing` negative entries, with the
    /// configured lifetimes.
    pub(crate) fn sized(found: u64, missing: u64, config: &EngineConfig) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            found: map(found),
            missing: map(missing),
            ttl: ms(config.cache_ttl),
            negative_ttl: ms(config.negative_cache_ttl),
            epoch: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            // Until the store says it watches for changes.
            suspended: AtomicBool::new(true),
            lease_until: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    fn stripe(&self, hash: &KeyHash) -> &Mutex<()> {
        // The hash is uniformly random already.
        &self.stripes[usize::from(hash.as_bytes()[0]) % STRIPES]
    }

    pub(crate) fn lookup(&self, hash: &KeyHash) -> Lookup<V> {
        // Read the epoch before the caches: a fill after a miss then compares against
        // a value no newer than the state it is about to read from the database.
        let epoch = self.epoch.load(Ordering::SeqCst);
        let now = self.now();
        if !self.trusted_at(now) {
            return Lookup::Unknown { epoch };
        }
        if let Some(found) = self.found.get(hash) {
            if found.until > now {
                return Lookup::Found(found.key);
            }
        } else if self.missing.get(hash).is_some_and(|until| until > now) {
            return Lookup::Missing;
        }
        Lookup::Unknown { epoch }
    }

    /// The epoch now, for a read that does not start from a lookup (the warm-up).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches what a database read found, unless something was invalidated since
    /// the read began (then the next verification reads again); says whether it did.
    pub(crate) fn fill(&self, hash: KeyHash, value: Option<Arc<V>>, epoch: u64) -> bool {
        let _guard = lock(self.stripe(&hash));
        if self.epoch.load(Ordering::SeqCst) != epoch || !self.trusted() {
            return false;
        }
        let now = self.now();
        match value {
            Some(key) => self.found.insert(
                hash,
                Found {
                    key,
                    until: now.saturating_add(self.ttl),
                },
            ),
            None => self
                .missing
                .insert(hash, now.saturating_add(self.negative_ttl)),
        }
        true
    }

    /// Milliseconds since `origin`.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn trusted_at(&self, now: u64) -> bool {
        !self.suspended.load(Ordering::SeqCst) && self.lease_until.load(Ordering::SeqCst) > now
    }

    fn trusted(&self) -> bool {
        self.trusted_at(self.now())
    }

    pub(crate) fn is_active(&self) -> bool {
        self.trusted()
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.found.len() as u64
    }
}

/// What the change feed does to every cache, whatever it holds: a change made
/// elsewhere drops the hashes it names (or everything), and the cache is trusted only
/// while the feed confirms it watches.
pub(crate) trait Watched: Send + Sync {
    /// Drops what is cached for `hash`, found or missing.
    fn invalidate(&self, hash: &KeyHash);
    /// Drops everything.
    fn clear(&self);
    /// Stops trusting the cache: clears it and reads through until
    /// [`Watched::resume`].
    fn suspend(&self);
    /// Trusts the cache again, from empty. Reads that began before are not cached:
    /// they may have missed a change made while nothing was watched.
    fn resume(&self);
    /// Extends the lease: the change feed has just confirmed it is watching.
    fn renew(&self, lease: Duration);
}

impl<V: Send + Sync> Watched for VerifyCache<V> {
    fn invalidate(&self, hash: &KeyHash) {
        let _guard = lock(self.stripe(hash));
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.remove(hash);
        self.missing.remove(hash);
    }

    fn clear(&self) {
        let _guards: Vec<_> = self.stripes.iter().map(lock).collect();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.clear();
        self.missing.clear();
    }

    fn suspend(&self) {
        let _guards: Vec<_> = self.stripes.iter().map(lock).collect();
        self.suspended.store(true, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.clear();
        self.missing.clear();
    }

    fn resume(&self) {
        let _guards: Vec<_> = self.stripes.iter().map(lock).collect();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.found.clear();
        self.missing.clear();
        self.suspended.store(false, Ordering::SeqCst);
    }

    fn renew(&self, lease: Duration) {
        let until = self.origin.elapsed().saturating_add(lease).as_millis();
        self.lease_until
            .store(u64::try_from(until).unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use keyward_core::hash::Peppers;
    use keyward_core::model::{KeyId, KeyStatus, UserId};
    use keyward_core::permissions::PermissionSet;
    use keyward_core::time::Timestamp;

    use super::*;
    use crate::verdict::VerifiedKey;

    fn cache() -> VerifyCache<VerifiedKey> {
        let config =
            EngineConfig::new(Peppers::parse("cache-test-pepper-0123456789abcdefghij").unwrap());
        let cache = VerifyCache::new(&config);
        cache.resume();
        cache.renew(Duration::from_secs(60));
        cache
    }

    fn key() -> Arc<VerifiedKey> {
        Arc::new(VerifiedKey::new(
            KeyId::new(Timestamp::from_millis(1).unwrap()),
            UserId::parse("u").unwrap(),
            KeyStatus::Active,
            Arc::from([]),
            PermissionSet::EMPTY,
            crate::usage::UsageMark::new(None),
        ))
    }

    fn epoch_of(lookup: Lookup<VerifiedKey>) -> u64 {
        match lookup {
            Lookup::Unknown { epoch } => epoch,
            _ => panic!("expected a miss"),
        }
    }

    /// A verification's first step: a lookup that misses, and the epoch its read of
    /// the database then fills the cache under.
    fn start_read(cache: &VerifyCache<VerifiedKey>, byte: u8) -> (KeyHash, u64) {
        let hash = KeyHash::from_bytes([byte; 32]);
        (hash, epoch_of(cache.lookup(&hash)))
    }

    /// A key read and cached without interference.
    fn cached(cache: &VerifyCache<VerifiedKey>, byte: u8) -> KeyHash {
        let (hash, epoch) = start_read(cache, byte);
        cache.fill(hash, Some(key()), epoch);
        assert!(matches!(cache.lookup(&hash), Lookup::Found(_)));
        hash
    }

    /// The cache does not answer for `hash`: a verification reads the database.
    fn reads_through(cache: &VerifyCache<VerifiedKey>, hash: &KeyHash) -> bool {
        matches!(cache.lookup(hash), Lookup::Unknown { .. })
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let cache = cache();
        let (hash, epoch) = start_read(&cache, 1);
        // The row was read (still ACTIVE); meanwhile a revocation commits and invalidates.
        cache.invalidate(&hash);
        cache.fill(hash, Some(key()), epoch);
        assert!(reads_through(&cache, &hash));
        assert!(reads_through(&cache, &hash));
    }

    #[test]
    fn a_clear_also_voids_reads_in_flight() {
        let cache = cache();
        let (hash, epoch) = start_read(&cache, 2);
        cache.clear();
        cache.fill(hash, None, epoch);
        assert!(reads_through(&cache, &hash));
    }

    #[test]
    fn a_suspended_cache_reads_through_and_forgets_reads_from_before_it_resumed() {
        let cache = cache();
        let hash = cached(&cache, 5);
        cache.suspend();
        assert!(!cache.is_active());
        let during = epoch_of(cache.lookup(&hash));
        cache.fill(hash, Some(key()), during);
        assert!(reads_through(&cache, &hash));
        cache.resume();
        cache.fill(hash, Some(key()), during);
        assert!(reads_through(&cache, &hash), "a read from before");
        let after = epoch_of(cache.lookup(&hash));
        cache.fill(hash, Some(key()), after);
        assert!(matches!(cache.lookup(&hash), Lookup::Found(_)));
    }

    #[test]
    fn a_lapsed_lease_bypasses_the_cache_until_renewed() {
        let cache = cache();
        let hash = cached(&cache, 6);
        cache.renew(Duration::ZERO);
        assert!(!cache.is_active());
        assert!(reads_through(&cache, &hash));
        cache.renew(Duration::from_secs(60));
        // The watch never broke (no suspension): what was cached still holds.
        assert!(matches!(cache.lookup(&hash), Lookup::Found(_)));
    }

    #[test]
    fn an_undisturbed_read_is_cached() {
        let cache = cache();
        let found = cached(&cache, 3);
        let (missing, epoch) = start_read(&cache, 4);
        cache.fill(missing, None, epoch);
        assert!(matches!(cache.lookup(&found), Lookup::Found(_)));
        assert!(matches!(cache.lookup(&missing), Lookup::Missing));
        cache.invalidate(&found);
        assert!(reads_through(&cache, &found));
    }
}
