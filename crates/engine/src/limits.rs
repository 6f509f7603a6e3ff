//! Rate limiters: one GCRA state (an atomic word) per limited thing, in a bounded map.
//!
//! These are one instance's limits: with several instances behind a load balancer, a
//! quota of N per period admits up to N per period on each, unless a shared store
//! holds them (`crate::quota`, `crate::shared_limits`), which falls back to these.
//! The map is bounded: when more things are limited at once than it holds, the least
//! recently used lose their state and start afresh, which can only admit more, never
//! refuse a request that should pass.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyward_core::rate::{RateLimit, Wait};
use keyward_core::time::Timestamp;
use quick_cache::sync::Cache;

/// Rate limits for many things of one kind (keys, client addresses, users).
pub struct Limiter<K> {
    states: Cache<K, Arc<AtomicU64>>,
}

fn micros(now: Timestamp) -> u64 {
    u64::try_from(now.as_millis()).unwrap_or(0) * 1_000
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    /// A limiter that keeps the state of up to `capacity` things.
    pub fn new(capacity: u64) -> Self {
        Self {
            states: Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX).max(1)),
        }
    }

    fn state(&self, key: &K) -> Arc<AtomicU64> {
        match self
            .states
            .get_or_insert_with(key, || Ok::<_, std::convert::Infallible>(Arc::default()))
        {
            Ok(state) => state,
            Err(never) => match never {},
        }
    }

    /// Takes one request for `key` at `now`, or says how long to wait.
    pub fn check(&self, key: &K, limit: RateLimit, now: Timestamp) -> Result<(), Wait> {
        let state = self.state(key);
        let now = micros(now);
        let mut tat = state.load(Ordering::Acquire);
        loop {
            let next = limit.check(tat, now)?;
            match state.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// Gives back one request taken by [`Limiter::check`] (see [`RateLimit::refund`]).
    pub fn refund(&self, key: &K, limit: RateLimit) {
        if let Some(state) = self.states.get(key) {
            let _ = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(limit.refund(tat))
            });
        }
    }

    /// Carries the state of `from` over to `to` (a key replaced by a rotation keeps
    /// what it has used of its quota), unless `to` already has its own.
    pub fn copy(&self, from: &K, to: &K) {
        if let Some(state) = self.states.get(from) {
            let tat = state.load(Ordering::Acquire);
            let target = self.state(to);
            let _ = target.compare_exchange(0, tat, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Drops what is known of `key`: its next request starts a fresh quota.
    pub fn forget(&self, key: &K) {
        self.states.remove(key);
    }
}

/// A client address as limits count it: IPv4 addresses one by one, IPv6 by /64
/// network (one subscriber usually holds a whole /64), IPv4-mapped IPv6 as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    /// The address as counted: an IPv4 address, or an IPv6 /64 network.
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match embedded_ipv4(v6) {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6((u128::from(v6) & !0u128 << 64).into())),
            },
        }
    }
}

/// The IPv4 client behind an IPv6 address that only carries one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) and NAT64's well-known prefix
/// (`64:ff9b::a.b.c.d`). Counted per /64, all of NAT64's IPv4 clients would share one
/// count, and one of them could lock the others out.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let bits = u128::from(v6);
    let low = std::net::Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    match bits >> 32 {
        // ::a.b.c.d, but not :: and ::1.
        0 if bits > 1 => Some(low),
        0x0064_ff9b_0000_0000_0000_0000 => Some(low),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + seconds * 1_000).unwrap()
    }

    #[test]
    fn each_thing_has_its_own_quota() {
        let limiter = Limiter::new(100);
        let limit = RateLimit::new(2, 10).unwrap();
        assert!(limiter.check(&"a", limit, at(0)).is_ok());
        assert!(limiter.check(&"a", limit, at(0)).is_ok());
        assert_eq!(limiter.check(&"a", limit, at(0)), Err(Wait(5_000_000)));
        assert!(limiter.check(&"b", limit, at(0)).is_ok());
        assert!(limiter.check(&"a", limit, at(5)).is_ok());
    }

    #[test]
    fn concurrent_takers_never_exceed_the_quota() {
        let limiter = Arc::new(Limiter::new(100));
        let limit = RateLimit::new(1_000, 3_600).unwrap();
        let passed = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, passed) = (Arc::clone(&limiter), Arc::clone(&passed));
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        if limiter.check(&"k", limit, at(0)).is_ok() {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(passed.load(Ordering::Relaxed), 1_000);
    }

    #[test]
    fn ipv6_clients_are_counted_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientAddr::from(a), ClientAddr::from(b));
        assert_ne!(ClientAddr::from(a), ClientAddr::from(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(ClientAddr::from(mapped), ClientAddr::from(v4));
        let v4b: IpAddr = "192.0.2.8".parse().unwrap();
        assert_ne!(ClientAddr::from(v4), ClientAddr::from(v4b));
        // NAT64 and IPv4-compatible addresses carry one IPv4 client each.
        for (v6, v4) in [
            ("64:ff9b::c000:207", "192.0.2.7"),
            ("::192.0.2.7", "192.0.2.7"),
        ] {
            let v6: IpAddr = v6.parse().unwrap();
            assert_eq!(
                ClientAddr::from(v6),
                ClientAddr::from(v4.parse::<IpAddr>().unwrap())
            );
        }
        let nat_a: IpAddr = "64:ff9b::c000:207".parse().unwrap();
        let nat_b: IpAddr = "64:ff9b::c000:208".parse().unwrap();
        assert_ne!(ClientAddr::from(nat_a), ClientAddr::from(nat_b));
        let loopback: IpAddr = "::1".parse().unwrap();
        assert!(matches!(
            ClientAddr::from(loopback),
            ClientAddr(IpAddr::V6(_))
        ));
    }

    #[test]
    fn a_refund_gives_back_what_a_check_took() {
        let limiter = Limiter::new(100);
        let limit = RateLimit::new(2, 10).unwrap();
        for _ in 0..10 {
            limiter.check(&"a", limit, at(0)).unwrap();
            limiter.refund(&"a", limit);
        }
        assert!(limiter.check(&"a", limit, at(0)).is_ok());
        assert!(limiter.check(&"a", limit, at(0)).is_ok());
        assert!(limiter.check(&"a", limit, at(0)).is_err());
    }

    #[test]
    fn a_copy_carries_the_used_quota_over() {
        let limiter = Limiter::new(100);
        let limit = RateLimit::new(1, 3600).unwrap();
        limiter.check(&"old", limit, at(0)).unwrap();
        limiter.copy(&"old", &"new");
        assert!(limiter.check(&"new", limit, at(0)).is_err());
        limiter.copy(&"never-used", &"fresh");
        assert!(limiter.check(&"fresh", limit, at(0)).is_ok());
    }
}
