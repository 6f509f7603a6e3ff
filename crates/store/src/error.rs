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

/// A database driver's error (sqlx's, or SQLite's own on the verification lookups),
/// kept for the logs.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

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
            // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout (someone else holds
            // the database too long), and the file failing under us (I/O error, disk
            // full, cannot open): callers see the database as unavailable.
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
        if code.is_some_and(sqlite_code_is_unavailable) {
            Self::Unavailable(err.into())
        } else {
            Self::Database(err.into())
        }
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
    /// True when retrying later may succeed (the database is down or busy).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::is_sqlite_unavailable;

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
}
