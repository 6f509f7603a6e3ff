//! Database reads in flight, by key hash: concurrent misses for the same key share one
//! read instead of each making their own (a key that becomes hot while not cached, or
//! a burst of the same forged key, costs the database one lookup).
//!
//! A read is shared only between verifications that looked the cache up in the same
//! epoch (see `cache`): one that looked after an invalidation starts a read of its
//! own, so it can never be handed, and then cache, a row read before the change it
//! already knows of.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyward_core::hash::KeyHash;
use tokio::sync::OnceCell;

const STRIPES: usize = 64;

/// One read: its result, once there.
pub(crate) type Flight<T> = Arc<OnceCell<T>>;

/// The reads in flight of one stripe: by hash, with the epoch each began in.
type Stripe<T> = HashMap<KeyHash, (u64, Flight<T>)>;

pub(crate) struct Flights<T> {
    stripes: Vec<Mutex<Stripe<T>>>,
}

impl<T> Flights<T> {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn stripe(
        &self,
        hash: &KeyHash,
    ) -> std::sync::MutexGuard<'_, HashMap<KeyHash, (u64, Flight<T>)>> {
        let index = usize::from(hash.as_bytes()[0]) % STRIPES;
        self.stripes[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The read in flight for `hash` begun in `epoch`, or a new one.
    pub(crate) fn join(&self, hash: KeyHash, epoch: u64) -> Flight<T> {
        let mut stripe = self.stripe(&hash);
        match stripe.get(&hash) {
            Some((begun, flight)) if *begun == epoch => Arc::clone(flight),
            _ => {
                let flight = Flight::default();
                stripe.insert(hash, (epoch, Arc::clone(&flight)));
                flight
            }
        }
    }

    /// Done with `flight`: no later verification joins it.
    pub(crate) fn leave(&self, hash: &KeyHash, flight: &Flight<T>) {
        let mut stripe = self.stripe(hash);
        if stripe
            .get(hash)
            .is_some_and(|(_, current)| Arc::ptr_eq(current, flight))
        {
            stripe.remove(hash);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

/// Leaves a flight when dropped: also when the verification is cancelled mid-read.
pub(crate) struct Joined<'a, T> {
    flights: &'a Flights<T>,
    hash: KeyHash,
    pub(crate) flight: Flight<T>,
}

impl<'a, T> Joined<'a, T> {
    pub(crate) fn new(flights: &'a Flights<T>, hash: KeyHash, epoch: u64) -> Self {
        let flight = flights.join(hash, epoch);
        Self {
            flights,
            hash,
            flight,
        }
    }
}

impl<T> Drop for Joined<'_, T> {
    fn drop(&mut self) {
        self.flights.leave(&self.hash, &self.flight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> KeyHash {
        KeyHash::from_bytes([byte; 32])
    }

    #[test]
    fn verifications_in_one_epoch_share_a_read_and_a_later_epoch_starts_its_own() {
        let flights = Flights::<u8>::new();
        let a = Joined::new(&flights, hash(1), 7);
        let b = Joined::new(&flights, hash(1), 7);
        assert!(Arc::ptr_eq(&a.flight, &b.flight));
        let other_key = Joined::new(&flights, hash(2), 7);
        assert!(!Arc::ptr_eq(&a.flight, &other_key.flight));
        let after_a_change = Joined::new(&flights, hash(1), 8);
        assert!(!Arc::ptr_eq(&a.flight, &after_a_change.flight));
        drop((a, b, other_key, after_a_change));
        assert_eq!(flights.len(), 0, "every flight is left");
    }

    #[test]
    fn a_flight_left_is_not_joined_again() {
        let flights = Flights::<u8>::new();
        let first = Joined::new(&flights, hash(1), 1);
        first.flight.set(5).unwrap();
        drop(first);
        let second = Joined::new(&flights, hash(1), 1);
        assert!(second.flight.get().is_none());
    }
}
