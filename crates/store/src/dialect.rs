//! What really differs between the backends, and nothing else.
//!
//! Every operation of [`Store`](crate::Store) is written once, in `operations/`, on
//! top of this trait: begin a write transaction, read the row (locked where the
//! backend needs it), decide, write, record the event, announce the change, commit.
//! A backend says how it begins a write, how it keeps a row and a user's key count
//! from concurrent changes, and how other instances learn of a change; it keeps its
//! pools, its change feed and its migrations.

use std::fmt::Debug;
use std::future::Future;

use keyward_core::hash::KeyHash;
use keyward_core::model::UserId;
use sqlx::Transaction;
use sqlx::pool::PoolConnection;

use crate::db::{Backend, Statement};
use crate::error::StoreError;
use crate::records::{ExternalChange, VerifyRecord};
use crate::sql;
use crate::writes::Writes;

/// A connection of `D`'s database.
pub(crate) type Connection<D> = <<D as Dialect>::Db as sqlx::Database>::Connection;
/// A row of `D`'s database.
pub(crate) type Row<D> = <<D as Dialect>::Db as sqlx::Database>::Row;

/// Runs one statement on a connection or transaction of `D`; its rows.
pub(crate) async fn run<D: Dialect>(
    conn: &mut Connection<D>,
    statement: Statement<'_>,
) -> Result<Vec<Row<D>>, StoreError> {
    D::Db::run(conn, statement).await
}

/// A backend (implemented by [`SqliteStore`](crate::SqliteStore) and
/// [`PostgresStore`](crate::PostgresStore)). Public only so that it can bound the
/// [`Store`](crate::Store) implementation; it is not reachable from outside.
pub trait Dialect: Clone + Debug + Send + Sync + 'static {
    type Db: Backend;

    /// A short backend name for logs and metrics.
    const NAME: &'static str;

    /// How a key is read inside a write transaction so that the change is decided on
    /// the row as it is: `sql::READ_KEY` where the transaction already excludes other
    /// writers, `sql::READ_KEY_FOR_UPDATE` where the row must be locked.
    const READ_KEY_TO_CHANGE: &'static str;

    /// How statements built for many rows mark their values.
    const BULK_BINDS: sql::Binds;

    /// Whether a usage flush keeps its statements of a whole chunk prepared on the
    /// connection (see `Statement::recurring`).
    const KEEPS_FLUSH_STATEMENTS: bool;

    /// How due webhook deliveries are claimed: `sql::CLAIM_DELIVERIES` where the write
    /// transaction already excludes other writers, `sql::CLAIM_DELIVERIES_SKIP_LOCKED`
    /// where instances must pass over rows another is claiming.
    const CLAIM_DELIVERIES: &'static str;

    /// How a copy walks a table whose key holds text: in byte order on both backends
    /// (PostgreSQL's default collation orders text by language rules), appended to
    /// each text key column where it is compared or ordered.
    const BYTE_ORDER: &'static str;

    /// What an `INSERT` giving identity columns their values needs (PostgreSQL's
    /// `GENERATED ALWAYS` ids refuse them otherwise).
    const EXPLICIT_IDS: &'static str;

    /// Whether keyward's schema is there at all (at any version), as a row with column
    /// `n`: 0 or 1.
    const HAS_SCHEMA: &'static str;

    /// The highest id a table's id counter has handed out (`$1`: the table), as a row
    /// with column `n` (no row, or NULL: none yet).
    const READ_COUNTER: &'static str;

    /// Statements that set a table's id counter to `value`, so ids handed out later
    /// follow the copied ones and none is ever reused.
    fn set_counter(table: &'static str, value: i64) -> Vec<Statement<'static>>;

    /// A read-only transaction that sees one snapshot of the database throughout, while
    /// other connections and instances go on writing.
    fn snapshot(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// Verification's read of one key by its hash (`sql::FIND_BY_HASH`): each backend
    /// has a way of its own (SQLite's lookup threads, PostgreSQL's batches).
    fn find_by_hash(
        &self,
        hash: &KeyHash,
    ) -> impl Future<Output = Result<Option<VerifyRecord>, StoreError>> + Send;

    /// A transaction that will write.
    fn begin(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// A connection for reads outside a transaction.
    fn reader(&self) -> impl Future<Output = Result<PoolConnection<Self::Db>, StoreError>> + Send;

    /// Runs one statement on a read connection; its rows.
    fn read<'a>(
        &'a self,
        statement: Statement<'a>,
    ) -> impl Future<Output = Result<Vec<Row<Self>>, StoreError>> + Send + 'a {
        async move {
            let mut conn = self.reader().await?;
            run::<Self>(&mut conn, statement).await
        }
    }

    /// A connection for a write that is one statement (autocommit).
    fn writer(&self) -> impl Future<Output = Result<PoolConnection<Self::Db>, StoreError>> + Send;

    /// What serialises changes to one user's key count (creates, rotations, a
    /// deletion) until the transaction ends, if the transaction alone does not.
    fn lock_user(_user: &UserId) -> Option<Statement<'_>> {
        None
    }

    /// What tells other instances, when the transaction commits, that these keys
    /// changed (their cached verifications are stale).
    fn announce(_hashes: &[KeyHash]) -> Vec<Statement<'static>> {
        Vec::new()
    }

    /// Sets the connection up for a bulk insert (`loading`), or back to normal.
    fn bulk_load(&self, _loading: bool) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Applies the embedded migrations that have not run yet.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Succeeds if every pool answers a trivial query.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether writes succeed, as learnt from the last ones (shared by clones).
    fn writes(&self) -> &Writes;

    /// A write that changes nothing, to learn whether the database stores changes
    /// again after it refused them.
    fn probe_write(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// See [`Store::next_external_change`](crate::Store::next_external_change).
    fn next_external_change(
        &self,
    ) -> impl Future<Output = Result<ExternalChange, StoreError>> + Send;

    /// Closes the pools.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
