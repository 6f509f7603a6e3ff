//! Pepper rotation through the HTTP API: a key hashed with a retired pepper still
//! verifies, and is moved to the current one on that first verification.

use keyward_core::audit::Actor;
use keyward_core::hash::{Pepper, Peppers};
use keyward_core::key::KeyFormat;
use keyward_core::model::{NewKey, UserId};
use keyward_core::time::Timestamp;
use keyward_store::{KeyStore, NewKeyRecord, PepperUsage, UserStore};

use super::TestApp;

const OLD: &str = "old-pepper-0123456789abcdefghijklmnopq";
const NEW: &str = "new-pepper-0123456789abcdefghijklmnopq";

#[tokio::test]
async fn a_key_of_a_retired_pepper_verifies_and_moves_to_the_current_one() {
    let app = TestApp::builder()
        .engine(|c| c.peppers = Peppers::parse(&format!("v1:{OLD},v2:{NEW}")).unwrap())
        .build()
        .await;
    // A key created before the rotation: hashed with version 1.
    let format = KeyFormat::default();
    let old = Pepper::new(1, OLD.as_bytes()).unwrap();
    let now = Timestamp::from_millis(1_800_000_000_000).unwrap();
    let (plain, hash) = old.mint(&format);
    let record = NewKeyRecord {
        hash,
        pepper_version: 1,
        key: NewKey::new(UserId::parse("alice").unwrap(), "before the rotation", now)
            .secret(&plain)
            .build(),
    };
    let store = app.engine.store();
    store
        .insert_key(&record, 100, &Actor::Admin("test".into()))
        .await
        .unwrap();
    let usage = |live_v1: u64, live_v2: u64| {
        let mut expected = Vec::new();
        if live_v1 > 0 {
            expected.push(PepperUsage {
                version: 1,
                live: live_v1,
                revoked: 0,
            });
        }
        if live_v2 > 0 {
            expected.push(PepperUsage {
                version: 2,
                live: live_v2,
                revoked: 0,
            });
        }
        expected
    };
    assert_eq!(store.pepper_usage().await.unwrap(), usage(1, 0));

    assert_eq!(app.verify_code(plain.expose(), &[]).await, "VALID");
    assert_eq!(
        store.pepper_usage().await.unwrap(),
        usage(0, 1),
        "re-hashed"
    );
    assert_eq!(app.verify_code(plain.expose(), &[]).await, "VALID");
    // New keys use the current version.
    app.key_with("alice", &[]).await;
    assert_eq!(store.pepper_usage().await.unwrap(), usage(0, 2));
}
