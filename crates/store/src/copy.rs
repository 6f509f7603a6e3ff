//! Copying one deployment's database into another (`keyward copy`): SQLite to
//! PostgreSQL, back, or between two databases of one kind.
//!
//! The source is read in one snapshot (a server may go on writing to it), table by
//! table in key order, in batches. Each batch is compared with the target's rows in
//! the same range of keys, and only what differs is written, in one transaction per
//! batch: rows missing or changed are upserted, rows the source no longer has are
//! deleted. So a run stopped anywhere (even by SIGKILL) resumes where it stopped
//! (the batches already copied compare equal and are only read), and a run after
//! the source changed brings over just the changes. Every table ends with a digest
//! of all its rows, computed on both sides; the target is marked as a copy in
//! progress until they are equal.
//!
//! Ids are copied as they are (keys, events, deliveries), with the counters that
//! hand out new ones, so every key verifies unchanged and no id is ever reused.

mod tables;

use keyward_core::time::Timestamp;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{Columns, Param, Statement, params};
use crate::dialect::{Connection, Dialect, Row, run};
use crate::error::StoreError;
use crate::interface::AnyStore;
use crate::{PostgresStore, SqliteStore, migrations, sql};
use tables::{Column, Kind, TABLES, Table};

/// Rows read and compared at a time; fewer for wide tables, so that a batch's
/// upsert stays within both backends' limit of values in one statement.
const BATCH_ROWS: usize = 1000;
/// Every change writes an audit event.
const NEWEST_EVENT: &str = "SELECT COALESCE(MAX(id), 0) AS n FROM key_events";
const MAX_VALUES: usize = 30_000;

/// How far a copy has come in one table.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub table: &'static str,
    /// Rows of the source compared so far.
    pub done: u64,
    /// The source's rows in its snapshot.
    pub total: u64,
}

/// What a copy did to one table, and its digests.
#[derive(Clone, Debug)]
pub struct TableCopied {
    pub table: &'static str,
    /// The source's rows (in its snapshot).
    pub rows: u64,
    /// Rows written to the target (missing or different there).
    pub written: u64,
    /// Rows deleted from the target (the source no longer has them).
    pub deleted: u64,
    /// SHA-256 over the table's rows in key order, hex: the source's and the
    /// target's after the copy.
    pub source_digest: String,
    pub target_digest: String,
    pub target_rows: u64,
}

impl TableCopied {
    pub fn matches(&self) -> bool {
        self.rows == self.target_rows && self.source_digest == self.target_digest
    }
}

/// The outcome of a copy.
#[derive(Clone, Debug)]
pub struct Copied {
    /// The deployment's id, the same on both sides now.
    pub deployment: String,
    /// Whether the target already held this deployment's data (an earlier copy's).
    pub resumed: bool,
    pub tables: Vec<TableCopied>,
    /// Whether the source recorded changes after its snapshot was taken (a server
    /// kept writing): they are not in the target yet.
    pub source_changed: bool,
}

impl Copied {
    /// Whether every table has the same rows on both sides.
    pub fn matches(&self) -> bool {
        self.tables.iter().all(TableCopied::matches)
    }
}

/// Why a copy did not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the {side} database's schema is at version {found}, this keyward's at {expected}: \
         {hint}"
    )]
    Schema {
        side: &'static str,
        found: i64,
        expected: i64,
        hint: &'static str,
    },
    #[error(
        "the target holds another deployment's data ({rows} rows in {table}): copy into an \
         empty database, or into one an earlier copy from this source filled"
    )]
    OtherDeployment { table: &'static str, rows: u64 },
    #[error(
        "the source is itself the target of an unfinished copy (started {started}): finish \
         that copy first"
    )]
    SourceUnfinished { started: Timestamp },
    #[error("the target is the source itself, under another URL: a copy needs two databases")]
    SameDatabase,
    #[error(
        "keyward has served the target since the last copy into it: copying again would \
         undo what was done there since (keys created, revoked or used). If the move is \
         done, there is nothing left to copy; to start over, copy into an empty database"
    )]
    TargetUsed,
    #[error(
        "this database is the target of a `keyward copy` that has not finished (started \
         {started}): run the copy again until it reports every table equal"
    )]
    Unfinished { started: Timestamp },
}

