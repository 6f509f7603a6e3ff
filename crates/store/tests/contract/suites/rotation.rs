//! Rotation: both keys linked in one transaction, and the key cap during a grace period.

use keyward_core::audit::EventQuery;
use keyward_core::lifecycle::LifecycleError;
use keyward_core::model::{KeyId, Scope};
use keyward_store::{EventStore, KeyStore, StoreError};

use super::fixture;
use crate::common::{admin, at, insert, new_key, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_links_both_keys_in_one_transaction() {
    let f = fixture().await;
    let old = insert(&f.store, "alice", "ci", 0).await;
    let fresh = new_key("alice", "unused", 0);
    let replacement = keyward_store::Replacement {
        id: KeyId::new(at(10)),
        hash: fresh.hash,
        pepper_version: 1,
        prefix: "agpt_new".into(),
        postfix: "postfix1".into(),
    };
    let owner = user("alice");
    let rotated = f
        .store
        .rotate(
            Scope::User(&owner),
            old.key.id,
            &replacement,
            terms(60, 100),
            at(10),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(rotated.old_hash, old.hash);
    assert_eq!(rotated.old.rotated_to, Some(replacement.id));
    assert_eq!(rotated.old.expires_at, Some(at(60_010)), "now + grace");
    assert_eq!(rotated.new.rotated_from, Some(old.key.id));
    assert_eq!(
        rotated.new.expires_at, old.key.expires_at,
        "the old expiry, kept"
    );
    assert_eq!(rotated.new.permissions, old.key.permissions);
    assert_eq!(rotated.new.metadata, old.key.metadata);
    assert_eq!(rotated.new.rate_limit, old.key.rate_limit);

    let stored_old = f
        .store
        .get_key(Scope::Admin, old.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_old, rotated.old);
    let stored_new = f
        .store
        .get_key(Scope::Admin, replacement.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_new, rotated.new);
    let found = f
        .store
        .find_by_hash(&replacement.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, replacement.id);

    // Rotating again, another user's key, or a revoked key: refused, nothing written.
    let again = f
        .store
        .rotate(
            Scope::Admin,
            old.key.id,
            &replacement,
            terms(60, 100),
            at(11),
            &admin(),
        )
        .await;
    assert!(matches!(
        again,
        Err(StoreError::Lifecycle(LifecycleError::AlreadyRotated))
    ));
    let foreign = f
        .store
        .rotate(
            Scope::User(&user("bob")),
            replacement.id,
            &replacement,
            terms(60, 100),
            at(11),
            &admin(),
        )
        .await;
    assert!(matches!(foreign, Err(StoreError::NotFound)));
    let actions: Vec<String> = f
        .store
        .list_events(&EventQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["create", "rotate", "create"]);
}

pub(super) fn terms(grace_seconds: u64, max_live_per_user: u32) -> keyward_store::RotationTerms {
    keyward_store::RotationTerms {
        grace_seconds,
        max_live_per_user,
    }
}

pub(super) fn replacement_at(created: i64) -> keyward_store::Replacement {
    let fresh = new_key("unused", "unused", created);
    keyward_store::Replacement {
        id: fresh.key.id,
        hash: fresh.hash,
        pepper_version: 1,
        prefix: fresh.key.prefix,
        postfix: fresh.key.postfix,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_counts_toward_the_cap_during_its_grace_period() {
    let f = fixture().await;
    let alice = user("alice");
    let one = new_key("alice", "one", 0);
    let two = new_key("alice", "two", 1);
    f.store.insert_key(&one, 2, &admin()).await.unwrap();
    f.store.insert_key(&two, 2, &admin()).await.unwrap();

    // At the cap: with a grace period both keys would count, so it is refused and
    // nothing is written.
    let grace = replacement_at(10);
    let refused = f
        .store
        .rotate(
            Scope::User(&alice),
            one.key.id,
            &grace,
            terms(60, 2),
            at(10),
            &admin(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::LimitReached { limit: 2 })),
        "{refused:?}"
    );
    let stored = f
        .store
        .get_key(Scope::Admin, one.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.rotated_to, None);
    assert!(
        f.store
            .get_key(Scope::Admin, grace.id)
            .await
            .unwrap()
            .is_none()
    );

    // Without one, the new key replaces the old one: allowed at the cap.
    let at_once = replacement_at(11);
    f.store
        .rotate(
            Scope::User(&alice),
            one.key.id,
            &at_once,
            terms(0, 2),
            at(11),
            &admin(),
        )
        .await
        .unwrap();
    let three = new_key("alice", "three", 20);
    assert!(matches!(
        f.store.insert_key(&three, 2, &admin()).await,
        Err(StoreError::LimitReached { .. })
    ));
    f.store.insert_key(&three, 3, &admin()).await.unwrap();

    // A grace period under the cap: both count until it ends.
    let later = replacement_at(30);
    f.store
        .rotate(
            Scope::User(&alice),
            two.key.id,
            &later,
            terms(60, 4),
            at(30),
            &admin(),
        )
        .await
        .unwrap();
    let four = new_key("alice", "four", 40);
    assert!(matches!(
        f.store.insert_key(&four, 4, &admin()).await,
        Err(StoreError::LimitReached { .. })
    ));
    let after_grace = new_key("alice", "four", 70_000);
    f.store.insert_key(&after_grace, 4, &admin()).await.unwrap();
}
