//! The engine: its lifetime, and the key operations.

use std::sync::{Arc, Mutex};

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::credential::ScopeSet;
use keyward_core::hash::KeyHash;
use keyward_core::input::{KeyEdit, NewKeyRequest, ValidationErrors, validate_permissions};
use keyward_core::key::PlainKey;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, NewKey, Scope, UserId};
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_store::{NewKeyRecord, Replacement, RotationTerms, Store};
use tokio::sync::watch;

use crate::cache::VerifyCache;
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::history::HistoryTracker;
use crate::inner::{Inner, Lifetime};
use crate::metrics::VerifyMetrics;
use crate::quota::Quota;
use crate::shared_limits::SharedLimits;
use crate::shared_values::SharedValues;
use crate::usage::UsageTracker;

/// A rotation's outcome: the new key (with its plaintext, shown once) and the old
/// key as it now is (ending with the grace period, linked to the new one).
#[derive(Debug)]
pub struct RotatedKey {
    pub new: CreatedKey,
    pub old: ApiKey,
}

/// A key just created: its record and the plaintext, to be shown once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub plain_text: PlainKey,
}

/// Key operations and verification. Cheap to clone; clones share everything.
///
/// Background tasks (usage flushing, watching other processes' changes) run while
/// any clone is alive. Call [`Engine::shutdown`] to stop them and write pending
/// usage deterministically; dropping the last clone also stops them, with a final
/// flush as long as the Tokio runtime keeps running.
pub struct Engine<S: Store> {
    pub(crate) inner: Arc<Inner<S>>,
    _lifetime: Arc<Lifetime>,
    /// Who administrative operations are recorded as made by, and the scopes they
    /// hold, if not the configured administrator (see [`Engine::acting_as`]).
    acting: Option<Acting>,
}

impl<S: Store> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _lifetime: Arc::clone(&self._lifetime),
            acting: self.acting.clone(),
        }
    }
}

impl<S: Store> Engine<S> {
    /// Starts the engine and its background tasks. Must run inside a Tokio runtime.
    /// Install a `metrics` recorder first, if any: the verification metrics are
    /// resolved here, once.
    pub fn start(store: S, config: EngineConfig) -> Self {
        let stop = Arc::new(watch::channel(false).0);
        let shared = config.rate_limit_store.as_ref().and_then(|store| {
            SharedLimits::new(store)
                .inspect_err(|err| tracing::error!(%store, error = %err, "the rate limit store cannot be used: limits are per instance"))
                .ok()
        });
        let clients = config.client_limiter_capacity;
        let inner = Arc::new(Inner {
            cache: VerifyCache::new(&config),
            shared_values: SharedValues::new(Inner::<S>::owner_limits(&config, None)),
            credentials: VerifyCache::sized(
                CREDENTIAL_CACHE_CAPACITY,
                config
                    .negative_cache_capacity
                    .min(CREDENTIAL_CACHE_CAPACITY * 16),
                &config,
            ),
            credential_usage: UsageTracker::new(),
            flights: crate::flights::Flights::new(),
            usage: UsageTracker::new(),
            history: HistoryTracker::new(config.usage_history_capacity),
            metrics: VerifyMetrics::new(),
            key_limits: Quota::new(config.cache_capacity, shared.clone()),
            user_pools: Quota::new(config.cache_capacity, shared.clone()),
            rate_limit_notices: Default::default(),
            client_failures: Quota::new(clients, shared.clone()),
            user_writes: Quota::new(clients, shared.clone()),
            head_failures: Quota::new(clients, shared.clone()),
            shared_limits: shared,
            warming: std::sync::atomic::AtomicBool::new(config.cache_warmup > 0),
            store,
            config,
            stop: Arc::clone(&stop),
            tasks: Mutex::new(Vec::new()),
            shutdown_done: tokio::sync::Mutex::new(false),
        });
        let tasks = crate::background::spawn(&inner);
        *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Self {
            inner,
            _lifetime: Arc::new(Lifetime(stop)),
            acting: None,
        }
    }

    /// This engine, recording the administrative operations it makes (those in
    /// [`Scope::Admin`] and on credentials) as made by `actor`, the service credential
    /// a request came with, which holds `scopes`: it can give, and manage credentials
    /// holding, only those. A user's own changes stay theirs.
    #[must_use]
    pub fn acting_as(&self, actor: Actor, scopes: ScopeSet) -> Self {
        Self {
            acting: Some(Acting { actor, scopes }),
            ..self.clone()
        }
    }

