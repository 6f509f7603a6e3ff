//! Keys bound to networks: the networks are stored, read back by every read (the
//! key's record and the verification record), changed and cleared by an edit, kept by
//! a rotation, and recorded in the audit trail.

use keyward_core::audit::EventQuery;
use keyward_core::input::{EditFields, KeyEdit};
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, Scope};
use keyward_core::network::AllowedNetworks;
use keyward_store::{EventStore, KeyStore};

use super::fixture;
use crate::common::{admin, at, new_key};

fn networks(list: &[&str]) -> AllowedNetworks {
    AllowedNetworks::parse(list).unwrap()
}

fn edit(allowed_ips: Option<AllowedNetworks>) -> Mutation {
    let fields = EditFields {
        allowed_ips: Some(allowed_ips),
        ..Default::default()
    };
    Mutation::Edit(KeyEdit::from(fields).validate(at(0)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_networks_are_stored_changed_cleared_and_recorded() {
    let f = fixture().await;
    let mut record = new_key("alice", "office", 0);
    let office = networks(&["203.0.113.0/24", "2001:db8::/32"]);
    record.key = ApiKey {
        allowed_ips: Some(office.clone()),
        ..record.key
    };
    f.store.insert_key(&record, 10, &admin()).await.unwrap();
    let id = record.key.id;
    let read = f.store.get_key(Scope::Admin, id).await.unwrap().unwrap();
    assert_eq!(read.allowed_ips, Some(office.clone()));
    let found = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(found.allowed_ips, Some(office));

    let vpn = networks(&["198.51.100.7"]);
    let moved = f
        .store
        .apply(Scope::Admin, id, &edit(Some(vpn.clone())), at(1), &admin())
        .await
        .unwrap();
    assert!(moved.changed);
    assert_eq!(moved.key.allowed_ips, Some(vpn.clone()));
    let found = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(found.allowed_ips, Some(vpn.clone()));
    // The same networks again change nothing.
    let again = f
        .store
        .apply(Scope::Admin, id, &edit(Some(vpn)), at(2), &admin())
        .await
        .unwrap();
    assert!(!again.changed);

    let cleared = f
        .store
        .apply(Scope::Admin, id, &edit(None), at(3), &admin())
        .await
        .unwrap();
    assert_eq!(cleared.key.allowed_ips, None);
    let found = f.store.find_by_hash(&record.hash).await.unwrap().unwrap();
    assert_eq!(found.allowed_ips, None);

    let events = f
        .store
        .list_events(&EventQuery {
            key_id: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    let changes: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.changes).unwrap()["allowed_ips"].clone()
        })
        .collect();
    assert_eq!(
        changes,
        [
            serde_json::json!({"before": null, "after": ["203.0.113.0/24", "2001:db8::/32"]}),
            serde_json::json!({"before": ["203.0.113.0/24", "2001:db8::/32"], "after": ["198.51.100.7/32"]}),
            serde_json::json!({"before": ["198.51.100.7/32"], "after": null}),
        ]
    );
}
