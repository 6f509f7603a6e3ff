//! Storage errors: what callers can act on, with the database's cause kept for logs.
//!
//! A message is complete on its own: it carries its cause's text, so `error = %err` in a
//! log line says why. It therefore does not also hand out that cause as `source()`, or
//! every report that walks the chain would print the cause twice.

use keyward_core::lifecycle::LifecycleError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such key (or not one of the owner's).
    #[error("key not found")]
    NotFound,
    /// The owner already has the maximum number of keys that are not revoked.
    #[error("the user already has {limit} keys that are not revoked")]
    LimitReached { limit: u32 },
    /// The key's status forbids the change.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A key with the same hash or id exists (with 256-bit keys: a bug, not luck).
    #[error("a key with the same hash or id already exists")]
    Duplicate,
    /// The database cannot be opened as configured.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The database cannot be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(Cause),
    /// The database answers but cannot store a change now: its disk is full, or it (or
    /// its filesystem) is read-only. Reads go on; retrying later may succeed.
    #[error("database not writable ({0}): {1}")]
    NotWritable(Unwritable, Cause),
    /// A stored value does not decode (a bug or manual edits).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The connection that watches for other instances' changes was lost.
    #[error("the change feed connection was lost")]
    ChangeFeedLost,
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(Cause),
}

/// A stored value that does not decode, named by its column.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// A database driver's error (sqlx's, or SQLite's own on the verification lookups),
/// kept for the logs.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the database cannot store a change: what an operator must fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unwritable {
    /// No space left on the database's disk (SQLite `FULL`, PostgreSQL `53100`).
    DiskFull,
    /// The database, its directory or its filesystem is read-only (SQLite `READONLY`,
    /// PostgreSQL `25006`: a standby or a read-only transaction).
    ReadOnly,
    /// Writing or syncing the file failed (SQLite `IOERR_WRITE`, `IOERR_FSYNC`, …):
    /// the filesystem refused the write (made immutable or read-only under a running
    /// process, a quota, a failing device).
    WriteRefused,
}

impl std::fmt::Display for Unwritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::DiskFull => "the disk is full",
            Self::ReadOnly => "the database is read-only",
            Self::WriteRefused => "the filesystem refused a write",
        })
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(err)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::WorkerCrashed
            // A peer that stops speaking the protocol, or TLS, mid-way: a connection
            // opened during a network fault (a proxy or balancer that accepts and then
            // drops it) fails this way rather than with an I/O error. A bad
            // certificate is caught at start, where the database is first reached.
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(err.into()),
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Duplicate,
            sqlx::Error::Database(db)
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                    && let Some(why) = sqlite_unwritable(db.code().as_deref()) =>
            {
                Self::NotWritable(why, err.into())
            }
            sqlx::Error::Database(db)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                    && let Some(why) = postgres_unwritable(db.code().as_deref()) =>
            {
                Self::NotWritable(why, err.into())
            }
            // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout (someone else holds
            // the database too long), and the file failing under us (I/O error, cannot
            // open): callers see the database as unavailable.
            sqlx::Error::Database(db)
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                    && is_sqlite_unavailable(db.code().as_deref()) =>
            {
                Self::Unavailable(err.into())
            }
            sqlx::Error::Database(db)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                    && is_postgres_unavailable(db.code().as_deref()) =>
            {
                Self::Unavailable(err.into())
            }
            _ => Self::Database(err.into()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        let code = match &err {
            rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
            _ => None,
        };
        if let Some(why) = code.and_then(sqlite_code_unwritable) {
            Self::NotWritable(why, err.into())
        } else if code.is_some_and(sqlite_code_is_unavailable) {
            Self::Unavailable(err.into())
        } else {
            Self::Database(err.into())
        }
    }
}

/// SQLite's answers that say a write cannot be stored: `FULL` (13), `READONLY` (8,
/// with its extended codes), and the extended `IOERR`s of writing a file: `WRITE`
/// (778), `FSYNC` (1034), `DIR_FSYNC` (1290), `TRUNCATE` (1546). A plain `IOERR`
/// (a read failing, say) stays "unavailable".
fn sqlite_unwritable(code: Option<&str>) -> Option<Unwritable> {
    code.and_then(|c| c.parse::<i32>().ok())
        .and_then(sqlite_code_unwritable)
}

