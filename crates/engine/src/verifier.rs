//! Verification: parse, hash, look up (cache, then database), decide.

use std::time::Instant;

use keyward_core::hash::KeyHash;
use keyward_core::key::ParsedKey;
use keyward_core::legacy::{self, LegacyHash};
use keyward_core::permissions::PermissionSet;
use keyward_core::rate::Wait;
use keyward_core::time::Timestamp;
use keyward_core::verify::LimitScope;
use keyward_core::verify::{Context, VerifyCode, decide};
use keyward_store::{Consumed, Draw, Store};

use crate::cache::Lookup;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::flights::Joined;
use crate::limits::ClientAddr;
use crate::quota::{LegacyHead, UserPool};
use crate::verdict::{Loaded, Verification, VerifiedKey, VerifyOptions};

impl<S: Store> Engine<S> {
    /// Parses permission names for [`Engine::verify_with`]; unknown names are an error.
    pub fn permission_set<N: AsRef<str>>(&self, names: &[N]) -> Result<PermissionSet, EngineError> {
        Ok(self.inner.config.catalogue.set_of(names)?)
    }

    /// Verifies a presented key and the permissions it must hold (all of them), with
    /// the default options ([`Engine::verify_with`]).
    pub async fn verify<N: AsRef<str>>(
        &self,
        presented: &str,
        required: &[N],
    ) -> Result<Verification, EngineError> {
        let required = self.permission_set(required)?;
        self.verify_with(presented, required, VerifyOptions::default())
            .await
    }

    /// A verification with the required permissions already parsed, and options:
    ///
    /// - `client`, the end client's address: once that client has failed too often
    ///   (`failed_verify_limit`), its attempts are answered `RATE_LIMITED` before any
    ///   parsing, hashing or lookup; other clients, and requests without an address,
    ///   are not affected;
    /// - `cost`, the usage credits a valid verification takes from a key that has them.
    pub async fn verify_with(
        &self,
        presented: &str,
        required: PermissionSet,
        options: VerifyOptions,
    ) -> Result<Verification, EngineError> {
        let verification = self.verify_limited(presented, required, options).await;
        // Counted once, by the answer given (an attempt refused after it failed counts
        // as refused).
        self.inner
            .metrics
            .count(verification.as_ref().ok().map(|v| v.code));
        verification
    }

    async fn verify_limited(
        &self,
        presented: &str,
        required: PermissionSet,
        options: VerifyOptions,
    ) -> Result<Verification, EngineError> {
        let client = options.client.map(ClientAddr::from);
        let attempt = self.verify_unlimited(presented, required, options);
        self.limit_failures(client, attempt, |v| v.code.is_failed_attempt())
            .await
            .unwrap_or_else(|wait| Ok(Verification::refused(wait)))
    }

    /// Runs `attempt` for `client` under the failed-attempt limit
    /// (`failed_verify_limit`): `Err(wait)` without running it while the client is
    /// over the limit, or when this attempt's failure (as `failed` judges it) put it
    /// over. Without an address or a limit, the attempt simply runs.
    pub(crate) async fn limit_failures<T>(
        &self,
        client: Option<ClientAddr>,
        attempt: impl Future<Output = Result<T, EngineError>>,
        failed: impl FnOnce(&T) -> bool,
    ) -> Result<Result<T, EngineError>, Wait> {
        let limit = self.inner.config.failed_verify_limit;
        let Some((client, limit)) = client.zip(limit) else {
            return Ok(attempt.await);
        };
        let failures = &self.inner.client_failures;
        let admitted = failures.admit(&client, limit, self.inner.now()).await?;
        let outcome = attempt.await;
        if outcome.as_ref().is_ok_and(failed) {
            failures.failed(&client, limit, admitted).await?;
        } else {
            failures.succeeded(&client, limit, admitted).await;
        }
        Ok(outcome)
    }

