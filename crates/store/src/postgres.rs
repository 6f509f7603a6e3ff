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

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::hash::KeyHash;
use keyward_core::model::UserId;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{
    PgArgumentBuffer, PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgTypeInfo, PgValueRef,
};
use sqlx::{Connection, Decode, Encode, PgConnection, Postgres, Transaction, Type};
use tokio::sync::Mutex;

mod batches;
mod notify;
mod tls;

use batches::Batches;

use crate::db::{PermissionList, Statement, StoredPermissions, params};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::records::{ConnectOptions, ExternalChange};
use crate::{migrations, sql};

/// The notification channel for key changes.
pub const CHANNEL: &str = "keyward_key_changes";
/// How long a caller waits for a pooled connection before the store is "unavailable".
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any statement may run.
const STATEMENT_TIMEOUT_MS: &str = "5000";
/// A silent listening connection is probed this often, so a dead one (a network
/// partition sends no error) is noticed within about two seconds; each successful probe
/// is reported as [`ExternalChange::Alive`], which keeps the engine's cache lease.
const LISTENER_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a probe may take before the listening connection counts as dead.
const LISTENER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Verification's reads, gathered.
    lookups: Batches,
    /// For the migration connection, which must not carry the statement timeout.
    connect: Arc<PgConnectOptions>,
    /// A separate pool of one, for the `LISTEN` connection, so closing the main pool
    /// never waits on it.
    listen_pool: PgPool,
    listener: Arc<Mutex<Option<PgListener>>>,
    writes: Arc<crate::writes::Writes>,
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
        Ok(Err(err)) => {
            let failure = connect_failure(&err);
            let hint = tls::hint(&failure).map_or(String::new(), |hint| format!("; {hint}"));
            Err(StoreError::Open(format!(
                "cannot connect to {target}: {failure}{hint}"
            )))
        }
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
        if let Some(warning) = tls::warning(&connect) {
            tracing::warn!("{warning}");
        }
        // The change feed's connection below is made from the same options: the same
        // TLS mode and certificate authority as the pool's.
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
            lookups: Batches::start(pool.clone()),
            pool,
            connect: Arc::new(connect),
            listen_pool,
            listener: Arc::new(Mutex::new(None)),
            writes: Arc::default(),
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

impl Dialect for PostgresStore {
    type Db = Postgres;
    const NAME: &'static str = "postgres";
    // Read-then-write changes lock the row until the transaction ends.
    const READ_KEY_TO_CHANGE: &'static str = sql::READ_KEY_FOR_UPDATE;
    const BULK_BINDS: sql::Binds = sql::Binds::Numbered;
    // A kept 1,000-row history upsert holds about 3.3 MB in the backend (its plan
    // source, plan and query), on each pooled connection that ran it; and preparing
    // it anew measured no slower on the cold path. Flushes are prepared per run.
    const KEEPS_FLUSH_STATEMENTS: bool = false;
    const CLAIM_DELIVERIES: &'static str = sql::CLAIM_DELIVERIES_SKIP_LOCKED;
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    const EXPLICIT_IDS: &'static str = " OVERRIDING SYSTEM VALUE";
    const HAS_SCHEMA: &'static str = "SELECT COUNT(*) AS n FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'";
    const READ_COUNTER: &'static str =
        "SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass) AS n";

    fn set_counter(table: &'static str, value: i64) -> Vec<Statement<'static>> {
        // A sequence cannot be set to 0: a counter that has handed out nothing stays.
        if value < 1 {
            return Vec::new();
        }
        vec![Statement::new(
            "SELECT setval(pg_get_serial_sequence($1, 'id'), $2)",
            params![table, value],
        )]
    }

    async fn snapshot(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?)
    }

    async fn find_by_hash(
        &self,
        hash: &KeyHash,
    ) -> Result<Option<crate::records::VerifyRecord>, StoreError> {
        self.lookups.find(hash).await
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    async fn reader(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    async fn writer(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    fn lock_user(user: &UserId) -> Option<Statement<'_>> {
        // A transaction-scoped advisory lock on the user: creates, rotations and a
        // deletion for one user are serialised across every instance until commit.
        Some(Statement::new(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            params![user.as_str()],
        ))
    }

    fn announce(hashes: &[KeyHash]) -> Vec<Statement<'static>> {
        // Queued with the transaction: PostgreSQL delivers them when it commits.
        notify::payloads(hashes)
            .map(|payload| Statement::new("SELECT pg_notify($1, $2)", params![CHANNEL, payload]))
            .collect()
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

    fn writes(&self) -> &crate::writes::Writes {
        &self.writes
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        // A standby, or sessions made read-only (`default_transaction_read_only`),
        // refuse every change; otherwise a transaction given an id commits a record
        // to the write-ahead log.
        let mut tx = self.pool.begin().await?;
        let read_only: bool = sqlx::query_scalar(
            "SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()",
        )
        .fetch_one(&mut *tx)
        .await?;
        if read_only {
            return Err(StoreError::NotWritable(
                crate::Unwritable::ReadOnly,
                "the server takes read-only transactions only".into(),
            ));
        }
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
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
            Ok(Ok(Some(notification))) => Ok(notify::parse(notification.payload())),
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

// A permission list is a TEXT[] column.
impl Type<Postgres> for PermissionList {
    fn type_info() -> PgTypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for PermissionList {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<String> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Postgres> for StoredPermissions {
    fn type_info() -> PgTypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for StoredPermissions {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::List(<Vec<String> as Decode<Postgres>>::decode(
            value,
        )?))
    }
}
