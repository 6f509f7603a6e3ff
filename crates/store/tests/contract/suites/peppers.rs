//! Keys under more than one pepper: moved by a re-hash, counted per version.

use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::Scope;
use keyward_store::{KeyStore, UserStore};

use super::fixture;
use crate::common::{admin, at, insert, new_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehashing_moves_a_key_to_its_new_hash() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "ci", 0).await;
    let new_hash = KeyHash::from_bytes([9; 32]);
    f.store
        .rehash(record.key.id, &record.hash, &new_hash, 2)
        .await
        .unwrap();
    assert!(f.store.find_by_hash(&record.hash).await.unwrap().is_none());
    let found = f.store.find_by_hash(&new_hash).await.unwrap().unwrap();
    assert_eq!(found.id, record.key.id);
    assert_eq!(found.pepper_version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_counted_per_pepper_version() {
    let f = fixture().await;
    assert!(f.store.pepper_usage().await.unwrap().is_empty());
    let old = [
        insert(&f.store, "alice", "a", 0).await,
        insert(&f.store, "alice", "b", 1).await,
        insert(&f.store, "bob", "c", 2).await,
    ];
    let mut newer = new_key("bob", "d", 3);
    newer.pepper_version = 2;
    f.store.insert_key(&newer, 10, &admin()).await.unwrap();
    f.store
        .apply(
            Scope::Admin,
            old[2].key.id,
            &Mutation::Revoke,
            at(4),
            &admin(),
        )
        .await
        .unwrap();
    let usage = f.store.pepper_usage().await.unwrap();
    assert_eq!(
        usage,
        [
            keyward_store::PepperUsage {
                version: 1,
                live: 2,
                revoked: 1
            },
            keyward_store::PepperUsage {
                version: 2,
                live: 1,
                revoked: 0
            },
        ]
    );
    // A re-hash moves a key to the new version.
    f.store
        .rehash(
            old[0].key.id,
            &old[0].hash,
            &KeyHash::from_bytes([8; 32]),
            2,
        )
        .await
        .unwrap();
    let usage = f.store.pepper_usage().await.unwrap();
    assert_eq!((usage[0].live, usage[1].live), (1, 2));
}
