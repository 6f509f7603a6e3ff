//! The embedded default backend: one SQLite file.
//!
//! - WAL journal, so readers never block the writer and the writer never blocks readers.
//! - Exactly one writer connection (SQLite allows one writer at a time anyway; a pool
//!   of one turns contention into queueing instead of `SQLITE_BUSY`), and a small
//!   read-only pool for lookups.
//! - Transactions that read then write start with `BEGIN IMMEDIATE`, taking the write
//!   lock up front: a deferred transaction that upgrades fails with `SQLITE_BUSY_SNAPSHOT`
//!   when another process (the CLI) wrote in between, whatever the busy timeout.
//! - Changes by other processes are noticed through `PRAGMA data_version` on the
//!   writer connection, which moves only when *another* connection commits. Every
//!   change clears the whole cache, which suits an admin CLI beside one server; for
//!   several servers, use a shared PostgreSQL instead of one SQLite file.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, KeyStatus, Metadata, UserId};
use keyward_core::time::Timestamp;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use tokio::sync::Mutex;

use crate::records::{
    Applied, Consumed, ExternalChange, ImportedKey, LegacyCandidate, NewKeyRecord, PepperUsage,
    Replacement, Rotated, RotationTerms, VerifyRecord,
};
use crate::rows::{self, NewEvent, corrupt, key_columns, timestamp};
use crate::{Store, StoreError, migrations};

