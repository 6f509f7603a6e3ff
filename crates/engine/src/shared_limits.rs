//! Limits shared by every instance through Redis or Valkey (`KEYWARD_RATE_LIMIT_STORE`).
//!
//! Each limit is the same GCRA as [`RateLimit::check`], run inside the store by one
//! Lua script on the store's own clock (`TIME`), so every instance decides against one
//! state and one time, on any Redis or Valkey without modules.
//!
//! Decisions are gathered: at most [`IN_FLIGHT`] calls are in flight at once, and the
//! decisions asked for meanwhile go together in the next call, one script run that
//! decides them one after another. Under load N concurrent verifications cost one round
//! trip instead of N; with no load a call holds one decision, made by the request that
//! asked for it, with no task in between. Every decision is still made in the store,
//! against its one state: nothing is taken ahead or leased, so the bound on what passes
//! is the same as one call per decision.
//!
//! The store is an aid, never a dependency: every call waits at most
//! [`RateLimitStore::timeout`] (50 ms unless set), and a failed call marks the store down, after which
//! limits are this instance's own (never "unlimited") until a probe, once a second,
//! finds it back. Outages are logged once each, and shown by
//! `keyward_rate_limit_store_up` and `keyward_rate_limit_store_failures_total`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use keyward_core::rate::{RateLimit, Wait};
use metrics::{Counter, Gauge};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script, ScriptInvocation};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Calls to the store in flight at once: decisions asked for while they are wait for
/// the next, and go in it together (two, so one call's round trip overlaps the
/// gathering of the next).
const IN_FLIGHT: usize = 2;
/// The most decisions in one call.
const MAX_BATCH: usize = 256;

/// GCRA, exactly as `RateLimit::check`, for each of the limits gathered into one call:
/// `KEYS[i]` holds a limited thing's theoretical arrival time (TAT) in µs, `ARGV[2i-1]`
/// is its interval and `ARGV[2i]` its period, both in µs. Answers one number per key, in
/// order: 0 (taken) or the wait in µs. The decisions are made one after another, so a
/// name that appears twice is taken twice, exactly as two calls would. Times are below
/// 2^53 µs, exact in Lua's doubles; `%.0f` writes them back without an exponent. A
/// stored value that is not a finite number, or lies further ahead than the period
/// allows, is read as the most it could be (a TAT one period ahead), so nothing written
/// there can lift or stretch the limit. The state expires when its TAT has passed, when
/// it would be the same as no state: nothing grows.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local answers = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local stored = redis.call('GET', key)
  local tat = now
  if stored then
    tat = tonumber(stored)
    if not tat or tat ~= tat or tat == -math.huge or tat > now + period then
      tat = now + period
    end
  end
  if tat < now then tat = now end
  local next = tat + interval
  local ahead = next - now
  if ahead > period then
    answers[i] = math.max(ahead - period, 1)
  else
    redis.call('SET', key, string.format('%.0f', next), 'PX', math.ceil(ahead / 1000) + 1)
    answers[i] = 0
  end
end
return answers
";

/// Gives back one request taken by `TAKE` (`RateLimit::refund`): `ARGV[1]` is the
/// interval in µs. The expiry is kept (it can only be later than needed).
const REFUND: &str = r"
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat and tat == tat then
  redis.call('SET', KEYS[1], string.format('%.0f', tat - tonumber(ARGV[1])), 'KEEPTTL')
end
return 1
";

/// Where shared limits are kept: a `redis://` or `rediss://` URL, checked, with the
/// password kept out of `Debug`.
#[derive(Clone)]
pub struct RateLimitStore {
    client: Client,
    shown: String,
    timeout: Duration,
}

