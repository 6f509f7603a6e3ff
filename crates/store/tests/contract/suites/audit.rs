//! The audit trail: every change recorded with its actor and values, nothing for a change
//! that did not happen, filtered and paged, and kept after a user's keys are deleted.

use keyward_core::audit::{Actor, EventQuery};
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{KeyId, Scope};
use keyward_store::{EventStore, KeyStore, StoreError, UserStore};

use super::fixture;
use crate::common::{admin, at, insert, new_key, user};

fn events_of(key: KeyId) -> EventQuery {
    EventQuery {
        key_id: Some(key),
        ..Default::default()
    }
}

fn changes(event: &keyward_core::audit::KeyEvent) -> serde_json::Value {
    serde_json::from_str(&event.changes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_recorded_with_its_actor_and_values() {
    let f = fixture().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_repeated_change_records_nothing() {
    let f = fixture().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_filtered_and_paged_oldest_first() {
    let f = fixture().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deletion_is_recorded_and_outlives_the_keys() {
    let f = fixture().await;
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
