//! Service credentials: made, listed, revoked and rotated, and the secret a service
//! presents checked against them from memory, as a key is verified: a credential is
//! read from the database once, then served from a cache that every change (here or
//! on another instance, through the change feed) keeps true.

use std::sync::Arc;

use keyward_core::credential::{
    CredentialId, CredentialStatus, MAX_CREDENTIAL_GRACE_SECONDS, NewCredentialRequest, Presented,
    ServiceCredential, credential_format,
};
use keyward_core::hash::KeyHash;
use keyward_core::input::ValidationErrors;
use keyward_core::key::PlainKey;
use keyward_store::{
    CredentialChanged, CredentialRotation, NewCredentialRecord, Store, StoreError,
};

use crate::cache::Lookup;
use crate::engine::{Engine, to_completion};
use crate::error::EngineError;
use crate::limits::ClientAddr;
use crate::usage::UsageMark;
use crate::verdict::{AuthenticatedCredential, CredentialEntry};

/// A credential just made or given a new secret: its record, and the secret, to be
/// shown once.
#[derive(Debug)]
pub struct CreatedCredential {
    pub credential: ServiceCredential,
    pub secret: PlainKey,
}

impl<S: Store> Engine<S> {
    /// Makes a credential holding the scopes asked for; the secret is returned once
    /// and only its hash is stored. Recorded as made by this engine's actor, who must
    /// hold every scope it gives ([`EngineError::ScopeNotHeld`]).
    pub async fn create_credential(
        &self,
        request: &NewCredentialRequest,
    ) -> Result<CreatedCredential, EngineError> {
        let inner = &self.inner;
        let now = inner.now();
        let valid = request.validate(now).map_err(EngineError::Invalid)?;
        self.holds(valid.scopes)?;
        let pepper = inner.config.peppers.current();
        let (secret, hash) = pepper.mint(credential_format());
        let credential = ServiceCredential {
            id: CredentialId::new(now),
            name: valid.name,
            scopes: valid.scopes,
            created_at: now,
            created_by: self.admin().to_string(),
            last_used_at: None,
            expires_at: valid.expires_at,
            status: CredentialStatus::Active,
            revoked_at: None,
            previous_secret_until: None,
        };
        let record = NewCredentialRecord {
            credential,
            hash,
            pepper_version: pepper.version(),
        };
        let stored = record.clone();
        self.store_write(move |store| async move { store.insert_credential(&stored).await })
            .await?;
        inner.invalidate(&[record.hash]);
        tracing::info!(
            credential_id = %record.credential.id,
            name = %record.credential.name,
            scopes = ?record.credential.scopes,
            by = %record.credential.created_by,
            "service credential created"
        );
        Ok(CreatedCredential {
            credential: record.credential,
            secret,
        })
    }

    /// Every credential, newest first, revoked ones too.
    pub async fn list_credentials(&self) -> Result<Vec<ServiceCredential>, EngineError> {
        let mut credentials = self.inner.store.list_credentials().await?;
        for credential in &mut credentials {
            self.with_pending_use(credential);
        }
        Ok(credentials)
    }

    pub async fn get_credential(&self, id: CredentialId) -> Result<ServiceCredential, EngineError> {
        let mut credential = self
            .inner
            .store
            .get_credential(id)
            .await?
            .ok_or(EngineError::NoSuchCredential)?;
        self.with_pending_use(&mut credential);
        Ok(credential)
    }

    /// Revokes a credential for good: refused at once here, and on other instances
    /// by their next request (the change feed). Revoking again succeeds and keeps the
    /// first `revoked_at`. The caller must hold the credential's scopes.
    pub async fn revoke_credential(
        &self,
        id: CredentialId,
    ) -> Result<ServiceCredential, EngineError> {
        self.holds(self.get_credential(id).await?.scopes)?;
        let now = self.inner.now();
        let by = self.admin();
        let changed = self
            .credential_change(None, move |store| async move {
                store.revoke_credential(id, now).await
            })
            .await?;
        if changed.changed {
            tracing::info!(credential_id = %id, name = %changed.credential.name, %by, "service credential revoked");
        }
        Ok(changed.credential)
    }

