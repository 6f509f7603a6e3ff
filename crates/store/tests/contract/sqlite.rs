//! The store contract on a fresh SQLite file per test, and what only SQLite does.

use keyward_store::{DatabaseUrl, Store};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use crate::common::Fixture;

#[path = "suites/audit.rs"]
mod audit;
#[path = "suites/caps.rs"]
mod caps;
#[path = "suites/change_feed.rs"]
mod change_feed;
#[path = "suites/copy.rs"]
mod copy;
#[path = "suites/credentials.rs"]
mod credentials;
#[path = "suites/credits.rs"]
mod credits;
#[path = "suites/keys.rs"]
mod keys;
#[path = "suites/lifecycle.rs"]
mod lifecycle;
#[path = "suites/migrations.rs"]
mod migrations;
#[path = "suites/networks.rs"]
mod networks;
#[path = "suites/peppers.rs"]
mod peppers;
#[path = "suites/rotation.rs"]
mod rotation;
#[path = "suites/usage.rs"]
mod usage;
#[path = "suites/usage_history.rs"]
mod usage_history;
#[path = "suites/user_limits.rs"]
mod user_limits;
#[path = "suites/webhooks.rs"]
mod webhooks;

/// A fresh, migrated SQLite file.
pub async fn fixture() -> Fixture {
    let db = keyward_store::testing::sqlite();
    let store = keyward_store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    Fixture {
        store,
        url: db.url.clone(),
        names_changed_keys: false,
        _guard: Box::new(db),
    }
}

#[tokio::test]
async fn a_missing_directory_is_reported_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("nope/keyward.db"));
    let err = keyward_store::connect(&url).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn the_database_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = migrated_file(dir.path()).await;
    assert!(path.exists());
    store.close().await;
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn the_database_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = migrated_file(dir.path()).await;
    // Key hashes, user ids and the audit trail: not for every user of the machine,
    // whatever the umask (0022 as a rule) would have given.
    for suffix in ["", "-wal", "-shm"] {
        let file = path.with_file_name(format!("keyward.db{suffix}"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: {mode:o}", file.display());
    }
    store.close().await;
}

/// A store on a new `keyward.db` in `dir`, migrated; the file's path.
async fn migrated_file(dir: &std::path::Path) -> (keyward_store::AnyStore, std::path::PathBuf) {
    let path = dir.join("keyward.db");
    let store = keyward_store::connect(&DatabaseUrl::Sqlite(path.clone()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, path)
}
