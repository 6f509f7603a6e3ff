//! The store contract against the PostgreSQL backend, each test on a fresh database.
//! Needs `KEYWARD_TEST_POSTGRES_URL` (`.ci/run` starts a server and sets it); without
//! it every test here is reported as ignored, with the reason.

mod contract;

use std::time::Duration;

use contract::{Fixture, store_contract_suite};
use keyward_store::testing::{self, POSTGRES_SKIP_REASON};
use keyward_store::{ConnectOptions, Store, StoreError};

async fn fresh_postgres() -> Fixture {
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

store_contract_suite!(
    fresh_postgres,
    #[cfg_attr(not(keyward_postgres_tests), ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL")]
);

#[tokio::test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
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
}

#[tokio::test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
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

#[test]
fn the_skip_reason_names_the_variable() {
    assert!(POSTGRES_SKIP_REASON.contains(testing::POSTGRES_URL_ENV));
}