    /// Gives a credential a new secret, returned once; the one it replaces keeps
    /// working for `grace_seconds` (at most a week; 0 ends it now), so a service can
    /// be redeployed with the new one without a gap. The caller must hold the
    /// credential's scopes (a new secret is the credential's whole power).
    pub async fn rotate_credential(
        &self,
        id: CredentialId,
        grace_seconds: u64,
    ) -> Result<CreatedCredential, EngineError> {
        if grace_seconds > MAX_CREDENTIAL_GRACE_SECONDS {
            return Err(EngineError::Invalid(ValidationErrors::single(
                "grace_seconds",
                format!("must be at most {MAX_CREDENTIAL_GRACE_SECONDS} (a week)"),
            )));
        }
        self.holds(self.get_credential(id).await?.scopes)?;
        let inner = &self.inner;
        let now = inner.now();
        let pepper = inner.config.peppers.current();
        let (secret, hash) = pepper.mint(credential_format());
        let grace_ms = i64::try_from(grace_seconds * 1_000).unwrap_or(i64::MAX);
        let rotation = CredentialRotation {
            hash,
            pepper_version: pepper.version(),
            previous_until: (grace_seconds > 0).then(|| now.plus_millis(grace_ms)),
        };
        let by = self.admin();
        let changed = self
            .credential_change(Some(hash), move |store| async move {
                store.rotate_credential(id, &rotation).await
            })
            .await?;
        tracing::info!(credential_id = %id, name = %changed.credential.name, grace_seconds, %by, "service credential rotated");
        let mut credential = changed.credential;
        self.with_pending_use(&mut credential);
        Ok(CreatedCredential { credential, secret })
    }