/// What a database says about the deployment it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub created_at: Timestamp,
    /// Set while a copy fills this database, until it ends with equal digests.
    pub copy_started_at: Option<Timestamp>,
    copy_nonce: Option<String>,
    /// Starts of `keyward serve` on this database, and their count when the last copy
    /// into it ended.
    pub uses: i64,
    pub uses_at_copy: Option<i64>,
}

const READ_DEPLOYMENT: &str =
    "SELECT id, created_at, copy_started_at, copy_nonce, uses, uses_at_copy FROM deployment";
const MARK_COPY: &str = "UPDATE deployment \
     SET id = $1, created_at = $2, copy_started_at = $3, copy_nonce = $4";
const UNMARK_COPY: &str = "UPDATE deployment SET copy_started_at = NULL, copy_nonce = NULL";
const COPY_FINISHED: &str =
    "UPDATE deployment SET copy_started_at = NULL, copy_nonce = NULL, uses_at_copy = uses";
const COUNT_USE: &str = "UPDATE deployment SET uses = uses + 1";
/// The migration that made the deployment row.
const DEPLOYMENT_MIGRATION: i64 = 14;

/// What a database is opened for, by [`begin_use`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// `keyward serve`: counted, so that a later copy into it is refused.
    Serve,
    /// An admin command or a migration.
    Admin,
}

/// Refuses a database that a copy is still filling (it lacks rows of its source),
/// and counts a server's start on it.
pub async fn begin_use(store: &AnyStore, use_: Use) -> Result<(), CopyError> {
    // Admin commands open a database without migrating it: one from before the
    // deployment row (migration 14) was never a copy's target. One they cannot read
    // fails them on their own statement, with its own error.
    match schema_version(store).await {
        Ok((version, _)) if version >= DEPLOYMENT_MIGRATION => {}
        _ if use_ == Use::Admin => return Ok(()),
        Ok(_) => {}
        Err(err) => return Err(err.into()),
    }
    if let Some(started) = deployment(store).await?.copy_started_at {
        return Err(CopyError::Unfinished { started });
    }
    if use_ == Use::Serve {
        let statement = || Statement::new(COUNT_USE, Vec::new());
        let counted = match store {
            AnyStore::Sqlite(store) => {
                async { run::<SqliteStore>(&mut *store.writer().await?, statement()).await }
                    .await
                    .map(drop)
            }
            AnyStore::Postgres(store) => {
                async { run::<PostgresStore>(&mut *store.writer().await?, statement()).await }
                    .await
                    .map(drop)
            }
        };
        // A server still starts on a database it cannot write to now (a full disk, a
        // standby): it answers verifications. Only the protection of a later copy is
        // lost, for this start.
        if let Err(err) = counted {
            tracing::warn!(error = %err, "could not count this start in the deployment row");
        }
    }
    Ok(())
}

/// The deployment the database at `store` holds.
pub async fn deployment(store: &AnyStore) -> Result<Deployment, StoreError> {
    match store {
        AnyStore::Sqlite(store) => {
            read_deployment::<SqliteStore>(&mut *store.reader().await?).await
        }
        AnyStore::Postgres(store) => {
            read_deployment::<PostgresStore>(&mut *store.reader().await?).await
        }
    }
}

/// The schema version the database is at (0: none yet), and this build's.
pub async fn schema_version(store: &AnyStore) -> Result<(i64, i64), StoreError> {
    match store {
        AnyStore::Sqlite(store) => Ok((
            read_schema::<SqliteStore>(&mut *store.reader().await?).await?,
            migrations::SQLITE.latest(),
        )),
        AnyStore::Postgres(store) => Ok((
            read_schema::<PostgresStore>(&mut *store.reader().await?).await?,
            migrations::POSTGRES.latest(),
        )),
    }
}

