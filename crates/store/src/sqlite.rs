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
//! - A full disk (or an I/O error) makes SQLite roll a transaction back by itself.
//!   sqlx does not see it, still counts the connection as inside the transaction, and
//!   refuses every later `BEGIN` on it: the writer connection is then replaced before
//!   it is handed out again, so the first write after space is freed succeeds.
//! - The database file is created readable by its owner only (0600): it holds key
//!   hashes, user ids and the audit trail. SQLite gives its `-wal` and `-shm` files
//!   the database file's mode.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArgumentsBuffer, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous, SqliteTypeInfo, SqliteValueRef,
};
use sqlx::{Decode, Encode, Sqlite, Transaction, Type};
use tokio::sync::Mutex;

use crate::db::{PermissionList, Statement, StoredPermissions, params};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::records::{ExternalChange, VerifyRecord};
use crate::writes::Writes;
use crate::{migrations, sql};
use keyward_core::hash::KeyHash;

mod backup;
mod lookups;

pub use backup::{Backup, BackupError, same_file};

use lookups::Lookups;

/// How long a statement waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a pooled connection before the store is "unavailable".
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections for lookups and listings.
const READERS: u32 = 4;
/// How often other processes' changes are looked for.
const CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The free space below which a database that refused writes is not taken for
/// writable again: a key's creation writes a few pages, a usage flush up to a few
/// hundred KiB.
const MIN_FREE_SPACE: u64 = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    lookups: Lookups,
    /// The writer connection's last seen `data_version`; `None` after a failed poll.
    data_version: Arc<Mutex<Option<i64>>>,
    /// Whether the first [`Store::next_external_change`] has answered.
    announced: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the writer connection was replaced: its `data_version` starts anew,
    /// so the next poll cannot tell what changed meanwhile.
    writer_replaced: Arc<std::sync::atomic::AtomicBool>,
    writes: Arc<Writes>,
    /// The database file, for its filesystem's free space.
    path: Arc<Path>,
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
            .map_err(|err| StoreError::Database(err.into()))?
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Without statistics, SQLite would rather scan a million keys and probe an
            // index it builds on the spot over 1,000 rows of `VALUES` than look each of
            // those rows up by its id: every usage flush scanned the whole table. Every
            // statement here has the index it needs, so none is built at run time.
            .pragma("automatic_index", "OFF");
        create_private(path)?;
        let writes = Arc::new(Writes::default());
        let writer_replaced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer_check = WriterCheck {
            writes: Arc::clone(&writes),
            refusals_seen: Arc::default(),
            replaced: Arc::clone(&writer_replaced),
            path: path.into(),
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A writer connection that can no longer write is replaced before it
            // is handed out (see `WriterCheck`).
            .before_acquire(move |conn, _| {
                let usable = writer_check.usable(conn);
                Box::pin(async move { Ok(usable) })
            })
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
        let lookups = Lookups::start(path)?;
        // The baseline for noticing other processes' changes from now on.
        let version: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&writer)
            .await?;
        Ok(Self {
            writer,
            readers,
            lookups,
            data_version: Arc::new(Mutex::new(Some(version))),
            announced: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            writer_replaced,
            writes,
            path: path.into(),
        })
    }
}

impl Dialect for SqliteStore {
    type Db = Sqlite;
    const NAME: &'static str = "sqlite";
    // The write transaction holds SQLite's write lock: no other writer can change the
    // row, or any user's keys, before it commits.
    const READ_KEY_TO_CHANGE: &'static str = sql::READ_KEY;
    const BULK_BINDS: sql::Binds = sql::Binds::Anonymous;
    // Parsing a 1,000-row statement was most of a flush's time, and only the one
    // writer connection keeps them.
    const KEEPS_FLUSH_STATEMENTS: bool = true;
    const CLAIM_DELIVERIES: &'static str = sql::CLAIM_DELIVERIES;
    // SQLite's default collation is already byte order.
    const BYTE_ORDER: &'static str = "";
    const EXPLICIT_IDS: &'static str = "";
    const HAS_SCHEMA: &'static str = "SELECT COUNT(*) AS n FROM sqlite_master \
         WHERE type = 'table' AND name = '_sqlx_migrations'";
    const READ_COUNTER: &'static str = "SELECT seq AS n FROM sqlite_sequence WHERE name = $1";

