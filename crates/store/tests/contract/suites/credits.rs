//! Usage credits: taken atomically across connections, and what each state answers.

use keyward_core::audit::EventQuery;
use keyward_core::credits::{Interval, Refill};
use keyward_core::input::{EditFields, KeyEdit, ValidEdit};
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{KeyId, Scope};
use keyward_store::{AnyStore, EventStore, KeyStore, NewKeyRecord, UsageStore};

use super::fixture;
use crate::common::{admin, at, new_key};

async fn with_credits(store: &AnyStore, owner: &str, credits: Option<u64>) -> NewKeyRecord {
    let mut record = new_key(owner, "metered", 0);
    record.key.remaining = credits;
    store.insert_key(&record, 100, &admin()).await.unwrap();
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_credits_are_taken_atomically_from_two_connections() {
    use keyward_store::Consumed;
    let f = fixture().await;
    let record = with_credits(&f.store, "alice", Some(50)).await;
    let id = record.key.id;
    let outcomes = f
        .on_two_connections(8, 20, move |store, _| async move {
            store.consume(id, 1, None).await.unwrap()
        })
        .await;
    let mut left = Vec::new();
    let mut refused = 0;
    for outcome in outcomes {
        match outcome {
            Consumed::Left(n) => left.push(n),
            Consumed::Exceeded => refused += 1,
            other => panic!("unexpected {other:?}"),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_credits_answer_for_every_state() {
    use keyward_store::Consumed;
    let f = fixture().await;
    let record = with_credits(&f.store, "alice", Some(5)).await;
    let id = record.key.id;
    assert_eq!(
        f.store.consume(id, 0, None).await.unwrap(),
        Consumed::Left(5),
        "a check takes none"
    );
    assert_eq!(
        f.store.consume(id, 6, None).await.unwrap(),
        Consumed::Exceeded
    );
    assert_eq!(
        f.store.consume(id, 5, None).await.unwrap(),
        Consumed::Left(0),
        "nothing taken before"
    );
    assert_eq!(
        f.store.consume(id, 0, None).await.unwrap(),
        Consumed::Exceeded,
        "none left"
    );
    assert_eq!(
        f.store.consume(id, 1, None).await.unwrap(),
        Consumed::Exceeded
    );
    let view = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(view.remaining, Some(0));

    // A top-up is an edit; removing the limit makes the key unlimited.
    let top_up = edit(EditFields {
        remaining: Some(Some(3)),
        ..EditFields::default()
    });
    let applied = f
        .store
        .apply(Scope::Admin, id, &Mutation::Edit(top_up), at(1), &admin())
        .await
        .unwrap();
    assert_eq!(applied.key.remaining, Some(3));
    assert_eq!(
        f.store.consume(id, 2, None).await.unwrap(),
        Consumed::Left(1)
    );
    let unlimited = edit(EditFields {
        remaining: Some(None),
        ..EditFields::default()
    });
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
    assert_eq!(
        f.store.consume(id, 2, None).await.unwrap(),
        Consumed::Unlimited
    );
    let free = with_credits(&f.store, "bob", None).await;
    assert_eq!(
        f.store.consume(free.key.id, 1, None).await.unwrap(),
        Consumed::Unlimited
    );
    let missing = KeyId::new(at(99));
    assert_eq!(
        f.store.consume(missing, 1, None).await.unwrap(),
        Consumed::Missing
    );
}

/// An edit as the engine hands it to the store: validated.
fn edit(fields: EditFields) -> ValidEdit {
    KeyEdit::from(fields).validate(at(0)).unwrap()
}

async fn renewing(store: &AnyStore, owner: &str, refill: Refill) -> NewKeyRecord {
    let mut record = new_key(owner, "renewing", 0);
    record.key.remaining = Some(refill.amount());
    record.key.refill = Some(refill);
    record.key.credits_set_at = Some(at(0));
    store.insert_key(&record, 100, &admin()).await.unwrap();
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_refilled_once_per_boundary_from_two_connections() {
    use keyward_store::Consumed;
    let f = fixture().await;
    let refill = Refill::new(5, Interval::Minute, None).unwrap();
    let record = renewing(&f.store, "alice", refill).await;
    let id = record.key.id;
    let first = refill.period_start(at(0));
    let second = refill.next_after(at(0));
    let take = |since| f.store.consume(id, 1, Some(since));
    for left in (0..5).rev() {
        assert_eq!(take(first).await.unwrap(), Consumed::Left(left));
    }
    assert_eq!(take(first).await.unwrap(), Consumed::Exceeded, "spent");
    assert_eq!(
        f.store.consume(id, 0, Some(second)).await.unwrap(),
        Consumed::Left(5),
        "a check sees the refill due, without making it"
    );

    // Past the boundary, eight tasks on two connections: one of them refills, and
    // exactly five credits are taken in all.
    let outcomes = f
        .on_two_connections(8, 3, move |store, _| async move {
            store.consume(id, 1, Some(second)).await.unwrap()
        })
        .await;
    let mut left = Vec::new();
    for outcome in outcomes {
        match outcome {
            Consumed::Left(n) => left.push(n),
            Consumed::Exceeded => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    left.sort_unstable();
    assert_eq!(
        left,
        vec![0, 1, 2, 3, 4],
        "refilled once, each credit taken once"
    );
    // A late instance still in the previous minute refills nothing.
    assert_eq!(take(first).await.unwrap(), Consumed::Exceeded);
    let stored = f.store.get_key(Scope::Admin, id).await.unwrap().unwrap();
    assert_eq!(
        (stored.remaining, stored.credits_set_at),
        (Some(0), Some(second)),
        "the refill is recorded as set at its boundary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_rule_is_stored_changed_audited_and_left_behind_by_a_rotation() {
    let f = fixture().await;
    let monthly = Refill::new(1000, Interval::Month, Some(15)).unwrap();
    let record = renewing(&f.store, "alice", monthly).await;
    let id = record.key.id;
    let stored = f.store.get_key(Scope::Admin, id).await.unwrap().unwrap();
    assert_eq!(stored.refill, Some(monthly));
    let view = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(view.refill, Some(monthly), "verification knows the rule");

    let daily = Refill::new(10, Interval::Day, None).unwrap();
    let change = edit(EditFields {
        refill: Some(Some(daily)),
        ..EditFields::default()
    });
    let applied = f
        .store
        .apply(Scope::Admin, id, &Mutation::Edit(change), at(5), &admin())
        .await
        .unwrap();
    assert_eq!(applied.key.refill, Some(daily));
    assert_eq!(
        f.store.get_key(Scope::Admin, id).await.unwrap().unwrap(),
        applied.key,
        "read back as applied"
    );
    let events = f
        .store
        .list_events(&EventQuery {
            key_id: Some(id),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let changes: serde_json::Value = serde_json::from_str(&events.last().unwrap().changes).unwrap();
    assert_eq!(
        changes["refill"],
        serde_json::json!({
            "before": {"amount": 1000, "interval": "month", "day_of_month": 15},
            "after": {"amount": 10, "interval": "day"},
        })
    );

    // Removing the credits removes what renews them.
    let unlimited = edit(EditFields {
        remaining: Some(None),
        ..EditFields::default()
    });
    let applied = f
        .store
        .apply(
            Scope::Admin,
            id,
            &Mutation::Edit(unlimited),
            at(6),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!((applied.key.remaining, applied.key.refill), (None, None));

    let other = renewing(&f.store, "bob", daily).await;
    let replacement = super::rotation::replacement_at(7);
    let rotated = f
        .store
        .rotate(
            Scope::Admin,
            other.key.id,
            &replacement,
            super::rotation::terms(60, 100),
            at(7),
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(
        (rotated.new.refill, rotated.new.credits_set_at),
        (Some(daily), Some(at(0))),
        "the new key renews when the old one would have"
    );
    assert_eq!((rotated.old.remaining, rotated.old.refill), (Some(0), None));
    let old = f
        .store
        .get_key(Scope::Admin, other.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((old.remaining, old.refill), (Some(0), None), "stored so");
}