    async fn verify_unlimited(
        &self,
        presented: &str,
        required: PermissionSet,
        options: VerifyOptions,
    ) -> Result<Verification, EngineError> {
        // Malformed input costs a few comparisons: no hash, no lookup, and no timing
        // (the duration histogram is about verifications that looked a key up).
        let parsed = match self.inner.config.key_format.parse(presented) {
            Ok(parsed) => parsed,
            // AutoGPT's own keys (no checksum) may have been imported.
            Err(_) => match legacy::parse(presented) {
                Some(parsed) => parsed,
                None => return Ok(Verification::without_key(VerifyCode::Malformed)),
            },
        };
        let started = Instant::now();
        let result = self.verify_parsed(parsed, required, options).await;
        self.inner.metrics.duration.record(started.elapsed());
        result
    }

    async fn verify_parsed(
        &self,
        parsed: ParsedKey<'_>,
        required: PermissionSet,
        options: VerifyOptions,
    ) -> Result<Verification, EngineError> {
        let inner = &self.inner;
        let hash = inner.config.peppers.current().hash(parsed);
        let found = match inner.cache.lookup(&hash) {
            Lookup::Found(key) => {
                inner.metrics.cache_hits.increment(1);
                Some(key)
            }
            Lookup::Missing => {
                inner.metrics.negative_hits.increment(1);
                None
            }
            Lookup::Unknown { epoch } => {
                inner.metrics.cache_misses.increment(1);
                // Boxed: the database read's future is large, and inline it would
                // make every verification's future large, which costs copies on
                // the hot path where it is never used.
                let loaded = Box::pin(self.load_shared(parsed, hash, epoch)).await?;
                if let Some(wait) = loaded.refused {
                    return Ok(Verification::refused(wait));
                }
                if loaded.cacheable {
                    inner.cache.fill(hash, loaded.key.clone(), epoch);
                }
                loaded.key
            }
        };
        let Some(key) = found else {
            return Ok(Verification::without_key(VerifyCode::NotFound));
        };
        let now = inner.now();
        let context = Context {
            now,
            client: options.vouched_client,
        };
        let mut code = decide(&key.facts(), context, required);
        let mut retry_after = None;
        let mut limit = None;
        // The key's own limits first, then its owner's (shared by all their keys).
        if let Some(quota) = key.rate_limit().filter(|_| code.is_valid())
            && let Err(wait) = inner.key_limits.take(&key.id, quota, now).await
        {
            code = VerifyCode::RateLimited;
            retry_after = Some(wait.as_duration());
            limit = Some(LimitScope::Key);
            inner.rate_limit_notices.note(key.id, quota, now);
        }
        if let Some(quota) = key.owner().rate_limit.filter(|_| code.is_valid())
            && let Err(wait) = inner
                .user_pools
                .take(&UserPool(key.user_id.clone()), quota, now)
                .await
        {
            code = VerifyCode::RateLimited;
            retry_after = Some(wait.as_duration());
            limit = Some(LimitScope::User);
        }
        let mut remaining = None;
        if code.is_valid() && (key.has_credits() || key.owner().credits.is_some()) {
            // The only write on the verification path, and only for keys with
            // credits (their own or their owner's): an atomic conditional decrement
            // in the database (refilling first when a boundary has passed), so the
            // count holds across instances. Boxed like the read, for the same reason.
            let (left, refused) = Box::pin(self.take_credits(&key, options.cost, now)).await?;
            remaining = left;
            if let Some(refusal) = refused {
                (code, limit) = refusal;
            }
        }
        // A key deleted meanwhile (credits found no row) has no history to add to.
        if code != VerifyCode::NotFound {
            inner.count_verification(key.id, now, code.is_valid());
        }
        if code.is_valid() && key.usage.claim(now, inner.config.usage_resolution) {
            inner.usage.record(key.id, now);
        }
        Ok(Verification {
            code,
            next_refill_at: key.refill().map(|refill| refill.next_after(now)),
            key: Some(key),
            retry_after,
            remaining,
            limit,
        })
    }