/// Copies every row of `source` into `target` (migrated first), as described in the
/// module's notes; `progress` hears of each batch.
pub async fn copy(
    source: &AnyStore,
    target: &AnyStore,
    now: Timestamp,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Copied, CopyError> {
    use AnyStore::{Postgres, Sqlite};
    match (source, target) {
        (Sqlite(s), Sqlite(t)) => Copy::run(s, t, now, progress).await,
        (Sqlite(s), Postgres(t)) => Copy::run(s, t, now, progress).await,
        (Postgres(s), Sqlite(t)) => Copy::run(s, t, now, progress).await,
        (Postgres(s), Postgres(t)) => Copy::run(s, t, now, progress).await,
    }
}

/// A column's value, as both backends hand it over.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Value {
    Null,
    Id(Uuid),
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<String>),
}

type Values = Vec<Value>;

impl Value {
    fn read(row: &impl Columns, column: &Column) -> Result<Self, StoreError> {
        let name = column.name;
        Ok(match column.kind {
            Kind::Id => row
                .maybe_id(name)?
                .map_or(Self::Null, |id| Self::Id(*id.as_uuid())),
            Kind::Text => row.maybe_text(name)?.map_or(Self::Null, Self::Text),
            Kind::Int => row.maybe_int(name)?.map_or(Self::Null, Self::Int),
            Kind::Small => row
                .maybe_small(name)?
                .map_or(Self::Null, |n| Self::Int(n.into())),
            Kind::Bytes => row.maybe_bytes(name)?.map_or(Self::Null, Self::Bytes),
            Kind::Permissions => Self::List(row.permissions(name)?),
        })
    }

    fn param(&self, kind: Kind) -> Param<'_> {
        match (self, kind) {
            (Self::Null, Kind::Id) => Param::Id(None),
            (Self::Null, Kind::Text) => Param::Text(None),
            (Self::Null, Kind::Int) => Param::Int(None),
            (Self::Null, Kind::Small) => Param::Small(None),
            (Self::Null, Kind::Bytes | Kind::Permissions) => Param::Bytes(None),
            (Self::Id(id), _) => Param::Id(Some(*id)),
            (Self::Text(text), _) => Param::Text(Some(text)),
            // Read from a 32-bit column of the other backend: it fits.
            (Self::Int(n), Kind::Small) => Param::Small(i32::try_from(*n).ok()),
            (Self::Int(n), _) => Param::Int(Some(*n)),
            (Self::Bytes(bytes), _) => Param::Bytes(Some(bytes)),
            (Self::List(names), _) => Param::Permissions(names),
        }
    }

    /// Feeds the value to a digest, unambiguously (a tag, a length, the bytes).
    fn digest(&self, hasher: &mut Sha256) {
        let (tag, bytes): (u8, &[u8]) = match self {
            Self::Null => (0, &[]),
            Self::Id(id) => (1, id.as_bytes()),
            Self::Text(text) => (2, text.as_bytes()),
            Self::Int(n) => {
                hasher.update([3]);
                hasher.update(n.to_le_bytes());
                return;
            }
            Self::Bytes(bytes) => (4, bytes),
            Self::List(names) => {
                hasher.update([5]);
                hasher.update((names.len() as u64).to_le_bytes());
                for name in names {
                    hasher.update((name.len() as u64).to_le_bytes());
                    hasher.update(name.as_bytes());
                }
                return;
            }
        };
        hasher.update([tag]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn read_deployment<D: Dialect>(conn: &mut Connection<D>) -> Result<Deployment, StoreError> {
    let rows = run::<D>(conn, Statement::new(READ_DEPLOYMENT, Vec::new())).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("the deployment row is missing".into()))?;
    Ok(Deployment {
        id: row.text("id")?,
        created_at: row.time("created_at")?,
        copy_started_at: row.maybe_time("copy_started_at")?,
        copy_nonce: row.maybe_text("copy_nonce")?,
        uses: row.int("uses")?,
        uses_at_copy: row.maybe_int("uses_at_copy")?,
    })
}

async fn read_schema<D: Dialect>(conn: &mut Connection<D>) -> Result<i64, StoreError> {
    let rows = run::<D>(conn, Statement::new(sql::SCHEMA_VERSION, Vec::new())).await?;
    rows.first().map_or(Ok(0), |row| row.int("n"))
}

/// Statements over one table, for one backend.
struct Sql<'t> {
    table: &'t Table,
    byte_order: &'static str,
}

