//! The scale-out backend: several stateless keyward instances on one PostgreSQL.
//!
//! - A bounded pool with an acquire timeout (overload becomes "unavailable", a 503,
//!   never a hang) and a per-statement timeout set on every connection.
//! - Read-then-write changes lock the row (`SELECT … FOR UPDATE`); the per-user key cap
//!   takes a transaction-scoped advisory lock on the user, so concurrent creates on
//!   different instances cannot both squeeze under it.
//! - Every change that can make a cached verification stale sends `NOTIFY` on
//!   [`CHANNEL`] inside its transaction, so it is delivered exactly when it commits.
//!   Each instance `LISTEN`s on a dedicated connection and drops the named keys from
//!   its cache; when that connection is lost it reports an error (the engine stops
//!   caching) until it has re-subscribed.
//! - Migrations take PostgreSQL's advisory lock, so instances starting together apply
//!   them once.

use std::time::Duration;

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, KeyStatus, Metadata, UserId};
use keyward_core::time::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Row, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::records::{
    Applied, Consumed, ExternalChange, ImportedKey, LegacyCandidate, NewKeyRecord, PepperUsage,
    Replacement, Rotated, RotationTerms, VerifyRecord,
};
use crate::rows::{self, NewEvent, corrupt, key_columns, timestamp};
use crate::{ConnectOptions, Store, StoreError, migrations};

/// The notification channel for key changes.
pub const CHANNEL: &str = "keyward_key_changes";
/// How long a caller waits for a pooled connection before the store is "unavailable".
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any statement may run.
const STATEMENT_TIMEOUT_MS: &str = "5000";
/// Hashes per notification: 64 hex characters and a comma each, under PostgreSQL's
/// 8000-byte payload limit.
const HASHES_PER_NOTIFY: usize = 100;
/// A silent listening connection is probed this often, so a dead one (a network
/// partition sends no error) is noticed within about two seconds; each successful probe
/// is reported as [`ExternalChange::Alive`], which keeps the engine's cache lease.
const LISTENER_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a probe may take before the listening connection counts as dead.
const LISTENER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// For the migration connection, which must not carry the statement timeout.
    connect: Arc<PgConnectOptions>,
    /// A separate pool of one, for the `LISTEN` connection, so closing the main pool
    /// never waits on it.
    listen_pool: PgPool,
    listener: Arc<Mutex<Option<PgListener>>>,
}

/// One connection made directly, before the pool: the pool retries a failing connect
/// until its timeout and then reports only "pool timed out", while this says which
/// server refused and why (refused, authentication, no such database, TLS required).
async fn check_reachable(connect: &PgConnectOptions) -> Result<(), StoreError> {
    let server = match connect.get_socket() {
        Some(socket) => format!("the socket directory {}", socket.display()),
        None => format!("{}:{}", connect.get_host(), connect.get_port()),
    };
    let target = format!(
        "PostgreSQL at {server} (database {:?}, user {:?})",
        connect.get_database().unwrap_or(connect.get_username()),
        connect.get_username()
    );
    match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(connect)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(StoreError::Open(format!(
            "cannot connect to {target}: {}",
            connect_failure(&err)
        ))),
        Err(_) => Err(StoreError::Open(format!(
            "cannot connect to {target}: no answer within {} s",
            ACQUIRE_TIMEOUT.as_secs()
        ))),
    }
}

