//! The engine: key operations and verification over a store.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_core::hash::KeyHash;
use keyward_core::input::{NewKeyRequest, ValidationErrors, validate_permissions};
use keyward_core::key::{ParsedKey, PlainKey};
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, KeyStatus, UserId};
use keyward_core::permissions::PermissionSet;
use keyward_core::time::Timestamp;
use keyward_core::verify::{KeyFacts, VerifyCode, decide};
use keyward_store::{ExternalChange, NewKeyRecord, Store, VerifyRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{Lookup, VerifyCache};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::usage::UsageTracker;

/// A key just created: its record and the plaintext, to be shown once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub plain_text: PlainKey,
}

/// What verification knows of a found key (what the cache holds; never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub id: KeyId,
    pub user_id: UserId,
    pub status: KeyStatus,
    pub permissions: Vec<String>,
    pub permission_set: PermissionSet,
    pub expires_at: Option<Timestamp>,
}

impl VerifiedKey {
    fn facts(&self) -> KeyFacts {
        KeyFacts {
            status: self.status,
            expires_at: self.expires_at,
            permissions: self.permission_set,
        }
    }
}

/// The answer to a verification. `key` is present whenever a key was found, whatever
/// the code, so callers can log which key failed.
#[derive(Debug, Clone)]
pub struct Verification {
    pub code: VerifyCode,
    pub key: Option<Arc<VerifiedKey>>,
}

impl Verification {
    pub fn is_valid(&self) -> bool {
        self.code.is_valid()
    }
}