impl<'t> Sql<'t> {
    fn of<D: Dialect>(table: &'t Table) -> Self {
        Self {
            table,
            byte_order: D::BYTE_ORDER,
        }
    }

    fn columns(&self) -> String {
        let names: Vec<&str> = self.table.columns.iter().map(|c| c.name).collect();
        names.join(", ")
    }

    /// The key's columns, text ones compared in byte order.
    fn key(&self) -> Vec<String> {
        self.table
            .key_columns()
            .iter()
            .map(|c| match c.kind {
                Kind::Text => format!("{}{}", c.name, self.byte_order),
                _ => c.name.to_owned(),
            })
            .collect()
    }

    /// `(k1, k2) <op> ($n, $n+1)`, numbering from `first`.
    fn compare(&self, op: &str, first: usize) -> String {
        let key = self.key();
        let binds: Vec<String> = (0..key.len()).map(|i| format!("${}", first + i)).collect();
        if key.len() == 1 {
            format!("{} {op} {}", key[0], binds[0])
        } else {
            format!("({}) {op} ({})", key.join(", "), binds.join(", "))
        }
    }

    fn order(&self) -> String {
        self.key().join(", ")
    }

    /// Up to `limit` rows in key order, after the key bound as `$1…` if `after`.
    fn page(&self, after: bool, limit: usize) -> String {
        let filter = if after {
            format!(" WHERE {}", self.compare(">", 1))
        } else {
            String::new()
        };
        format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT {limit}",
            self.columns(),
            self.table.name,
            self.order()
        )
    }

    /// The rows up to the key bound last, after the one bound first if `after`.
    fn range(&self, after: bool) -> String {
        let width = self.table.key;
        let filter = if after {
            format!(
                "{} AND {}",
                self.compare(">", 1),
                self.compare("<=", width + 1)
            )
        } else {
            self.compare("<=", 1)
        };
        format!(
            "SELECT {} FROM {} WHERE {filter} ORDER BY {}",
            self.columns(),
            self.table.name,
            self.order()
        )
    }

    /// Deletes the rows after the bound key, or all of them.
    fn delete_after(&self, after: bool) -> String {
        if after {
            format!(
                "DELETE FROM {} WHERE {}",
                self.table.name,
                self.compare(">", 1)
            )
        } else {
            format!("DELETE FROM {}", self.table.name)
        }
    }

    fn delete_one(&self) -> String {
        let each: Vec<String> = self
            .table
            .key_columns()
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ${}", c.name, i + 1))
            .collect();
        format!(
            "DELETE FROM {} WHERE {}",
            self.table.name,
            each.join(" AND ")
        )
    }

    fn count(&self) -> String {
        format!("SELECT COUNT(*) AS n FROM {}", self.table.name)
    }

    /// Inserts `rows` rows, each replacing the row of its key if there is one.
    fn upsert(&self, binds: sql::Binds, explicit_ids: &str, rows: usize) -> String {
        let key: Vec<&str> = self.table.key_columns().iter().map(|c| c.name).collect();
        let rest: Vec<String> = self.table.columns[self.table.key..]
            .iter()
            .map(|c| format!("{0} = excluded.{0}", c.name))
            .collect();
        let conflict = if rest.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            format!("DO UPDATE SET {}", rest.join(", "))
        };
        let overriding = if self.table.counter { explicit_ids } else { "" };
        format!(
            "INSERT INTO {} ({}){overriding} VALUES {} ON CONFLICT ({}) {conflict}",
            self.table.name,
            self.columns(),
            sql::placeholders(binds, self.table.columns.len(), rows),
            key.join(", ")
        )
    }
}

fn batch_rows(table: &Table) -> usize {
    BATCH_ROWS.min(MAX_VALUES / table.columns.len())
}

