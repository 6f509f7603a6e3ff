//! Throw-away databases for tests (feature `testing`): a SQLite file in a temporary
//! directory, or a fresh database on the PostgreSQL server named by
//! `KEYWARD_TEST_POSTGRES_URL`, dropped again when the test ends.

use sqlx::{Connection, Executor};

use crate::url::DatabaseUrl;

/// The environment variable naming a PostgreSQL server tests may create databases on,
/// e.g. `postgres://keyward@127.0.0.1:55432/postgres`.
pub const POSTGRES_URL_ENV: &str = "KEYWARD_TEST_POSTGRES_URL";

/// Why PostgreSQL tests are skipped when the variable is not set.
pub const POSTGRES_SKIP_REASON: &str =
    "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL to a server tests may create databases on";

/// A database that lives as long as this value.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    _cleanup: Cleanup,
}

impl TestDatabase {
    /// The URL as text, for `KEYWARD_DATABASE_URL` (with the password, if any).
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }

    /// The same database for another instance; removed with this one, not that one.
    pub fn another_instance(&self) -> TestDatabase {
        TestDatabase {
            url: self.url.clone(),
            _cleanup: Cleanup::Shared,
        }
    }
}

enum Cleanup {
    Directory(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Another handle on a database that an earlier one removes.
    Shared,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any async context we could borrow: use a thread with
            // its own small runtime. Best effort: a left-over database is harmless.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                    let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    admin.execute(sqlx::AssertSqlSafe(drop)).await.ok()
                })
            })
            .join();
        }
    }
}

/// A fresh SQLite file.
pub fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("a temporary directory");
    TestDatabase {
        url: DatabaseUrl::Sqlite(dir.path().join("keyward.db")),
        _cleanup: Cleanup::Directory(dir),
    }
}

/// True when PostgreSQL tests can run.
pub fn postgres_available() -> bool {
    std::env::var_os(POSTGRES_URL_ENV).is_some_and(|url| !url.is_empty())
}

/// A fresh, empty database on the test PostgreSQL server.
///
/// # Panics
/// If `KEYWARD_TEST_POSTGRES_URL` is not set or the server cannot be reached: a test
/// that asked for PostgreSQL must not pass without it.
pub async fn postgres() -> TestDatabase {
    let admin_url = std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| panic!("{POSTGRES_SKIP_REASON}"));
    let name = unique_name();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_URL_ENV}: {e}"));
    admin
        .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .await
        .expect("CREATE DATABASE");
    admin.close().await.ok();
    TestDatabase {
        url: DatabaseUrl::Postgres(with_database(&admin_url, &name)),
        _cleanup: Cleanup::Postgres { admin_url, name },
    }
}

/// A database name no other test (or test process) uses.
fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "kw_test_{}_{}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The same server URL with another database name.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &base[..host_end])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
