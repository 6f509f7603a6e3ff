//! `last_used_at`, recorded in memory on every successful verification and written
//! to the database in batches, so verification never waits for a write.
//!
//! Per key only the latest time is kept, so a flush writes at most one row per key
//! however often it was used. A failed flush puts its batch back: nothing recorded
//! is dropped while the process lives. The map is sharded to keep lock hold times
//! short under concurrent verifications.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use keyward_core::credential::CredentialId;
use keyward_core::model::KeyId;
use keyward_core::time::Timestamp;

const SHARDS: usize = 16;

/// The latest use of one key that has been recorded (or was read from the
/// database), kept with the key in the verification cache. A use within the
/// resolution of the previous one is not recorded again, so a busy key costs one
/// compare per verification, and one row per resolution period in the database.
pub struct UsageMark(AtomicI64);

impl UsageMark {
    pub(crate) fn new(last_used: Option<Timestamp>) -> Self {
        Self(AtomicI64::new(
            last_used.map_or(i64::MIN, Timestamp::as_millis),
        ))
    }

    /// True if `now` should be recorded: the previous recorded use is at least
    /// `resolution` older. Only one of several concurrent callers gets true.
    pub(crate) fn claim(&self, now: Timestamp, resolution: Duration) -> bool {
        let now = now.as_millis();
        let resolution = i64::try_from(resolution.as_millis()).unwrap_or(i64::MAX);
        let last = self.0.load(Ordering::Relaxed);
        if now.saturating_sub(last) < resolution {
            return false;
        }
        self.0
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

impl Clone for UsageMark {
    fn clone(&self) -> Self {
        Self(AtomicI64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl PartialEq for UsageMark {
    fn eq(&self, other: &Self) -> bool {
        self.0.load(Ordering::Relaxed) == other.0.load(Ordering::Relaxed)
    }
}

impl Eq for UsageMark {}

impl std::fmt::Debug for UsageMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.load(Ordering::Relaxed) {
            i64::MIN => f.write_str("UsageMark(never)"),
            ms => write!(f, "UsageMark({ms})"),
        }
    }
}

/// What usage is tracked of: keys, and service credentials.
pub(crate) trait Tracked: Copy + Eq + std::hash::Hash {
    /// A byte that spreads ids over the shards.
    fn spread(&self) -> u8;
}

impl Tracked for KeyId {
    fn spread(&self) -> u8 {
        // The last bytes of a v7 UUID are random.
        self.as_bytes()[15]
    }
}

impl Tracked for CredentialId {
    fn spread(&self) -> u8 {
        self.as_uuid().as_bytes()[15]
    }
}

pub(crate) struct UsageTracker<Id = KeyId> {
    shards: Vec<Mutex<HashMap<Id, Timestamp>>>,
}

impl<Id: Tracked> UsageTracker<Id> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: &Id) -> &Mutex<HashMap<Id, Timestamp>> {
        &self.shards[usize::from(id.spread()) % SHARDS]
    }

    pub(crate) fn record(&self, id: Id, at: Timestamp) {
        let mut shard = self.shard(&id).lock().unwrap_or_else(|p| p.into_inner());
        shard
            .entry(id)
            .and_modify(|t| *t = (*t).max(at))
            .or_insert(at);
    }

    /// The latest recorded time not yet written, if any.
    pub(crate) fn pending(&self, id: &Id) -> Option<Timestamp> {
        let shard = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(id).copied()
    }

    /// Takes everything recorded so far.
    pub(crate) fn drain(&self) -> Vec<(Id, Timestamp)> {
        let mut batch = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            batch.extend(shard.drain());
        }
        batch
    }

    /// Puts back a batch that could not be written, keeping newer records.
    pub(crate) fn restore(&self, batch: Vec<(Id, Timestamp)>) {
        for (id, at) in batch {
            self.record(id, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn only_the_latest_use_per_key_is_kept() {
        let tracker = UsageTracker::<KeyId>::new();
        let a = KeyId::new(at(1));
        let b = KeyId::new(at(1));
        for t in [5, 9, 7] {
            tracker.record(a, at(t));
        }
        tracker.record(b, at(3));
        let mut batch = tracker.drain();
        batch.sort_by_key(|(_, t)| *t);
        assert_eq!(batch, [(b, at(3)), (a, at(9))]);
        assert!(tracker.drain().is_empty());
    }

    #[test]
    fn a_use_within_the_resolution_is_not_recorded_again() {
        let second = Duration::from_secs(1);
        let mark = UsageMark::new(None);
        assert!(mark.claim(at(10_000), second), "never used before");
        assert!(!mark.claim(at(10_500), second));
        assert!(!mark.claim(at(10_999), second));
        assert!(mark.claim(at(11_000), second));
        let stored = UsageMark::new(Some(at(20_000)));
        assert!(!stored.claim(at(20_400), second), "recent in the database");
        assert!(stored.claim(at(21_000), second));
        let every = UsageMark::new(Some(at(5)));
        assert!(every.claim(at(5), Duration::ZERO), "zero records every use");
    }

    #[test]
    fn a_restored_batch_does_not_overwrite_newer_uses() {
        let tracker = UsageTracker::<KeyId>::new();
        let a = KeyId::new(at(1));
        tracker.record(a, at(5));
        let batch = tracker.drain();
        tracker.record(a, at(8));
        tracker.restore(batch);
        assert_eq!(tracker.pending(&a), Some(at(8)));
    }
}