fn sqlite_code_unwritable(code: i32) -> Option<Unwritable> {
    match (code & 0xff, code) {
        (13, _) => Some(Unwritable::DiskFull),
        (8, _) => Some(Unwritable::ReadOnly),
        (10, 778 | 1034 | 1290 | 1546) => Some(Unwritable::WriteRefused),
        _ => None,
    }
}

/// PostgreSQL's: `disk_full` (53100), `read_only_sql_transaction` (25006).
fn postgres_unwritable(code: Option<&str>) -> Option<Unwritable> {
    match code {
        Some("53100") => Some(Unwritable::DiskFull),
        Some("25006") => Some(Unwritable::ReadOnly),
        _ => None,
    }
}

/// Primary result codes 5 (BUSY), 6 (LOCKED), 10 (IOERR), 13 (FULL) and 14
/// (CANTOPEN); extended codes keep them in the low byte.
fn is_sqlite_unavailable(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(sqlite_code_is_unavailable)
}

fn sqlite_code_is_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 10 | 13 | 14)
}

/// PostgreSQL SQLSTATEs that mean "try again later": statement timeout, too many
/// connections, server shutting down, connection failures, serialization conflicts.
fn is_postgres_unavailable(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("57014" | "53300" | "53400" | "57P01" | "57P02" | "57P03" | "40001" | "40P01")
    ) || code.is_some_and(|c| c.starts_with("08"))
}

impl StoreError {
    /// True when retrying later may succeed (the database is down or busy, or cannot
    /// store changes for now).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::NotWritable(..))
    }

    /// Why the database cannot store changes, when that is what failed.
    pub fn unwritable(&self) -> Option<Unwritable> {
        match self {
            Self::NotWritable(why, _) => Some(*why),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Unwritable, is_sqlite_unavailable, postgres_unwritable, sqlite_unwritable};

    #[test]
    fn a_connection_that_breaks_off_mid_protocol_is_the_database_being_away() {
        let protocol = sqlx::Error::Protocol("unexpected response from SSLRequest".into());
        assert!(super::StoreError::from(protocol).is_unavailable());
        let tls = sqlx::Error::Tls("handshake interrupted".into());
        assert!(super::StoreError::from(tls).is_unavailable());
    }

    #[test]
    fn busy_locked_and_file_failures_are_recognised_with_their_extended_codes() {
        // BUSY, LOCKED, BUSY_RECOVERY, LOCKED_SHAREDCACHE, BUSY_SNAPSHOT,
        // LOCKED_VTAB, IOERR, IOERR_READ, FULL, CANTOPEN, CANTOPEN_ISDIR.
        for code in [
            "5", "6", "261", "262", "517", "773", "10", "266", "13", "14", "526",
        ] {
            assert!(is_sqlite_unavailable(Some(code)), "{code}");
        }
        // ERROR, CONSTRAINT, CONSTRAINT_UNIQUE, CORRUPT: not the database being away.
        for code in ["1", "19", "2067", "11", "x"] {
            assert!(!is_sqlite_unavailable(Some(code)), "{code}");
        }
        assert!(!is_sqlite_unavailable(None));
    }

    #[test]
    fn a_full_disk_a_read_only_file_and_refused_writes_are_told_apart() {
        for (code, why) in [
            ("13", Unwritable::DiskFull),
            ("8", Unwritable::ReadOnly),
            ("264", Unwritable::ReadOnly),
            ("1032", Unwritable::ReadOnly),
            ("1544", Unwritable::ReadOnly),
            ("778", Unwritable::WriteRefused),
            ("1034", Unwritable::WriteRefused),
            ("1546", Unwritable::WriteRefused),
        ] {
            assert_eq!(sqlite_unwritable(Some(code)), Some(why), "{code}");
        }
        // A read failing, a lock held too long, a constraint: not a write refused.
        for code in ["10", "266", "5", "19", "2067", "x"] {
            assert_eq!(sqlite_unwritable(Some(code)), None, "{code}");
        }
        assert_eq!(
            postgres_unwritable(Some("53100")),
            Some(Unwritable::DiskFull)
        );
        assert_eq!(
            postgres_unwritable(Some("25006")),
            Some(Unwritable::ReadOnly)
        );
        assert_eq!(postgres_unwritable(Some("23505")), None);
    }
}
