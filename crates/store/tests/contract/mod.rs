//! The store contract: behaviour every backend must have, written once against the
//! [`Store`] interface. A backend's test file provides a fixture and expands
//! [`store_contract_suite!`], which turns each function below into a test.

use std::time::Duration;

use keyward_core::audit::{Actor, EventQuery};
use keyward_core::hash::{KeyHash, Pepper};
use keyward_core::key::KeyFormat;
use keyward_core::lifecycle::{LifecycleError, Mutation};
use keyward_core::model::{ApiKey, KeyId, KeyStatus, Metadata, Scope, UserId};
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_store::{AnyStore, DatabaseUrl, ExternalChange, NewKeyRecord, Store, StoreError};

/// A fresh, migrated, empty database and a way to open it a second time.
pub struct Fixture {
    pub store: AnyStore,
    pub url: DatabaseUrl,
    /// Whether the backend tells which keys changed (rather than "something changed").
    pub names_changed_keys: bool,
    /// Keeps the database alive for the test's duration.
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// Expands to one `#[tokio::test]` per contract function, each on a fresh fixture
/// made by `$fresh` (an async fn returning [`Fixture`]); extra attributes (such as a
/// conditional `ignore`) are added to every test.
macro_rules! store_contract_suite {
    ($fresh:path $(, #[$attr:meta])*) => {
        store_contract_suite!(@each $fresh, [$(#[$attr])*];
            a_new_key_reads_back_exactly_as_inserted,
            a_key_is_visible_only_to_its_owner_or_an_admin,
            listing_is_newest_first_with_every_status,
            verification_finds_a_key_by_its_hash_alone,
            a_duplicate_hash_is_refused,
            the_live_key_cap_counts_keys_that_are_not_revoked,
            concurrent_creates_never_exceed_the_cap,
            a_failing_create_among_concurrent_ones_fails_alone,
            creates_from_two_connections_never_exceed_the_cap,
            suspend_and_reactivate_round_trip,
            revoke_is_terminal_and_keeps_the_first_revocation_time,
            changes_to_foreign_or_unknown_keys_are_not_found,
            permissions_are_replaced_whole,
            a_rate_limit_is_stored_changed_and_removed,
            a_change_already_in_effect_writes_nothing,
            usage_only_moves_last_used_forward,
            usage_batches_larger_than_one_statement_are_all_written,
            a_bulk_insert_stores_every_key_or_none,
            rehashing_moves_a_key_to_its_new_hash,
            keys_are_counted_per_pepper_version,
            a_rotation_links_both_keys_in_one_transaction,
            a_rotated_key_counts_toward_the_cap_during_its_grace_period,
            usage_credits_are_taken_atomically_from_two_connections,
            usage_credits_answer_for_every_state,
            migrations_can_run_again,
            a_change_by_another_connection_is_noticed,
            a_watching_store_confirms_it_at_least_every_second,
            deleting_a_user_removes_all_their_keys,
            a_deleted_users_keys_are_reported_to_other_connections,
            every_change_is_recorded_with_its_actor_and_values,
            a_refused_or_repeated_change_records_nothing,
            events_are_filtered_and_paged_oldest_first,
            a_user_deletion_is_recorded_and_outlives_the_keys,
        );
    };
    (@each $fresh:path, $attrs:tt; $($name:ident),* $(,)?) => {
        $( store_contract_suite!(@test $fresh, $attrs, $name); )*
    };
    (@test $fresh:path, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            let fixture = $fresh().await;
            contract::$name(&fixture).await;
        }
    };
}
pub(crate) use store_contract_suite;

const T0: i64 = 1_800_000_000_000;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms).unwrap()
}

/// Who the contract tests act as.
fn admin() -> Actor {
    Actor::Admin("contract-test".into())
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// A realistic record: a generated key, hashed with a test pepper.
fn new_key(owner: &str, name: &str, created: i64) -> NewKeyRecord {
    let format = KeyFormat::default();
    let plain = format.generate();
    let pepper = Pepper::new(1, b"contract-test-pepper-0123456789abcdef").unwrap();
    let hash = pepper.hash(format.parse(plain.expose()).unwrap());
    NewKeyRecord {
        key: ApiKey {
            id: KeyId::new(at(created)),
            user_id: user(owner),
            name: name.to_owned(),
            description: Some(format!("{name} description")),
            prefix: plain.display_prefix().to_owned(),
            postfix: plain.display_postfix().to_owned(),
            status: KeyStatus::Active,
            permissions: vec!["EXECUTE_GRAPH".into(), "READ_GRAPH".into()],
            created_at: at(created),
            last_used_at: None,
            revoked_at: None,
            expires_at: Some(at(86_400_000)),
            rate_limit: RateLimit::new(100, 60).ok(),
            metadata: Metadata::from_json_object(format!(r#"{{"team":"{name}"}}"#)).ok(),
            rotated_from: None,
            rotated_to: None,
            remaining: None,
        },
        hash,
        pepper_version: 1,
    }
}

async fn insert(store: &AnyStore, owner: &str, name: &str, created: i64) -> NewKeyRecord {
    let record = new_key(owner, name, created);
    store.insert_key(&record, 100, &admin()).await.unwrap();
    record
}

pub async fn a_new_key_reads_back_exactly_as_inserted(f: &Fixture) {
    let record = insert(&f.store, "alice", "ci", 0).await;
    let alice = user("alice");
    let read = f
        .store
        .get_key(Scope::User(&alice), record.key.id)
        .await
        .unwrap();
    assert_eq!(read, Some(record.key.clone()));
}

pub async fn a_key_is_visible_only_to_its_owner_or_an_admin(f: &Fixture) {
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

pub async fn listing_is_newest_first_with_every_status(f: &Fixture) {
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

pub async fn verification_finds_a_key_by_its_hash_alone(f: &Fixture) {
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

pub async fn a_duplicate_hash_is_refused(f: &Fixture) {
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

pub async fn the_live_key_cap_counts_keys_that_are_not_revoked(f: &Fixture) {
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

pub async fn concurrent_creates_never_exceed_the_cap(f: &Fixture) {
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

pub async fn a_failing_create_among_concurrent_ones_fails_alone(f: &Fixture) {
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

pub async fn creates_from_two_connections_never_exceed_the_cap(f: &Fixture) {
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

pub async fn suspend_and_reactivate_round_trip(f: &Fixture) {
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

pub async fn revoke_is_terminal_and_keeps_the_first_revocation_time(f: &Fixture) {
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

pub async fn changes_to_foreign_or_unknown_keys_are_not_found(f: &Fixture) {
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

pub async fn permissions_are_replaced_whole(f: &Fixture) {
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

pub async fn a_rate_limit_is_stored_changed_and_removed(f: &Fixture) {
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

pub async fn a_change_already_in_effect_writes_nothing(f: &Fixture) {
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

pub async fn usage_only_moves_last_used_forward(f: &Fixture) {
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

pub async fn usage_batches_larger_than_one_statement_are_all_written(f: &Fixture) {
    let mut ids = Vec::new();
    for i in 0..1_500 {
        let record = new_key(&format!("user{}", i % 7), "k", i);
        f.store.insert_key(&record, 1_000, &admin()).await.unwrap();
        ids.push(record.key.id);
    }
    let usage: Vec<_> = ids.iter().map(|id| (*id, at(5_000))).collect();
    assert_eq!(f.store.record_usage(&usage).await.unwrap(), 1_500);
    let keys = f.store.list_keys(Scope::Admin).await.unwrap();
    assert!(keys.iter().all(|k| k.last_used_at == Some(at(5_000))));
}

pub async fn a_bulk_insert_stores_every_key_or_none(f: &Fixture) {
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

pub async fn rehashing_moves_a_key_to_its_new_hash(f: &Fixture) {
    let record = insert(&f.store, "alice", "ci", 0).await;
    let new_hash = KeyHash::from_bytes([9; 32]);
    f.store.rehash(record.key.id, &new_hash, 2).await.unwrap();
    assert!(f.store.find_by_hash(&record.hash).await.unwrap().is_none());
    let found = f.store.find_by_hash(&new_hash).await.unwrap().unwrap();
    assert_eq!(found.id, record.key.id);
    assert_eq!(found.pepper_version, 2);
}

pub async fn migrations_can_run_again(f: &Fixture) {
    let record = insert(&f.store, "alice", "ci", 0).await;
    f.store.migrate().await.unwrap();
    f.store.ping().await.unwrap();
    assert!(
        f.store
            .get_key(Scope::Admin, record.key.id)
            .await
            .unwrap()
            .is_some()
    );
}

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

pub async fn a_change_by_another_connection_is_noticed(f: &Fixture) {
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
    assert_mentions(f, &change, &[record.hash]);
    other.close().await;
}

pub async fn a_watching_store_confirms_it_at_least_every_second(f: &Fixture) {
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

pub async fn deleting_a_user_removes_all_their_keys(f: &Fixture) {
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

pub async fn a_deleted_users_keys_are_reported_to_other_connections(f: &Fixture) {
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
    assert_mentions(f, &change, &[a.hash, b.hash]);
    other.close().await;
}

fn events_of(key: KeyId) -> EventQuery {
    EventQuery {
        key_id: Some(key),
        ..Default::default()
    }
}

fn changes(event: &keyward_core::audit::KeyEvent) -> serde_json::Value {
    serde_json::from_str(&event.changes).unwrap()
}

pub async fn every_change_is_recorded_with_its_actor_and_values(f: &Fixture) {
    let alice = Actor::User(user("alice"));
    let record = new_key("alice", "ci", 0);
    f.store.insert_key(&record, 10, &alice).await.unwrap();
    let id = record.key.id;
    let owner = user("alice");
    f.store
        .apply(Scope::User(&owner), id, &Mutation::Suspend, at(1), &alice)
        .await
        .unwrap();
    let names = vec!["IDENTITY".to_owned()];
    f.store
        .apply(
            Scope::Admin,
            id,
            &Mutation::SetPermissions(names),
            at(2),
            &admin(),
        )
        .await
        .unwrap();
    f.store
        .apply(
            Scope::Admin,
            id,
            &Mutation::SetRateLimit(None),
            at(3),
            &admin(),
        )
        .await
        .unwrap();
    f.store
        .apply(Scope::User(&owner), id, &Mutation::Revoke, at(4), &alice)
        .await
        .unwrap();

    let events = f.store.list_events(&events_of(id)).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "suspend",
            "set_permissions",
            "set_rate_limit",
            "revoke"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    let times: Vec<i64> = events
        .iter()
        .map(|e| e.at.as_millis() - at(0).as_millis())
        .collect();
    assert_eq!(times, [0, 1, 2, 3, 4]);
    assert!(
        events
            .iter()
            .all(|e| e.key_id == Some(id) && e.user_id == user("alice"))
    );
    assert_eq!(events[0].actor, alice);
    assert_eq!(events[2].actor, admin());

    let created = changes(&events[0]);
    assert_eq!(
        created["name"],
        serde_json::json!({"before": null, "after": "ci"})
    );
    assert_eq!(created["status"]["after"], "ACTIVE");
    assert_eq!(
        created["rate_limit"]["after"],
        serde_json::json!({"requests": 100, "per_seconds": 60})
    );
    assert_eq!(
        changes(&events[1]),
        serde_json::json!({"status": {"before": "ACTIVE", "after": "SUSPENDED"}})
    );
    assert_eq!(
        changes(&events[2]),
        serde_json::json!({"permissions": {
            "before": ["EXECUTE_GRAPH", "READ_GRAPH"], "after": ["IDENTITY"]
        }})
    );
    assert_eq!(
        changes(&events[3])["rate_limit"]["after"],
        serde_json::Value::Null
    );
    let revoked = changes(&events[4]);
    assert_eq!(revoked["status"]["after"], "REVOKED");
    assert_eq!(revoked["revoked_at"]["before"], serde_json::Value::Null);
    assert!(revoked["revoked_at"]["after"].is_string());
    // No secret and no hash in any event.
    for event in &events {
        assert!(!event.changes.contains("agpt_") && !event.changes.contains("hash"));
    }
}

pub async fn a_refused_or_repeated_change_records_nothing(f: &Fixture) {
    let record = insert(&f.store, "alice", "ci", 0).await;
    let id = record.key.id;
    f.store
        .apply(Scope::Admin, id, &Mutation::Revoke, at(1), &admin())
        .await
        .unwrap();
    // Already revoked: nothing written, nothing recorded.
    f.store
        .apply(Scope::Admin, id, &Mutation::Revoke, at(2), &admin())
        .await
        .unwrap();
    let refused = f
        .store
        .apply(Scope::Admin, id, &Mutation::Suspend, at(3), &admin())
        .await;
    assert!(matches!(refused, Err(StoreError::Lifecycle(_))));
    // Over the cap: the create and its event are both refused.
    let over = f
        .store
        .insert_key(&new_key("bob", "x", 0), 0, &admin())
        .await;
    assert!(matches!(over, Err(StoreError::LimitReached { .. })));

    let actions: Vec<String> = f
        .store
        .list_events(&EventQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["create", "revoke"]);
}

pub async fn events_are_filtered_and_paged_oldest_first(f: &Fixture) {
    for (n, owner) in ["alice", "bob", "alice", "carol", "alice"]
        .iter()
        .enumerate()
    {
        insert(&f.store, owner, &format!("k{n}"), n as i64 * 1_000).await;
    }
    let alice = EventQuery {
        user_id: Some(user("alice")),
        ..Default::default()
    };
    let all_alice = f.store.list_events(&alice).await.unwrap();
    assert_eq!(all_alice.len(), 3);
    assert!(all_alice.iter().all(|e| e.user_id == user("alice")));

    let first = f
        .store
        .list_events(&EventQuery {
            limit: 2,
            ..alice.clone()
        })
        .await
        .unwrap();
    let rest = f
        .store
        .list_events(&EventQuery {
            limit: 2,
            after: Some(first.last().unwrap().id),
            ..alice.clone()
        })
        .await
        .unwrap();
    let paged: Vec<i64> = first.iter().chain(&rest).map(|e| e.id).collect();
    let whole: Vec<i64> = all_alice.iter().map(|e| e.id).collect();
    assert_eq!(paged, whole);

    let since = f
        .store
        .list_events(&EventQuery {
            since: Some(at(2_000)),
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<i64> = since
        .iter()
        .map(|e| e.at.as_millis() - at(0).as_millis())
        .collect();
    assert_eq!(names, [2_000, 3_000, 4_000]);
}

pub async fn a_user_deletion_is_recorded_and_outlives_the_keys(f: &Fixture) {
    let one = insert(&f.store, "alice", "one", 0).await;
    let two = insert(&f.store, "alice", "two", 1).await;
    f.store
        .delete_user(&user("alice"), at(1_000), &admin())
        .await
        .unwrap();
    let events = f
        .store
        .list_events(&EventQuery {
            user_id: Some(user("alice")),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "create", "delete_user"]);
    let deletion = &events[2];
    assert_eq!(deletion.key_id, None);
    assert_eq!(deletion.actor, admin());
    let mut ids = vec![one.key.id.to_string(), two.key.id.to_string()];
    ids.sort();
    assert_eq!(
        changes(deletion),
        serde_json::json!({"keys": {"before": ids, "after": []}})
    );
    // The keys are gone, their history is not.
    assert!(
        f.store
            .get_key(Scope::Admin, one.key.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        f.store
            .list_events(&events_of(one.key.id))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn keys_are_counted_per_pepper_version(f: &Fixture) {
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
        .rehash(old[0].key.id, &old[0].hash, 2)
        .await
        .unwrap();
    let usage = f.store.pepper_usage().await.unwrap();
    assert_eq!((usage[0].live, usage[1].live), (1, 2));
}

pub async fn a_rotation_links_both_keys_in_one_transaction(f: &Fixture) {
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

fn terms(grace_seconds: u64, max_live_per_user: u32) -> keyward_store::RotationTerms {
    keyward_store::RotationTerms {
        grace_seconds,
        max_live_per_user,
    }
}

fn replacement_at(created: i64) -> keyward_store::Replacement {
    let fresh = new_key("unused", "unused", created);
    keyward_store::Replacement {
        id: fresh.key.id,
        hash: fresh.hash,
        pepper_version: 1,
        prefix: fresh.key.prefix,
        postfix: fresh.key.postfix,
    }
}

pub async fn a_rotated_key_counts_toward_the_cap_during_its_grace_period(f: &Fixture) {
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

async fn with_credits(store: &AnyStore, owner: &str, credits: Option<u64>) -> NewKeyRecord {
    let mut record = new_key(owner, "metered", 0);
    record.key.remaining = credits;
    store.insert_key(&record, 100, &admin()).await.unwrap();
    record
}

pub async fn usage_credits_are_taken_atomically_from_two_connections(f: &Fixture) {
    use keyward_store::Consumed;
    let record = with_credits(&f.store, "alice", Some(50)).await;
    let other = keyward_store::connect(&f.url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        let id = record.key.id;
        tasks.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            for _ in 0..20 {
                taken.push(store.consume(id, 1).await.unwrap());
            }
            taken
        }));
    }
    let mut left = Vec::new();
    let mut refused = 0;
    for task in tasks {
        for outcome in task.await.unwrap() {
            match outcome {
                Consumed::Left(n) => left.push(n),
                Consumed::Exceeded => refused += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    left.sort_unstable();
    assert_eq!(
        left,
        (0..50).collect::<Vec<u64>>(),
        "each credit taken exactly once"
    );
    assert_eq!(refused, 110);
    let stored = f
        .store
        .get_key(Scope::Admin, record.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.remaining, Some(0));
    other.close().await;
}

pub async fn usage_credits_answer_for_every_state(f: &Fixture) {
    use keyward_store::Consumed;
    let record = with_credits(&f.store, "alice", Some(5)).await;
    let id = record.key.id;
    assert_eq!(
        f.store.consume(id, 0).await.unwrap(),
        Consumed::Left(5),
        "a check takes none"
    );
    assert_eq!(f.store.consume(id, 6).await.unwrap(), Consumed::Exceeded);
    assert_eq!(
        f.store.consume(id, 5).await.unwrap(),
        Consumed::Left(0),
        "nothing taken before"
    );
    assert_eq!(
        f.store.consume(id, 0).await.unwrap(),
        Consumed::Exceeded,
        "none left"
    );
    assert_eq!(f.store.consume(id, 1).await.unwrap(), Consumed::Exceeded);
    let view = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(view.remaining, Some(0));

    // A top-up is an edit; removing the limit makes the key unlimited.
    let top_up = keyward_core::input::ValidEdit {
        remaining: Some(Some(3)),
        ..Default::default()
    };
    let applied = f
        .store
        .apply(Scope::Admin, id, &Mutation::Edit(top_up), at(1), &admin())
        .await
        .unwrap();
    assert_eq!(applied.key.remaining, Some(3));
    assert_eq!(f.store.consume(id, 2).await.unwrap(), Consumed::Left(1));
    let unlimited = keyward_core::input::ValidEdit {
        remaining: Some(None),
        ..Default::default()
    };
    f.store
        .apply(
            Scope::Admin,
            id,
            &Mutation::Edit(unlimited),
            at(2),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(f.store.consume(id, 2).await.unwrap(), Consumed::Unlimited);
    let free = with_credits(&f.store, "bob", None).await;
    assert_eq!(
        f.store.consume(free.key.id, 1).await.unwrap(),
        Consumed::Unlimited
    );
    let missing = KeyId::new(at(99));
    assert_eq!(
        f.store.consume(missing, 1).await.unwrap(),
        Consumed::Missing
    );
}
