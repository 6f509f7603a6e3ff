//! Service credentials: stored with their secret's hash only, found by either of their
//! secrets' hashes, revoked for good, rotated with a grace period, their use recorded,
//! and named as the actor of the key changes they make.

use keyward_core::audit::{Actor, EventQuery};
use keyward_core::credential::{
    CredentialId, CredentialStatus, Presented, ScopeSet, ServiceCredential, credential_format,
};
use keyward_core::hash::{KeyHash, Pepper};
use keyward_core::lifecycle::LifecycleError;
use keyward_store::{
    CredentialRotation, CredentialStore, EventStore, KeyStore, NewCredentialRecord, StoreError,
    UserStore,
};

use super::fixture;
use crate::common::{at, new_key};

fn pepper() -> Pepper {
    Pepper::new(1, b"contract-test-pepper-0123456789abcdef").unwrap()
}

/// A new credential, as the engine makes one: its secret's hash only.
fn new_credential(name: &str, scopes: &[&str], created: i64) -> NewCredentialRecord {
    let hash = new_hash();
    let credential = ServiceCredential {
        id: CredentialId::new(at(created)),
        name: name.into(),
        scopes: ScopeSet::parse(scopes).unwrap(),
        created_at: at(created),
        created_by: "admin:contract-test".into(),
        last_used_at: None,
        expires_at: Some(at(86_400_000)),
        status: CredentialStatus::Active,
        revoked_at: None,
        previous_secret_until: None,
    };
    NewCredentialRecord {
        credential,
        hash,
        pepper_version: 1,
    }
}

/// The credential one of whose secrets has `hash`, if any.
async fn lookup(
    f: &crate::common::Fixture,
    hash: &KeyHash,
) -> Option<keyward_store::FoundCredential> {
    f.store.find_credential(hash).await.unwrap()
}