impl RateLimitStore {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS, with Mozilla's
    /// roots, or with `root_ca_pem`, the PEM of the authority that signed the store's
    /// certificate). Nothing is connected yet.
    pub fn new(url: &str, root_ca_pem: Option<Vec<u8>>) -> Result<Self, String> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        let tls = match scheme {
            Some("redis") => false,
            Some("rediss") => true,
            _ => {
                return Err(
                    "expected redis://host:port/db or rediss://host:port/db (TLS)".to_owned(),
                );
            }
        };
        if url.contains('#') {
            // The client's `#insecure` would skip the certificate check (it then fails
            // to connect, leaving limits per instance for good): refused at start.
            return Err("a URL fragment (#…) is not accepted; the store's certificate is always checked (KEYWARD_RATE_LIMIT_STORE_CA_FILE names a private authority)".to_owned());
        }
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|err| format!("not a Redis URL: {}", err.detail().unwrap_or("invalid")))?;
        let shown = format!(
            "{}://{}/{}",
            scheme.unwrap_or("redis"),
            info.addr(),
            info.redis_settings().db()
        );
        let client = match root_ca_pem {
            Some(_) if !tls => {
                return Err("a certificate authority is given, but the URL is redis:// (plaintext); use rediss://".to_owned());
            }
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
            None => Client::open(info),
        }
        .map_err(|err| format!("cannot use it: {err}"))?;
        Ok(Self {
            client,
            shown,
            timeout: Self::DEFAULT_TIMEOUT,
        })
    }

    /// How long a limit decision waits for the store before this instance decides:
    /// the most a store that stops answering adds to a request, once per outage.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

    /// [`RateLimitStore::DEFAULT_TIMEOUT`], changed (a store farther away than the
    /// same network, or a loaded test machine).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Debug for RateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for RateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The store could not answer in time: decide with this instance's own limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unavailable;

/// What the store decided for one request: taken, or how long to wait.
pub(crate) type Decision = Result<Result<(), Wait>, Unavailable>;

/// A decision asked for, waiting for the next call.
struct Take {
    name: String,
    limit: RateLimit,
    answer: oneshot::Sender<Decision>,
}

/// The connection to the shared store, and whether it is usable now.
pub(crate) struct SharedLimits {
    /// Replaced when the store answers with an error a new connection may cure (a
    /// primary that became a replica after a failover, behind the same name).
    connection: RwLock<ConnectionManager>,
    take: Script,
    refund: Script,
    store: RateLimitStore,
    up: AtomicBool,
    up_gauge: Gauge,
    failures: Counter,
    /// Decisions asked for while every call's place was taken, and how many are.
    queue: Mutex<Queue>,
    /// This, for a task that makes the next call when a call ends with decisions
    /// waiting.
    this: Weak<SharedLimits>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Take>,
    in_flight: usize,
}

impl Queue {
    /// The next call's decisions, if a place is free and anything waits (those whose
    /// request stopped waiting are dropped: they need no decision).
    fn next_call(&mut self) -> Option<Vec<Take>> {
        self.waiting.retain(|take| !take.answer.is_closed());
        if self.in_flight >= IN_FLIGHT || self.waiting.is_empty() {
            return None;
        }
        self.in_flight += 1;
        let rest = self.waiting.len().saturating_sub(MAX_BATCH);
        let later = self.waiting.split_off(self.waiting.len() - rest);
        Some(std::mem::replace(&mut self.waiting, later))
    }
}

/// A call's place, given back when the call ends (or its request is dropped mid-call);
/// decisions that waited meanwhile then go in a call of their own.
struct Place<'a>(&'a SharedLimits);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        let next = {
            let mut queue = shared.queue();
            queue.in_flight -= 1;
            queue.next_call()
        };
        if let Some(batch) = next {
            // No runtime (it is stopping) or no store: the waiting decide here.
            match (shared.this.upgrade(), tokio::runtime::Handle::try_current()) {
                (Some(shared), Ok(runtime)) => {
                    runtime.spawn(async move {
                        let place = Place(&shared);
                        shared.decide(batch).await;
                        drop(place);
                    });
                }
                _ => answer_all(batch, Unavailable),
            }
        }
    }
}

impl SharedLimits {
    /// How long establishing a connection may take.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// How often a store that is down is tried again.
    pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

    /// Must run inside a Tokio runtime. Connects lazily, on the first call or probe;
    /// the store is taken as up until a call or the first probe says otherwise.
    pub(crate) fn new(store: &RateLimitStore) -> Result<Arc<Self>, String> {
        // Reconnection is tried on the next call after a failure; the probe makes one a
        // second while the store is down, so the manager's own retries stay short.
        let connection = Self::connect(store)?;
        let up_gauge = metrics::gauge!("keyward_rate_limit_store_up");
        up_gauge.set(0.0);
        Ok(Arc::new_cyclic(|this| Self {
            connection: RwLock::new(connection),
            take: Script::new(TAKE),
            refund: Script::new(REFUND),
            store: store.clone(),
            up: AtomicBool::new(true),
            up_gauge,
            failures: metrics::counter!("keyward_rate_limit_store_failures_total"),
            queue: Mutex::default(),
            this: Weak::clone(this),
        }))
    }

