//! The change feed: what a store hears of other connections' changes, and its heartbeat.

use std::time::Duration;

use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::Scope;
use keyward_store::{AnyStore, ExternalChange, KeyStore, Store, UserStore};

use super::fixture;
use crate::common::{Fixture, admin, at, insert, user};

/// Subscribes `store` to other connections' changes, as an engine does at start: the
/// first answer says the store is watching.
async fn subscribed(store: &AnyStore) {
    let first = tokio::time::timeout(Duration::from_secs(5), store.next_external_change())
        .await
        .expect("the first answer comes at once")
        .unwrap();
    assert_eq!(first, ExternalChange::Unknown);
}

/// The first change (not a heartbeat) `store` hears of after `act` ran elsewhere.
async fn change_after(
    store: &AnyStore,
    act: impl std::future::Future<Output = ()>,
) -> ExternalChange {
    act.await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline, store.next_external_change())
            .await
            .expect("the change is noticed within 5 s")
            .unwrap();
        if next != ExternalChange::Alive {
            return next;
        }
    }
}

#[track_caller]
fn assert_mentions(f: &Fixture, change: &ExternalChange, hashes: &[KeyHash]) {
    match change {
        ExternalChange::Keys(changed) => {
            for hash in hashes {
                assert!(changed.contains(hash), "{hash:?} not in {changed:?}");
            }
        }
        other => assert!(
            !f.names_changed_keys,
            "expected the changed keys, got {other:?}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_another_connection_is_noticed() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    subscribed(&f.store).await;
    let other = keyward_store::connect(&f.url).await.unwrap();
    let change = change_after(&f.store, async {
        other
            .apply(
                Scope::Admin,
                record.key.id,
                &Mutation::Revoke,
                at(1),
                &admin(),
            )
            .await
            .unwrap();
    })
    .await;
    assert_mentions(&f, &change, &[record.hash]);
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_store_confirms_it_at_least_every_second() {
    let f = fixture().await;
    subscribed(&f.store).await;
    for _ in 0..3 {
        let next =
            tokio::time::timeout(Duration::from_millis(2500), f.store.next_external_change())
                .await
                .expect("an answer (a heartbeat at least) within the second")
                .unwrap();
        assert_eq!(next, ExternalChange::Alive);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_keys_are_reported_to_other_connections() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    let b = insert(&f.store, "alice", "b", 1).await;
    subscribed(&f.store).await;
    let other = keyward_store::connect(&f.url).await.unwrap();
    let change = change_after(&f.store, async {
        assert_eq!(
            other
                .delete_user(&user("alice"), at(1_000), &admin())
                .await
                .unwrap()
                .len(),
            2
        );
    })
    .await;
    assert_mentions(&f, &change, &[a.hash, b.hash]);
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_a_new_pepper_names_the_old_hash_and_the_new() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    subscribed(&f.store).await;
    let other = keyward_store::connect(&f.url).await.unwrap();
    let moved = KeyHash::from_bytes([7; 32]);
    let change = change_after(&f.store, async {
        other
            .rehash(record.key.id, &record.hash, &moved, 2)
            .await
            .unwrap();
    })
    .await;
    // Another instance may hold the key under its old hash: it must drop it.
    assert_mentions(&f, &change, &[record.hash, moved]);
    other.close().await;
}