/// Why a connection failed, in the server's or the operating system's words.
fn connect_failure(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

impl PostgresStore {
    pub async fn open(url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("keyward")
            .options([("statement_timeout", STATEMENT_TIMEOUT_MS)]);
        check_reachable(&connect).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(Duration::from_secs(1800))
            .connect_with(connect.clone())
            .await?;
        let listen_pool = PgPoolOptions::new()
            // Two: a listener given up on may still hold one while it is released.
            .max_connections(2)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Named apart, so operators can tell it from the query connections.
            .connect_lazy_with(connect.clone().application_name("keyward-listener"));
        Ok(Self {
            pool,
            connect: Arc::new(connect),
            listen_pool,
            listener: Arc::new(Mutex::new(None)),
        })
    }

    /// A connection taken from the pool and held, to exhaust it in tests.
    #[cfg(feature = "testing")]
    pub async fn hold_connection_for_tests(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// Subscribes anew; everything up to now counts as changed.
    async fn subscribe(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.listen_pool).await?;
        // A lost connection must be reported, not silently re-established: changes
        // made in between are gone, and the engine stops trusting its cache until
        // the feed is back.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}

fn key_from_row(row: &PgRow) -> Result<ApiKey, StoreError> {
    let status: String = row.try_get("status")?;
    let user_id: String = row.try_get("user_id")?;
    Ok(ApiKey {
        id: KeyId::from_uuid(row.try_get::<Uuid, _>("id")?),
        user_id: UserId::from_stored(&user_id).map_err(|_| corrupt("user_id"))?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        prefix: row.try_get("prefix")?,
        postfix: row.try_get("postfix")?,
        status: status.parse::<KeyStatus>().map_err(|_| corrupt("status"))?,
        permissions: row.try_get("permissions")?,
        created_at: timestamp(Some(row.try_get("created_at")?), "created_at")?
            .expect("Some in, Some out"),
        last_used_at: timestamp(row.try_get("last_used_at")?, "last_used_at")?,
        revoked_at: timestamp(row.try_get("revoked_at")?, "revoked_at")?,
        expires_at: timestamp(row.try_get("expires_at")?, "expires_at")?,
        rate_limit: rate_limit(row)?,
        metadata: rows::metadata(row.try_get("metadata")?)?,
        rotated_from: row
            .try_get::<Option<Uuid>, _>("rotated_from")?
            .map(KeyId::from_uuid),
        rotated_to: row
            .try_get::<Option<Uuid>, _>("rotated_to")?
            .map(KeyId::from_uuid),
        remaining: rows::remaining(row.try_get("remaining")?)?,
    })
}

fn rate_limit(row: &PgRow) -> Result<Option<keyward_core::rate::RateLimit>, StoreError> {
    let requests: Option<i32> = row.try_get("rate_limit_requests")?;
    let per_seconds: Option<i32> = row.try_get("rate_limit_per_seconds")?;
    rows::rate_limit(requests.map(i64::from), per_seconds.map(i64::from))
}

async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    event: &NewEvent<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_events (at, actor_kind, actor_id, action, key_id, user_id, changes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.at.as_millis())
    .bind(event.actor.kind())
    .bind(event.actor.id())
    .bind(event.action)
    .bind(event.key_id.map(|id| *id.as_uuid()))
    .bind(event.user_id.as_str())
    .bind(&event.changes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts one key row (no event, no cap check).
async fn insert_row(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewKeyRecord,
) -> Result<(), StoreError> {
    let key = &new.key;
    let (limit_requests, limit_seconds) = rows::rate_limit_columns(key.rate_limit);
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, description, key_hash, pepper_version, \
         prefix, postfix, status, permissions, created_at, updated_at, last_used_at, \
         revoked_at, expires_at, rate_limit_requests, rate_limit_per_seconds, metadata, \
         rotated_from, rotated_to, remaining) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20)",
    )
    .bind(key.id.as_uuid())
    .bind(key.user_id.as_str())
    .bind(&key.name)
    .bind(key.description.as_deref())
    .bind(new.hash.as_bytes().as_slice())
    .bind(i32::from(new.pepper_version))
    .bind(&key.prefix)
    .bind(&key.postfix)
    .bind(key.status.as_str())
    .bind(&key.permissions)
    .bind(key.created_at.as_millis())
    .bind(key.last_used_at.map(Timestamp::as_millis))
    .bind(key.revoked_at.map(Timestamp::as_millis))
    .bind(key.expires_at.map(Timestamp::as_millis))
    .bind(limit_requests.map(|n| n as i32))
    .bind(limit_seconds.map(|n| n as i32))
    .bind(key.metadata.as_ref().map(Metadata::as_str))
    .bind(key.rotated_from.map(|id| *id.as_uuid()))
    .bind(key.rotated_to.map(|id| *id.as_uuid()))
    .bind(rows::remaining_column(key.remaining))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn verify_record(row: &PgRow) -> Result<VerifyRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let user_id: String = row.try_get("user_id")?;
    let version: i32 = row.try_get("pepper_version")?;
    Ok(VerifyRecord {
        id: KeyId::from_uuid(row.try_get::<Uuid, _>("id")?),
        user_id: UserId::from_stored(&user_id).map_err(|_| corrupt("user_id"))?,
        status: status.parse().map_err(|_| corrupt("status"))?,
        permissions: row.try_get("permissions")?,
        expires_at: timestamp(row.try_get("expires_at")?, "expires_at")?,
        last_used_at: timestamp(row.try_get("last_used_at")?, "last_used_at")?,
        rate_limit: rate_limit(row)?,
        metadata: rows::metadata(row.try_get("metadata")?)?,
        remaining: rows::remaining(row.try_get("remaining")?)?,
        pepper_version: u16::try_from(version).map_err(|_| corrupt("pepper_version"))?,
    })
}

/// Reads a key of `owner` (any owner: `None`) and locks its row until the
/// transaction ends, so the change is decided on the row as it is.
async fn lock_key(
    tx: &mut Transaction<'_, Postgres>,
    owner: Option<&UserId>,
    id: KeyId,
) -> Result<(ApiKey, KeyHash), StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        key_columns!(),
        ", key_hash FROM api_keys WHERE id = $1 AND ($2::text IS NULL OR user_id = $2) \
         FOR UPDATE"
    ))
    .bind(id.as_uuid())
    .bind(owner.map(UserId::as_str))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok((key_from_row(&row)?, hash_from_row(&row)?))
}