/// How long a statement waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a pooled connection before the store is "unavailable".
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections for lookups and listings.
const READERS: u32 = 4;
/// How often other processes' changes are looked for.
const CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Usage rows per UPDATE statement (two bound values each, well under SQLite's limit).
const USAGE_CHUNK: usize = 1000;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    /// The writer connection's last seen `data_version`; `None` after a failed poll.
    data_version: Arc<Mutex<Option<i64>>>,
    /// Whether the first [`Store::next_external_change`] has answered.
    announced: Arc<std::sync::atomic::AtomicBool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            return Err(StoreError::Open(format!(
                "the directory {} for the database does not exist",
                dir.display()
            )));
        }
        let base = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::Database)?
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Keep the one writer connection for the process's life: `data_version`
            // is per connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: an acknowledged revocation survives a power loss, not only
                    // a process crash. Usage is written in batches, so the cost is
                    // one sync per mutation or flush.
                    .synchronous(SqliteSynchronous::Full),
            )
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(base.read_only(true))
            .await?;
        // The baseline for noticing other processes' changes from now on.
        let version: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&writer)
            .await?;
        Ok(Self {
            writer,
            readers,
            data_version: Arc::new(Mutex::new(Some(version))),
            announced: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    /// [`Store::insert_keys`] without the page cache setting around it.
    async fn insert_all(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError> {
        // One prepared statement, executed per row inside one transaction: SQLite is
        // in-process, so there is no round trip to batch away, only the commit.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for record in new {
            insert_row(&mut tx, record).await?;
            insert_event(&mut tx, &created_event(record, actor)).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_row(conn: &mut SqliteConnection, new: &NewKeyRecord) -> Result<(), StoreError> {
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
    .bind(key.id.as_bytes().as_slice())
    .bind(key.user_id.as_str())
    .bind(&key.name)
    .bind(key.description.as_deref())
    .bind(new.hash.as_bytes().as_slice())
    .bind(i64::from(new.pepper_version))
    .bind(&key.prefix)
    .bind(&key.postfix)
    .bind(key.status.as_str())
    .bind(permissions_to(&key.permissions))
    .bind(key.created_at.as_millis())
    .bind(key.last_used_at.map(Timestamp::as_millis))
    .bind(key.revoked_at.map(Timestamp::as_millis))
    .bind(key.expires_at.map(Timestamp::as_millis))
    .bind(limit_requests)
    .bind(limit_seconds)
    .bind(key.metadata.as_ref().map(Metadata::as_str))
    .bind(key.rotated_from.map(|id| id.as_bytes().to_vec()))
    .bind(key.rotated_to.map(|id| id.as_bytes().to_vec()))
    .bind(rows::remaining_column(key.remaining))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn created_event<'a>(record: &'a NewKeyRecord, actor: &'a Actor) -> NewEvent<'a> {
    NewEvent {
        at: record.key.created_at,
        actor,
        action: "create",
        key_id: Some(record.key.id),
        user_id: &record.key.user_id,
        changes: rows::key_changes(None, Some(&record.key)),
    }
}

async fn insert_event(conn: &mut SqliteConnection, event: &NewEvent<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_events (at, actor_kind, actor_id, action, key_id, user_id, changes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.at.as_millis())
    .bind(event.actor.kind())
    .bind(event.actor.id())
    .bind(event.action)
    .bind(event.key_id.map(|id| id.as_bytes().to_vec()))
    .bind(event.user_id.as_str())
    .bind(&event.changes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn key_id(bytes: &[u8]) -> Result<KeyId, StoreError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| corrupt("id"))?;
    Ok(KeyId::from_bytes(bytes))
}

fn permissions_from(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|_| corrupt("permissions"))
}

fn permissions_to(names: &[String]) -> String {
    serde_json::to_string(names).expect("a list of strings serialises")
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    let status: String = row.try_get("status")?;
    let user_id: String = row.try_get("user_id")?;
    Ok(ApiKey {
        id: key_id(row.try_get::<&[u8], _>("id")?)?,
        user_id: UserId::from_stored(&user_id).map_err(|_| corrupt("user_id"))?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        prefix: row.try_get("prefix")?,
        postfix: row.try_get("postfix")?,
        status: status.parse::<KeyStatus>().map_err(|_| corrupt("status"))?,
        permissions: permissions_from(row.try_get("permissions")?)?,
        created_at: timestamp(Some(row.try_get("created_at")?), "created_at")?
            .expect("Some in, Some out"),
        last_used_at: timestamp(row.try_get("last_used_at")?, "last_used_at")?,
        revoked_at: timestamp(row.try_get("revoked_at")?, "revoked_at")?,
        expires_at: timestamp(row.try_get("expires_at")?, "expires_at")?,
        rate_limit: rows::rate_limit(
            row.try_get("rate_limit_requests")?,
            row.try_get("rate_limit_per_seconds")?,
        )?,
        metadata: rows::metadata(row.try_get("metadata")?)?,
        rotated_from: row
            .try_get::<Option<&[u8]>, _>("rotated_from")?
            .map(key_id)
            .transpose()?,
        rotated_to: row
            .try_get::<Option<&[u8]>, _>("rotated_to")?
            .map(key_id)
            .transpose()?,
        remaining: rows::remaining(row.try_get("remaining")?)?,
    })
}

fn verify_record(row: &SqliteRow) -> Result<VerifyRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let user_id: String = row.try_get("user_id")?;
    let version: i64 = row.try_get("pepper_version")?;
    Ok(VerifyRecord {
        id: key_id(row.try_get::<&[u8], _>("id")?)?,
        user_id: UserId::from_stored(&user_id).map_err(|_| corrupt("user_id"))?,
        status: status.parse().map_err(|_| corrupt("status"))?,
        permissions: permissions_from(row.try_get("permissions")?)?,
        expires_at: timestamp(row.try_get("expires_at")?, "expires_at")?,
        last_used_at: timestamp(row.try_get("last_used_at")?, "last_used_at")?,
        rate_limit: rows::rate_limit(
            row.try_get("rate_limit_requests")?,
            row.try_get("rate_limit_per_seconds")?,
        )?,
        metadata: rows::metadata(row.try_get("metadata")?)?,
        remaining: rows::remaining(row.try_get("remaining")?)?,
        pepper_version: u16::try_from(version).map_err(|_| corrupt("pepper_version"))?,
    })
}

/// Reads a key of `owner` (any owner: `None`) inside a write transaction (which
/// holds SQLite's write lock), so the change is decided on the row as it is.
async fn read_key(
    conn: &mut SqliteConnection,
    owner: Option<&UserId>,
    id: KeyId,
) -> Result<(ApiKey, KeyHash), StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        key_columns!(),
        ", key_hash FROM api_keys WHERE id = $1 AND ($2 IS NULL OR user_id = $2)"
    ))
    .bind(id.as_bytes().as_slice())
    .bind(owner_str(owner))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    let hash = KeyHash::from_slice(row.try_get("key_hash")?).ok_or_else(|| corrupt("key_hash"))?;
    Ok((key_from_row(&row)?, hash))
}

