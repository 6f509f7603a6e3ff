//! Last-used times, recorded in batches and only ever moved forward.

use keyward_core::model::{KeyId, Scope};
use keyward_store::{KeyStore, UsageStore};

use super::fixture;
use crate::common::{admin, at, insert, new_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_only_moves_last_used_forward() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    let b = insert(&f.store, "alice", "b", 1).await;
    let unknown = KeyId::new(at(0));
    let changed = f
        .store
        .record_usage(&[(a.key.id, at(100)), (b.key.id, at(50)), (unknown, at(100))])
        .await
        .unwrap();
    assert_eq!(changed, 2);

    let changed = f
        .store
        .record_usage(&[(a.key.id, at(60)), (b.key.id, at(200))])
        .await
        .unwrap();
    assert_eq!(changed, 1, "an older time must not overwrite a newer one");

    let seen = f.store.find_by_hash(&b.hash).await.unwrap().unwrap();
    assert_eq!(seen.last_used_at, Some(at(200)));
    let a = f
        .store
        .get_key(Scope::Admin, a.key.id)
        .await
        .unwrap()
        .unwrap();
    let b = f
        .store
        .get_key(Scope::Admin, b.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.last_used_at, Some(at(100)));
    assert_eq!(b.last_used_at, Some(at(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_batches_larger_than_one_statement_are_all_written() {
    let f = fixture().await;
    let mut ids = Vec::new();
    for i in 0..1_500 {
        let record = new_key(&format!("user{}", i % 7), "k", i);
        f.store.insert_key(&record, 1_000, &admin()).await.unwrap();
        ids.push(record.key.id);
    }
    // Twice: the second flush may find the whole statement prepared by the first.
    for time in [5_000, 6_000] {
        let usage: Vec<_> = ids.iter().map(|id| (*id, at(time))).collect();
        assert_eq!(f.store.record_usage(&usage).await.unwrap(), 1_500);
        let keys = f.store.list_keys(Scope::Admin).await.unwrap();
        assert!(keys.iter().all(|k| k.last_used_at == Some(at(time))));
    }
}
