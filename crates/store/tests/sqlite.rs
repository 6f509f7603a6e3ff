//! The store contract against the SQLite backend, each test on a fresh file.

mod contract;

use contract::{Fixture, store_contract_suite};
use keyward_store::{DatabaseUrl, Store};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

async fn fresh_sqlite() -> Fixture {
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

store_contract_suite!(fresh_sqlite);

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
    let path = dir.path().join("keyward.db");
    let store = keyward_store::connect(&DatabaseUrl::Sqlite(path.clone()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
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