    /// `Err` naming the first of `scopes` this engine's caller does not hold (the
    /// administrator, the CLI and the static token hold them all).
    pub(crate) fn holds(&self, scopes: ScopeSet) -> Result<(), EngineError> {
        let held = self.acting.as_ref().map_or(ScopeSet::ALL, |a| a.scopes);
        match scopes.first_outside(held) {
            Some(scope) => Err(EngineError::ScopeNotHeld { scope }),
            None => Ok(()),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The engine's clock (the system clock unless replaced in the configuration).
    pub fn now(&self) -> Timestamp {
        self.inner.now()
    }

    /// The store itself, for tests that look behind the engine.
    #[cfg(feature = "testing")]
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The store's backend name (`sqlite`).
    pub fn store_backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    /// Stops the background tasks, writes pending usage and closes the store.
    /// Safe to call more than once, also concurrently; later operations fail with
    /// an unavailable store.
    pub async fn shutdown(&self) {
        let mut done = self.inner.shutdown_done.lock().await;
        if *done {
            return;
        }
        self.inner.stop.send_replace(true);
        let tasks: Vec<_> = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "engine task failed");
            }
        }
        self.inner.store.close().await;
        *done = true;
    }

    /// Succeeds if the database answers.
    pub async fn ping(&self) -> Result<(), EngineError> {
        Ok(self.inner.store.ping().await?)
    }

    /// Creates a key for `owner`, at the owner's request (counted against their
    /// change limit); the plaintext is returned once and never stored. Usage credits
    /// and a rate limit are the deployment's defaults: asking for others is
    /// [`EngineError::PlatformOnly`].
    pub async fn create_key(
        &self,
        owner: &UserId,
        request: &NewKeyRequest,
    ) -> Result<CreatedKey, EngineError> {
        self.create(owner, request, Actor::User(owner.clone()))
            .await
    }

    /// Creates a key for `owner` as an administrator (the CLI, the admin API), with
    /// the credits and rate limit asked for: recorded as such, and not counted
    /// against the owner's change limit.
    pub async fn create_key_as_admin(
        &self,
        owner: &UserId,
        request: &NewKeyRequest,
    ) -> Result<CreatedKey, EngineError> {
        self.create(owner, request, self.admin()).await
    }

    /// A new secret, its hash under the current pepper, and that pepper's version.
    fn fresh_secret(&self) -> (PlainKey, KeyHash, u16) {
        let config = &self.inner.config;
        let pepper = config.peppers.current();
        let (plain_text, hash) = pepper.mint(&config.key_format);
        (plain_text, hash, pepper.version())
    }

    pub(crate) fn admin(&self) -> Actor {
        self.acting.as_ref().map_or_else(
            || Actor::Admin(self.inner.config.admin_actor.clone()),
            |acting| acting.actor.clone(),
        )
    }

    /// Who an operation in `scope` is recorded as made by.
    fn actor(&self, scope: Scope<'_>) -> Actor {
        match scope {
            Scope::User(user) => Actor::User(user.clone()),
            Scope::Admin => self.admin(),
        }
    }

    async fn create(
        &self,
        owner: &UserId,
        request: &NewKeyRequest,
        actor: Actor,
    ) -> Result<CreatedKey, EngineError> {
        // New keys only for ids by today's rules; one stored before them still
        // names its user everywhere else (`UserId::from_stored`).
        UserId::parse(owner.as_str()).map_err(|e| {
            EngineError::Invalid(ValidationErrors::single("user_id", e.to_string()))
        })?;
        let config = &self.inner.config;
        let now = self.inner.now();
        let mut valid = request
            .validate(&config.catalogue, now)
            .map_err(EngineError::Invalid)?;
        if matches!(actor, Actor::User(_)) {
            // Credits and rate limits are the platform's (billing, plans): a user's own
            // keys get the deployment's defaults.
            if let Some(field) = request.platform_field() {
                return Err(EngineError::PlatformOnly { field });
            }
            valid.rate_limit = config.default_rate_limit;
            valid.remaining = config.default_credits.map(|grant| grant.remaining);
            valid.refill = config.default_credits.and_then(|grant| grant.refill);
            self.count_user_write(Scope::User(owner), now).await?;
        }
        let (plain_text, hash, pepper_version) = self.fresh_secret();
        let key = ApiKey {
            description: valid.description.map(|d| d.into_string()),
            permissions: config.catalogue.names_of(valid.permissions),
            expires_at: valid.expires_at,
            rate_limit: valid.rate_limit,
            metadata: valid.metadata,
            remaining: valid.remaining,
            refill: valid.refill,
            credits_set_at: valid.remaining.map(|_| now),
            allowed_ips: valid.allowed_ips,
            ..NewKey::new(owner.clone(), valid.name.into_string(), now)
                .secret(&plain_text)
                .build()
        };
        let record = NewKeyRecord {
            hash,
            pepper_version,
            key,
        };
        let (stored, max) = (record.clone(), config.max_keys_per_user);
        self.store_write(move |store| async move { store.insert_key(&stored, max, &actor).await })
            .await?;
        // Nobody can have verified a key that did not exist, but a negative entry
        // for its hash must not outlive its creation.
        self.inner.invalidate(&[record.hash]);
        metrics::counter!("keyward_keys_created_total").increment(1);
        tracing::info!(key_id = %record.key.id, user_id = %owner, "key created");
        Ok(CreatedKey {
            key: record.key,
            plain_text,
        })
    }

    /// Keys in `scope`, newest first.
    pub async fn list_keys(&self, scope: Scope<'_>) -> Result<Vec<ApiKey>, EngineError> {
        let mut keys = self.inner.store.list_keys(scope).await?;
        for key in &mut keys {
            self.with_pending_usage(key);
        }
        Ok(keys)
    }

    /// One key in `scope`.
    pub async fn get_key(&self, scope: Scope<'_>, id: KeyId) -> Result<ApiKey, EngineError> {
        let mut key = self
            .inner
            .store
            .get_key(scope, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        self.with_pending_usage(&mut key);
        Ok(key)
    }

    pub async fn suspend(&self, scope: Scope<'_>, id: KeyId) -> Result<ApiKey, EngineError> {
        self.mutate(scope, id, Mutation::Suspend).await
    }

    pub async fn reactivate(&self, scope: Scope<'_>, id: KeyId) -> Result<ApiKey, EngineError> {
        self.mutate(scope, id, Mutation::Reactivate).await
    }

    /// Revokes a key; revoking again succeeds and keeps the first `revoked_at`.
    pub async fn revoke(&self, scope: Scope<'_>, id: KeyId) -> Result<ApiKey, EngineError> {
        self.mutate(scope, id, Mutation::Revoke).await
    }

    /// Replaces a key's permissions (names from the catalogue; duplicates collapse).
    pub async fn set_permissions<N: AsRef<str>>(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        names: &[N],
    ) -> Result<ApiKey, EngineError> {
        let catalogue = &self.inner.config.catalogue;
        let set = validate_permissions(catalogue, names)
            .map_err(|m| EngineError::Invalid(ValidationErrors::single("permissions", m)))?;
        self.mutate(scope, id, Mutation::SetPermissions(catalogue.names_of(set)))
            .await
    }

    /// Changes a key's name, description, expiry or metadata (the fields given), and,
    /// for an admin ([`Scope::Admin`]), its usage credits and rate limit: those are the
    /// platform's, and an owner setting them gets [`EngineError::PlatformOnly`].
    pub async fn edit(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        edit: &KeyEdit,
    ) -> Result<ApiKey, EngineError> {
        let valid = edit
            .validate(self.inner.now())
            .map_err(EngineError::Invalid)?;
        if let (Scope::User(_), Some(field)) = (scope, edit.platform_field()) {
            return Err(EngineError::PlatformOnly { field });
        }
        self.mutate(scope, id, Mutation::Edit(valid)).await
    }

    /// Replaces a key with a new one (new id, new secret) carrying its name,
    /// description, permissions, limits, metadata, expiry and status; the old key
    /// keeps working for `grace_seconds` (at most a week, never beyond its own
    /// expiry) and then verifies as `EXPIRED`.
    pub async fn rotate(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        grace_seconds: u64,
    ) -> Result<RotatedKey, EngineError> {
        let change = self.begin_change(scope).await?;
        let (plain_text, hash, pepper_version) = self.fresh_secret();
        let replacement = Replacement {
            id: KeyId::new(change.now),
            hash,
            pepper_version,
            prefix: plain_text.display_prefix().to_owned(),
            postfix: plain_text.display_postfix().to_owned(),
        };
        let inner = Arc::clone(&self.inner);
        let terms = RotationTerms {
            grace_seconds,
            max_live_per_user: self.inner.config.max_keys_per_user,
        };
        let rotated = to_completion(async move {
            let rotated = inner
                .store
                .rotate(
                    change.scope(),
                    id,
                    &replacement,
                    terms,
                    change.now,
                    &change.actor,
                )
                .await?;
            inner.invalidate(&[rotated.old_hash, replacement.hash]);
            // The new key carries on the old one's quota: rotating must not refill it.
            inner
                .key_limits
                .copy(&id, &rotated.new.id, rotated.new.rate_limit)
                .await;
            tracing::info!(key_id = %id, new_key_id = %rotated.new.id, "key rotated");
            Ok(rotated)
        })
        .await?;
        let mut old = rotated.old;
        self.with_pending_usage(&mut old);
        Ok(RotatedKey {
            new: CreatedKey {
                key: rotated.new,
                plain_text,
            },
            old,
        })
    }

    /// Sets or removes a key's verification rate limit: an admin operation (an owner
    /// gets [`EngineError::PlatformOnly`]).
    pub async fn set_rate_limit(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        limit: Option<RateLimit>,
    ) -> Result<ApiKey, EngineError> {
        if let Scope::User(_) = scope {
            return Err(EngineError::PlatformOnly {
                field: "rate_limit",
            });
        }
        self.mutate(scope, id, Mutation::SetRateLimit(limit)).await
    }

    /// A change `scope`'s caller starts now, counted against the user's quota.
    async fn begin_change(&self, scope: Scope<'_>) -> Result<Change, EngineError> {
        let now = self.inner.now();
        self.count_user_write(scope, now).await?;
        Ok(Change {
            now,
            actor: self.actor(scope),
            owner: scope.user().cloned(),
        })
    }

    /// Counts a change by a user against their quota; admin changes are not limited.
    async fn count_user_write(&self, scope: Scope<'_>, now: Timestamp) -> Result<(), EngineError> {
        let (Scope::User(user), Some(limit)) = (scope, self.inner.config.user_write_limit) else {
            return Ok(());
        };
        self.inner
            .user_writes
            .take(user, limit, now)
            .await
            .map_err(|retry_after| {
                metrics::counter!("keyward_user_writes_limited_total").increment(1);
                EngineError::RateLimited { retry_after }
            })
    }

    async fn mutate(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        mutation: Mutation,
    ) -> Result<ApiKey, EngineError> {
        let change = self.begin_change(scope).await?;
        let inner = Arc::clone(&self.inner);
        let mut key = to_completion(async move {
            let applied = inner
                .store
                .apply(change.scope(), id, &mutation, change.now, &change.actor)
                .await?;
            inner.invalidate(&[applied.hash]);
            let new_quota = match &mutation {
                Mutation::SetRateLimit(_) => true,
                Mutation::Edit(edit) => edit.fields().rate_limit.is_some(),
                _ => false,
            };
            if applied.changed && new_quota {
                // A new quota starts afresh: what was counted under the old one
                // would otherwise carry over as debt.
                inner.key_limits.forget(&id);
            }
            if applied.changed {
                tracing::info!(key_id = %id, action = mutation.name(), status = %applied.key.status, "key changed");
            }
            Ok(applied.key)
        })
        .await?;
        self.with_pending_usage(&mut key);
        Ok(key)
    }

    /// A stored key as it stands now: its latest use (maybe not written yet) and its
    /// credits refilled if a boundary has passed since they were set.
    fn with_pending_usage(&self, key: &mut ApiKey) {
        if let Some(pending) = self.inner.usage.pending(&key.id) {
            key.last_used_at = key.last_used_at.max(Some(pending));
        }
        key.credits_as_of(self.inner.now());
    }

    /// Deletes a user and all their keys (the user is gone from the platform). Their
    /// keys fail verification at once here, and (through the store's change feed)
    /// within milliseconds on other instances.
    /// Returns how many keys were deleted.
    pub async fn delete_user(&self, user: &UserId) -> Result<usize, EngineError> {
        let actor = self.admin();
        let now = self.inner.now();
        let inner = Arc::clone(&self.inner);
        let user = user.clone();
        to_completion(async move {
            let hashes = inner.store.delete_user(&user, now, &actor).await?;
            inner.invalidate(&hashes);
            tracing::info!(user_id = %user, keys = hashes.len(), "user deleted");
            Ok(hashes.len())
        })
        .await
    }

    /// The audit trail of one key in `scope`, oldest
    /// first, one page after the event `after`.
    pub async fn key_events(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<KeyEvent>, EngineError> {
        // Not the owner's (or no such key): not found, whatever the trail holds.
        let key = self
            .inner
            .store
            .get_key(scope, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let query = EventQuery {
            key_id: Some(id),
            user_id: Some(key.user_id),
            after,
            limit,
            ..Default::default()
        };
        Ok(self.inner.store.list_events(&query).await?)
    }

    /// Audit events across keys (admin), oldest first, one page.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, EngineError> {
        Ok(self.inner.store.list_events(query).await?)
    }

    /// Keys per pepper version, lowest first (see `keyward peppers status`).
    pub async fn pepper_usage(&self) -> Result<Vec<keyward_store::PepperUsage>, EngineError> {
        Ok(self.inner.store.pepper_usage().await?)
    }

    /// True while the cache's warm-up at start runs (at most
    /// [`EngineConfig::CACHE_WARMUP_DEADLINE`]): a readiness check may wait for it.
    pub fn warming_up(&self) -> bool {
        self.inner.warming.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// True while verification results are cached: the store is watching for changes
    /// made elsewhere. While false, every verification reads the database.
    pub fn cache_active(&self) -> bool {
        self.inner.cache.is_active()
    }

    /// Writes recorded usage (`last_used_at` and the usage history) now. Returns the
    /// number of keys whose `last_used_at` was written.
    pub async fn flush_usage(&self) -> Result<usize, EngineError> {
        self.inner.flush_usage().await
    }

    /// Entries in the verification cache (for metrics).
    pub fn cached_keys(&self) -> u64 {
        self.inner.cache.entry_count()
    }
}

/// The service a handle acts for: how it is recorded, and what it may hand out.
#[derive(Clone, Debug)]
struct Acting {
    actor: Actor,
    scopes: ScopeSet,
}

/// A change about to be written: when, by whom, in whose keys. The task that writes
/// it outlives the request, so it owns the scope's user.
struct Change {
    now: Timestamp,
    actor: Actor,
    owner: Option<UserId>,
}

impl Change {
    fn scope(&self) -> Scope<'_> {
        self.owner.as_ref().map_or(Scope::Admin, Scope::User)
    }
}

/// Credentials a cache holds: a deployment has a few dozen services, not millions.
const CREDENTIAL_CACHE_CAPACITY: u64 = 4_096;

impl<S: Store> Engine<S> {
    /// Runs a store write as its own task ([`to_completion`]): a caller that goes
    /// away (a client disconnecting, a task stopped) cannot cut it between its
    /// `BEGIN` and its end, which could hand a connection still inside a transaction
    /// back to the pool.
    pub(crate) async fn store_write<T, F, Fut>(&self, write: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(S) -> Fut,
        Fut: Future<Output = Result<T, keyward_store::StoreError>> + Send + 'static,
    {
        let write = write(self.inner.store.clone());
        to_completion(async move { write.await.map_err(EngineError::from) }).await
    }
}

/// Runs a write and the cache invalidation that follows its commit as their own
/// task, and returns its outcome: a caller going away (a client disconnecting)
/// cannot cut it between the commit and the invalidation.
///
/// The task starts here, not when the answer is first awaited: the caller's future
/// then holds a handle, not the write's future (a store write's is tens of KB, and
/// held there it made every verification's future as large, being on its rarest
/// path: a key re-hashed after a pepper rotation).
pub(crate) fn to_completion<T: Send + 'static>(
    write: impl Future<Output = Result<T, EngineError>> + Send + 'static,
) -> impl Future<Output = Result<T, EngineError>> {
    let task = tokio::spawn(write);
    async move {
        match task.await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(EngineError::ShuttingDown),
        }
    }
}