    fn set_counter(table: &'static str, value: i64) -> Vec<Statement<'static>> {
        vec![
            Statement::new(
                "UPDATE sqlite_sequence SET seq = $2 WHERE name = $1",
                params![table, value],
            ),
            Statement::new(
                "INSERT INTO sqlite_sequence (name, seq) SELECT $1, $2 \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)",
                params![table, value],
            ),
        ]
    }

    async fn snapshot(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        // A deferred transaction on a reader: its first read fixes the snapshot, which
        // WAL keeps for it while the writer goes on.
        Ok(self.readers.begin().await?)
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError> {
        self.lookups.find(hash).await
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        // IMMEDIATE takes the write lock up front (see the module's notes).
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn reader(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        Ok(self.readers.acquire().await?)
    }

    async fn writer(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        Ok(self.writer.acquire().await?)
    }

    async fn bulk_load(&self, loading: bool) -> Result<(), StoreError> {
        // Inserts land at random places in the hash index: with the default 2 MiB
        // page cache a large load re-reads its pages from the OS over and over. The
        // larger cache is for the load only; the server keeps its memory small.
        let pages = if loading {
            "PRAGMA cache_size = -65536"
        } else {
            "PRAGMA cache_size = -2000"
        };
        sqlx::query(pages).execute(&self.writer).await?;
        Ok(())
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

    fn writes(&self) -> &Writes {
        &self.writes
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        // After a checkpoint the WAL is written again from its start, in space the file
        // already has: a one-page write can pass on a full disk where a key's rows do
        // not. The filesystem must also have room for writes that grow the files.
        let path = Arc::clone(&self.path);
        // statvfs can block (a network filesystem): off the async threads.
        let free = tokio::task::spawn_blocking(move || free_space(&path))
            .await
            .ok()
            .flatten();
        if let Some(free) = free
            && free < MIN_FREE_SPACE
        {
            return Err(StoreError::NotWritable(
                crate::Unwritable::DiskFull,
                format!("{} KiB free on the database's filesystem", free / 1024).into(),
            ));
        }
        // Setting `user_version` to its own value rewrites the database's first page:
        // a real write through the journal, that changes nothing. keyward does not
        // use `user_version` otherwise (migrations are in `_sqlx_migrations`).
        let mut conn = self.writer.acquire().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {version}"
        )))
        .execute(&mut *conn)
        .await?;
        Ok(())
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
        if self
            .writer_replaced
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            // Another connection's count: not comparable with the last one.
            *last = None;
        }
        Ok(match last.replace(version) {
            Some(previous) if previous == version => ExternalChange::Alive,
            _ => ExternalChange::Unknown,
        })
    }

    async fn close(&self) {
        self.lookups.close();
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// Decides, each time the writer connection is handed out, whether it can still
/// write; the pool replaces it when it cannot.
struct WriterCheck {
    writes: Arc<Writes>,
    refusals_seen: Arc<std::sync::atomic::AtomicU64>,
    replaced: Arc<std::sync::atomic::AtomicBool>,
    path: Arc<Path>,
}

impl WriterCheck {
    fn usable(&self, conn: &sqlx::SqliteConnection) -> bool {
        use std::sync::atomic::Ordering;
        // Still "in a transaction" once back in the pool: SQLite rolled it back by
        // itself (a full disk, an I/O error), and sqlx would refuse every later BEGIN
        // on this connection.
        let stale = sqlx::Connection::is_in_transaction(conn);
        // A write refused as read-only, or by the filesystem, since the last check,
        // and the files writable now: a connection opened while they could not be
        // written stays read-only for good, so a new one must open them. While they
        // stay unwritable the connection is kept: a new one would be no better, and
        // each replacement costs the verification cache a clearing (see
        // `next_external_change`).
        let refusals = self.writes.refusals();
        let refused = self.refusals_seen.load(Ordering::Relaxed) != refusals
            && matches!(
                self.writes.unwritable(),
                Some(crate::Unwritable::ReadOnly | crate::Unwritable::WriteRefused)
            )
            && writable_now(&self.path);
        if refused || stale {
            self.refusals_seen.store(refusals, Ordering::Relaxed);
        }
        if stale || refused {
            self.replaced.store(true, Ordering::SeqCst);
            tracing::debug!(stale, refused, "replacing the writer connection");
        }
        !(stale || refused)
    }
}

/// Creates the database file, if it is not there yet, readable and writable by its
/// owner only; SQLite would create it with the umask's mode (0644 as a rule). An
/// existing file readable by others is left as it is, with a warning: its mode may be
/// the operator's choice (a backup group).
#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o004 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    "the database file is readable by every user of this machine (it holds key hashes, user ids and the audit trail); `chmod 600` it and its -wal and -shm files, or 640 for a backup group"
                );
            }
            Ok(())
        }
        // A read-only directory, say: SQLite's own open says what is wrong.
        Err(_) => Ok(()),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Whether the database file and its WAL may be written now, as far as the
