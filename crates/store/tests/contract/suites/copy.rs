//! Copying a deployment's database into another (`keyward copy`): every table and
//! column of the schema is carried, keys verify the same on the target, a second run
//! brings over changes and deletions only, an interrupted run resumes, and a target
//! holding another deployment's data is refused. Each source is copied to a fresh
//! SQLite file and, where PostgreSQL is available, to a fresh PostgreSQL database.

use std::collections::{BTreeMap, BTreeSet};

use keyward_core::audit::EventQuery;
use keyward_core::credits::{CreditGrant, UserLimits};
use keyward_core::lifecycle::Mutation;
use keyward_core::model::Scope;
use keyward_core::rate::RateLimit;
use keyward_core::usage::UsageCounts;
use keyward_core::webhook::EventType;
use keyward_store::testing::{self, TestDatabase};
use keyward_store::{
    AnyStore, CopyError, DatabaseUrl, EventStore, HourCounts, KeyStore, NewKeyRecord, Store,
    UsageStore, UserStore, WebhookStore,
};
use sqlx::Connection;

use super::fixture;
use crate::common::{admin, at, insert, new_webhook, user};

/// Fresh, empty targets: a SQLite file, and a PostgreSQL database where one is
/// available.
async fn targets() -> Vec<(TestDatabase, AnyStore)> {
    let mut databases = vec![testing::sqlite()];
    if testing::postgres_available() {
        databases.push(testing::postgres().await);
    }
    let mut targets = Vec::new();
    for db in databases {
        let store = keyward_store::connect(&db.url).await.unwrap();
        targets.push((db, store));
    }
    targets
}

/// Rows in every table a copy carries: keys in every state with limits, credits and
/// metadata, their events, usage history, a user's limits, a service credential, a
/// webhook with an event and a delivery.
async fn seed(store: &AnyStore) -> Vec<NewKeyRecord> {
    let record = new_webhook(&EventType::ALL, 0);
    store.insert_webhook(&record, &admin()).await.unwrap();
    store
        .send_test(record.webhook.id, at(1), &admin())
        .await
        .unwrap();

    let mut keys = Vec::new();
    for (i, owner) in ["alice", "alice", "bob", "carol"].iter().enumerate() {
        keys.push(insert(store, owner, &format!("key-{i}"), i as i64).await);
    }
    store
        .apply(
            Scope::Admin,
            keys[1].key.id,
            &Mutation::Suspend,
            at(10),
            &admin(),
        )
        .await
        .unwrap();
    store
        .apply(
            Scope::Admin,
            keys[3].key.id,
            &Mutation::Revoke,
            at(11),
            &admin(),
        )
        .await
        .unwrap();
    store
        .record_usage_history(&[
            HourCounts {
                key_id: keys[0].key.id,
                hour: at(0),
                counts: UsageCounts {
                    valid: 5,
                    refused: 1,
                },
            },
            HourCounts {
                key_id: keys[2].key.id,
                hour: at(3_600_000),
                counts: UsageCounts {
                    valid: 2,
                    refused: 0,
                },
            },
        ])
        .await
        .unwrap();
    store
        .record_usage(&[(keys[0].key.id, at(20))])
        .await
        .unwrap();
    store
        .set_user_limits(
            &user("alice"),
            &UserLimits {
                rate_limit: RateLimit::new(10, 60).ok(),
                credits: Some(CreditGrant {
                    remaining: 7,
                    refill: None,
                }),
            },
            at(12),
            &admin(),
        )
        .await
        .unwrap();
    keys
}

/// Source and target answer the same for every key: its verification record, its
/// record, and the whole audit trail.
async fn assert_same(source: &AnyStore, target: &AnyStore, keys: &[NewKeyRecord]) {
    for key in keys {
        assert_eq!(
            target.find_by_hash(&key.hash).await.unwrap(),
            source.find_by_hash(&key.hash).await.unwrap(),
            "{}",
            key.key.name
        );
        assert_eq!(
            target.get_key(Scope::Admin, key.key.id).await.unwrap(),
            source.get_key(Scope::Admin, key.key.id).await.unwrap()
        );
    }
    let events = |store: &AnyStore| {
        let store = store.clone();
        async move { store.list_events(&EventQuery::default()).await.unwrap() }
    };
    assert_eq!(events(target).await, events(source).await);
}

/// A copy stopped dead after its first batch of keys is written, as by SIGKILL: the
/// task goes away mid-copy (started at `at(100)`).
async fn interrupted_copy(source: &AnyStore, target: &AnyStore) {
    let (source, into) = (source.clone(), target.clone());
    let stopped = tokio::spawn(async move {
        keyward_store::copy(&source, &into, at(100), &mut |progress| {
            assert_ne!(progress.table, "key_events", "stopped after the keys");
        })
        .await
    })
    .await;
    assert!(stopped.is_err(), "the copy was stopped");
}

