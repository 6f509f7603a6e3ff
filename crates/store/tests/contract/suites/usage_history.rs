//! Usage history: counts per key and hour, added to by every flush, read per key,
//! per user and for the deployment, pruned by age, and gone with their user.

use keyward_core::time::Timestamp;
use keyward_core::usage::{HOUR_MS, HourlyUsage, UsageCounts};
use keyward_store::{HourCounts, KeyStore, UsageOf, UsageStore, UserStore};

use super::fixture;
use crate::common::{admin, at, insert, new_key, user};

fn hour(n: i64) -> Timestamp {
    at(n * HOUR_MS)
}

fn counts(key: &keyward_store::NewKeyRecord, h: i64, valid: u64, refused: u64) -> HourCounts {
    HourCounts {
        key_id: key.key.id,
        hour: hour(h),
        counts: UsageCounts { valid, refused },
    }
}

fn hourly(h: i64, valid: u64, refused: u64) -> HourlyUsage {
    HourlyUsage {
        hour: hour(h),
        counts: UsageCounts { valid, refused },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_of_an_hour_add_up_across_flushes() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    f.store
        .record_usage_history(&[counts(&a, 10, 3, 1), counts(&a, 11, 1, 0)])
        .await
        .unwrap();
    f.store
        .record_usage_history(&[counts(&a, 10, 2, 4)])
        .await
        .unwrap();
    let read = f
        .store
        .usage_history(UsageOf::Key(a.key.id), hour(0), hour(24))
        .await
        .unwrap();
    assert_eq!(read, [hourly(10, 5, 5), hourly(11, 1, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_larger_than_one_statement_add_up_when_repeated() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    // 2,500 hours: two whole statements and a shorter one, each flushed twice (the
    // second flush may find the whole statements prepared by the first).
    let batch: Vec<_> = (0..2_500).map(|h| counts(&a, h, 1, 0)).collect();
    for _ in 0..2 {
        f.store.record_usage_history(&batch).await.unwrap();
    }
    let read = f
        .store
        .usage_history(UsageOf::Key(a.key.id), hour(0), hour(2_500))
        .await
        .unwrap();
    let expected: Vec<_> = (0..2_500).map(|h| hourly(h, 2, 0)).collect();
    assert_eq!(read, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_are_read_in_the_half_open_range_only() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    let batch: Vec<_> = (0..5).map(|h| counts(&a, h, 1, 0)).collect();
    f.store.record_usage_history(&batch).await.unwrap();
    let read = f
        .store
        .usage_history(UsageOf::Key(a.key.id), hour(1), hour(3))
        .await
        .unwrap();
    assert_eq!(read, [hourly(1, 1, 0), hourly(2, 1, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_keys_and_the_whole_deployment_are_summed_per_hour() {
    let f = fixture().await;
    let a1 = insert(&f.store, "alice", "a1", 0).await;
    let a2 = insert(&f.store, "alice", "a2", 1).await;
    let b = insert(&f.store, "bob", "b", 2).await;
    f.store
        .record_usage_history(&[
            counts(&a1, 5, 1, 2),
            counts(&a2, 5, 10, 20),
            counts(&a2, 6, 1, 0),
            counts(&b, 5, 100, 0),
        ])
        .await
        .unwrap();
    let alice = user("alice");
    let of_alice = f
        .store
        .usage_history(UsageOf::User(&alice), hour(0), hour(24))
        .await
        .unwrap();
    assert_eq!(of_alice, [hourly(5, 11, 22), hourly(6, 1, 0)]);
    let all = f
        .store
        .usage_history(UsageOf::All, hour(0), hour(24))
        .await
        .unwrap();
    assert_eq!(all, [hourly(5, 111, 22), hourly(6, 1, 0)]);
    let nobody = f
        .store
        .usage_history(UsageOf::User(&user("carol")), hour(0), hour(24))
        .await
        .unwrap();
    assert!(nobody.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_forgets_only_the_hours_before_the_cutoff() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    let batch: Vec<_> = (0..4).map(|h| counts(&a, h, 1, 1)).collect();
    f.store.record_usage_history(&batch).await.unwrap();
    f.store.prune_usage_history(hour(2)).await.unwrap();
    let read = f
        .store
        .usage_history(UsageOf::All, hour(0), hour(24))
        .await
        .unwrap();
    assert_eq!(read, [hourly(2, 1, 1), hourly(3, 1, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_deletes_their_usage_history() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    let b = insert(&f.store, "bob", "b", 1).await;
    f.store
        .record_usage_history(&[counts(&a, 1, 5, 0), counts(&b, 1, 7, 0)])
        .await
        .unwrap();
    f.store
        .delete_user(&user("alice"), at(10), &admin())
        .await
        .unwrap();
    let gone = f
        .store
        .usage_history(UsageOf::Key(a.key.id), hour(0), hour(24))
        .await
        .unwrap();
    assert!(gone.is_empty());
    let all = f
        .store
        .usage_history(UsageOf::All, hour(0), hour(24))
        .await
        .unwrap();
    assert_eq!(all, [hourly(1, 7, 0)], "bob's history stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_of_a_key_deleted_before_the_flush_are_dropped_not_failed() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    let b = insert(&f.store, "bob", "b", 1).await;
    f.store
        .delete_user(&user("alice"), at(10), &admin())
        .await
        .unwrap();
    f.store
        .record_usage_history(&[counts(&a, 1, 5, 0), counts(&b, 1, 7, 0)])
        .await
        .unwrap();
    let all = f
        .store
        .usage_history(UsageOf::All, hour(0), hour(24))
        .await
        .unwrap();
    assert_eq!(all, [hourly(1, 7, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_one_statement_are_all_written() {
    let f = fixture().await;
    let mut keys = Vec::new();
    for i in 0..1_200 {
        let record = new_key(&format!("user{}", i % 7), "k", i);
        f.store.insert_key(&record, 1_000, &admin()).await.unwrap();
        keys.push(record);
    }
    let batch: Vec<_> = keys.iter().map(|k| counts(k, 3, 1, 2)).collect();
    f.store.record_usage_history(&batch).await.unwrap();
    let all = f
        .store
        .usage_history(UsageOf::All, hour(0), hour(24))
        .await
        .unwrap();
    assert_eq!(all, [hourly(3, 1_200, 2_400)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_verified_keys_since_an_hour_come_first_with_their_hashes() {
    let f = fixture().await;
    let a = insert(&f.store, "alice", "a", 0).await;
    let b = insert(&f.store, "bob", "b", 0).await;
    let c = insert(&f.store, "carol", "c", 0).await;
    let d = insert(&f.store, "dave", "d", 0).await;
    f.store
        .record_usage_history(&[
            // a: 5 in the window; b: 9 in the window, spread over two hours;
            // c: only before the window; d: only refused in the window.
            counts(&a, 20, 5, 0),
            counts(&b, 20, 4, 0),
            counts(&b, 21, 5, 0),
            counts(&c, 5, 100, 0),
            counts(&d, 21, 0, 7),
        ])
        .await
        .unwrap();
    let found = f.store.most_verified_since(hour(20), 10).await.unwrap();
    let ids: Vec<_> = found.iter().map(|(_, record)| record.id).collect();
    assert_eq!(ids, [b.key.id, a.key.id]);
    for (hash, record) in &found {
        let by_hash = f.store.find_by_hash(hash).await.unwrap().unwrap();
        assert_eq!(by_hash.id, record.id, "the hash is the key's own");
    }
    let top = f.store.most_verified_since(hour(20), 1).await.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].1.id, b.key.id);
    assert!(
        f.store
            .most_verified_since(hour(22), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
