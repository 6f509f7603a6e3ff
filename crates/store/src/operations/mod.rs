//! Every [`Store`] operation, written once for every backend, by what it changes:
//! [`keys`], [`usage`], [`events`] (the audit trail) and [`users`].
//!
//! A change has one shape: begin a write transaction, read the row (as the backend
//! keeps it from concurrent changes), decide with `keyward_core::lifecycle`, write,
//! record the event, announce the change to other instances, commit. Only what the
//! [`Dialect`] says differs. Every write goes through [`Writes::track`], which learns
//! from its outcome whether the database stores changes.
//!
//! [`Writes::track`]: crate::writes::Writes::track

mod events;
mod keys;
mod usage;
mod users;

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, Scope, UserId};
use keyward_core::time::Timestamp;
use keyward_core::usage::HourlyUsage;

use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::interface::Store;
use crate::records::{
    Applied, Consumed, ExternalChange, HourCounts, ImportedKey, LegacyCandidate, NewKeyRecord,
    PepperUsage, Replacement, Rotated, RotationTerms, UsageOf, VerifyRecord,
};

impl<D: Dialect> Store for D {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        Dialect::migrate(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Dialect::ping(self).await?;
        self.writes().check(|| self.probe_write()).await
    }

    async fn insert_key(
        &self,
        new: &NewKeyRecord,
        max_live: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        keys::insert_key(self, new, max_live, actor).await
    }

    async fn insert_keys(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError> {
        keys::insert_keys(self, new, actor).await
    }

    async fn import_keys(&self, keys: &[ImportedKey], actor: &Actor) -> Result<u64, StoreError> {
        keys::import_keys(self, keys, actor).await
    }

    async fn legacy_candidates(
        &self,
        sha256: &[u8; 32],
        head: &str,
    ) -> Result<Vec<LegacyCandidate>, StoreError> {
        keys::legacy_candidates(self, sha256, head).await
    }

    async fn upgrade_legacy(
        &self,
        id: KeyId,
        hash: &KeyHash,
        version: u16,
    ) -> Result<(), StoreError> {
        keys::upgrade_legacy(self, id, hash, version).await
    }

    async fn list_keys(&self, scope: Scope<'_>) -> Result<Vec<ApiKey>, StoreError> {
        keys::list_keys(self, scope).await
    }

    async fn get_key(&self, scope: Scope<'_>, id: KeyId) -> Result<Option<ApiKey>, StoreError> {
        keys::get_key(self, scope, id).await
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError> {
        D::find_by_hash(self, hash).await
    }

    async fn most_verified_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyHash, VerifyRecord)>, StoreError> {
        keys::most_verified_since(self, since, limit).await
    }

    async fn apply(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        mutation: &Mutation,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        keys::apply(self, scope, id, mutation, now, actor).await
    }

    async fn rotate(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        replacement: &Replacement,
        terms: RotationTerms,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Rotated, StoreError> {
        keys::rotate(self, scope, id, replacement, terms, now, actor).await
    }

    async fn consume(&self, id: KeyId, cost: u64) -> Result<Consumed, StoreError> {
        usage::consume(self, id, cost).await
    }

    async fn record_usage(&self, usage: &[(KeyId, Timestamp)]) -> Result<u64, StoreError> {
        usage::record_usage(self, usage).await
    }

    async fn record_usage_history(&self, counts: &[HourCounts]) -> Result<(), StoreError> {
        self.writes()
            .track(async move { usage::record_usage_history(self, counts).await })
            .await
    }

    async fn usage_history(
        &self,
        of: UsageOf<'_>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        usage::usage_history(self, of, from, to).await
    }

    async fn prune_usage_history(&self, before: Timestamp) -> Result<(), StoreError> {
        self.writes()
            .track(async move { usage::prune_usage_history(self, before).await })
            .await
    }

    async fn rehash(&self, id: KeyId, hash: &KeyHash, version: u16) -> Result<(), StoreError> {
        keys::rehash(self, id, hash, version).await
    }

    async fn delete_user(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        users::delete_user(self, user, now, actor).await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        events::list_events(self, query).await
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>, StoreError> {
        users::pepper_usage(self).await
    }

    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        Dialect::next_external_change(self).await
    }

    async fn close(&self) {
        Dialect::close(self).await;
    }
}
