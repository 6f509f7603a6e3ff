//! What every contract suite shares: the fixture each backend provides, and keys
//! made and inserted the way the service makes them.

use keyward_core::audit::Actor;
use keyward_core::hash::Pepper;
use keyward_core::key::KeyFormat;
use keyward_core::model::{ApiKey, Metadata, NewKey, UserId};
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_store::{AnyStore, DatabaseUrl, KeyStore, NewKeyRecord, Store};

impl Fixture {
    /// `tasks` tasks at once, alternating between the fixture's store and a second
    /// connection to its database (as two instances would), each calling `work` with
    /// its store `rounds` times; every answer, in no particular order.
    pub async fn on_two_connections<T, F, Fut>(
        &self,
        tasks: usize,
        rounds: usize,
        work: F,
    ) -> Vec<T>
    where
        F: Fn(AnyStore, usize) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = T> + Send,
        T: Send + 'static,
    {
        let other = keyward_store::connect(&self.url).await.unwrap();
        let running: Vec<_> = (0..tasks)
            .map(|task| {
                let store = if task % 2 == 0 {
                    self.store.clone()
                } else {
                    other.clone()
                };
                let work = work.clone();
                tokio::spawn(async move {
                    let mut answers = Vec::with_capacity(rounds);
                    for _ in 0..rounds {
                        answers.push(work(store.clone(), task).await);
                    }
                    answers
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in running {
            answers.extend(task.await.unwrap());
        }
        other.close().await;
        answers
    }
}

/// A fresh, migrated, empty database and a way to open it a second time.
pub struct Fixture {
    pub store: AnyStore,
    pub url: DatabaseUrl,
    /// Whether the backend tells which keys changed (rather than "something changed").
    pub names_changed_keys: bool,
    /// Keeps the database alive for the test's duration.
    pub _guard: Box<dyn std::any::Any + Send>,
}

const T0: i64 = 1_800_000_000_000;

pub fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms).unwrap()
}

/// Who the contract tests act as.
pub fn admin() -> Actor {
    Actor::Admin("contract-test".into())
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// A realistic record: a generated key, hashed with a test pepper.
pub fn new_key(owner: &str, name: &str, created: i64) -> NewKeyRecord {
    let pepper = Pepper::new(1, b"contract-test-pepper-0123456789abcdef").unwrap();
    let (plain, hash) = pepper.mint(&KeyFormat::default());
    let key = ApiKey {
        description: Some(format!("{name} description")),
        permissions: vec!["EXECUTE_GRAPH".into(), "READ_GRAPH".into()],
        expires_at: Some(at(86_400_000)),
        rate_limit: RateLimit::new(100, 60).ok(),
        metadata: Metadata::from_json_object(format!(r#"{{"team":"{name}"}}"#)).ok(),
        ..NewKey::new(user(owner), name, at(created))
            .secret(&plain)
            .build()
    };
    NewKeyRecord {
        key,
        hash,
        pepper_version: 1,
    }
}

pub async fn insert(store: &AnyStore, owner: &str, name: &str, created: i64) -> NewKeyRecord {
    let record = new_key(owner, name, created);
    store.insert_key(&record, 100, &admin()).await.unwrap();
    record
}

/// An endpoint subscribed to `events`, made at `created`, with its secret's seed.
pub fn new_webhook(
    events: &[keyward_core::webhook::EventType],
    created: i64,
) -> keyward_store::NewWebhookRecord {
    use keyward_core::webhook::{Webhook, WebhookId, WebhookSecret};
    keyward_store::NewWebhookRecord {
        secret: keyward_store::SecretSeed {
            nonce: WebhookSecret::new_nonce(),
            pepper_version: 1,
        },
        webhook: Webhook {
            id: WebhookId::new(at(created)),
            url: "https://hooks.example.com/keyward".into(),
            description: Some("billing".into()),
            events: events.to_vec(),
            created_at: at(created),
            created_by: "admin:contract-test".into(),
            updated_at: at(created),
            disabled_at: None,
            disabled_reason: None,
            last_success_at: None,
            previous_secret_until: None,
        },
    }
}