fn hash_from_row(row: &PgRow) -> Result<KeyHash, StoreError> {
    KeyHash::from_slice(row.try_get("key_hash")?).ok_or_else(|| corrupt("key_hash"))
}

fn to_hex(hash: &KeyHash) -> String {
    hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<KeyHash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(KeyHash::from_bytes(bytes))
}

/// Queues notifications for these hashes; PostgreSQL delivers them on commit.
async fn notify(tx: &mut Transaction<'_, Postgres>, hashes: &[KeyHash]) -> Result<(), StoreError> {
    for chunk in hashes.chunks(HASHES_PER_NOTIFY) {
        let payload: Vec<String> = chunk.iter().map(to_hex).collect();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload.join(","))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn parse_payload(payload: &str) -> ExternalChange {
    let hashes: Option<Vec<KeyHash>> = payload.split(',').map(from_hex).collect();
    match hashes {
        Some(hashes) if !hashes.is_empty() => ExternalChange::Keys(hashes),
        _ => ExternalChange::Unknown,
    }
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate::Migrator::new(migrations::POSTGRES).await?;
        // A newer version may have migrated already: its migrations only add, so this
        // one still runs (a rollback, or an old instance restarting mid-upgrade).
        migrator.set_ignore_missing(true);
        // A connection of its own without the statement timeout: a migration may take
        // long, and so may waiting for another instance's migration lock.
        let untimed = (*self.connect)
            .clone()
            .options([("statement_timeout", "0")]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(untimed)
            .await?;
        let result = migrator.run(&pool).await;
        pool.close().await;
        Ok(result?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_key(
        &self,
        new: &NewKeyRecord,
        max_live: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let key = &new.key;
        let mut tx = self.pool.begin().await?;
        // Serialises creates per user across every instance until this commits.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key.user_id.as_str())
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(rows::COUNT_LIVE)
            .bind(key.user_id.as_str())
            .bind(key.created_at.as_millis())
            .fetch_one(&mut *tx)
            .await?;
        if live >= i64::from(max_live) {
            return Err(StoreError::LimitReached { limit: max_live });
        }
        insert_row(&mut tx, new).await?;
        let event = NewEvent {
            at: key.created_at,
            actor,
            action: "create",
            key_id: Some(key.id),
            user_id: &key.user_id,
            changes: rows::key_changes(None, Some(key)),
        };
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_keys(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError> {
        // Multi-row INSERTs: one round trip per chunk instead of per key. 1,000 rows
        // of 19 parameters stay well under PostgreSQL's 65,535 bind limit.
        let mut tx = self.pool.begin().await?;
        for chunk in new.chunks(1_000) {
            let mut sql = QueryBuilder::<Postgres>::new(
                "INSERT INTO api_keys (id, user_id, name, description, key_hash, pepper_version, \
                 prefix, postfix, status, permissions, created_at, updated_at, last_used_at, \
                 revoked_at, expires_at, rate_limit_requests, rate_limit_per_seconds, metadata, \
                 rotated_from, rotated_to, remaining) ",
            );
            sql.push_values(chunk, |mut row, record| {
                let key = &record.key;
                let (limit_requests, limit_seconds) = rows::rate_limit_columns(key.rate_limit);
                row.push_bind(*key.id.as_uuid())
                    .push_bind(key.user_id.as_str().to_owned())
                    .push_bind(key.name.clone())
                    .push_bind(key.description.clone())
                    .push_bind(record.hash.as_bytes().to_vec())
                    .push_bind(i32::from(record.pepper_version))
                    .push_bind(key.prefix.clone())
                    .push_bind(key.postfix.clone())
                    .push_bind(key.status.as_str())
                    .push_bind(key.permissions.clone())
                    .push_bind(key.created_at.as_millis())
                    .push_bind(key.created_at.as_millis())
                    .push_bind(key.last_used_at.map(Timestamp::as_millis))
                    .push_bind(key.revoked_at.map(Timestamp::as_millis))
                    .push_bind(key.expires_at.map(Timestamp::as_millis))
                    .push_bind(limit_requests.map(|n| n as i32))
                    .push_bind(limit_seconds.map(|n| n as i32))
                    .push_bind(key.metadata.as_ref().map(|m| m.as_str().to_owned()))
                    .push_bind(key.rotated_from.map(|id| *id.as_uuid()))
                    .push_bind(key.rotated_to.map(|id| *id.as_uuid()))
                    .push_bind(rows::remaining_column(key.remaining));
            });
            sql.build().execute(&mut *tx).await?;
            let mut events = QueryBuilder::<Postgres>::new(
                "INSERT INTO key_events (at, actor_kind, actor_id, action, key_id, user_id, \
                 changes) ",
            );
            events.push_values(chunk, |mut row, record| {
                let key = &record.key;
                row.push_bind(key.created_at.as_millis())
                    .push_bind(actor.kind())
                    .push_bind(actor.id().to_owned())
                    .push_bind("create")
                    .push_bind(*key.id.as_uuid())
                    .push_bind(key.user_id.as_str().to_owned())
                    .push_bind(rows::key_changes(None, Some(key)));
            });
            events.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_keys(&self, owner: Option<&UserId>) -> Result<Vec<ApiKey>, StoreError> {
        let rows = match owner {
            Some(user) => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(user.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys ORDER BY created_at DESC, id DESC"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(key_from_row).collect()
    }

    async fn get_key(
        &self,
        owner: Option<&UserId>,
        id: KeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)"
        ))
        .bind(id.as_uuid())
        .bind(owner.map(UserId::as_str))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, status, permissions, expires_at, last_used_at, pepper_version, \
             rate_limit_requests, rate_limit_per_seconds, metadata, remaining \
             FROM api_keys WHERE key_hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(verify_record).transpose()
    }

    async fn import_keys(&self, keys: &[ImportedKey], actor: &Actor) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for key in keys {
            let id = key.record.key.id;
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_some() {
                continue;
            }
            insert_row(&mut tx, &key.record).await?;
            let (kind, digest, salt) = rows::legacy_columns(&key.legacy);
            sqlx::query(
                "INSERT INTO legacy_credentials (key_id, kind, digest, salt, head) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.as_uuid())
            .bind(kind)
            .bind(digest)
            .bind(salt)
            .bind(&key.head)
            .execute(&mut *tx)
            .await?;
            let event = NewEvent {
                at: key.record.key.created_at,
                actor,
                action: "import",
                key_id: Some(id),
                user_id: &key.record.key.user_id,
                changes: rows::key_changes(None, Some(&key.record.key)),
            };
            insert_event(&mut tx, &event).await?;
            added += 1;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn legacy_candidates(
        &self,
        sha256: &[u8; 32],
        head: &str,
    ) -> Result<Vec<LegacyCandidate>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(rows::legacy_candidates_sql()))
            .bind(sha256.as_slice())
            .bind(head)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LegacyCandidate {
                    record: verify_record(row)?,
                    legacy: rows::legacy_hash(
                        row.try_get("kind")?,
                        row.try_get("digest")?,
                        row.try_get("salt")?,
                    )?,
                })
            })
            .collect()
    }

    async fn upgrade_legacy(
        &self,
        id: KeyId,
        hash: &KeyHash,
        version: u16,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE api_keys SET key_hash = $2, pepper_version = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(hash.as_bytes().as_slice())
            .bind(i32::from(version))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM legacy_credentials WHERE key_id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        // Other instances may hold "no such key" for this hash: drop it.
        notify(&mut tx, &[*hash]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply(
        &self,
        owner: Option<&UserId>,
        id: KeyId,
        mutation: &Mutation,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (key, hash) = lock_key(&mut tx, owner, id).await?;
        let Some(new) = rows::decide(&key, mutation, now)? else {
            return Ok(Applied {
                key,
                hash,
                changed: false,
            });
        };
        let (limit_requests, limit_seconds) = rows::rate_limit_columns(new.rate_limit);
        sqlx::query(
            "UPDATE api_keys SET status = $2, revoked_at = $3, permissions = $4, updated_at = $5, \
             rate_limit_requests = $6, rate_limit_per_seconds = $7, name = $8, description = $9, \
             expires_at = $10, metadata = $11, remaining = $12 WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(new.status.as_str())
        .bind(new.revoked_at.map(Timestamp::as_millis))
        .bind(&new.permissions)
        .bind(now.as_millis())
        .bind(limit_requests.map(|n| n as i32))
        .bind(limit_seconds.map(|n| n as i32))
        .bind(&new.name)
        .bind(new.description.as_deref())
        .bind(new.expires_at.map(Timestamp::as_millis))
        .bind(new.metadata.as_ref().map(Metadata::as_str))
        .bind(rows::remaining_column(new.remaining))
        .execute(&mut *tx)
        .await?;
        let after = rows::with_state(key.clone(), new);
        let event = NewEvent {
            at: now,
            actor,
            action: mutation.name(),
            key_id: Some(id),
            user_id: &key.user_id,
            changes: rows::key_changes(Some(&key), Some(&after)),
        };
        insert_event(&mut tx, &event).await?;
        notify(&mut tx, &[hash]).await?;
        tx.commit().await?;
        Ok(Applied {
            key: after,
            hash,
            changed: true,
        })
    }

    async fn rotate(
        &self,
        owner: Option<&UserId>,
        id: KeyId,
        replacement: &Replacement,
        terms: RotationTerms,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Rotated, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (old, old_hash) = lock_key(&mut tx, owner, id).await?;
        let (ending, new) = rows::rotate(&old, replacement, terms.grace_seconds, now)?;
        // Serialised with creates for the same user, as in `insert_key`.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(old.user_id.as_str())
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(rows::COUNT_LIVE)
            .bind(old.user_id.as_str())
            .bind(now.as_millis())
            .fetch_one(&mut *tx)
            .await?;
        rows::rotation_fits(live, &ending, now, terms.max_live_per_user)?;
        sqlx::query(
            "UPDATE api_keys SET expires_at = $2, rotated_to = $3, updated_at = $4, remaining = $5 \
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(ending.expires_at.map(Timestamp::as_millis))
        .bind(replacement.id.as_uuid())
        .bind(now.as_millis())
        .bind(rows::remaining_column(ending.remaining))
        .execute(&mut *tx)
        .await?;
        let record = NewKeyRecord {
            key: new,
            hash: replacement.hash,
            pepper_version: replacement.pepper_version,
        };
        insert_row(&mut tx, &record).await?;
        for event in rows::rotation_events(&old, &ending, &record.key, now, actor) {
            insert_event(&mut tx, &event).await?;
        }
        notify(&mut tx, &[old_hash, replacement.hash]).await?;
        tx.commit().await?;
        Ok(Rotated {
            old: ending,
            old_hash,
            new: record.key,
        })
    }

    async fn consume(&self, id: KeyId, cost: u64) -> Result<Consumed, StoreError> {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        if cost > 0 {
            let left: Option<i64> = sqlx::query_scalar(rows::CONSUME)
                .bind(id.as_uuid())
                .bind(cost)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(left) = left {
                return Ok(Consumed::Left(u64::try_from(left).unwrap_or(0)));
            }
        }
        let row: Option<Option<i64>> = sqlx::query_scalar(rows::REMAINING)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        rows::not_consumed(row, cost.unsigned_abs())
    }

    async fn record_usage(&self, usage: &[(KeyId, Timestamp)]) -> Result<u64, StoreError> {
        if usage.is_empty() {
            return Ok(0);
        }
        // Rows in id order: two instances flushing overlapping batches then lock them
        // in the same order and cannot deadlock.
        let mut sorted = usage.to_vec();
        sorted.sort_unstable_by_key(|(id, _)| *id);
        let ids: Vec<Uuid> = sorted.iter().map(|(id, _)| *id.as_uuid()).collect();
        let times: Vec<i64> = sorted.iter().map(|(_, at)| at.as_millis()).collect();
        let result = sqlx::query(
            "UPDATE api_keys SET last_used_at = u.used_at \
             FROM UNNEST($1::uuid[], $2::bigint[]) AS u (id, used_at) \
             WHERE api_keys.id = u.id \
             AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < u.used_at)",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn rehash(&self, id: KeyId, hash: &KeyHash, version: u16) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE api_keys SET key_hash = $2, pepper_version = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(hash.as_bytes().as_slice())
            .bind(i32::from(version))
            .execute(&mut *tx)
            .await?;
        notify(&mut tx, &[*hash]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The same lock as key creation: a key created concurrently cannot survive.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query("DELETE FROM api_keys WHERE user_id = $1 RETURNING id, key_hash")
            .bind(user.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let hashes = rows
            .iter()
            .map(hash_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids = rows
            .iter()
            .map(|row| Ok(KeyId::from_uuid(row.try_get::<Uuid, _>("id")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        ids.sort_unstable();
        let event = NewEvent {
            at: now,
            actor,
            action: "delete_user",
            key_id: None,
            user_id: user,
            changes: rows::deletion_changes(&ids),
        };
        insert_event(&mut tx, &event).await?;
        notify(&mut tx, &hashes).await?;
        tx.commit().await?;
        Ok(hashes)
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        let key = query.key_id.map(|id| *id.as_uuid());
        let mut sql = rows::event_query::<Postgres, _>(query, key);
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let key: Option<Uuid> = row.try_get("key_id")?;
                rows::event(
                    row.try_get("id")?,
                    row.try_get("at")?,
                    (row.try_get("actor_kind")?, row.try_get("actor_id")?),
                    row.try_get("action")?,
                    key.map(KeyId::from_uuid),
                    row.try_get("user_id")?,
                    row.try_get("changes")?,
                )
            })
            .collect()
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>, StoreError> {
        let rows = sqlx::query(rows::PEPPER_USAGE)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                rows::pepper_usage(
                    i64::from(row.try_get::<i32, _>("pepper_version")?),
                    row.try_get("live")?,
                    row.try_get("revoked")?,
                )
            })
            .collect()
    }

    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        let mut slot = self.listener.lock().await;
        let Some(listener) = slot.as_mut() else {
            // Not subscribed (first call, or after a loss): subscribe, and report
            // that anything may have changed in the meantime.
            *slot = Some(self.subscribe().await?);
            return Ok(ExternalChange::Unknown);
        };
        let outcome = match tokio::time::timeout(LISTENER_PROBE_INTERVAL, listener.try_recv()).await
        {
            Ok(Ok(Some(notification))) => Ok(parse_payload(notification.payload())),
            // The connection is gone; changes made meanwhile are lost.
            Ok(Ok(None)) => Err(StoreError::ChangeFeedLost),
            Ok(Err(err)) => Err(err.into()),
            Err(_quiet) => {
                // Nothing arrived: make sure the connection is alive, which also
                // tells the engine its cache may still be trusted.
                let probe = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(LISTENER_PROBE_TIMEOUT, probe).await {
                    Ok(Ok(_)) => Ok(ExternalChange::Alive),
                    Ok(Err(err)) => Err(err.into()),
                    Err(_) => Err(StoreError::ChangeFeedLost),
                }
            }
        };
        if outcome.is_err() {
            *slot = None;
        }
        outcome
    }

    async fn close(&self) {
        // Release the listening connection first: closing a pool waits for its
        // connections to come back, which a dead connection may never do.
        self.listener.lock().await.take();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.listen_pool.close()).await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads_round_trip() {
        let a = KeyHash::from_bytes([0xab; 32]);
        let b = KeyHash::from_bytes([0x01; 32]);
        let payload = [to_hex(&a), to_hex(&b)].join(",");
        assert_eq!(parse_payload(&payload), ExternalChange::Keys(vec![a, b]));
        assert_eq!(parse_payload(""), ExternalChange::Unknown);
        assert_eq!(parse_payload("zz"), ExternalChange::Unknown);
        assert_eq!(
            parse_payload(&format!("{},nope", to_hex(&a))),
            ExternalChange::Unknown
        );
    }

    #[test]
    fn a_full_notification_fits_the_payload_limit() {
        let hashes = vec![to_hex(&KeyHash::from_bytes([0xff; 32])); HASHES_PER_NOTIFY];
        assert!(hashes.join(",").len() < 8000);
    }
}
