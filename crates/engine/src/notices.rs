//! Keys refused for their rate limit, noted for `api_key.rate_limited` and recorded
//! with the usage flush.

use std::collections::HashMap;

use keyward_core::model::KeyId;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;

/// Keys refused for their rate limit, by the start of the limit's period, waiting for
/// the usage flush to record them (`api_key.rate_limited`, once per key and period
/// across instances). Only a refusal touches this, never a verification that passes,
/// and each key's period is noted once.
#[derive(Default)]
pub(crate) struct RateLimitNotices {
    state: std::sync::Mutex<Notices>,
}

#[derive(Default)]
struct Notices {
    /// Noted since the last flush.
    pending: HashMap<KeyId, Timestamp>,
    /// The period last handed to a flush, per key: not noted again.
    flushed: HashMap<KeyId, Timestamp>,
}

/// Keys held at most, each map: a flood of refusals cannot grow memory.
const MAX_NOTICES: usize = 10_000;

impl RateLimitNotices {
    /// Notes that `key` was refused at `now` under `limit`.
    pub(crate) fn note(&self, key: KeyId, limit: RateLimit, now: Timestamp) {
        let period = i64::from(limit.per_seconds()) * 1_000;
        let start = now.plus_millis(-(now.as_millis().rem_euclid(period)));
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.flushed.get(&key) == Some(&start) || state.pending.get(&key) == Some(&start) {
            return;
        }
        if state.pending.len() < MAX_NOTICES {
            state.pending.insert(key, start);
        }
    }

    pub(crate) fn drain(&self) -> Vec<(KeyId, Timestamp)> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let batch: Vec<(KeyId, Timestamp)> = state.pending.drain().collect();
        if state.flushed.len() + batch.len() > MAX_NOTICES {
            state.flushed.clear();
        }
        state.flushed.extend(batch.iter().copied());
        batch
    }

    /// Puts back a batch that could not be written.
    pub(crate) fn restore(&self, batch: Vec<(KeyId, Timestamp)>) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, start) in batch {
            state.flushed.remove(&key);
            if state.pending.len() < MAX_NOTICES {
                state.pending.entry(key).or_insert(start);
            }
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
    fn a_key_is_noted_once_per_period_of_its_limit() {
        let notices = RateLimitNotices::default();
        let limit = RateLimit::new(10, 60).unwrap();
        let key = KeyId::new(at(1));
        for ms in [60_000, 61_000, 119_999] {
            notices.note(key, limit, at(ms));
        }
        assert_eq!(notices.drain(), [(key, at(60_000))]);
        notices.note(key, limit, at(100_000));
        assert!(notices.drain().is_empty(), "already handed to a flush");
        notices.note(key, limit, at(120_000));
        let next = notices.drain();
        assert_eq!(next, [(key, at(120_000))]);
        notices.restore(next);
        assert_eq!(
            notices.drain(),
            [(key, at(120_000))],
            "kept when not written"
        );
    }

    #[test]
    fn a_flood_of_refused_keys_is_bounded() {
        let notices = RateLimitNotices::default();
        let limit = RateLimit::new(1, 1).unwrap();
        for n in 0..(MAX_NOTICES as i64 + 500) {
            notices.note(KeyId::new(at(n)), limit, at(5_000));
        }
        assert_eq!(notices.drain().len(), MAX_NOTICES);
    }
}