    /// Takes `cost` credits from the key, when it has some, and from its owner, when
    /// they have some (both or neither). What the key has left, and the refusal if
    /// either refused (the key's first).
    async fn take_credits(
        &self,
        key: &VerifiedKey,
        cost: u64,
        now: Timestamp,
    ) -> Result<(Option<u64>, Option<(VerifyCode, Option<LimitScope>)>), EngineError> {
        let store = &self.inner.store;
        let key_since = key.refill().map(|refill| refill.period_start(now));
        let refusal = |consumed, scope| match consumed {
            Consumed::Left(_) | Consumed::Unlimited => None,
            Consumed::Exceeded => Some((VerifyCode::UsageExceeded, Some(scope))),
            Consumed::Missing => Some((VerifyCode::NotFound, None)),
        };
        let left = |consumed| match consumed {
            Consumed::Left(left) => Some(left),
            _ => None,
        };
        let Some(owner) = key.owner().credits else {
            let consumed = store.consume(key.id, cost, key_since).await?;
            return Ok((left(consumed), refusal(consumed, LimitScope::Key)));
        };
        let draw = Draw {
            cost,
            key: key.has_credits().then_some((key.id, key_since)),
            user: &key.user_id,
            user_refill_since: owner.refill.map(|refill| refill.period_start(now)),
            default: owner.default,
            now,
        };
        let drawn = store.draw(&draw).await?;
        let key_refusal = drawn.key.and_then(|c| refusal(c, LimitScope::Key));
        // An owner whose balance went meanwhile has no limit left to refuse.
        let user_refusal = drawn
            .user
            .filter(|c| *c != Consumed::Missing)
            .and_then(|c| refusal(c, LimitScope::User));
        // Refused by the owner, nothing was taken from the key either.
        let key_left = drawn.key.and_then(left).filter(|_| user_refusal.is_none());
        Ok((key_left, key_refusal.or(user_refusal)))
    }

    /// [`Engine::load`], shared with the verifications of the same key that missed the
    /// cache in the same epoch while it runs (`flights`). A read that fails is not
    /// shared: each waiter then reads on its own. Not shared either while the cache is
    /// not trusted (the change feed is down): then every verification reads.
    async fn load_shared(
        &self,
        parsed: ParsedKey<'_>,
        hash: KeyHash,
        epoch: u64,
    ) -> Result<Loaded, EngineError> {
        if !self.inner.cache.is_active() {
            return self.load(parsed, hash).await;
        }
        let joined = Joined::new(&self.inner.flights, hash, epoch);
        joined.read(self.load(parsed, hash)).await
    }

    /// Reads a key by its hash under the current pepper, then under each retired
    /// pepper. A key found under a retired pepper is re-hashed, so its next
    /// verification takes the single lookup; if that fails it is not cached, because
    /// the cache is invalidated by the stored hash, which would then differ.
    pub(crate) async fn load(
        &self,
        parsed: ParsedKey<'_>,
        hash: KeyHash,
    ) -> Result<Loaded, EngineError> {
        let store = &self.inner.store;
        let peppers = &self.inner.config.peppers;
        if let Some(found) = store.find_by_hash(&hash).await? {
            return Ok(Loaded::found(Some(self.inner.verified_key(found)), true));
        }
        for pepper in peppers.retired() {
            let old = pepper.hash(parsed);
            let Some(found) = store.find_by_hash(&old).await? else {
                continue;
            };
            let current = peppers.current().version();
            let id = found.id;
            let rehashed = self
                .store_write(
                    move |store| async move { store.rehash(id, &old, &hash, current).await },
                )
                .await;
            let cacheable = match rehashed {
                Ok(()) => {
                    // An instance that still hashes with the old pepper may hold it.
                    self.inner.invalidate(&[old]);
                    tracing::info!(key_id = %found.id, from = pepper.version(), to = current, "key re-hashed with the current pepper");
                    true
                }
                Err(err) => {
                    tracing::warn!(key_id = %found.id, error = %err, "re-hashing a key failed; it still verifies");
                    false
                }
            };
            return Ok(Loaded::found(
                Some(self.inner.verified_key(found)),
                cacheable,
            ));
        }
        if parsed.is_legacy() {
            // Boxed: rare, and its future (scrypt, the limits before it) is large.
            return Box::pin(self.load_legacy(parsed, hash)).await;
        }
        Ok(Loaded::found(None, true))
    }

