//! The usage history read back: what is stored, plus what was counted and not written
//! yet, per bucket of a range.

use std::collections::HashSet;

use keyward_core::model::{KeyId, Scope, UserId};
use keyward_core::usage::{HourlyUsage, UsageRange};
use keyward_store::{Store, UsageOf};

use crate::engine::Engine;
use crate::error::EngineError;

impl<S: Store> Engine<S> {
    /// The verifications of one key in `scope`, per bucket of `range` (every bucket,
    /// oldest first), including those not written yet. Another user's key is not
    /// found. With usage history off, every bucket is zero.
    pub async fn key_usage(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        range: &UsageRange,
    ) -> Result<Vec<HourlyUsage>, EngineError> {
        let inner = &self.inner;
        inner
            .store
            .get_key(scope, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if !inner.history_enabled() {
            return Ok(range.buckets(&[]));
        }
        let mut hours = inner
            .store
            .usage_history(UsageOf::Key(id), range.from(), range.to())
            .await?;
        hours.extend(inner.history.pending(|key| *key == id));
        Ok(range.buckets(&hours))
    }

    /// The verifications of a user's keys (or of every key, without `user`), summed
    /// per bucket of `range` like [`Engine::key_usage`].
    pub async fn usage(
        &self,
        user: Option<&UserId>,
        range: &UsageRange,
    ) -> Result<Vec<HourlyUsage>, EngineError> {
        let inner = &self.inner;
        if !inner.history_enabled() {
            return Ok(range.buckets(&[]));
        }
        let (from, to) = (range.from(), range.to());
        let mut hours = match user {
            Some(user) => {
                let keys: HashSet<KeyId> = inner
                    .store
                    .list_keys(Scope::User(user))
                    .await?
                    .iter()
                    .map(|key| key.id)
                    .collect();
                let mut hours = inner
                    .store
                    .usage_history(UsageOf::User(user), from, to)
                    .await?;
                hours.extend(inner.history.pending(|key| keys.contains(key)));
                hours
            }
            None => {
                let mut hours = inner.store.usage_history(UsageOf::All, from, to).await?;
                hours.extend(inner.history.pending(|_| true));
                hours
            }
        };
        hours.sort_unstable_by_key(|h| h.hour);
        Ok(range.buckets(&hours))
    }
}
