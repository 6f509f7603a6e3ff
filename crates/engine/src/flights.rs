//! Database reads in flight, by key hash: concurrent misses for the same key share one
//! read instead of each making their own (a key that becomes hot while not cached, or
//! a burst of the same forged key, costs the database one lookup).
//!
//! A read is shared only between verifications that looked the cache up in the same
//! epoch (see `cache`): one that looked after an invalidation starts a read of its
//! own, so it can never be handed, and then cache, a row read before the change it
//! already knows of. A read that fails (or whose verification is cancelled) is not
//! shared: each waiter then reads on its own, all at once, not one after another.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use keyward_core::hash::KeyHash;
use tokio::sync::watch;

const STRIPES: usize = 64;

/// How a shared read ended.
#[derive(Clone)]
enum Outcome<T> {
    Read(T),
    /// Failed or abandoned: each waiter reads on its own.
    Failed,
}

/// One read: its outcome, once there.
pub(crate) struct Flight<T> {
    outcome: watch::Sender<Option<Outcome<T>>>,
}

/// The reads in flight of one stripe: by hash, with the epoch each began in.
type Stripe<T> = HashMap<KeyHash, (u64, Arc<Flight<T>>)>;

pub(crate) struct Flights<T> {
    stripes: Vec<Mutex<Stripe<T>>>,
}

impl<T> Flights<T> {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn stripe(&self, hash: &KeyHash) -> std::sync::MutexGuard<'_, Stripe<T>> {
        let index = usize::from(hash.as_bytes()[0]) % STRIPES;
        self.stripes[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The read in flight for `hash` begun in `epoch`, or a new one this caller leads.
    fn join(&self, hash: KeyHash, epoch: u64) -> (Arc<Flight<T>>, bool) {
        let mut stripe = self.stripe(&hash);
        match stripe.get(&hash) {
            Some((begun, flight)) if *begun == epoch => (Arc::clone(flight), false),
            _ => {
                let flight = Arc::new(Flight {
                    outcome: watch::channel(None).0,
                });
                stripe.insert(hash, (epoch, Arc::clone(&flight)));
                (flight, true)
            }
        }
    }

    /// Done with `flight`: no later verification joins it.
    fn leave(&self, hash: &KeyHash, flight: &Arc<Flight<T>>) {
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

/// A verification's place in a flight. Dropped (also when the verification is
/// cancelled mid-read), it leaves the flight; a leader that never finished marks it
/// failed, so its waiters read on their own.
pub(crate) struct Joined<'a, T: Clone> {
    flights: &'a Flights<T>,
    hash: KeyHash,
    flight: Arc<Flight<T>>,
    leads: bool,
}

impl<'a, T: Clone> Joined<'a, T> {
    pub(crate) fn new(flights: &'a Flights<T>, hash: KeyHash, epoch: u64) -> Self {
        let (flight, leads) = flights.join(hash, epoch);
        Self {
            flights,
            hash,
            flight,
            leads,
        }
    }

    /// The flight's read: made by its leader with `read`, handed to the others; a
    /// waiter whose leader failed makes its own `read`.
    pub(crate) async fn read<E>(&self, read: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        if self.leads {
            let result = read.await;
            let outcome = match &result {
                Ok(value) => Outcome::Read(value.clone()),
                Err(_) => Outcome::Failed,
            };
            self.flight.outcome.send_replace(Some(outcome));
            return result;
        }
        let mut outcome = self.flight.outcome.subscribe();
        let shared = match outcome.wait_for(Option::is_some).await {
            Ok(ready) => ready.clone(),
            Err(_) => None,
        };
        match shared {
            Some(Outcome::Read(value)) => Ok(value),
            Some(Outcome::Failed) | None => read.await,
        }
    }
}

impl<T: Clone> Drop for Joined<'_, T> {
    fn drop(&mut self) {
        if self.leads {
            self.flight.outcome.send_if_modified(|outcome| {
                if outcome.is_none() {
                    *outcome = Some(Outcome::Failed);
                    true
                } else {
                    false
                }
            });
        }
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
        assert!(a.leads && !b.leads);
        let other_key = Joined::new(&flights, hash(2), 7);
        assert!(!Arc::ptr_eq(&a.flight, &other_key.flight));
        let after_a_change = Joined::new(&flights, hash(1), 8);
        assert!(!Arc::ptr_eq(&a.flight, &after_a_change.flight));
        assert!(after_a_change.leads);
        drop((a, b, other_key, after_a_change));
        assert_eq!(flights.len(), 0, "every flight is left");
    }

    #[tokio::test]
    async fn waiters_get_the_leaders_read_or_read_on_their_own_when_it_fails() {
        let flights = Flights::<u8>::new();
        let leader = Joined::new(&flights, hash(1), 1);
        let waiter = Joined::new(&flights, hash(1), 1);
        let (read, waited) = tokio::join!(
            leader.read(async { Ok::<_, ()>(5) }),
            waiter.read(async { Ok::<_, ()>(6) })
        );
        assert_eq!((read, waited), (Ok(5), Ok(5)));
        drop((leader, waiter));

        let leader = Joined::new(&flights, hash(1), 1);
        let waiter = Joined::new(&flights, hash(1), 1);
        let (read, waited) = tokio::join!(
            leader.read(async { Err::<u8, _>("down") }),
            waiter.read(async { Ok::<_, &str>(6) })
        );
        assert_eq!((read, waited), (Err("down"), Ok(6)));
    }

    #[tokio::test]
    async fn a_leader_dropped_mid_read_lets_its_waiters_read_on_their_own() {
        let flights = Flights::<u8>::new();
        let leader = Joined::new(&flights, hash(1), 1);
        let waiter = Joined::new(&flights, hash(1), 1);
        drop(leader);
        assert_eq!(waiter.read(async { Ok::<_, ()>(9) }).await, Ok(9));
    }
}