    /// A legacy-shaped key not found by its HMAC: maybe an imported AutoGPT key not
    /// verified since the import. SHA-256 rows are found by their digest; scrypt rows
    /// by head, each costing one scrypt (about 16 MiB and tens of milliseconds, on a
    /// blocking thread), so failures per head are limited before any scrypt runs.
    /// A match is re-hashed with the pepper: its next verification is the fast one.
    async fn load_legacy(
        &self,
        parsed: ParsedKey<'_>,
        hash: KeyHash,
    ) -> Result<Loaded, EngineError> {
        let inner = &self.inner;
        let sha256 = legacy::sha256(parsed);
        let head = LegacyHead(legacy::head(parsed).to_owned());
        let candidates = inner.store.legacy_candidates(&sha256, &head.0).await?;
        let mut found = candidates
            .iter()
            .find(|c| matches!(c.legacy, LegacyHash::Sha256(_)) && c.legacy.matches(parsed))
            .map(|c| c.record.clone());
        let scrypt: Vec<_> = candidates
            .into_iter()
            .filter(|c| matches!(c.legacy, LegacyHash::Scrypt { .. }))
            .collect();
        if found.is_none() && !scrypt.is_empty() {
            let limit = inner.config.failed_verify_limit;
            let now = inner.now();
            // As for clients: the attempt takes its place first (concurrent scrypt
            // runs cannot all slip under the limit), and a match gives it back.
            let admitted = match limit {
                Some(limit) => match inner.head_failures.admit(&head, limit, now).await {
                    Ok(admitted) => Some((limit, admitted)),
                    Err(wait) => return Ok(Loaded::refused(wait)),
                },
                None => None,
            };
            let presented = parsed.as_str().to_owned();
            let matched = tokio::task::spawn_blocking(move || {
                let parsed = legacy::parse(&presented).expect("parsed once already");
                scrypt
                    .into_iter()
                    .find(|c| c.legacy.matches(parsed))
                    .map(|c| c.record)
            })
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
            if let Some((limit, admitted)) = admitted {
                if matched.is_some() {
                    inner.head_failures.succeeded(&head, limit, admitted).await;
                } else if let Err(wait) = inner.head_failures.failed(&head, limit, admitted).await {
                    return Ok(Loaded::refused(wait));
                }
            }
            found = matched;
        }
        let Some(record) = found else {
            return Ok(Loaded::found(None, true));
        };
        let current = inner.config.peppers.current().version();
        let id = record.id;
        let upgraded = self
            .store_write(move |store| async move { store.upgrade_legacy(id, &hash, current).await })
            .await;
        let cacheable = match upgraded {
            Ok(()) => {
                tracing::info!(key_id = %record.id, "imported AutoGPT key re-hashed with the pepper");
                true
            }
            Err(err) => {
                tracing::warn!(key_id = %record.id, error = %err, "re-hashing an imported key failed; it still verifies");
                false
            }
        };
        Ok(Loaded::found(
            Some(self.inner.verified_key(record)),
            cacheable,
        ))
    }
}
#[cfg(test)]
mod tests {
    use keyward_core::hash::Peppers;
    use keyward_core::key::KeyFormat;

    use crate::{Engine, EngineConfig};

    /// A miss's read is boxed once, where it starts (see `verify_parsed`): that box is
    /// as large as the read's future, made and copied on every miss. Its rare paths (a
    /// re-hash, a legacy key) are boxed or spawned in turn, so it stays small.
    #[tokio::test]
    async fn a_cache_miss_moves_a_small_future() {
        let dir = tempfile::tempdir().unwrap();
        let url = keyward_store::DatabaseUrl::Sqlite(dir.path().join("k.db"));
        let store = keyward_store::connect(&url).await.unwrap();
        let peppers = Peppers::single(b"0123456789abcdef0123456789abcdef").unwrap();
        let engine = Engine::start(store, EngineConfig::new(peppers));
        let format = KeyFormat::default();
        let plain = format.generate();
        let parsed = format.parse(plain.expose()).unwrap();
        let hash = engine.inner.config.peppers.current().hash(parsed);
        let size = std::mem::size_of_val(&engine.load_shared(parsed, hash, 0));
        assert!(size <= 8 * 1024, "a miss's read takes {size} bytes");
    }
}