    /// Runs a credential's change to completion (a caller going away cannot cut it
    /// between the commit and the invalidation), then drops from the cache the secrets
    /// it retired and the one it `added` (which may be cached as unknown).
    pub(crate) async fn credential_change<F, Fut>(
        &self,
        added: Option<KeyHash>,
        change: F,
    ) -> Result<CredentialChanged, EngineError>
    where
        F: FnOnce(S) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<CredentialChanged>, StoreError>> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        to_completion(async move {
            let changed = change(inner.store.clone())
                .await
                .map_err(|err| match err {
                    StoreError::Lifecycle(_) => EngineError::CredentialRevoked,
                    other => other.into(),
                })?
                .ok_or(EngineError::NoSuchCredential)?;
            inner.invalidate(&changed.hashes);
            inner.invalidate(added.as_slice());
            Ok(changed)
        })
        .await
    }

    /// [`Engine::authenticate_credential`] for a caller at `client`, held to the
    /// failed-attempt limit (`failed_verify_limit`) as key verifications are: a
    /// client presenting well-formed secrets that do not authenticate is refused
    /// ([`EngineError::TooManyFailures`]) before any database read once over it, so
    /// made-up secrets cannot become a stream of reads. A credential the cache holds
    /// is decided from memory, without the limiter: it costs no read.
    pub async fn authenticate_credential_from(
        &self,
        secret: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<AuthenticatedCredential>, EngineError> {
        // Not a credential's format: refused for a few comparisons, nothing to limit
        // (and a user's JWT on a route services may call too is not a failure).
        let Ok(parsed) = credential_format().parse(secret) else {
            return Ok(None);
        };
        // Cached under the current pepper: decided from memory, no read to limit. This
        // is every request of a service in use.
        let hash = self.inner.config.peppers.current().hash(parsed);
        // Only a credential that authenticates: a cached refusal (revoked, expired)
        // counts as a failed attempt like an unknown secret, so the answers to a
        // client over its limit do not tell a dead credential from a made-up one.
        if let Lookup::Found(entry) = self.inner.credentials.lookup(&hash)
            && let Some(caller) = self.admit_entry(&entry)
        {
            return Ok(Some(caller));
        }
        // Boxed: inline, the database read's future made the future of every request
        // that names a service (every verification) as large, copied whole each time.
        let attempt = Box::pin(self.authenticate_credential(secret));
        self.limit_failures(client.map(ClientAddr::from), attempt, Option::is_none)
            .await
            .unwrap_or_else(|retry_after| Err(EngineError::TooManyFailures { retry_after }))
    }

    /// The service a presented secret belongs to, if it is one of an active,
    /// unexpired credential's (a replaced secret only within its grace period). Every
    /// refusal is the same `None`: whether the secret was malformed, unknown, revoked
    /// or expired is not told. A cached credential costs no database read; its use is
    /// recorded for `last_used_at`, written in batches.
    pub async fn authenticate_credential(
        &self,
        secret: &str,
    ) -> Result<Option<AuthenticatedCredential>, EngineError> {
        let Ok(parsed) = credential_format().parse(secret) else {
            return Ok(None);
        };
        let inner = &self.inner;
        let peppers = &inner.config.peppers;
        // Under the current pepper first; one made before a pepper rotation is found
        // under the pepper it was made with, and moved to the current one.
        for pepper in std::iter::once(peppers.current()).chain(peppers.retired()) {
            let hash = pepper.hash(parsed);
            let entry = match inner.credentials.lookup(&hash) {
                Lookup::Found(entry) => entry,
                Lookup::Missing => continue,
                Lookup::Unknown { epoch } => {
                    let Some(found) = inner.store.find_credential(&hash).await? else {
                        inner.credentials.fill(hash, None, epoch);
                        continue;
                    };
                    let entry = Arc::new(CredentialEntry {
                        usage: UsageMark::new(found.credential.last_used_at),
                        credential: found.credential,
                        presented: found.presented,
                    });
                    let retired = pepper.version() != peppers.current().version();
                    let moved = retired
                        && entry.presented == Presented::Current
                        && self
                            .rehash_credential(&entry.credential, &hash, parsed)
                            .await;
                    // Cached under the hash it is stored with (changes invalidate that
                    // one); once moved, the next request reads the new one.
                    if !moved {
                        inner
                            .credentials
                            .fill(hash, Some(Arc::clone(&entry)), epoch);
                    }
                    entry
                }
            };
            return Ok(self.admit_entry(&entry));
        }
        Ok(None)
    }

    /// Moves a credential found under a retired pepper to the current one, as keys
    /// are on their first use, so the retired pepper can be dropped; true if it moved.
    async fn rehash_credential(
        &self,
        credential: &ServiceCredential,
        from: &KeyHash,
        parsed: keyward_core::key::ParsedKey<'_>,
    ) -> bool {
        let inner = &self.inner;
        let current = inner.config.peppers.current();
        let to = current.hash(parsed);
        let id = credential.id;
        let (old, version) = (*from, current.version());
        let rehashed = self
            .store_write(move |store| async move {
                store.rehash_credential(id, &old, &to, version).await
            })
            .await;
        match rehashed {
            Ok(()) => {
                // The old hash too: an instance may hold it (the store announces both).
                inner.invalidate(&[*from, to]);
                tracing::info!(credential_id = %id, to = current.version(), "service credential re-hashed with the current pepper");
                true
            }
            Err(err) => {
                tracing::warn!(credential_id = %id, error = %err, "re-hashing a service credential failed; it still authenticates");
                false
            }
        }
    }

    /// The caller a found credential makes, if it authenticates now (its use then
    /// recorded).
    fn admit_entry(&self, entry: &CredentialEntry) -> Option<AuthenticatedCredential> {
        let inner = &self.inner;
        let now = inner.now();
        let credential = &entry.credential;
        if !credential.authenticates(entry.presented, now) {
            return None;
        }
        if entry.usage.claim(now, inner.config.usage_resolution) {
            inner.credential_usage.record(credential.id, now);
        }
        Some(AuthenticatedCredential {
            id: credential.id,
            name: credential.name.clone(),
            scopes: credential.scopes,
        })
    }

    fn with_pending_use(&self, credential: &mut ServiceCredential) {
        if let Some(pending) = self.inner.credential_usage.pending(&credential.id) {
            credential.last_used_at = credential.last_used_at.max(Some(pending));
        }
    }
}