fn read_rows<D: Dialect>(table: &Table, rows: &[Row<D>]) -> Result<Vec<Values>, StoreError> {
    rows.iter()
        .map(|row| {
            table
                .columns
                .iter()
                .map(|column| Value::read(row, column))
                .collect()
        })
        .collect()
}

fn key_params<'v>(table: &Table, key: &'v [Value]) -> Vec<Param<'v>> {
    key.iter()
        .zip(table.key_columns())
        .map(|(value, column)| value.param(column.kind))
        .collect()
}

/// One run of a copy from `S`'s database to `T`'s.
struct Copy<'a, S: Dialect, T: Dialect> {
    target: &'a T,
    progress: &'a mut (dyn FnMut(Progress) + Send),
    source: std::marker::PhantomData<S>,
}

impl<'a, S: Dialect, T: Dialect> Copy<'a, S, T> {
    async fn run(
        source: &S,
        target: &'a T,
        now: Timestamp,
        progress: &'a mut (dyn FnMut(Progress) + Send),
    ) -> Result<Copied, CopyError> {
        let expected = migrations::SQLITE.latest();
        let found = read_schema::<S>(&mut *source.reader().await?).await?;
        if found != expected {
            return Err(CopyError::Schema {
                side: "source",
                found,
                expected,
                hint: if found < expected {
                    "upgrade it first (`keyward migrate` with the source's settings)"
                } else {
                    "copy it with the newer keyward that wrote it"
                },
            });
        }
        // A fresh target gets the schema. One that has it already must be at this
        // version: an older one is another deployment's (copies started at the version
        // that made the deployment row), and is left as it is rather than upgraded.
        let has_schema = run::<T>(
            &mut *target.reader().await?,
            Statement::new(T::HAS_SCHEMA, Vec::new()),
        )
        .await?
        .first()
        .map_or(Ok(0), |row| row.int("n"))?;
        if has_schema > 0 {
            let found = read_schema::<T>(&mut *target.reader().await?).await?;
            if found != expected {
                return Err(CopyError::Schema {
                    side: "target",
                    found,
                    expected,
                    hint: if found < expected {
                        "it holds another deployment's data, or was made by an older keyward: \
                         if it is yours, upgrade it first (`keyward migrate`)"
                    } else {
                        "copy it with the newer keyward that made it"
                    },
                });
            }
        }
        target.migrate().await?;

        let mut snapshot = source.snapshot().await?;
        let deployment = read_deployment::<S>(&mut snapshot).await?;
        if let Some(started) = deployment.copy_started_at {
            return Err(CopyError::SourceUnfinished { started });
        }
        let theirs = read_deployment::<T>(&mut *target.reader().await?).await?;
        let resumed = theirs.id == deployment.id;
        if resumed
            && theirs
                .uses_at_copy
                .is_some_and(|at_copy| theirs.uses != at_copy)
        {
            return Err(CopyError::TargetUsed);
        }
        if !resumed {
            for table in TABLES {
                let rows = count::<T>(&mut *target.reader().await?, table).await?;
                if rows > 0 {
                    return Err(CopyError::OtherDeployment {
                        table: table.name,
                        rows,
                    });
                }
            }
        }
        // 80 random bits (after the time): no other copy's.
        let nonce = keyward_core::model::KeyId::new(now)
            .as_uuid()
            .simple()
            .to_string();
        run::<T>(
            &mut *target.writer().await?,
            Statement::new(
                MARK_COPY,
                params![
                    deployment.id.as_str(),
                    deployment.created_at,
                    now,
                    nonce.as_str()
                ],
            ),
        )
        .await?;
        // Marked on the target, and seen on the source as it is now: one database
        // under two URLs. Copying would write the snapshot over its own later changes.
        let source_now = read_deployment::<S>(&mut *source.reader().await?).await?;
        if source_now.copy_nonce.as_deref() == Some(nonce.as_str()) {
            run::<T>(
                &mut *target.writer().await?,
                Statement::new(UNMARK_COPY, Vec::new()),
            )
            .await?;
            return Err(CopyError::SameDatabase);
        }

        let mut copy = Copy::<S, T> {
            target,
            progress,
            source: std::marker::PhantomData,
        };
        let mut tables = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            tables.push(copy.table(&mut snapshot, table).await?);
        }
        let events_in_snapshot = newest_event::<S>(&mut snapshot).await?;
        for table in TABLES.iter().filter(|t| t.counter) {
            let value = counter::<S>(&mut snapshot, table).await?;
            let mut tx = target.begin().await?;
            for statement in T::set_counter(table.name, value.unwrap_or(0)) {
                run::<T>(&mut tx, statement).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
        }
        snapshot.rollback().await.map_err(StoreError::from)?;
        // Every change records an event: a source whose events went on past the
        // snapshot's has changes the target lacks.
        let events_now = newest_event::<S>(&mut *source.reader().await?).await?;
        let source_changed = events_now != events_in_snapshot;

        for copied in &mut tables {
            let table = TABLES
                .iter()
                .find(|t| t.name == copied.table)
                .expect("copied from the list");
            let (rows, digest) = digest::<T>(&mut *target.reader().await?, table).await?;
            copied.target_rows = rows;
            copied.target_digest = digest;
        }
        let copied = Copied {
            deployment: deployment.id,
            resumed,
            tables,
            source_changed,
        };
        if copied.matches() {
            run::<T>(
                &mut *target.writer().await?,
                Statement::new(COPY_FINISHED, Vec::new()),
            )
            .await?;
        }
        Ok(copied)
    }

