//! Migrations on a database that is already migrated and holds keys.

use keyward_core::model::Scope;
use keyward_store::{KeyStore, Store};

use super::fixture;
use crate::common::insert;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_can_run_again() {
    let f = fixture().await;
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
