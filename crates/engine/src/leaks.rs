//! Leaked keys: a key reported found in public is acted on as
//! `KEYWARD_LEAKED_KEY_ACTION` says (revoked by default), and the report is recorded
//! (audit action `leaked`, webhook `api_key.leaked`).

use std::net::IpAddr;

use keyward_core::leak::Sighting;
use keyward_core::legacy;
use keyward_core::model::KeyId;
use keyward_store::Store;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::limits::ClientAddr;

impl<S: Store> Engine<S> {
    /// Acts on a presented key reported leaked, if it is a live key of this
    /// deployment; the key it was, or `None` (malformed, unknown, revoked or expired:
    /// nothing is done or recorded). Recorded as made by this engine's actor.
    pub async fn report_leak(
        &self,
        presented: &str,
        sighting: &Sighting,
    ) -> Result<Option<KeyId>, EngineError> {
        let inner = &self.inner;
        let parsed = match inner.config.key_format.parse(presented) {
            Ok(parsed) => parsed,
            Err(_) => match legacy::parse(presented) {
                Some(parsed) => parsed,
                None => return Ok(None),
            },
        };
        let hash = inner.config.peppers.current().hash(parsed);
        let Some(key) = self.load(parsed, hash).await?.key else {
            return Ok(None);
        };
        let action = inner.config.leak_action;
        let change = action.mutation();
        let (id, now, actor, seen) = (key.id, inner.now(), self.admin(), sighting.clone());
        let applied = self
            .store_write(move |store| async move {
                store
                    .report_leak(id, change.as_ref(), &seen, now, &actor)
                    .await
            })
            .await?;
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
            source = sighting.source.as_deref().unwrap_or("-"),
            by = %self.admin(),
            "a key was reported leaked"
        );
        Ok(Some(key.id))
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
