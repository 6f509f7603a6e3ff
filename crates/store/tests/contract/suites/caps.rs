//! The cap on a user's live keys, held under concurrent creates from one connection or two.

use keyward_core::lifecycle::Mutation;
use keyward_core::model::Scope;
use keyward_store::{KeyStore, Store, StoreError};

use super::fixture;
use crate::common::{admin, at, insert, new_key, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_key_cap_counts_keys_that_are_not_revoked() {
    let f = fixture().await;
    let alice = user("alice");
    let first = new_key("alice", "one", 0);
    f.store.insert_key(&first, 2, &admin()).await.unwrap();
    let second = new_key("alice", "two", 1);
    f.store.insert_key(&second, 2, &admin()).await.unwrap();
    f.store
        .apply(
            Scope::User(&alice),
            second.key.id,
            &Mutation::Suspend,
            at(2),
            &admin(),
        )
        .await
        .unwrap();

    let third = new_key("alice", "three", 3);
    let err = f.store.insert_key(&third, 2, &admin()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::LimitReached { limit: 2 }),
        "{err:?}"
    );
    // Another user's keys do not count.
    f.store
        .insert_key(&new_key("bob", "b", 3), 2, &admin())
        .await
        .unwrap();

    f.store
        .apply(
            Scope::User(&alice),
            first.key.id,
            &Mutation::Revoke,
            at(4),
            &admin(),
        )
        .await
        .unwrap();
    f.store.insert_key(&third, 2, &admin()).await.unwrap();
}

type InsertTask = tokio::task::JoinHandle<Result<(), StoreError>>;

/// How many inserts succeeded; every other one must have hit the cap.
async fn inserted_under_cap(tasks: Vec<InsertTask>, cap: u32) -> usize {
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::LimitReached { limit }) if limit == cap => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_exceed_the_cap() {
    let f = fixture().await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_key(&new_key("alice", "k", i), 5, &admin())
                .await
        }));
    }
    assert_eq!(inserted_under_cap(tasks, 5).await, 5);
    assert_eq!(
        f.store
            .list_keys(Scope::User(&user("alice")))
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_create_among_concurrent_ones_fails_alone() {
    let f = fixture().await;
    // Creates committed together (SQLite's group commit) still answer one by one.
    let existing = insert(&f.store, "carol", "first", 0).await;
    let mut duplicate = new_key("dave", "dup", 1);
    duplicate.hash = existing.hash;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = f.store.clone();
        let record = if i == 10 {
            duplicate.clone()
        } else {
            new_key(&format!("user{i}"), "k", i)
        };
        tasks.push(tokio::spawn(async move {
            store.insert_key(&record, 5, &admin()).await
        }));
    }
    let mut failed = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if let Err(err) = task.await.unwrap() {
            failed.push((i, err));
        }
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        matches!(failed[0], (10, StoreError::Duplicate)),
        "{failed:?}"
    );
    assert_eq!(f.store.list_keys(Scope::Admin).await.unwrap().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_from_two_connections_never_exceed_the_cap() {
    let f = fixture().await;
    // Two processes (a server and the CLI, or two servers) creating at once.
    let other = keyward_store::connect(&f.url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .insert_key(&new_key("alice", "k", i), 5, &admin())
                .await
        }));
    }
    assert_eq!(inserted_under_cap(tasks, 5).await, 5);
    assert_eq!(
        f.store
            .list_keys(Scope::User(&user("alice")))
            .await
            .unwrap()
            .len(),
        5
    );
    other.close().await;
}