    fn connect(store: &RateLimitStore) -> Result<ConnectionManager, String> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(Self::CONNECT_TIMEOUT))
            .set_response_timeout(Some(Self::CONNECT_TIMEOUT));
        ConnectionManager::new_lazy_with_config(store.client.clone(), config)
            .map_err(|err| err.to_string())
    }

    /// The connection, for one call (a clone shares it).
    fn connection(&self) -> ConnectionManager {
        self.connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The store's name for a limited thing: a fixed-length digest, so neither
    /// addresses nor ids appear in the store, and no client input sets a key's length.
    pub(crate) fn name(kind: &str, bytes: &[u8]) -> String {
        let digest = Sha256::new()
            .chain_update(kind.as_bytes())
            .chain_update([0])
            .chain_update(bytes)
            .finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut name = String::with_capacity(16 + kind.len() + 32);
        name.push_str("keyward:limit:");
        name.push_str(kind);
        name.push(':');
        for byte in &digest[..16] {
            name.push(char::from(HEX[usize::from(byte >> 4)]));
            name.push(char::from(HEX[usize::from(byte & 15)]));
        }
        name
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one request from `name`'s quota in the store: in a call of its own when a
    /// place is free (made here, by this request), otherwise in the next call, with
    /// the other decisions asked for meanwhile. Waits at most twice the store's time
    /// limit: the call ahead of it and its own, each bounded by it.
    pub(crate) async fn take(&self, name: String, limit: RateLimit) -> Decision {
        let (answer, answered) = oneshot::channel();
        let call = {
            let mut queue = self.queue();
            queue.waiting.push(Take {
                name,
                limit,
                answer,
            });
            queue.next_call()
        };
        if let Some(batch) = call {
            let place = Place(self);
            // Boxed: the client's call is a large future, and inline it would make
            // every verification's future as large (moved on every poll).
            Box::pin(self.decide(batch)).await;
            drop(place);
        }
        match tokio::time::timeout(self.store.timeout * 2, answered).await {
            Ok(Ok(decision)) => decision,
            // The call was dropped unanswered (the runtime is stopping), or more
            // decisions queued than two calls carry: decided here. Only a call that
            // is late takes the store as down, not a wait behind others.
            Ok(Err(_)) | Err(_) => Err(Unavailable),
        }
    }

    /// The script run deciding `takes`, in order.
    fn invocation<'a>(
        &self,
        takes: impl Iterator<Item = (&'a str, RateLimit)>,
    ) -> ScriptInvocation<'_> {
        let mut invocation = self.take.prepare_invoke();
        for (name, limit) in takes {
            invocation
                .key(name)
                .arg(limit.interval_us())
                .arg(limit.period_us());
        }
        invocation
    }

    /// One call deciding `batch`; each decision goes to the request that asked.
    async fn decide(&self, batch: Vec<Take>) {
        let mut connection = self.connection();
        let invocation = self.invocation(batch.iter().map(|take| (take.name.as_str(), take.limit)));
        let call = invocation.invoke_async::<Vec<u64>>(&mut connection);
        let decisions = match tokio::time::timeout(self.store.timeout, call).await {
            Ok(Ok(waits)) if waits.len() == batch.len() => waits,
            Ok(Ok(_)) => {
                let failed = self.failed("an answer that does not fit the question");
                return answer_all(batch, failed);
            }
            Ok(Err(err)) => return answer_all(batch, self.failed(&err.to_string())),
            Err(_) => return answer_all(batch, self.failed("no answer within the time limit")),
        };
        for (take, wait) in batch.into_iter().zip(decisions) {
            let decision = if wait == 0 { Ok(()) } else { Err(Wait(wait)) };
            // Gone: that request stopped waiting (it decided here).
            let _ = take.answer.send(Ok(decision));
        }
    }

    /// Gives `to` the state of `from` (a rotated key keeps its used quota), unless
    /// `to` has its own. Best effort, and tried even while the store is taken as down
    /// (these are rare): a store that is down keeps nothing to carry.
    pub(crate) async fn copy(&self, from: &str, to: &str) {
        let mut command = redis::cmd("COPY");
        command.arg(from).arg(to);
        self.run(command).await;
    }

    /// Gives back one request taken from `name`'s quota (a limited attempt that did
    /// not fail). Best effort: not given back, it only delays the next attempt.
    pub(crate) async fn refund(&self, name: &str, limit: RateLimit) {
        let mut connection = self.connection();
        let mut invocation = self.refund.key(name);
        invocation.arg(limit.interval_us());
        let call = invocation.invoke_async::<u8>(&mut connection);
        self.within_time(call).await;
    }

    async fn run(&self, command: redis::Cmd) {
        let mut connection = self.connection();
        let call = command.query_async::<redis::Value>(&mut connection);
        self.within_time(call).await;
    }

    /// Awaits a call whose answer does not matter, within the store's time limit; a
    /// failure or no answer takes the store as down.
    async fn within_time<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) {
        match tokio::time::timeout(self.store.timeout, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                self.failed(&err.to_string());
            }
            Err(_) => {
                self.failed("no answer within the time limit");
            }
        }
    }

    /// A call failed: counted, and the store marked down.
    fn failed(&self, cause: &str) -> Unavailable {
        self.failures.increment(1);
        self.down(cause);
        Unavailable
    }

    /// Marks the store down; the first failure of an outage is logged, once.
    fn down(&self, cause: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            self.up_gauge.set(0.0);
            tracing::warn!(store = %self.store, error = cause, "the rate limit store is unreachable: limits are per instance until it is back");
        }
    }

    /// Tries the store: at start, and once a second while it is down; marks it up
    /// when it answers within the requests' own wait. The probe runs the limits' own script (on a name of its own,
    /// under a quota it never reaches), so a store that answers `PING` but cannot run
    /// or write it (a read-only replica, an ACL without `EVALSHA`) stays down instead of
    /// flapping between up and down with every request.
    pub(crate) async fn probe(&self, first: bool) {
        if self.is_up() && !first {
            return;
        }
        let mut connection = self.connection();
        // A quota it never reaches: a million a second.
        let Ok(quota) = RateLimit::new(keyward_core::rate::MAX_REQUESTS, 1) else {
            return;
        };
        let invocation = self.invocation(std::iter::once(("keyward:limit:probe", quota)));
        let call = invocation.invoke_async::<Vec<u64>>(&mut connection);
        // The requests' own wait: a store too slow for them stays down, rather than
        // being taken as back every second and down again at the next request.
        match tokio::time::timeout(self.store.timeout, call).await {
            Ok(Ok(_)) => {
                let was_up = self.up.swap(true, Ordering::Relaxed);
                self.up_gauge.set(1.0);
                if first {
                    tracing::info!(store = %self.store, "rate limits are shared through the rate limit store");
                } else if !was_up {
                    tracing::info!(store = %self.store, "the rate limit store is back: limits are shared again");
                }
            }
            Ok(Err(err)) => {
                self.failed(&err.to_string());
                // An answer that is an error (READONLY from a former primary, an ACL
                // refusal) is not cured by the same connection: the next probe makes
                // a new one, which looks the address up again.
                if !err.is_io_error()
                    && let Ok(fresh) = Self::connect(&self.store)
                {
                    *self
                        .connection
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
                }
            }
            Err(_) => {
                self.failed("no answer within the time limit");
            }
        }
    }
}