async fn copy(source: &AnyStore, target: &AnyStore) -> Result<keyward_store::Copied, CopyError> {
    keyward_store::copy(source, target, at(100), &mut |_| {}).await
}

/// The tables and columns the migrations made, read from the database itself.
async fn schema(url: &DatabaseUrl) -> BTreeMap<String, BTreeSet<String>> {
    let rows: Vec<(String, String)> = match url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query_as(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema()",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        }
    };
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (table, column) in rows {
        tables.entry(table).or_default().insert(column);
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_carries_every_table_and_column_of_the_schema() {
    let f = fixture().await;
    let mut expected = schema(&f.url).await;
    for name in keyward_store::copy_testing::not_copied() {
        expected.remove(*name);
    }
    let carried: BTreeMap<String, BTreeSet<String>> = keyward_store::copy_testing::tables()
        .into_iter()
        .map(|(table, columns)| {
            (
                table.to_owned(),
                columns.into_iter().map(str::to_owned).collect(),
            )
        })
        .collect();
    assert_eq!(
        carried, expected,
        "a migration changed the schema: the copy's list of tables (copy/tables.rs) must follow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_verifies_the_same_after_a_copy_with_equal_digests() {
    let f = fixture().await;
    let keys = seed(&f.store).await;
    let source = keyward_store::deployment(&f.store).await.unwrap();
    for (_db, target) in targets().await {
        let copied = copy(&f.store, &target).await.unwrap();
        assert!(copied.matches(), "{copied:#?}");
        assert!(!copied.resumed);
        let api_keys = &copied.tables[0];
        assert_eq!(
            (api_keys.table, api_keys.rows, api_keys.written),
            ("api_keys", 4, 4)
        );
        for table in &copied.tables {
            assert_eq!(table.written, table.rows, "{table:?}");
        }
        assert_same(&f.store, &target, &keys).await;
        let theirs = keyward_store::deployment(&target).await.unwrap();
        assert_eq!(
            theirs.id, source.id,
            "the target is the same deployment now"
        );
        assert_eq!(theirs.copy_started_at, None, "and its copy finished");
        // New events on the target follow the copied ones: no id is reused.
        let last = target.list_events(&EventQuery::default()).await.unwrap();
        target
            .apply(
                Scope::Admin,
                keys[0].key.id,
                &Mutation::Suspend,
                at(50),
                &admin(),
            )
            .await
            .unwrap();
        let after = target.list_events(&EventQuery::default()).await.unwrap();
        let newest = after.iter().map(|e| e.id).max().unwrap();
        assert!(last.iter().all(|e| e.id < newest), "{newest:?}");
        target.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_brings_over_only_what_changed_including_deletions() {
    for (_db, target) in targets().await {
        // A source of its own per target: this test changes it.
        let f = fixture().await;
        let mut keys = seed(&f.store).await;
        copy(&f.store, &target).await.unwrap();

        let again = copy(&f.store, &target).await.unwrap();
        assert!(again.matches() && again.resumed, "{again:#?}");
        assert!(
            again
                .tables
                .iter()
                .all(|t| t.written == 0 && t.deleted == 0),
            "nothing changed, nothing written: {again:#?}"
        );

        f.store
            .apply(
                Scope::Admin,
                keys[0].key.id,
                &Mutation::Revoke,
                at(30),
                &admin(),
            )
            .await
            .unwrap();
        keys.push(insert(&f.store, "dave", "late", 31).await);
        f.store
            .delete_user(&user("bob"), at(32), &admin())
            .await
            .unwrap();
        let changed = copy(&f.store, &target).await.unwrap();
        assert!(changed.matches(), "{changed:#?}");
        let api_keys = &changed.tables[0];
        // The revoked key and dave's new one written; bob's key deleted.
        assert_eq!((api_keys.written, api_keys.deleted), (2, 1), "{api_keys:?}");
        let usage = changed
            .tables
            .iter()
            .find(|t| t.table == "key_usage_hourly")
            .unwrap();
        assert_eq!(usage.rows, 1, "bob's history went with him");
        assert_same(&f.store, &target, &keys).await;
        assert_eq!(target.find_by_hash(&keys[2].hash).await.unwrap(), None);
        target.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_is_marked_unfinished_and_resumes() {
    let f = fixture().await;
    let keys = seed(&f.store).await;
    for (_db, target) in targets().await {
        interrupted_copy(&f.store, &target).await;
        let marked = keyward_store::deployment(&target).await.unwrap();
        assert_eq!(marked.copy_started_at, Some(at(100)));

        let resumed = copy(&f.store, &target).await.unwrap();
        assert!(resumed.matches() && resumed.resumed, "{resumed:#?}");
        assert_eq!(resumed.tables[0].written, 0, "the keys were copied already");
        assert!(resumed.tables.iter().any(|t| t.written > 0));
        assert_same(&f.store, &target, &keys).await;
        let finished = keyward_store::deployment(&target).await.unwrap();
        assert_eq!(finished.copy_started_at, None);
        target.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_holding_another_deployments_data_is_refused_and_left_alone() {
    let f = fixture().await;
    seed(&f.store).await;
    for (_db, target) in targets().await {
        target.migrate().await.unwrap();
        let theirs = insert(&target, "zed", "theirs", 0).await;
        let before = keyward_store::deployment(&target).await.unwrap();
        let refused = copy(&f.store, &target).await.unwrap_err();
        assert!(
            matches!(
                refused,
                CopyError::OtherDeployment {
                    table: "api_keys",
                    rows: 1
                }
            ),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("another deployment"));
        assert_eq!(keyward_store::deployment(&target).await.unwrap(), before);
        assert_eq!(target.list_keys(Scope::Admin).await.unwrap().len(), 1);
        assert!(target.find_by_hash(&theirs.hash).await.unwrap().is_some());
        target.close().await;
    }
}

/// Runs one statement on the database at `url`, outside the store.
async fn execute(url: &DatabaseUrl, statement: &'static str) {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_at_an_older_schema_is_refused_not_upgraded() {
    let f = fixture().await;
    seed(&f.store).await;
    for (db, target) in targets().await {
        target.migrate().await.unwrap();
        // As an older keyward left it: its last migration not run.
        execute(
            &db.url,
            "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
        )
        .await;
        let (before, latest) = keyward_store::schema_version(&target).await.unwrap();
        assert_eq!(before, latest - 1);
        let refused = copy(&f.store, &target).await.unwrap_err();
        assert!(
            matches!(refused, CopyError::Schema { side: "target", .. }),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("keyward migrate"), "{refused}");
        assert_eq!(
            keyward_store::schema_version(&target).await.unwrap().0,
            before,
            "left as it was"
        );
        target.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_into_a_target_served_since_is_refused() {
    let f = fixture().await;
    let keys = seed(&f.store).await;
    for (_db, target) in targets().await {
        copy(&f.store, &target).await.unwrap();
        // Caught up again before the switch: allowed.
        copy(&f.store, &target).await.unwrap();
        // The switch: a server starts on the target, and changes things there.
        keyward_store::begin_use(&target, keyward_store::Use::Serve)
            .await
            .unwrap();
        target
            .apply(
                Scope::Admin,
                keys[0].key.id,
                &Mutation::Revoke,
                at(60),
                &admin(),
            )
            .await
            .unwrap();
        let refused = copy(&f.store, &target).await.unwrap_err();
        assert!(matches!(refused, CopyError::TargetUsed), "{refused:?}");
        let revoked = target.get_key(Scope::Admin, keys[0].key.id).await.unwrap();
        assert_eq!(
            revoked.unwrap().status,
            keyward_core::model::KeyStatus::Revoked,
            "the target's own change stays"
        );
        target.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_itself_under_another_url_is_refused_and_left_unmarked() {
    let f = fixture().await;
    seed(&f.store).await;
    let again = keyward_store::connect(&f.url).await.unwrap();
    let refused = copy(&f.store, &again).await.unwrap_err();
    assert!(matches!(refused, CopyError::SameDatabase), "{refused:?}");
    let deployment = keyward_store::deployment(&f.store).await.unwrap();
    assert_eq!(deployment.copy_started_at, None);
    keyward_store::begin_use(&f.store, keyward_store::Use::Serve)
        .await
        .unwrap();
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_filled_target_is_refused_for_serving_and_for_changes() {
    let f = fixture().await;
    seed(&f.store).await;
    for (_db, target) in targets().await {
        interrupted_copy(&f.store, &target).await;
        for use_ in [keyward_store::Use::Serve, keyward_store::Use::Admin] {
            let refused = keyward_store::begin_use(&target, use_).await.unwrap_err();
            assert!(
                matches!(refused, CopyError::Unfinished { started } if started == at(100)),
                "{use_:?}: {refused:?}"
            );
            assert!(refused.to_string().contains("has not finished"));
        }
        target.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_says_when_its_source_changed_after_the_snapshot() {
    let f = fixture().await;
    seed(&f.store).await;
    for (_db, target) in targets().await {
        let quiet = copy(&f.store, &target).await.unwrap();
        assert!(!quiet.source_changed);
        let source = f.store.clone();
        let mut changed = false;
        let copied = keyward_store::copy(&f.store, &target, at(100), &mut |_| {
            if !changed {
                changed = true;
                // A server writing meanwhile.
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(insert(
                        &source,
                        "erin",
                        "meanwhile",
                        70,
                    ))
                });
            }
        })
        .await
        .unwrap();
        assert!(copied.matches(), "the snapshot is copied whole");
        assert!(copied.source_changed, "{copied:#?}");
        target.close().await;
    }
}
