//! Usage history: every verification of a found key counted per key and UTC hour in
//! memory (VALID or refused), written in batches by the usage flush
//! ([`crate::background`]), and read back with what is not written yet
//! ([`crate::history_reads`]).
//!
//! Like `last_used_at` ([`crate::usage`]), verification never waits for a write: it
//! adds to a counter in one of 16 shards (one short lock, a cheap hash, no
//! allocation once the key's hour is there). A flush takes everything and writes at most one row per key
//! and hour, adding to the stored counts; a failed flush puts its counts back. Only
//! a crash loses counts: those since the last flush.
//!
//! The map is bounded ([`EngineConfig::usage_history_capacity`] key-hours): at the
//! bound, a key-hour that is not already counted is dropped until the next flush
//! empties the map, and `keyward_usage_history_dropped_total` says how many
//! verifications were not counted. Counts of keys already counted still add up.
//!
//! [`EngineConfig::usage_history_capacity`]: crate::EngineConfig::usage_history_capacity

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use keyward_core::model::KeyId;
use keyward_core::time::Timestamp;
use keyward_core::usage::{HOUR_MS, HourlyUsage, UsageCounts, hour_of};
use keyward_store::HourCounts;

const SHARDS: usize = 16;

type Shard = HashMap<(KeyId, i64), UsageCounts, BuildHasherDefault<KeyHourHasher>>;

/// Hashes a (key id, hour) entry by multiplying its words in (as rustc's FxHash
/// does), a few nanoseconds where SipHash takes tens on every verification. Its
/// protection against chosen collisions is not needed here: ids are random (v7
/// UUIDs the server makes) and hours come from the server's clock.
#[derive(Default)]
struct KeyHourHasher(u64);

impl KeyHourHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for KeyHourHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_i64(&mut self, n: i64) {
        self.mix(n.cast_unsigned());
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) struct HistoryTracker {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    /// When old hours were last pruned (milliseconds; `i64::MIN`: not yet).
    pruned_at: AtomicI64,
}

impl HistoryTracker {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            pruned_at: AtomicI64::new(i64::MIN),
        }
    }

    fn shard(&self, id: &KeyId) -> &Mutex<Shard> {
        // The last bytes of a v7 UUID are random.
        &self.shards[usize::from(id.as_bytes()[15]) % SHARDS]
    }

    /// Counts one verification of key `id` at `at`.
    pub(crate) fn count(&self, id: KeyId, at: Timestamp, valid: bool) {
        self.add(id, hour_of(at).as_millis(), UsageCounts::one(valid));
    }

    fn add(&self, id: KeyId, hour: i64, counts: UsageCounts) {
        let mut shard = self.shard(&id).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = shard.get_mut(&(id, hour)) {
            pending.add(counts);
        } else if shard.len() < self.per_shard {
            shard.insert((id, hour), counts);
        } else {
            drop(shard);
            metrics::counter!("keyward_usage_history_dropped_total")
                .increment(counts.valid.saturating_add(counts.refused));
        }
    }

    /// Takes everything counted so far.
    pub(crate) fn drain(&self) -> Vec<HourCounts> {
        let mut batch = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            batch.extend(shard.drain().map(|((key_id, hour), counts)| HourCounts {
                key_id,
                hour: Timestamp::from_millis(hour).expect("an hour of a valid time"),
                counts,
            }));
        }
        batch
    }

    /// Adds back a batch that could not be written.
    pub(crate) fn restore(&self, batch: Vec<HourCounts>) {
        for c in batch {
            self.add(c.key_id, c.hour.as_millis(), c.counts);
        }
    }

    /// The hours counted and not yet written of the keys `of` selects.
    pub(crate) fn pending(&self, of: impl Fn(&KeyId) -> bool) -> Vec<HourlyUsage> {
        let mut hours = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            hours.extend(shard.iter().filter(|((id, _), _)| of(id)).map(
                |(&(_, hour), &counts)| HourlyUsage {
                    hour: Timestamp::from_millis(hour).expect("an hour of a valid time"),
                    counts,
                },
            ));
        }
        hours
    }

    /// Lets the next flush prune again (this one's pruning failed).
    pub(crate) fn retry_prune(&self) {
        self.pruned_at.store(i64::MIN, Ordering::Relaxed);
    }

    /// True (and noted) if old hours were last pruned an hour or more before `now`.
    pub(crate) fn claim_prune(&self, now: Timestamp) -> bool {
        let last = self.pruned_at.load(Ordering::Relaxed);
        now.as_millis().saturating_sub(last) >= HOUR_MS
            && self
                .pruned_at
                .compare_exchange(last, now.as_millis(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn sorted(mut batch: Vec<HourCounts>) -> Vec<(KeyId, i64, u64, u64)> {
        let mut rows: Vec<_> = batch
            .drain(..)
            .map(|c| {
                (
                    c.key_id,
                    c.hour.as_millis(),
                    c.counts.valid,
                    c.counts.refused,
                )
            })
            .collect();
        rows.sort_unstable();
        rows
    }

    #[test]
    fn verifications_are_counted_per_key_and_hour() {
        let tracker = HistoryTracker::new(1_000);
        let a = KeyId::new(at(1));
        tracker.count(a, at(10), true);
        tracker.count(a, at(HOUR_MS - 1), false);
        tracker.count(a, at(HOUR_MS), true);
        assert_eq!(sorted(tracker.drain()), [(a, 0, 1, 1), (a, HOUR_MS, 1, 0)]);
        assert!(tracker.drain().is_empty());
    }

    #[test]
    fn a_restored_batch_adds_to_what_was_counted_since() {
        let tracker = HistoryTracker::new(1_000);
        let a = KeyId::new(at(1));
        tracker.count(a, at(5), true);
        let batch = tracker.drain();
        tracker.count(a, at(6), true);
        tracker.restore(batch);
        assert_eq!(sorted(tracker.drain()), [(a, 0, 2, 0)]);
    }

    #[test]
    fn at_the_bound_new_key_hours_are_dropped_and_known_ones_still_count() {
        // One entry per shard.
        let tracker = HistoryTracker::new(SHARDS);
        let first = KeyId::new(at(1));
        tracker.count(first, at(0), true);
        let same_shard = (0..10_000)
            .map(|i| KeyId::new(at(i)))
            .find(|k| k.as_bytes()[15] == first.as_bytes()[15] && *k != first)
            .unwrap();
        tracker.count(same_shard, at(0), true);
        tracker.count(first, at(0), false);
        assert_eq!(sorted(tracker.drain()), [(first, 0, 1, 1)]);
    }

    #[test]
    fn old_hours_are_pruned_at_most_once_an_hour() {
        let tracker = HistoryTracker::new(1);
        assert!(tracker.claim_prune(at(0)));
        assert!(!tracker.claim_prune(at(HOUR_MS - 1)));
        assert!(tracker.claim_prune(at(HOUR_MS)));
    }
}