fn answer_all(batch: Vec<Take>, failed: Unavailable) {
    for take in batch {
        let _ = take.answer.send(Err(failed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_fixed_length_digests_of_what_they_limit() {
        let long = SharedLimits::name("head", &[b'x'; 10_000]);
        let short = SharedLimits::name("head", b"x");
        assert_eq!(long.len(), short.len());
        assert_ne!(long, short);
        assert!(short.starts_with("keyward:limit:head:"));
        // The same bytes under another kind are another thing.
        assert_ne!(
            SharedLimits::name("user", b"x"),
            SharedLimits::name("head", b"x")
        );
        assert!(!SharedLimits::name("client", b"192.0.2.7").contains("192"));
    }

    #[test]
    fn store_urls_are_checked_and_shown_without_their_password() {
        let store = RateLimitStore::new("redis://:hunter2secret@127.0.0.1:6390/3", None).unwrap();
        let shown = format!("{store:?} {store}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("127.0.0.1:6390"), "{shown}");
        for wrong in [
            "",
            "127.0.0.1:6379",
            "http://127.0.0.1",
            "postgres://x/y",
            "rediss://127.0.0.1:6379/#insecure",
        ] {
            assert!(RateLimitStore::new(wrong, None).is_err(), "{wrong:?}");
        }
        let plaintext_with_ca =
            RateLimitStore::new("redis://127.0.0.1:6379/0", Some(b"pem".to_vec()));
        assert!(plaintext_with_ca.unwrap_err().contains("rediss://"));
    }
}
