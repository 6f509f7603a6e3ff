//! Rate limits: a quota, and the GCRA decision over it.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per limited thing: the
//! theoretical arrival time (TAT) of its next request. A quota of `requests` per
//! `per_seconds` spaces requests by `per_seconds / requests` and allows a burst of
//! `requests` at once. It needs no timers and no per-request history, so a limiter
//! is one atomic word per key, client or user.

use std::fmt;

/// At most `requests` per `per_seconds`, with bursts of up to `requests`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    requests: u32,
    per_seconds: u32,
}

/// Bounds on a quota: enough for any real use, small enough that the arithmetic in
/// microseconds never overflows.
pub const MAX_REQUESTS: u32 = 1_000_000;
pub const MAX_PER_SECONDS: u32 = 86_400;

impl RateLimit {
    pub fn new(requests: u32, per_seconds: u32) -> Result<Self, String> {
        if !(1..=MAX_REQUESTS).contains(&requests) {
            return Err(format!("requests must be between 1 and {MAX_REQUESTS}"));
        }
        if !(1..=MAX_PER_SECONDS).contains(&per_seconds) {
            return Err(format!(
                "per_seconds must be between 1 and {MAX_PER_SECONDS}"
            ));
        }
        Ok(Self {
            requests,
            per_seconds,
        })
    }

    /// `n` per minute.
    pub fn per_minute(n: u32) -> Result<Self, String> {
        Self::new(n, 60)
    }

    pub fn requests(self) -> u32 {
        self.requests
    }

    pub fn per_seconds(self) -> u32 {
        self.per_seconds
    }

    /// The period in microseconds: how far ahead of now a key's TAT may run (the
    /// burst). Public for the shared store's script, which runs the same decision.
    pub fn period_us(self) -> u64 {
        u64::from(self.per_seconds) * 1_000_000
    }

    /// The spacing between requests at the sustained rate (at least 1 µs).
    pub fn interval_us(self) -> u64 {
        (self.period_us() / u64::from(self.requests)).max(1)
    }

    /// Decides a request at `now_us` for something whose TAT is `tat_us` (0 when never
    /// seen). Allowed: the new TAT to store. Refused: how long until one would pass.
    /// The shared store runs the same decision as a Lua script (`TAKE` in
    /// keyward-engine's `shared_limits`): change both together.
    pub fn check(self, tat_us: u64, now_us: u64) -> Result<u64, Wait> {
        let next = tat_us.max(now_us) + self.interval_us();
        let ahead = next - now_us;
        if ahead <= self.period_us() {
            Ok(next)
        } else {
            Err(Wait(ahead - self.period_us()))
        }
    }

    /// Whether a request at `now_us` would be refused, without taking it.
    pub fn exhausted(self, tat_us: u64, now_us: u64) -> Option<Wait> {
        self.check(tat_us, now_us).err()
    }

    /// Gives back one request taken by [`RateLimit::check`]: for limits on failures,
    /// where every attempt takes one before its outcome is known (so concurrent
    /// attempts cannot all slip under the limit) and a success returns it.
    pub fn refund(self, tat_us: u64) -> u64 {
        tat_us.saturating_sub(self.interval_us())
    }
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `REQUESTS/SECONDS`, as the CLI and the settings write a quota: `100/60`.
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || format!("{text:?}: expected REQUESTS/SECONDS, e.g. 100/60");
        let (requests, seconds) = text.split_once('/').ok_or_else(expected)?;
        let number = |part: &str| part.trim().parse::<u32>().map_err(|_| expected());
        Self::new(number(requests)?, number(seconds)?)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.requests, self.per_seconds)
    }
}

/// How long a refused request should wait before it would pass, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wait(pub u64);

impl Wait {
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0)
    }

    /// Whole seconds, rounded up and at least 1: for a `Retry-After` header.
    pub fn whole_seconds(self) -> u64 {
        self.0.div_ceil(1_000_000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn run(limit: RateLimit, times_us: &[u64]) -> Vec<bool> {
        let mut tat = 0;
        times_us
            .iter()
            .map(|&now| match limit.check(tat, now) {
                Ok(next) => {
                    tat = next;
                    true
                }
                Err(_) => false,
            })
            .collect()
    }

    #[test]
    fn a_burst_of_the_quota_passes_and_the_next_waits() {
        let limit = RateLimit::new(3, 60).unwrap();
        let t = 100 * S;
        assert_eq!(run(limit, &[t, t, t, t]), [true, true, true, false]);
        let mut tat = 0;
        for _ in 0..3 {
            tat = limit.check(tat, t).unwrap();
        }
        // One request is freed every 20 s.
        assert_eq!(limit.check(tat, t), Err(Wait(20 * S)));
        assert!(limit.check(tat, t + 20 * S).is_ok());
    }

    #[test]
    fn the_sustained_rate_is_the_quota() {
        let limit = RateLimit::new(10, 1).unwrap();
        // 100 requests spaced 100 ms apart all pass; at 50 ms apart half are refused
        // once the burst is spent.
        let even: Vec<u64> = (0..100).map(|i| 1_000 * S + i * S / 10).collect();
        assert!(run(limit, &even).iter().all(|&ok| ok));
        let fast: Vec<u64> = (0..200).map(|i| 1_000 * S + i * S / 20).collect();
        let passed = run(limit, &fast).iter().filter(|&&ok| ok).count();
        assert!((105..=112).contains(&passed), "{passed}");
    }

    #[test]
    fn exhausted_does_not_take_a_request() {
        let limit = RateLimit::new(1, 10).unwrap();
        let tat = limit.check(0, 5 * S).unwrap();
        assert_eq!(limit.exhausted(tat, 5 * S), Some(Wait(10 * S)));
        assert_eq!(limit.exhausted(tat, 15 * S), None);
        assert_eq!(limit.exhausted(0, 5 * S), None);
    }

    #[test]
    fn quotas_are_bounded() {
        assert!(RateLimit::new(0, 1).is_err());
        assert!(RateLimit::new(1, 0).is_err());
        assert!(RateLimit::new(MAX_REQUESTS + 1, 1).is_err());
        assert!(RateLimit::new(1, MAX_PER_SECONDS + 1).is_err());
        let fastest = RateLimit::new(MAX_REQUESTS, 1).unwrap();
        assert!(fastest.check(u64::MAX / 2, u64::MAX / 2).is_ok());
        assert_eq!(Wait(1).whole_seconds(), 1);
        assert_eq!(Wait(S + 1).whole_seconds(), 2);
    }
}