/// filesystem says (permissions, a read-only mount, the immutable flag).
#[cfg(unix)]
fn writable_now(path: &Path) -> bool {
    use rustix::fs::{Access, access};
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = Path::new(&wal);
    access(path, Access::WRITE_OK).is_ok()
        && (!wal.exists() || access(wal, Access::WRITE_OK).is_ok())
}

#[cfg(not(unix))]
fn writable_now(_path: &Path) -> bool {
    true
}

/// Bytes free for unprivileged writes on the filesystem holding `path`.
#[cfg(unix)]
fn free_space(path: &Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(path).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_path: &Path) -> Option<u64> {
    None
}

// A permission list is stored as a JSON array in a TEXT column.
impl Type<Sqlite> for PermissionList {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for PermissionList {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        let json = serde_json::to_string(&self.0)?;
        <String as Encode<Sqlite>>::encode(json, buf)
    }
}

impl Type<Sqlite> for StoredPermissions {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'r> Decode<'r, Sqlite> for StoredPermissions {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::Json(<String as Decode<Sqlite>>::decode(value)?))
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::SqliteStore;
    use crate::sql::{self, Binds};

    /// `EXPLAIN QUERY PLAN` of `statement` with `values` NULLs bound, one line per step.
    async fn plan(store: &SqliteStore, statement: &str, values: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {statement}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
        for _ in 0..values {
            query = query.bind(None::<i64>);
        }
        let rows = query.fetch_all(&store.writer).await.unwrap();
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect()
    }

    #[tokio::test]
    async fn the_audit_trail_keeps_its_ids_and_their_counter_through_the_credentials_migration() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        // A database as version 8 left it, with three events of which the last was
        // removed: ids are never handed out twice, even that one.
        let before = crate::migrations::Embedded(&crate::migrations::SQLITE.0[..8]);
        sqlx::migrate::Migrator::new(before)
            .await
            .unwrap()
            .run(&store.writer)
            .await
            .unwrap();
        for at in 1..=3 {
            sqlx::query(
                "INSERT INTO key_events (at, actor_kind, actor_id, action, key_id, user_id, \
                 changes) VALUES (?, 'admin', 'ops', 'create', NULL, 'alice', '{}')",
            )
            .bind(at)
            .execute(&store.writer)
            .await
            .unwrap();
        }
        sqlx::query("DELETE FROM key_events WHERE id = 3")
            .execute(&store.writer)
            .await
            .unwrap();

        crate::dialect::Dialect::migrate(&store).await.unwrap();
        let kept: Vec<(i64, i64)> = sqlx::query_as("SELECT id, at FROM key_events ORDER BY id")
            .fetch_all(&store.writer)
            .await
            .unwrap();
        assert_eq!(kept, vec![(1, 1), (2, 2)]);
        let next = sqlx::query(
            "INSERT INTO key_events (at, actor_kind, actor_id, action, key_id, user_id, changes) \
             VALUES (4, 'admin', 'ops', 'create', NULL, 'alice', '{}')",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        assert_eq!(next.last_insert_rowid(), 4, "3 was handed out before");
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'key_events' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&store.writer)
        .await
        .unwrap();
        assert_eq!(
            indexes,
            ["key_events_at", "key_events_key", "key_events_user"]
        );
        // A credential actor must come with the credential's id, and only it.
        let unpaired = sqlx::query(
            "INSERT INTO key_events (at, actor_kind, actor_id, action, key_id, user_id, changes) \
             VALUES (5, 'credential', 'billing', 'create', NULL, 'alice', '{}')",
        )
        .execute(&store.writer)
        .await;
        assert!(unpaired.is_err(), "{unpaired:?}");
    }

    #[tokio::test]
    async fn a_usage_flush_finds_each_key_by_its_id_rather_than_scanning_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        crate::dialect::Dialect::migrate(&store).await.unwrap();
        for (statement, values) in [
            (sql::record_usage(Binds::Anonymous, 1_000), 2_000),
            (sql::record_usage_history(Binds::Anonymous, 1_000), 4_000),
        ] {
            let steps = plan(&store, &statement, values).await;
            assert!(
                steps.iter().any(|s| s.starts_with("SEARCH api_keys")),
                "{steps:#?}"
            );
            assert!(
                !steps.iter().any(|s| s.starts_with("SCAN api_keys")),
                "{steps:#?}"
            );
        }
    }
}
