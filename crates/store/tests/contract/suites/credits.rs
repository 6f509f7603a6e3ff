//! Usage credits: taken atomically across connections, and what each state answers.

use keyward_core::input::{EditFields, KeyEdit, ValidEdit};
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{KeyId, Scope};
use keyward_store::{AnyStore, KeyStore, NewKeyRecord, Store, UsageStore};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_credits_answer_for_every_state() {
    use keyward_store::Consumed;
    let f = fixture().await;
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
    assert_eq!(f.store.consume(id, 2).await.unwrap(), Consumed::Left(1));
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

/// An edit as the engine hands it to the store: validated.
fn edit(fields: EditFields) -> ValidEdit {
    KeyEdit::from(fields).validate(at(0)).unwrap()
}
