//! Storing, reading, listing and finding keys, one at a time or in bulk, and deleting a
//! user's keys.

use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{KeyId, KeyStatus, Scope};
use keyward_store::{KeyStore, Store, StoreError, UserStore};

use super::fixture;
use crate::common::{admin, at, insert, new_key, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_reads_back_exactly_as_inserted() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let alice = user("alice");
    let read = f
        .store
        .get_key(Scope::User(&alice), record.key.id)
        .await
        .unwrap();
    assert_eq!(read, Some(record.key.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_visible_only_to_its_owner_or_an_admin() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let id = record.key.id;
    assert!(
        f.store
            .get_key(Scope::User(&user("bob")), id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(f.store.get_key(Scope::Admin, id).await.unwrap().is_some());
    assert!(
        f.store
            .list_keys(Scope::User(&user("bob")))
            .await
            .unwrap()
            .is_empty()
    );
    let unknown = KeyId::new(at(0));
    assert!(
        f.store
            .get_key(Scope::Admin, unknown)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_newest_first_with_every_status() {
    let f = fixture().await;
    let old = insert(&f.store, "alice", "old", 0).await;
    let mid = insert(&f.store, "alice", "mid", 10).await;
    let new = insert(&f.store, "alice", "new", 20).await;
    insert(&f.store, "bob", "bobs", 30).await;
    let alice = user("alice");
    f.store
        .apply(
            Scope::User(&alice),
            mid.key.id,
            &Mutation::Revoke,
            at(40),
            &admin(),
        )
        .await
        .unwrap();
    f.store
        .apply(
            Scope::User(&alice),
            old.key.id,
            &Mutation::Suspend,
            at(40),
            &admin(),
        )
        .await
        .unwrap();

    let listed = f.store.list_keys(Scope::User(&alice)).await.unwrap();
    let names: Vec<_> = listed.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["new", "mid", "old"]);
    let statuses: Vec<_> = listed.iter().map(|k| k.status).collect();
    assert_eq!(
        statuses,
        [KeyStatus::Active, KeyStatus::Revoked, KeyStatus::Suspended]
    );
    assert_eq!(listed[0], new.key);

    let everyone = f.store.list_keys(Scope::Admin).await.unwrap();
    let names: Vec<_> = everyone.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["bobs", "new", "mid", "old"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_finds_a_key_by_its_hash_alone() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let found = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(found.id, record.key.id);
    assert_eq!(found.user_id, user("alice"));
    assert_eq!(found.status, KeyStatus::Active);
    assert_eq!(found.permissions, record.key.permissions);
    assert_eq!(found.expires_at, record.key.expires_at);
    assert_eq!(found.pepper_version, 1);
    assert_eq!(found.last_used_at, None);

    let other = KeyHash::from_bytes([7; 32]);
    assert!(f.store.find_by_hash(&other).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_each_find_their_own_key_or_none() {
    let f = fixture().await;
    let batch: Vec<_> = (0..300).map(|i| new_key("many", "k", i)).collect();
    f.store.insert_keys(&batch, &admin()).await.unwrap();
    // Every key looked up twice at once, among as many hashes that match nothing: the
    // backend may gather lookups, but each must get its own answer.
    let mut lookups = tokio::task::JoinSet::new();
    for (i, record) in batch.iter().enumerate() {
        for hash in [record.hash, record.hash, KeyHash::from_bytes([0xee; 32])] {
            let (store, expected) = (f.store.clone(), (hash == record.hash).then_some(i));
            lookups.spawn(async move { (store.find_by_hash(&hash).await, expected) });
        }
    }
    let mut answered = 0;
    while let Some(joined) = lookups.join_next().await {
        let (found, expected) = joined.unwrap();
        let found = found.unwrap();
        match expected {
            Some(i) => assert_eq!(found.map(|r| r.id), Some(batch[i].key.id)),
            None => assert!(found.is_none(), "{found:?}"),
        }
        answered += 1;
    }
    assert_eq!(answered, 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_answers_lookups_as_unavailable() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    f.store.close().await;
    let err = f.store.find_by_hash(&record.hash).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_hash_is_refused() {
    let f = fixture().await;
    let first = insert(&f.store, "alice", "one", 0).await;
    let mut second = new_key("alice", "two", 1);
    second.hash = first.hash;
    let err = f
        .store
        .insert_key(&second, 100, &admin())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate), "{err:?}");
    assert_eq!(f.store.list_keys(Scope::Admin).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_insert_stores_every_key_or_none() {
    let f = fixture().await;
    // More rows than one PostgreSQL statement takes, and more than any user's cap.
    let batch: Vec<_> = (0..2_500).map(|i| new_key("bulk", "k", i)).collect();
    f.store.insert_keys(&batch, &admin()).await.unwrap();
    let stored = f.store.list_keys(Scope::User(&user("bulk"))).await.unwrap();
    assert_eq!(stored.len(), 2_500);
    let last = &batch[2_499];
    let found = f.store.find_by_hash(&last.hash).await.unwrap().unwrap();
    assert_eq!(found.id, last.key.id);
    assert_eq!(
        f.store
            .get_key(Scope::Admin, last.key.id)
            .await
            .unwrap()
            .unwrap(),
        last.key
    );

    // A duplicate hash in the last chunk fails the whole batch: nothing is stored.
    let mut failing: Vec<_> = (0..1_500).map(|i| new_key("other", "k", i)).collect();
    failing.push(batch[0].clone());
    assert!(f.store.insert_keys(&failing, &admin()).await.is_err());
    assert!(
        f.store
            .list_keys(Scope::User(&user("other")))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_removes_all_their_keys() {
    let f = fixture().await;
    let mut hashes = Vec::new();
    for i in 0..3 {
        hashes.push(insert(&f.store, "alice", "k", i).await.hash);
    }
    let bobs = insert(&f.store, "bob", "k", 9).await;
    let mut deleted = f
        .store
        .delete_user(&user("alice"), at(1_000), &admin())
        .await
        .unwrap();
    deleted.sort_by_key(|h| *h.as_bytes());
    hashes.sort_by_key(|h| *h.as_bytes());
    assert_eq!(deleted, hashes);
    assert!(
        f.store
            .list_keys(Scope::User(&user("alice")))
            .await
            .unwrap()
            .is_empty()
    );
    for hash in &hashes {
        assert!(f.store.find_by_hash(hash).await.unwrap().is_none());
    }
    assert_eq!(
        f.store.list_keys(Scope::Admin).await.unwrap(),
        vec![bobs.key]
    );
    assert!(
        f.store
            .delete_user(&user("alice"), at(1_000), &admin())
            .await
            .unwrap()
            .is_empty()
    );
}
