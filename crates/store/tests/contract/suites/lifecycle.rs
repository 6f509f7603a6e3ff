//! Changes to a key (suspend, reactivate, revoke, permissions, rate limit): applied,
//! refused, or already in effect.

use keyward_core::lifecycle::{LifecycleError, Mutation};
use keyward_core::model::{KeyId, KeyStatus, Scope};
use keyward_core::rate::RateLimit;
use keyward_store::{KeyStore, StoreError};

use super::fixture;
use crate::common::{admin, at, insert, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_reactivate_round_trip() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let alice = user("alice");
    let suspended = f
        .store
        .apply(
            Scope::User(&alice),
            record.key.id,
            &Mutation::Suspend,
            at(1),
            &admin(),
        )
        .await
        .unwrap();
    assert!(suspended.changed);
    assert_eq!(suspended.key.status, KeyStatus::Suspended);
    assert_eq!(suspended.hash, record.hash);
    let view = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(view.status, KeyStatus::Suspended);

    let active = f
        .store
        .apply(
            Scope::User(&alice),
            record.key.id,
            &Mutation::Reactivate,
            at(2),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(active.key.status, KeyStatus::Active);
    let stored = f
        .store
        .get_key(Scope::Admin, record.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, active.key);

    let err = f
        .store
        .apply(
            Scope::User(&alice),
            record.key.id,
            &Mutation::Reactivate,
            at(3),
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Lifecycle(LifecycleError::NotSuspended)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_is_terminal_and_keeps_the_first_revocation_time() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let alice = user("alice");
    let id = record.key.id;
    let revoked = f
        .store
        .apply(Scope::User(&alice), id, &Mutation::Revoke, at(5), &admin())
        .await
        .unwrap();
    assert_eq!(revoked.key.status, KeyStatus::Revoked);
    assert_eq!(revoked.key.revoked_at, Some(at(5)));

    let again = f
        .store
        .apply(Scope::User(&alice), id, &Mutation::Revoke, at(9), &admin())
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.key.revoked_at, Some(at(5)));

    for m in [
        Mutation::Suspend,
        Mutation::Reactivate,
        Mutation::SetPermissions(vec![]),
    ] {
        let err = f
            .store
            .apply(Scope::User(&alice), id, &m, at(10), &admin())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Lifecycle(LifecycleError::Revoked)),
            "{m:?}"
        );
    }
    let stored = f.store.get_key(Scope::Admin, id).await.unwrap().unwrap();
    assert_eq!(stored.status, KeyStatus::Revoked);
    assert_eq!(stored.revoked_at, Some(at(5)));
    assert_eq!(stored.permissions, record.key.permissions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_foreign_or_unknown_keys_are_not_found() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let bob = user("bob");
    let err = f
        .store
        .apply(
            Scope::User(&bob),
            record.key.id,
            &Mutation::Revoke,
            at(1),
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
    let stored = f
        .store
        .get_key(Scope::Admin, record.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, KeyStatus::Active);

    let err = f
        .store
        .apply(
            Scope::Admin,
            KeyId::new(at(0)),
            &Mutation::Suspend,
            at(1),
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_replaced_whole() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let names = vec!["IDENTITY".to_owned(), "READ_BLOCK".to_owned()];
    let applied = f
        .store
        .apply(
            Scope::User(&user("alice")),
            record.key.id,
            &Mutation::SetPermissions(names.clone()),
            at(1),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(applied.key.permissions, names);
    let view = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(view.permissions, names);

    let cleared = f
        .store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::SetPermissions(vec![]),
            at(2),
            &admin(),
        )
        .await
        .unwrap();
    assert!(cleared.key.permissions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_stored_changed_and_removed() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let view = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(view.rate_limit, RateLimit::new(100, 60).ok());
    let largest = RateLimit::new(1_000_000, 86_400).ok();
    let owner = user("alice");
    let applied = f
        .store
        .apply(
            Scope::User(&owner),
            record.key.id,
            &Mutation::SetRateLimit(largest),
            at(1),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(applied.key.rate_limit, largest);
    let view = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(view.rate_limit, largest);
    let removed = f
        .store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::SetRateLimit(None),
            at(2),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(removed.key.rate_limit, None);
    let stored = f
        .store
        .get_key(Scope::Admin, record.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.rate_limit, None);
    assert_eq!(
        stored.permissions, record.key.permissions,
        "the rest is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_already_in_effect_writes_nothing() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    f.store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::Suspend,
            at(1),
            &admin(),
        )
        .await
        .unwrap();
    let again = f
        .store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::Suspend,
            at(2),
            &admin(),
        )
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.key.status, KeyStatus::Suspended);
}