fn new_hash() -> KeyHash {
    pepper().mint(credential_format()).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_reads_back_whole_and_is_found_by_its_hash() {
    let f = fixture().await;
    let gateway = new_credential("gateway", &["keys.verify"], 0);
    let billing = new_credential("billing", &["keys.write", "usage.read"], 10);
    f.store.insert_credential(&gateway).await.unwrap();
    f.store.insert_credential(&billing).await.unwrap();

    let got = f.store.get_credential(gateway.credential.id).await.unwrap();
    assert_eq!(got, Some(gateway.credential.clone()));
    let listed = f.store.list_credentials().await.unwrap();
    assert_eq!(
        listed,
        vec![billing.credential.clone(), gateway.credential.clone()],
        "newest first"
    );

    let found = lookup(&f, &billing.hash).await.unwrap();
    assert_eq!(found.credential, billing.credential);
    assert_eq!(found.presented, Presented::Current);
    assert_eq!(lookup(&f, &new_hash()).await, None);
    let unknown = CredentialId::new(at(99));
    assert_eq!(f.store.get_credential(unknown).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_credentials_cannot_share_a_secret() {
    let f = fixture().await;
    let first = new_credential("first", &["keys.verify"], 0);
    f.store.insert_credential(&first).await.unwrap();
    let mut second = new_credential("second", &["keys.read"], 1);
    second.hash = first.hash;
    let refused = f.store.insert_credential(&second).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(f.store.list_credentials().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_final_and_a_second_one_changes_nothing() {
    let f = fixture().await;
    let record = new_credential("gateway", &["keys.verify"], 0);
    f.store.insert_credential(&record).await.unwrap();
    let id = record.credential.id;

    let revoked = f
        .store
        .revoke_credential(id, at(50))
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.changed);
    assert_eq!(revoked.hashes, vec![record.hash]);
    assert_eq!(revoked.credential.status, CredentialStatus::Revoked);
    assert_eq!(revoked.credential.revoked_at, Some(at(50)));

    let again = f
        .store
        .revoke_credential(id, at(60))
        .await
        .unwrap()
        .unwrap();
    assert!(!again.changed);
    assert_eq!(
        again.credential.revoked_at,
        Some(at(50)),
        "the first time kept"
    );

    // Still found (whether it authenticates is the engine's decision), as revoked.
    let found = lookup(&f, &record.hash).await.unwrap();
    assert!(!found.credential.authenticates(found.presented, at(70)));

    let rotation = CredentialRotation {
        hash: new_hash(),
        pepper_version: 1,
        previous_until: None,
    };
    let refused = f.store.rotate_credential(id, &rotation).await;
    assert!(
        matches!(refused, Err(StoreError::Lifecycle(LifecycleError::Revoked))),
        "{refused:?}"
    );
    assert_eq!(lookup(&f, &rotation.hash).await, None);

    let unknown = CredentialId::new(at(99));
    assert!(
        f.store
            .revoke_credential(unknown, at(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .rotate_credential(unknown, &rotation)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_keeps_the_replaced_secret_until_its_grace_ends() {
    let f = fixture().await;
    let record = new_credential("gateway", &["keys.verify"], 0);
    f.store.insert_credential(&record).await.unwrap();
    let id = record.credential.id;

    let first = CredentialRotation {
        hash: new_hash(),
        pepper_version: 1,
        previous_until: Some(at(1_000)),
    };
    let rotated = f
        .store
        .rotate_credential(id, &first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.hashes, vec![record.hash], "the retired secret");
    assert_eq!(rotated.credential.previous_secret_until, Some(at(1_000)));

    let current = lookup(&f, &first.hash).await.unwrap();
    assert_eq!(current.presented, Presented::Current);
    let previous = lookup(&f, &record.hash).await.unwrap();
    assert_eq!(previous.presented, Presented::Previous);
    let grace = |ms| {
        previous
            .credential
            .authenticates(Presented::Previous, at(ms))
    };
    assert!(grace(999) && !grace(1_000), "until previous_until only");

    // A second rotation without grace: neither older secret is found any more.
    let second = CredentialRotation {
        hash: new_hash(),
        pepper_version: 1,
        previous_until: None,
    };
    let rotated = f
        .store
        .rotate_credential(id, &second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.hashes, vec![first.hash, record.hash]);
    assert_eq!(rotated.credential.previous_secret_until, None);
    assert_eq!(lookup(&f, &record.hash).await, None);
    assert_eq!(lookup(&f, &first.hash).await, None);
    let found = lookup(&f, &second.hash).await.unwrap();
    assert_eq!(found.presented, Presented::Current);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_secret_reported_leaked_ends_at_once_and_the_current_one_stays() {
    let f = fixture().await;
    let record = new_credential("gateway", &["keys.verify"], 0);
    f.store.insert_credential(&record).await.unwrap();
    let id = record.credential.id;
    let rotation = CredentialRotation {
        hash: new_hash(),
        pepper_version: 1,
        previous_until: Some(at(1_000)),
    };
    f.store.rotate_credential(id, &rotation).await.unwrap();
    // The current secret is not the replaced one: nothing ends.
    let kept = f
        .store
        .end_previous_secret(id, &rotation.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(!kept.changed && kept.hashes.is_empty());
    assert_eq!(kept.credential.previous_secret_until, Some(at(1_000)));

    let ended = f
        .store
        .end_previous_secret(id, &record.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(ended.changed);
    assert_eq!(ended.hashes, vec![record.hash]);
    assert_eq!(ended.credential.previous_secret_until, None);
    assert_eq!(ended.credential.status, CredentialStatus::Active);
    assert_eq!(lookup(&f, &record.hash).await, None);
    let current = lookup(&f, &rotation.hash).await.unwrap();
    assert_eq!(current.presented, Presented::Current);
    // Again: nothing left to end. An unknown credential: none.
    let again = f.store.end_previous_secret(id, &record.hash).await.unwrap();
    assert!(!again.unwrap().changed);
    let unknown = CredentialId::new(at(5));
    assert!(
        f.store
            .end_previous_secret(unknown, &record.hash)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_use_moves_last_used_forward_only() {
    let f = fixture().await;
    let record = new_credential("gateway", &["keys.verify"], 0);
    f.store.insert_credential(&record).await.unwrap();
    let id = record.credential.id;
    f.store
        .record_credential_use(&[(id, at(500))])
        .await
        .unwrap();
    f.store
        .record_credential_use(&[(id, at(400))])
        .await
        .unwrap();
    f.store.record_credential_use(&[]).await.unwrap();
    let got = f.store.get_credential(id).await.unwrap().unwrap();
    assert_eq!(got.last_used_at, Some(at(500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_is_named_as_the_actor_of_its_changes() {
    let f = fixture().await;
    let record = new_credential("billing", &["keys.write"], 0);
    f.store.insert_credential(&record).await.unwrap();
    let actor = Actor::Credential {
        id: record.credential.id,
        name: "billing".into(),
    };
    let key = new_key("alice", "ci", 0);
    f.store.insert_key(&key, 10, &actor).await.unwrap();

    let events = f
        .store
        .list_events(&EventQuery {
            key_id: Some(key.key.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, actor);
    assert_eq!(events[0].actor.kind(), "credential");
    assert_eq!(events[0].actor.credential_id(), Some(record.credential.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehash_moves_the_current_secret_unless_it_changed_meanwhile() {
    let f = fixture().await;
    let record = new_credential("gateway", &["keys.verify"], 0);
    f.store.insert_credential(&record).await.unwrap();
    let id = record.credential.id;
    let usage = f.store.pepper_usage().await.unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.version, u.live))
            .collect::<Vec<_>>(),
        [(1, 1)],
        "credentials count toward their pepper"
    );

    let moved = new_hash();
    f.store
        .rehash_credential(id, &record.hash, &moved, 2)
        .await
        .unwrap();
    assert_eq!(lookup(&f, &record.hash).await, None);
    let found = lookup(&f, &moved).await.unwrap();
    assert_eq!(found.presented, Presented::Current);
    let usage = f.store.pepper_usage().await.unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.version, u.live))
            .collect::<Vec<_>>(),
        [(2, 1)]
    );

    // From a hash it no longer has (a rotation came first): nothing changes.
    f.store
        .rehash_credential(id, &record.hash, &new_hash(), 3)
        .await
        .unwrap();
    assert!(lookup(&f, &moved).await.is_some());
}