    /// Brings one table over; its source digest.
    async fn table(
        &mut self,
        snapshot: &mut Connection<S>,
        table: &'static Table,
    ) -> Result<TableCopied, StoreError> {
        let limit = batch_rows(table);
        let from = Sql::of::<S>(table);
        let to = Sql::of::<T>(table);
        let total = count::<S>(snapshot, table).await?;
        let mut hasher = Sha256::new();
        let mut copied = TableCopied {
            table: table.name,
            rows: 0,
            written: 0,
            deleted: 0,
            source_digest: String::new(),
            target_digest: String::new(),
            target_rows: 0,
        };
        (self.progress)(Progress {
            table: table.name,
            done: 0,
            total,
        });
        let mut after: Option<Values> = None;
        loop {
            let page = from.page(after.is_some(), limit);
            let params = after
                .as_deref()
                .map_or_else(Vec::new, |k| key_params(table, k));
            let rows = run::<S>(snapshot, Statement::built(page, params)).await?;
            let rows = read_rows::<S>(table, &rows)?;
            for row in &rows {
                for value in row {
                    value.digest(&mut hasher);
                }
            }
            let Some(last) = rows.last().map(|row| row[..table.key].to_vec()) else {
                // Past the source's last row: the target keeps nothing beyond it.
                let mut tx = self.target.begin().await?;
                let params = after
                    .as_deref()
                    .map_or_else(Vec::new, |k| key_params(table, k));
                let gone = run::<T>(
                    &mut tx,
                    Statement::built(
                        format!("{} RETURNING 1 AS gone", to.delete_after(after.is_some())),
                        params,
                    ),
                )
                .await?;
                tx.commit().await?;
                copied.deleted += gone.len() as u64;
                break;
            };
            self.batch(&to, table, after.as_deref(), &last, &rows, &mut copied)
                .await?;
            copied.rows += rows.len() as u64;
            (self.progress)(Progress {
                table: table.name,
                done: copied.rows,
                total,
            });
            after = Some(last);
        }
        copied.source_digest = hex(&hasher.finalize());
        Ok(copied)
    }

