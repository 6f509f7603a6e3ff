//! The store contract on a fresh PostgreSQL database per test, and what only
//! PostgreSQL does. Compiled only where `KEYWARD_TEST_POSTGRES_URL` names a server
//! (`.ci/run` starts one and sets it; see build.rs).

use std::time::Duration;

use keyward_store::testing;
use keyward_store::{ConnectOptions, KeyStore, Store, StoreError, UsageStore};

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

/// A fresh, migrated database on the test PostgreSQL server.
pub async fn fixture() -> Fixture {
    let db = testing::postgres().await;
    let store = keyward_store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    Fixture {
        store,
        url: db.url.clone(),
        names_changed_keys: true,
        _guard: Box::new(db),
    }
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let db = testing::postgres().await;
    let mut starts = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        starts.push(tokio::spawn(async move {
            let store = keyward_store::connect(&url).await.unwrap();
            store.migrate().await.map(|()| store)
        }));
    }
    for start in starts {
        let store = start
            .await
            .unwrap()
            .expect("every instance migrates cleanly");
        store.ping().await.unwrap();
        store.close().await;
    }
    // Each migration was applied by one of them, once: one row per version, each a
    // success, as many as there are migrations.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url_string()).await.unwrap();
    let (rows, versions, succeeded): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT version), count(*) FILTER (WHERE success) \
         FROM _sqlx_migrations",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "sql")
        })
        .count() as i64;
    assert_eq!(
        (rows, versions, succeeded),
        (migrations, migrations, migrations)
    );
}

#[tokio::test]
async fn an_exhausted_pool_answers_unavailable_instead_of_hanging() {
    let db = testing::postgres().await;
    let store = keyward_store::connect_with(&db.url, &ConnectOptions { max_connections: 1 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let keyward_store::AnyStore::Postgres(pg) = &store else {
        unreachable!("a postgres URL")
    };
    // Hold the only connection, then ask for another.
    let mut held = pg.hold_connection_for_tests().await.unwrap();
    let started = std::time::Instant::now();
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Statements are bounded too: this one is cancelled by the statement timeout.
    let slow = sqlx::query("SELECT pg_sleep(30)")
        .execute(&mut *held)
        .await
        .unwrap_err();
    assert!(StoreError::from(slow).is_unavailable());
    drop(held);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn a_read_only_database_refuses_writes_as_not_writable_and_readiness_says_so() {
    use sqlx::Connection;
    let db = testing::postgres().await;
    let store = keyward_store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    // A database whose sessions are read-only, as on a standby.
    let mut admin = sqlx::PgConnection::connect(&db.url_string()).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let set = |value: &str| {
        format!(r#"ALTER DATABASE "{name}" SET default_transaction_read_only = {value}"#)
    };
    sqlx::query(sqlx::AssertSqlSafe(set("on")))
        .execute(&mut admin)
        .await
        .unwrap();

    let store = keyward_store::connect(&db.url).await.unwrap();
    let record = crate::common::new_key("alice", "k", 0);
    let err = store
        .insert_key(&record, 100, &crate::common::admin())
        .await
        .unwrap_err();
    assert_eq!(
        err.unwritable(),
        Some(keyward_store::Unwritable::ReadOnly),
        "{err:?}"
    );
    assert!(err.is_unavailable());
    let err = store.ping().await.unwrap_err();
    assert_eq!(
        err.unwritable(),
        Some(keyward_store::Unwritable::ReadOnly),
        "{err:?}"
    );
    store.close().await;

    sqlx::query(sqlx::AssertSqlSafe(set("off")))
        .execute(&mut admin)
        .await
        .unwrap();
    let store = keyward_store::connect(&db.url).await.unwrap();
    store.ping().await.unwrap();
    store
        .insert_key(&record, 100, &crate::common::admin())
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_usage_history_flush_that_fails_part_way_stores_none_of_its_counts() {
    use keyward_core::usage::{HOUR_MS, UsageCounts};
    use keyward_store::{HourCounts, UsageOf};
    let f = fixture().await;
    let key = crate::common::insert(&f.store, "alice", "a", 0).await;
    let at = |hour: i64| crate::common::at(hour * HOUR_MS);
    let count = |hour: i64, valid: u64| HourCounts {
        key_id: key.key.id,
        hour: at(hour),
        counts: UsageCounts { valid, refused: 0 },
    };
    // An hour already at the largest count: one more overflows (22003), a failure
    // in the batch's second statement, after its first 1,000 rows.
    f.store
        .record_usage_history(&[count(5_000, i64::MAX as u64)])
        .await
        .unwrap();
    let mut batch: Vec<_> = (0..1_000).map(|hour| count(hour, 1)).collect();
    batch.push(count(5_000, 1));
    f.store.record_usage_history(&batch).await.unwrap_err();
    // Retried by the engine, the first rows must not count twice: none was stored.
    let stored = f
        .store
        .usage_history(UsageOf::Key(key.key.id), at(0), at(1_000))
        .await
        .unwrap();
    assert!(
        stored.is_empty(),
        "{} hours stored by a failed flush",
        stored.len()
    );
}