/// Key operations and verification. Cheap to clone; clones share everything.
pub struct Engine<S: Store> {
    inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
    store: S,
    config: EngineConfig,
    cache: VerifyCache,
    usage: UsageTracker,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<S: Store> Engine<S> {
    /// Starts the engine and its background tasks (usage flushing, watching for
    /// other processes' changes). Must run inside a Tokio runtime.
    pub fn start(store: S, config: EngineConfig) -> Self {
        let (shutdown, _) = watch::channel(false);
        let engine = Self {
            inner: Arc::new(Inner {
                cache: VerifyCache::new(&config),
                usage: UsageTracker::new(),
                store,
                config,
                shutdown,
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let flusher = tokio::spawn(engine.clone().flush_usage_periodically());
        let watcher = tokio::spawn(engine.clone().watch_external_changes());
        engine.tasks().extend([flusher, watcher]);
        engine
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The store's backend name (`sqlite`).
    pub fn store_backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    fn now(&self) -> Timestamp {
        (self.inner.config.clock)()
    }

    /// Stops the background tasks, writes pending usage and closes the store.
    /// Idempotent; later operations fail with an unavailable store.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let tasks: Vec<_> = self.tasks().drain(..).collect();
        for task in tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "engine task failed");
            }
        }
        self.inner.store.close().await;
    }

    /// Succeeds if the database answers.
    pub async fn ping(&self) -> Result<(), EngineError> {
        Ok(self.inner.store.ping().await?)
    }

    // ---- key operations -------------------------------------------------------

    /// Creates a key for `owner`; the plaintext is returned once and never stored.
    pub async fn create_key(
        &self,
        owner: &UserId,
        request: &NewKeyRequest,
    ) -> Result<CreatedKey, EngineError> {
        let config = &self.inner.config;
        let now = self.now();
        let valid = request
            .validate(&config.catalogue, now)
            .map_err(EngineError::Invalid)?;
        let plain_text = config.key_format.generate();
        let parsed = config
            .key_format
            .parse(plain_text.expose())
            .expect("a generated key parses");
        let pepper = config.peppers.current();
        let key = ApiKey {
            id: KeyId::new(now),
            user_id: owner.clone(),
            name: valid.name.into_string(),
            description: valid.description.map(|d| d.into_string()),
            prefix: plain_text.display_prefix().to_owned(),
            postfix: plain_text.display_postfix().to_owned(),
            status: KeyStatus::Active,
            permissions: config.catalogue.names_of(valid.permissions),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            expires_at: valid.expires_at,
        };
        let record = NewKeyRecord {
            hash: pepper.hash(parsed),
            pepper_version: pepper.version(),
            key,
        };
        self.inner
            .store
            .insert_key(&record, config.max_keys_per_user)
            .await?;
        self.inner.cache.invalidate(&record.hash);
        metrics::counter!("keyward_keys_created_total").increment(1);
        tracing::info!(key_id = %record.key.id, user_id = %owner, "key created");
        Ok(CreatedKey {
            key: record.key,
            plain_text,
        })
    }

    /// Keys of `owner` (or of everyone, for admin tools), newest first.
    pub async fn list_keys(&self, owner: Option<&UserId>) -> Result<Vec<ApiKey>, EngineError> {
        let mut keys = self.inner.store.list_keys(owner).await?;
        for key in &mut keys {
            self.with_pending_usage(key);
        }
        Ok(keys)
    }

    /// One key of `owner` (any owner for admin tools).
    pub async fn get_key(&self, owner: Option<&UserId>, id: KeyId) -> Result<ApiKey, EngineError> {
        let mut key = self
            .inner
            .store
            .get_key(owner, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        self.with_pending_usage(&mut key);
        Ok(key)
    }

    pub async fn suspend(&self, owner: Option<&UserId>, id: KeyId) -> Result<ApiKey, EngineError> {
        self.mutate(owner, id, Mutation::Suspend).await
    }

    pub async fn reactivate(
        &self,
        owner: Option<&UserId>,
        id: KeyId,
    ) -> Result<ApiKey, EngineError> {
        self.mutate(owner, id, Mutation::Reactivate).await
    }

    /// Revokes a key; revoking again succeeds and keeps the first `revoked_at`.
    pub async fn revoke(&self, owner: Option<&UserId>, id: KeyId) -> Result<ApiKey, EngineError> {
        self.mutate(owner, id, Mutation::Revoke).await
    }

    /// Replaces a key's permissions (names from the catalogue; duplicates collapse).
    pub async fn set_permissions<N: AsRef<str>>(
        &self,
        owner: Option<&UserId>,
        id: KeyId,
        names: &[N],
    ) -> Result<ApiKey, EngineError> {
        let catalogue = &self.inner.config.catalogue;
        let set = validate_permissions(catalogue, names)
            .map_err(|m| EngineError::Invalid(ValidationErrors::single("permissions", m)))?;
        self.mutate(owner, id, Mutation::SetPermissions(catalogue.names_of(set)))
            .await
    }

    async fn mutate(
        &self,
        owner: Option<&UserId>,
        id: KeyId,
        mutation: Mutation,
    ) -> Result<ApiKey, EngineError> {
        let applied = self
            .inner
            .store
            .apply(owner, id, &mutation, self.now())
            .await?;
        // Database first, then the cache: a verification after this returns sees the change.
        self.inner.cache.invalidate(&applied.hash);
        if applied.changed {
            tracing::info!(key_id = %id, action = mutation.name(), status = %applied.key.status, "key changed");
        }
        let mut key = applied.key;
        self.with_pending_usage(&mut key);
        Ok(key)
    }

    fn with_pending_usage(&self, key: &mut ApiKey) {
        if let Some(pending) = self.inner.usage.pending(&key.id) {
            key.last_used_at = key.last_used_at.max(Some(pending));
        }
    }

    // ---- verification ---------------------------------------------------------

    /// Parses permission names for [`Engine::verify_with`]; unknown names are an error.
    pub fn permission_set<N: AsRef<str>>(&self, names: &[N]) -> Result<PermissionSet, EngineError> {
        Ok(self.inner.config.catalogue.set_of(names)?)
    }

    /// Verifies a presented key and the permissions it must hold (all of them).
    pub async fn verify<N: AsRef<str>>(
        &self,
        presented: &str,
        required: &[N],
    ) -> Result<Verification, EngineError> {
        let required = self.permission_set(required)?;
        self.verify_with(presented, required).await
    }

    /// [`Engine::verify`] with the required permissions already parsed.
    pub async fn verify_with(
        &self,
        presented: &str,
        required: PermissionSet,
    ) -> Result<Verification, EngineError> {
        let started = Instant::now();
        let result = self.verify_uncounted(presented, required).await;
        let code = match &result {
            Ok(v) => v.code.as_str(),
            Err(_) => "ERROR",
        };
        metrics::counter!("keyward_verify_total", "code" => code).increment(1);
        metrics::histogram!("keyward_verify_duration_seconds").record(started.elapsed());
        result
    }

    async fn verify_uncounted(
        &self,
        presented: &str,
        required: PermissionSet,
    ) -> Result<Verification, EngineError> {
        let config = &self.inner.config;
        // Malformed input costs a few comparisons: no hash, no lookup.
        let Ok(parsed) = config.key_format.parse(presented) else {
            return Ok(Verification {
                code: VerifyCode::Malformed,
                key: None,
            });
        };
        let hash = config.peppers.current().hash(parsed);
        let found = match self.inner.cache.lookup(&hash) {
            Lookup::Found(key) => {
                metrics::counter!("keyward_cache_hits_total").increment(1);
                Some(key)
            }
            Lookup::Missing => {
                metrics::counter!("keyward_cache_negative_hits_total").increment(1);
                None
            }
            Lookup::Unknown { epoch } => {
                metrics::counter!("keyward_cache_misses_total").increment(1);
                let found = self.load(parsed, hash).await?;
                self.inner.cache.fill(hash, found.clone(), epoch);
                found
            }
        };
        let Some(key) = found else {
            return Ok(Verification {
                code: VerifyCode::NotFound,
                key: None,
            });
        };
        let now = self.now();
        let code = decide(&key.facts(), now, required);
        if code.is_valid() {
            self.inner.usage.record(key.id, now);
        }
        Ok(Verification {
            code,
            key: Some(key),
        })
    }

    /// Reads a key from the database by its hash under the current pepper, then
    /// under each retired pepper; a key found under a retired one is re-hashed so
    /// its next verification takes the single lookup.
    async fn load(
        &self,
        parsed: ParsedKey<'_>,
        hash: KeyHash,
    ) -> Result<Option<Arc<VerifiedKey>>, EngineError> {
        let store = &self.inner.store;
        let peppers = &self.inner.config.peppers;
        let mut record = store.find_by_hash(&hash).await?;
        if record.is_none() {
            for pepper in peppers.retired() {
                let Some(found) = store.find_by_hash(&pepper.hash(parsed)).await? else {
                    continue;
                };
                let current = peppers.current().version();
                match store.rehash(found.id, &hash, current).await {
                    Ok(()) => {
                        tracing::info!(key_id = %found.id, from = pepper.version(), to = current, "key re-hashed with the current pepper")
                    }
                    Err(err) => {
                        tracing::warn!(key_id = %found.id, error = %err, "re-hashing a key failed; it still verifies")
                    }
                }
                record = Some(found);
                break;
            }
        }
        Ok(record.map(|r| Arc::new(self.verified_key(r))))
    }

    fn verified_key(&self, record: VerifyRecord) -> VerifiedKey {
        let catalogue = &self.inner.config.catalogue;
        VerifiedKey {
            permission_set: catalogue.set_of_known(&record.permissions),
            id: record.id,
            user_id: record.user_id,
            status: record.status,
            permissions: record.permissions,
            expires_at: record.expires_at,
        }
    }

    /// Entries in the verification cache (for metrics).
    pub fn cached_keys(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    // ---- background tasks -----------------------------------------------------

    /// Writes recorded usage now. Returns the number of keys written.
    pub async fn flush_usage(&self) -> Result<usize, EngineError> {
        let batch = self.inner.usage.drain();
        if batch.is_empty() {
            return Ok(0);
        }
        let count = batch.len();
        match self.inner.store.record_usage(&batch).await {
            Ok(_) => {
                metrics::counter!("keyward_usage_flushes_total").increment(1);
                metrics::counter!("keyward_usage_keys_flushed_total").increment(count as u64);
                Ok(count)
            }
            Err(err) => {
                self.inner.usage.restore(batch);
                metrics::counter!("keyward_usage_flush_failures_total").increment(1);
                Err(err.into())
            }
        }
    }

    async fn flush_usage_periodically(self) {
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut tick = tokio::time::interval(self.inner.config.usage_flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            if let Err(err) = self.flush_usage().await {
                tracing::warn!(error = %err, "writing last_used_at failed; will retry");
            }
        }
        // The final flush on shutdown: nothing recorded is lost on a graceful stop.
        match self.flush_usage().await {
            Ok(n) => tracing::debug!(keys = n, "final usage flush"),
            Err(err) => {
                tracing::error!(error = %err, "final usage flush failed; last_used_at updates lost")
            }
        }
    }

    async fn watch_external_changes(self) {
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            let change = tokio::select! {
                change = self.inner.store.next_external_change() => change,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match change {
                Ok(ExternalChange::Keys(hashes)) => {
                    for hash in &hashes {
                        self.inner.cache.invalidate(hash);
                    }
                }
                Ok(ExternalChange::Unknown) => {
                    tracing::debug!("the database was changed by another process; cache cleared");
                    self.inner.cache.clear();
                }
                Err(err) => {
                    // Unable to tell what changed: forget everything rather than
                    // risk serving a stale positive, then try again shortly.
                    tracing::warn!(error = %err, "watching for database changes failed; cache cleared");
                    self.inner.cache.clear();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
    }
}