fn owner_str(owner: Option<&UserId>) -> Option<&str> {
    owner.map(UserId::as_str)
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate::Migrator::new(migrations::SQLITE).await?;
        // A newer version may have migrated already: its migrations only add, so this
        // one still runs (a rollback, or an old instance restarting mid-upgrade).
        migrator.set_ignore_missing(true);
        migrator.run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        sqlx::query("SELECT 1").execute(&self.writer).await?;
        Ok(())
    }

    async fn insert_key(
        &self,
        new: &NewKeyRecord,
        max_live: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let key = &new.key;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let live: i64 = sqlx::query_scalar(rows::COUNT_LIVE)
            .bind(key.user_id.as_str())
            .bind(key.created_at.as_millis())
            .fetch_one(&mut *tx)
            .await?;
        if live >= i64::from(max_live) {
            return Err(StoreError::LimitReached { limit: max_live });
        }
        insert_row(&mut tx, new).await?;
        insert_event(&mut tx, &created_event(new, actor)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_keys(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError> {
        // Inserts land at random places in the hash index: with the default 2 MiB
        // page cache a large load re-reads its pages from the OS over and over. The
        // larger cache is for the load only; the server keeps its memory small.
        sqlx::query("PRAGMA cache_size = -65536")
            .execute(&self.writer)
            .await?;
        let inserted = self.insert_all(new, actor).await;
        let restored = sqlx::query("PRAGMA cache_size = -2000")
            .execute(&self.writer)
            .await;
        inserted?;
        restored?;
        Ok(())
    }

    async fn list_keys(&self, owner: Option<&UserId>) -> Result<Vec<ApiKey>, StoreError> {
        // Two statements rather than `$1 IS NULL OR user_id = $1`, which SQLite
        // cannot answer from the (user_id, created_at) index.
        let rows = match owner {
            Some(user) => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(user.as_str())
                .fetch_all(&self.readers)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys ORDER BY created_at DESC, id DESC"
                ))
                .fetch_all(&self.readers)
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
            " FROM api_keys WHERE id = $1 AND ($2 IS NULL OR user_id = $2)"
        ))
        .bind(id.as_bytes().as_slice())
        .bind(owner_str(owner))
        .fetch_optional(&self.readers)
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
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(verify_record).transpose()
    }

    async fn import_keys(&self, keys: &[ImportedKey], actor: &Actor) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut added = 0;
        for key in keys {
            let id = key.record.key.id;
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = $1")
                .bind(id.as_bytes().as_slice())
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
            .bind(id.as_bytes().as_slice())
            .bind(kind)
            .bind(digest)
            .bind(salt)
            .bind(&key.head)
            .execute(&mut *tx)
            .await?;
            let mut event = created_event(&key.record, actor);
            event.action = "import";
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
            .fetch_all(&self.readers)
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE api_keys SET key_hash = $2, pepper_version = $3 WHERE id = $1")
            .bind(id.as_bytes().as_slice())
            .bind(hash.as_bytes().as_slice())
            .bind(i64::from(version))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM legacy_credentials WHERE key_id = $1")
            .bind(id.as_bytes().as_slice())
            .execute(&mut *tx)
            .await?;
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let (key, hash) = read_key(&mut tx, owner, id).await?;
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
        .bind(id.as_bytes().as_slice())
        .bind(new.status.as_str())
        .bind(new.revoked_at.map(Timestamp::as_millis))
        .bind(permissions_to(&new.permissions))
        .bind(now.as_millis())
        .bind(limit_requests)
        .bind(limit_seconds)
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let (old, old_hash) = read_key(&mut tx, owner, id).await?;
        let (ending, new) = rows::rotate(&old, replacement, terms.grace_seconds, now)?;
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
        .bind(id.as_bytes().as_slice())
        .bind(ending.expires_at.map(Timestamp::as_millis))
        .bind(replacement.id.as_bytes().as_slice())
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
                .bind(id.as_bytes().as_slice())
                .bind(cost)
                .fetch_optional(&self.writer)
                .await?;
            if let Some(left) = left {
                return Ok(Consumed::Left(u64::try_from(left).unwrap_or(0)));
            }
        }
        // A check alone reads through a reader, beside the writer.
        let pool = if cost == 0 {
            &self.readers
        } else {
            &self.writer
        };
        let row: Option<Option<i64>> = sqlx::query_scalar(rows::REMAINING)
            .bind(id.as_bytes().as_slice())
            .fetch_optional(pool)
            .await?;
        rows::not_consumed(row, cost.unsigned_abs())
    }

    async fn record_usage(&self, usage: &[(KeyId, Timestamp)]) -> Result<u64, StoreError> {
        let mut changed = 0;
        for chunk in usage.chunks(USAGE_CHUNK) {
            let mut sql = QueryBuilder::<Sqlite>::new("WITH usage (id, used_at) AS (");
            sql.push_values(chunk, |mut row, (id, at)| {
                row.push_bind(id.as_bytes().to_vec())
                    .push_bind(at.as_millis());
            });
            sql.push(
                ") UPDATE api_keys SET last_used_at = usage.used_at FROM usage \
                 WHERE api_keys.id = usage.id \
                 AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < usage.used_at)",
            );
            changed += sql.build().execute(&self.writer).await?.rows_affected();
        }
        Ok(changed)
    }

    async fn rehash(&self, id: KeyId, hash: &KeyHash, version: u16) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET key_hash = $2, pepper_version = $3 WHERE id = $1")
            .bind(id.as_bytes().as_slice())
            .bind(hash.as_bytes().as_slice())
            .bind(i64::from(version))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_user(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query("DELETE FROM api_keys WHERE user_id = $1 RETURNING id, key_hash")
            .bind(user.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        for row in &rows {
            ids.push(key_id(row.try_get::<&[u8], _>("id")?)?);
            hashes.push(
                KeyHash::from_slice(row.try_get("key_hash")?).ok_or_else(|| corrupt("key_hash"))?,
            );
        }
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
        tx.commit().await?;
        Ok(hashes)
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        let key = query.key_id.map(|id| id.as_bytes().to_vec());
        let mut sql = rows::event_query::<Sqlite, _>(query, key);
        let rows = sql.build().fetch_all(&self.readers).await?;
        rows.iter()
            .map(|row| {
                let key: Option<&[u8]> = row.try_get("key_id")?;
                rows::event(
                    row.try_get("id")?,
                    row.try_get("at")?,
                    (row.try_get("actor_kind")?, row.try_get("actor_id")?),
                    row.try_get("action")?,
                    key.map(key_id).transpose()?,
                    row.try_get("user_id")?,
                    row.try_get("changes")?,
                )
            })
            .collect()
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>, StoreError> {
        let rows = sqlx::query(rows::PEPPER_USAGE)
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|row| {
                rows::pepper_usage(
                    row.try_get::<i64, _>("pepper_version")?,
                    row.try_get("live")?,
                    row.try_get("revoked")?,
                )
            })
            .collect()
    }

    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        // The baseline was taken at open: from the first call on, changes are seen.
        if !self
            .announced
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(ExternalChange::Unknown);
        }
        tokio::time::sleep(CHANGE_POLL_INTERVAL).await;
        let mut last = self.data_version.lock().await;
        let version = match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(&self.writer)
            .await
        {
            Ok(version) => version,
            Err(err) => {
                // Blind until the next successful poll, which reports Unknown.
                *last = None;
                return Err(err.into());
            }
        };
        Ok(match last.replace(version) {
            Some(previous) if previous == version => ExternalChange::Alive,
            _ => ExternalChange::Unknown,
        })
    }

    async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}