    /// Makes the target's rows in `(after, last]` those of `rows`.
    async fn batch(
        &mut self,
        to: &Sql<'_>,
        table: &Table,
        after: Option<&[Value]>,
        last: &[Value],
        rows: &[Values],
        copied: &mut TableCopied,
    ) -> Result<(), StoreError> {
        let mut params = after.map_or_else(Vec::new, |k| key_params(table, k));
        params.extend(key_params(table, last));
        let theirs = self
            .target
            .read(Statement::built(to.range(after.is_some()), params))
            .await?;
        let theirs = read_rows::<T>(table, &theirs)?;
        let mut theirs: std::collections::HashMap<&[Value], &Values> =
            theirs.iter().map(|row| (&row[..table.key], row)).collect();
        let mut changed: Vec<&Values> = Vec::new();
        for row in rows {
            match theirs.remove(&row[..table.key]) {
                Some(same) if same == row => {}
                _ => changed.push(row),
            }
        }
        if changed.is_empty() && theirs.is_empty() {
            return Ok(());
        }
        let mut tx = self.target.begin().await?;
        for key in theirs.keys() {
            run::<T>(
                &mut tx,
                Statement::built(to.delete_one(), key_params(table, key)),
            )
            .await?;
        }
        if !changed.is_empty() {
            let params = changed
                .iter()
                .flat_map(|row| {
                    row.iter()
                        .zip(table.columns)
                        .map(|(value, column)| value.param(column.kind))
                })
                .collect();
            let upsert = to.upsert(T::BULK_BINDS, T::EXPLICIT_IDS, changed.len());
            run::<T>(&mut tx, Statement::built(upsert, params)).await?;
        }
        tx.commit().await?;
        copied.written += changed.len() as u64;
        copied.deleted += theirs.len() as u64;
        Ok(())
    }
}

async fn count<D: Dialect>(conn: &mut Connection<D>, table: &Table) -> Result<u64, StoreError> {
    let rows = run::<D>(
        conn,
        Statement::built(Sql::of::<D>(table).count(), Vec::new()),
    )
    .await?;
    let n = rows.first().map_or(Ok(0), |row| row.int("n"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The newest audit event's id (its table, not its counter: PostgreSQL's sequences are
/// outside transactions, so a snapshot would see the counter as it is now).
async fn newest_event<D: Dialect>(conn: &mut Connection<D>) -> Result<i64, StoreError> {
    let rows = run::<D>(conn, Statement::new(NEWEST_EVENT, Vec::new())).await?;
    rows.first().map_or(Ok(0), |row| row.int("n"))
}

async fn counter<D: Dialect>(
    conn: &mut Connection<D>,
    table: &'static Table,
) -> Result<Option<i64>, StoreError> {
    let rows = run::<D>(conn, Statement::new(D::READ_COUNTER, params![table.name])).await?;
    rows.first().map_or(Ok(None), |row| row.maybe_int("n"))
}

/// A table's rows and their digest, read in key order.
async fn digest<D: Dialect>(
    conn: &mut Connection<D>,
    table: &Table,
) -> Result<(u64, String), StoreError> {
    let sql = Sql::of::<D>(table);
    let limit = batch_rows(table);
    let mut hasher = Sha256::new();
    let mut rows_seen = 0u64;
    let mut after: Option<Values> = None;
    loop {
        let params = after
            .as_deref()
            .map_or_else(Vec::new, |k| key_params(table, k));
        let rows = run::<D>(
            conn,
            Statement::built(sql.page(after.is_some(), limit), params),
        )
        .await?;
        let rows = read_rows::<D>(table, &rows)?;
        for row in &rows {
            for value in row {
                value.digest(&mut hasher);
            }
        }
        rows_seen += rows.len() as u64;
        match rows.last() {
            Some(row) if rows.len() == limit => after = Some(row[..table.key].to_vec()),
            _ => break,
        }
    }
    Ok((rows_seen, hex(&hasher.finalize())))
}

#[cfg(feature = "testing")]
pub mod testing {
    //! The copy's view of the schema, for the contract test that holds it to the
    //! schema the migrations make.

    /// Every table a copy carries, with its columns.
    pub fn tables() -> Vec<(&'static str, Vec<&'static str>)> {
        super::TABLES
            .iter()
            .map(|t| (t.name, t.columns.iter().map(|c| c.name).collect()))
            .collect()
    }

    /// Tables of the schema that a copy does not carry as rows: the migration log
    /// (the target's own migrations write it), the deployment row (the copy sets
    /// it) and SQLite's id counters (the copy sets them).
    pub fn not_copied() -> &'static [&'static str] {
        &["_sqlx_migrations", "deployment", "sqlite_sequence"]
    }
}
