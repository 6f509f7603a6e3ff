//! Leaked keys: a key reported found in public is acted on as
//! `KEYWARD_LEAKED_KEY_ACTION` says (revoked by default), and the report is recorded
//! (audit action `leaked`, webhook `api_key.leaked`). A service credential reported
//! leaked is revoked (kept, and only logged, with `report`).

use std::net::IpAddr;
use std::sync::Arc;

use keyward_core::credential::{ServiceCredential, credential_format};
use keyward_core::leak::{self, Sighting};
use keyward_core::legacy;
use keyward_store::Store;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::limits::ClientAddr;
use crate::verdict::VerifiedKey;

/// A secret of this deployment that still works (or would once reactivated): what a
/// leak report acts on.
#[derive(Clone, Debug)]
pub enum LiveSecret {
    Key(Arc<VerifiedKey>),
    Credential(ServiceCredential),
}

impl<S: Store> Engine<S> {
    /// The live key or credential a presented secret is, if any: `None` for a
    /// malformed, unknown, revoked or expired one (and a credential's replaced secret
    /// past its grace period). Reads, changes nothing but a move to the current pepper.
    pub async fn find_live(&self, presented: &str) -> Result<Option<LiveSecret>, EngineError> {
        let inner = &self.inner;
        let now = inner.now();
        if let Ok(parsed) = credential_format().parse(presented) {
            let peppers = &inner.config.peppers;
            for pepper in std::iter::once(peppers.current()).chain(peppers.retired()) {
                if let Some(found) = inner.store.find_credential(&pepper.hash(parsed)).await? {
                    return Ok(found
                        .credential
                        .authenticates(found.presented, now)
                        .then_some(LiveSecret::Credential(found.credential)));
                }
            }
            return Ok(None);
        }
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
            .filter(|key| leak::is_live(key.status, key.expires_at, now))
            .map(LiveSecret::Key))
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
        match self.find_live(presented).await? {
            None => Ok(None),
            Some(LiveSecret::Credential(credential)) => {
                // A credential cannot be suspended: any action but `report` revokes it.
                let id = credential.id;
                let revoked = match action.mutation() {
                    Some(_) => {
                        let now = inner.now();
                        self.credential_change(None, move |store| async move {
                            store.revoke_credential(id, now).await
                        })
                        .await?
                        .changed
                    }
                    None => false,
                };
                tracing::warn!(
                    credential_id = %id,
                    name = %credential.name,
                    revoked,
                    source,
                    by = %self.admin(),
                    "a service credential was reported leaked"
                );
                Ok(Some(LiveSecret::Credential(credential)))
            }
            Some(LiveSecret::Key(key)) => {
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
        }
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
