//! Leaked keys: a key reported found in public is acted on as
//! `KEYWARD_LEAKED_KEY_ACTION` says (revoked by default), and the report is recorded
//! (audit action `leaked`, webhook `api_key.leaked`). A service credential reported
//! leaked is revoked (kept, and only logged, with `report`).

use std::net::IpAddr;
use std::sync::Arc;

use keyward_core::credential::{Presented, ServiceCredential, credential_format};
use keyward_core::hash::KeyHash;
use keyward_core::leak::{self, Sighting};
use keyward_core::legacy;
use keyward_store::{FoundCredential, Store};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::limits::ClientAddr;
use crate::verdict::VerifiedKey;

/// A secret of this deployment that still works (or would once reactivated): what a
/// leak report acts on.
#[derive(Clone, Debug)]
pub enum LiveSecret {
    Key(Arc<VerifiedKey>),
    /// A credential, and which of its secrets it was: the current one, or the one a
    /// rotation replaced (within its grace period).
    Credential(ServiceCredential, Presented),
}

impl<S: Store> Engine<S> {
    /// The live key or credential a presented secret is, if any: `None` for a
    /// malformed, unknown, revoked or expired one (and a credential's replaced secret
    /// past its grace period). Reads, changes nothing but a move to the current pepper.
    pub async fn find_live(&self, presented: &str) -> Result<Option<LiveSecret>, EngineError> {
        if credential_format().parse(presented).is_ok() {
            return Ok(self
                .find_live_credential(presented)
                .await?
                .map(|(found, _)| LiveSecret::Credential(found.credential, found.presented)));
        }
        Ok(self.find_live_key(presented).await?.map(LiveSecret::Key))
    }

    /// The live key a presented secret is (this deployment's format, or AutoGPT's).
    async fn find_live_key(
        &self,
        presented: &str,
    ) -> Result<Option<Arc<VerifiedKey>>, EngineError> {
        let inner = &self.inner;
        let now = inner.now();
        let parsed = match inner.config.key_format.parse(presented) {
            Ok(parsed) => parsed,
            Err(_) => match legacy::parse(presented) {
                Some(parsed) => parsed,
                None => return Ok(None),
            },
        };
        let hash = inner.config.peppers.current().hash(parsed);
        Ok(self
            .load(parsed, hash)
            .await?
            .key
            .filter(|key| leak::is_live(key.status, key.expires_at(), now)))
    }

    /// The live credential a presented secret is one of, and the hash it is stored
    /// under (the pepper it was made with).
    async fn find_live_credential(
        &self,
        presented: &str,
    ) -> Result<Option<(FoundCredential, KeyHash)>, EngineError> {
        let Ok(parsed) = credential_format().parse(presented) else {
            return Ok(None);
        };
        let (inner, now) = (&self.inner, self.inner.now());
        let peppers = &inner.config.peppers;
        for pepper in std::iter::once(peppers.current()).chain(peppers.retired()) {
            let hash = pepper.hash(parsed);
            if let Some(found) = inner.store.find_credential(&hash).await? {
                let live = found.credential.authenticates(found.presented, now);
                return Ok(live.then_some((found, hash)));
            }
        }
        Ok(None)
    }

    /// Acts on a leaked credential: any action but `report` revokes it (a credential
    /// cannot be suspended), or, for the secret a rotation replaced, ends that secret
    /// at once and keeps the current one (whoever rotated because of the leak must not
    /// lose the new secret too).
    async fn credential_leaked(
        &self,
        found: &FoundCredential,
        hash: KeyHash,
        source: &str,
    ) -> Result<(), EngineError> {
        let (id, now) = (found.credential.id, self.inner.now());
        let previous = found.presented == Presented::Previous;
        let changed = match self.inner.config.leak_action.mutation() {
            None => false,
            Some(_) if previous => {
                self.credential_change(None, move |store| async move {
                    store.end_previous_secret(id, &hash).await
                })
                .await?
                .changed
            }
            Some(_) => {
                self.credential_change(None, move |store| async move {
                    store.revoke_credential(id, now).await
                })
                .await?
                .changed
            }
        };
        tracing::warn!(
            credential_id = %id,
            name = %found.credential.name,
            secret = if previous { "replaced" } else { "current" },
            done = match (changed, previous) {
                (false, _) => "nothing",
                (true, true) => "the replaced secret ended",
                (true, false) => "revoked",
            },
            source,
            by = %self.admin(),
            "a service credential was reported leaked"
        );
        Ok(())
    }

    /// Acts on a presented secret reported leaked, if it is a live one of this
    /// deployment (see [`Engine::find_live`]), and returns it as it was; `None`:
    /// nothing is done or recorded. Recorded as made by this engine's actor.
    pub async fn report_leak(
        &self,
        presented: &str,
        sighting: &Sighting,
    ) -> Result<Option<LiveSecret>, EngineError> {
        let inner = &self.inner;
        let action = inner.config.leak_action;
        let source = sighting.source.as_deref().unwrap_or("-");
        if credential_format().parse(presented).is_ok() {
            let Some((found, hash)) = self.find_live_credential(presented).await? else {
                return Ok(None);
            };
            self.credential_leaked(&found, hash, source).await?;
            return Ok(Some(LiveSecret::Credential(
                found.credential,
                found.presented,
            )));
        }
        let Some(key) = self.find_live_key(presented).await? else {
            return Ok(None);
        };
        let change = action.mutation();
        let (id, now, actor, seen) = (key.id, inner.now(), self.admin(), sighting.clone());
        let applied = self
            .store_write(move |store| async move {
                store
                    .report_leak(id, change.as_ref(), &seen, now, &actor)
                    .await
            })
            .await?;
        // Revoked or expired between the read and the write: nothing done.
        let Some(applied) = applied else {
            return Ok(None);
        };
        if applied.changed {
            inner.invalidate(&[applied.hash]);
        }
        tracing::warn!(
            key_id = %key.id,
            action = action.as_str(),
            changed = applied.changed,
            source,
            by = %self.admin(),
            "a key was reported leaked"
        );
        Ok(Some(LiveSecret::Key(key)))
    }

    /// [`Engine::report_leak`] for an anonymous reporter at `client`, who proves
    /// nothing but holding the key: limited like failed verifications (every report
    /// counts, [`EngineError::TooManyFailures`] past the limit), and done in the
    /// background, so the answer comes after the same work whatever the key is and
    /// tells nothing about it.
    pub async fn report_leak_anonymously(
        &self,
        client: Option<IpAddr>,
        presented: String,
        sighting: Sighting,
    ) -> Result<(), EngineError> {
        let client = client.map(ClientAddr::from);
        let admitted = self
            .limit_failures(client, async { Ok(()) }, |()| true)
            .await;
        if let Err(wait) = admitted {
            return Err(EngineError::TooManyFailures { retry_after: wait });
        }
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(err) = engine.report_leak(&presented, &sighting).await {
                tracing::warn!(error = %err, "a leak report could not be acted on");
            }
        });
        Ok(())
    }
}
