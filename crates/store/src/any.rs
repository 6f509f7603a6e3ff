//! A store of whichever backend the database URL names, chosen at start-up.

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, Scope, UserId};
use keyward_core::time::Timestamp;
use keyward_core::usage::HourlyUsage;

use crate::error::StoreError;
use crate::interface::{EventStore, KeyStore, Store, UsageStore, UserStore};
use crate::postgres::PostgresStore;
use crate::records::{
    Applied, ConnectOptions, Consumed, ExternalChange, HourCounts, ImportedKey, LegacyCandidate,
    NewKeyRecord, PepperUsage, Replacement, Rotated, RotationTerms, UsageOf, VerifyRecord,
};
use crate::sqlite::SqliteStore;
use crate::url::DatabaseUrl;

/// A store of whichever backend the URL chose.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Opens the database named by `url`, creating a SQLite file if needed.
/// Migrations are not run: call [`Store::migrate`].
pub async fn connect(url: &DatabaseUrl) -> Result<AnyStore, StoreError> {
    connect_with(url, &ConnectOptions::default()).await
}

/// [`connect`] with explicit options.
pub async fn connect_with(
    url: &DatabaseUrl,
    options: &ConnectOptions,
) -> Result<AnyStore, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(AnyStore::Sqlite(SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(url) => {
            Ok(AnyStore::Postgres(PostgresStore::open(url, options).await?))
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call,
            AnyStore::Postgres($store) => $call,
        }
    };
}

impl Store for AnyStore {
    fn backend(&self) -> &'static str {
        delegate!(self, s => s.backend())
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.migrate().await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping().await)
    }
    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        delegate!(self, s => s.next_external_change().await)
    }
    async fn close(&self) {
        delegate!(self, s => s.close().await)
    }
}

impl KeyStore for AnyStore {
    async fn insert_key(
        &self,
        new: &NewKeyRecord,
        max: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.insert_key(new, max, actor).await)
    }
    async fn insert_keys(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError> {
        delegate!(self, s => s.insert_keys(new, actor).await)
    }
    async fn import_keys(&self, keys: &[ImportedKey], actor: &Actor) -> Result<u64, StoreError> {
        delegate!(self, s => s.import_keys(keys, actor).await)
    }
    async fn legacy_candidates(
        &self,
        sha256: &[u8; 32],
        head: &str,
    ) -> Result<Vec<LegacyCandidate>, StoreError> {
        delegate!(self, s => s.legacy_candidates(sha256, head).await)
    }
    async fn upgrade_legacy(
        &self,
        id: KeyId,
        hash: &KeyHash,
        version: u16,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.upgrade_legacy(id, hash, version).await)
    }
    async fn list_keys(&self, scope: Scope<'_>) -> Result<Vec<ApiKey>, StoreError> {
        delegate!(self, s => s.list_keys(scope).await)
    }
    async fn get_key(&self, scope: Scope<'_>, id: KeyId) -> Result<Option<ApiKey>, StoreError> {
        delegate!(self, s => s.get_key(scope, id).await)
    }
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError> {
        delegate!(self, s => s.find_by_hash(hash).await)
    }
    async fn most_verified_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyHash, VerifyRecord)>, StoreError> {
        delegate!(self, s => s.most_verified_since(since, limit).await)
    }
    async fn apply(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        mutation: &Mutation,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        delegate!(self, s => s.apply(scope, id, mutation, now, actor).await)
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
        delegate!(self, s => s.rotate(scope, id, replacement, terms, now, actor).await)
    }
    async fn rehash(&self, id: KeyId, hash: &KeyHash, version: u16) -> Result<(), StoreError> {
        delegate!(self, s => s.rehash(id, hash, version).await)
    }
}

impl UsageStore for AnyStore {
    async fn consume(&self, id: KeyId, cost: u64) -> Result<Consumed, StoreError> {
        delegate!(self, s => s.consume(id, cost).await)
    }
    async fn record_usage(&self, usage: &[(KeyId, Timestamp)]) -> Result<u64, StoreError> {
        delegate!(self, s => s.record_usage(usage).await)
    }
    async fn record_usage_history(&self, counts: &[HourCounts]) -> Result<(), StoreError> {
        delegate!(self, s => s.record_usage_history(counts).await)
    }
    async fn usage_history(
        &self,
        of: UsageOf<'_>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        delegate!(self, s => s.usage_history(of, from, to).await)
    }
    async fn prune_usage_history(&self, before: Timestamp) -> Result<(), StoreError> {
        delegate!(self, s => s.prune_usage_history(before).await)
    }
}

impl EventStore for AnyStore {
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        delegate!(self, s => s.list_events(query).await)
    }
}

impl UserStore for AnyStore {
    async fn delete_user(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        delegate!(self, s => s.delete_user(user, now, actor).await)
    }
    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>, StoreError> {
        delegate!(self, s => s.pepper_usage().await)
    }
}
