//! Webhooks: a committed change queues its event for every endpoint subscribed (in
//! the change's transaction, so a failed change queues nothing); senders claim due
//! deliveries for a lease, one instance at a time and a key's events in order; an
//! attempt's outcome retries, finishes or gives up, and an endpoint failing for the
//! whole window is disabled.

use keyward_core::audit::EventQuery;
use keyward_core::input::{EditFields, KeyEdit};
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{Scope, UserId};
use keyward_core::webhook::{
    DeliveryState, EventType, ValidWebhookFields, WebhookId, WebhookSecret,
};
use keyward_store::{
    AfterAttempt, AttemptRecord, ClaimedDelivery, ConditionRules, EventStore, KeyStore, SecretSeed,
    StoreError, UsageStore, UserStore, WebhookStore,
};
use serde_json::Value;

use super::fixture;
use crate::common::{Fixture, admin, at, insert, new_key, new_webhook};

/// How long the tests' claims last.
const LEASE_MS: i64 = 60_000;

async fn endpoint(f: &Fixture, events: &[EventType], created: i64) -> WebhookId {
    let record = new_webhook(events, created);
    let webhook = record.webhook.clone();
    f.store.insert_webhook(&record, &admin()).await.unwrap();
    assert_eq!(
        f.store.get_webhook(webhook.id).await.unwrap(),
        Some(webhook)
    );
    record.webhook.id
}

/// A change that only switches an endpoint on or off.
fn switched(on: bool) -> ValidWebhookFields {
    ValidWebhookFields {
        url: None,
        events: None,
        description: None,
        enabled: Some(on),
    }
}

async fn claim(f: &Fixture, now: i64) -> Vec<ClaimedDelivery> {
    f.store
        .claim_deliveries(at(now), at(now + LEASE_MS), 100)
        .await
        .unwrap()
}

fn body(delivery: &ClaimedDelivery) -> Value {
    serde_json::from_str(&delivery.body).unwrap()
}

async fn finish(f: &Fixture, delivery: &ClaimedDelivery, now: i64, next: AfterAttempt) {
    let attempt = AttemptRecord {
        delivery_id: delivery.id,
        attempt: delivery.attempt,
        at: at(now),
        status_code: (next == AfterAttempt::Delivered).then_some(204),
        latency_ms: 12,
        error: (next != AfterAttempt::Delivered).then(|| "connection refused".into()),
        next,
    };
    f.store.finish_attempt(&attempt).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_change_queues_its_event_for_each_endpoint_subscribed() {
    let f = fixture().await;
    let both = endpoint(&f, &[EventType::KeyCreated, EventType::KeyRevoked], 1).await;
    let revocations = endpoint(&f, &[EventType::KeyRevoked], 2).await;
    let record = insert(&f.store, "alice", "ci", 10).await;
    let key = record.key.id;
    f.store
        .apply(Scope::Admin, key, &Mutation::Revoke, at(20), &admin())
        .await
        .unwrap();

    let claimed = claim(&f, 30).await;
    let seen: Vec<(WebhookId, String)> = claimed
        .iter()
        .map(|d| (d.webhook_id, d.event_type.clone()))
        .collect();
    // `both` gets the key's revocation only after its creation.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.contains(&(both, "api_key.created".into())));
    assert!(seen.contains(&(revocations, "api_key.revoked".into())));
    let to_both = claimed.iter().find(|d| d.webhook_id == both).unwrap();
    finish(&f, to_both, 31, AfterAttempt::Delivered).await;
    let next = claim(&f, 32).await;
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].webhook_id, next[0].event_type.as_str()),
        (both, "api_key.revoked")
    );
    // One event, one id and one body, whichever endpoint it goes to.
    let revoked = claimed
        .iter()
        .find(|d| d.webhook_id == revocations)
        .unwrap();
    assert_eq!(next[0].event_id, revoked.event_id);
    assert_eq!(next[0].body, revoked.body);
    assert_eq!(body(revoked)["data"]["key"]["status"], "REVOKED");
    assert_eq!(
        body(revoked)["data"]["changes"]["status"],
        serde_json::json!({"before": "ACTIVE", "after": "REVOKED"})
    );

    let created = claimed
        .iter()
        .find(|d| d.event_type == "api_key.created")
        .unwrap();
    let sent = body(created);
    assert_eq!(sent["type"], "api_key.created");
    assert_eq!(sent["timestamp"], at(10).to_rfc3339());
    let data = &sent["data"];
    assert_eq!(data["key"]["id"], key.to_string());
    assert_eq!(data["key"]["status"], "ACTIVE");
    assert_eq!(data["key"]["name"], "ci");
    assert_eq!(data["actor"]["type"], "admin");
    assert!(created.event_id.starts_with("msg_"));
    let text = created.body.to_lowercase();
    for secret in [
        hex(record.hash.as_bytes()),
        "key_hash".to_string(),
        "hash".to_string(),
    ] {
        assert!(!text.contains(&secret), "the body names {secret}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_fails_queues_nothing() {
    let f = fixture().await;
    endpoint(&f, &EventType::ALL[..12], 1).await;
    let record = insert(&f.store, "alice", "ci", 10).await;
    for delivery in claim(&f, 11).await {
        finish(&f, &delivery, 12, AfterAttempt::Delivered).await;
    }
    // Over the cap: refused inside the transaction that would have written the event.
    let refused = f
        .store
        .insert_key(&new_key("alice", "second", 20), 1, &admin())
        .await;
    assert!(matches!(refused, Err(StoreError::LimitReached { .. })));
    f.store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::Revoke,
            at(30),
            &admin(),
        )
        .await
        .unwrap();
    // Reactivating a revoked key is refused: no event either.
    let refused = f
        .store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::Reactivate,
            at(40),
            &admin(),
        )
        .await;
    assert!(refused.is_err());
    // Revoking again changes nothing, and announces nothing.
    f.store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::Revoke,
            at(50),
            &admin(),
        )
        .await
        .unwrap();
    let types: Vec<String> = claim(&f, 60)
        .await
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    assert_eq!(types, ["api_key.revoked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_nobody_subscribes_to_are_not_written_and_a_disabled_endpoints_wait() {
    let f = fixture().await;
    let hook = endpoint(&f, &[EventType::KeyRevoked], 1).await;
    insert(&f.store, "alice", "ci", 10).await;
    assert!(claim(&f, 20).await.is_empty());
    // A disabled endpoint gets nothing queued either.
    let off = switched(false);
    let hook = f
        .store
        .update_webhook(hook, &off, at(30), &admin())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hook.disabled_at, Some(at(30)));
    assert_eq!(
        hook.disabled_reason.as_deref(),
        Some("disabled by admin:contract-test")
    );
    let record = insert(&f.store, "bob", "ci", 40).await;
    f.store
        .apply(
            Scope::Admin,
            record.key.id,
            &Mutation::Revoke,
            at(50),
            &admin(),
        )
        .await
        .unwrap();
    assert!(
        claim(&f, 60).await.is_empty(),
        "a disabled endpoint's events wait"
    );
    let on = switched(true);
    f.store
        .update_webhook(hook.id, &on, at(70), &admin())
        .await
        .unwrap();
    let claimed = claim(&f, 80).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event_type, "api_key.revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_credits_do_not_break_the_scan() {
    let f = fixture().await;
    endpoint(&f, &[EventType::KeyExpired, EventType::CreditsLow], 1).await;
    let mut huge = new_key("alice", "huge", 10);
    huge.key.remaining = Some(keyward_core::model::MAX_REMAINING);
    f.store.insert_key(&huge, 100, &admin()).await.unwrap();
    f.store.consume(huge.key.id, 1, None).await.unwrap();
    let mut soon = new_key("bob", "soon", 11);
    soon.key.expires_at = Some(at(100));
    f.store.insert_key(&soon, 100, &admin()).await.unwrap();
    // Not low, and the other conditions are still announced.
    assert_eq!(announce_twice(&f, 200).await, 1);
    f.store
        .consume(huge.key.id, keyward_core::model::MAX_REMAINING - 2, None)
        .await
        .unwrap();
    assert_eq!(announce_twice(&f, 300).await, 1, "1 left of 10^18: low");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_delivery_is_not_claimed_again_until_its_lease_runs_out() {
    let f = fixture().await;
    endpoint(&f, &[EventType::KeyCreated], 1).await;
    insert(&f.store, "alice", "ci", 10).await;
    let first = claim(&f, 20).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    assert!(claim(&f, 30).await.is_empty(), "leased");
    // The claiming instance died: after the lease, another claims it.
    let again = claim(&f, 20 + LEASE_MS).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].event_id, first[0].event_id, "the id is stable");
    assert_eq!(again[0].body, first[0].body, "so is the body");
    assert_eq!(again[0].attempt, 2);
    // The first instance's late outcome changes nothing.
    finish(&f, &first[0], 20 + LEASE_MS + 1, AfterAttempt::Delivered).await;
    let hook = f.store.list_webhooks().await.unwrap().remove(0);
    let log = f.store.list_deliveries(hook.id, 10).await.unwrap().unwrap();
    assert_eq!(log[0].state, DeliveryState::Pending);
    assert!(log[0].attempt_log.is_empty());
    finish(&f, &again[0], 20 + LEASE_MS + 2, AfterAttempt::Delivered).await;
    let log = f.store.list_deliveries(hook.id, 10).await.unwrap().unwrap();
    assert_eq!(log[0].state, DeliveryState::Delivered);
    assert_eq!(log[0].attempt_log.len(), 1);
    assert_eq!(log[0].attempt_log[0].status_code, Some(204));
    let hook = f.store.get_webhook(hook.id).await.unwrap().unwrap();
    assert_eq!(hook.last_success_at, Some(at(20 + LEASE_MS + 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_claim_the_same_delivery() {
    let f = fixture().await;
    endpoint(&f, &[EventType::KeyCreated], 1).await;
    for n in 0..40 {
        insert(&f.store, &format!("user{n}"), "ci", 10 + n).await;
    }
    let other = keyward_store::connect(&f.url).await.unwrap();
    let (a, b) = tokio::join!(
        f.store.claim_deliveries(at(100), at(100 + LEASE_MS), 25),
        other.claim_deliveries(at(100), at(100 + LEASE_MS), 25),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|d| d.id).collect();
    assert_eq!(ids.len(), 40, "{} + {}", a.len(), b.len());
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40, "a delivery was claimed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_events_are_delivered_one_at_a_time_in_order() {
    let f = fixture().await;
    endpoint(&f, &EventType::ALL[..12], 1).await;
    let record = insert(&f.store, "alice", "ci", 10).await;
    let other = insert(&f.store, "bob", "ci", 11).await;
    for (n, mutation) in [Mutation::Suspend, Mutation::Reactivate, Mutation::Revoke]
        .iter()
        .enumerate()
    {
        let now = at(20 + i64::try_from(n).unwrap());
        f.store
            .apply(Scope::Admin, record.key.id, mutation, now, &admin())
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    let mut now = 100;
    loop {
        let claimed = claim(&f, now).await;
        if claimed.is_empty() {
            break;
        }
        let alice: Vec<&ClaimedDelivery> = claimed
            .iter()
            .filter(|d| body(d)["data"]["key"]["id"] == record.key.id.to_string())
            .collect();
        assert!(alice.len() <= 1, "two of a key's events at once");
        for delivery in &claimed {
            if body(delivery)["data"]["key"]["id"] == other.key.id.to_string() {
                finish(&f, delivery, now, AfterAttempt::Delivered).await;
                continue;
            }
            order.push(delivery.event_type.clone());
            // The first attempt fails: the next event waits for the retry.
            let next = if delivery.attempt == 1 {
                AfterAttempt::RetryAt(at(now + 10))
            } else {
                AfterAttempt::Delivered
            };
            finish(&f, delivery, now, next).await;
        }
        now += 10;
    }
    assert_eq!(
        order,
        [
            "api_key.created",
            "api_key.created",
            "api_key.suspended",
            "api_key.suspended",
            "api_key.reactivated",
            "api_key.reactivated",
            "api_key.revoked",
            "api_key.revoked",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_the_whole_window_is_disabled() {
    let f = fixture().await;
    let hook = endpoint(&f, &[EventType::KeyCreated], 1).await;
    insert(&f.store, "alice", "ci", 10).await;
    let claimed = claim(&f, 20).await;
    finish(&f, &claimed[0], 21, AfterAttempt::RetryAt(at(30))).await;
    assert!(claim(&f, 29).await.is_empty(), "not before its time");
    let claimed = claim(&f, 30).await;
    finish(&f, &claimed[0], 31, AfterAttempt::GiveUp).await;
    let log = f.store.list_deliveries(hook, 10).await.unwrap().unwrap();
    assert_eq!(log[0].state, DeliveryState::Failed);
    assert_eq!(log[0].attempts, 2);
    assert_eq!(log[0].attempt_log.len(), 2);
    assert_eq!(
        log[0].attempt_log[1].error.as_deref(),
        Some("connection refused")
    );
    let hook = f.store.get_webhook(hook).await.unwrap().unwrap();
    assert_eq!(hook.disabled_at, Some(at(31)));
    assert!(hook.disabled_reason.unwrap().contains("retry window"));
    // The audit trail says so, filed under keyward's own subject.
    let query = EventQuery {
        user_id: Some(UserId::system()),
        ..EventQuery::default()
    };
    let events = f.store.list_events(&query).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create_webhook", "disable_webhook"]);
    let disabled = &events[1];
    assert_eq!(
        disabled.actor,
        keyward_core::audit::Actor::Admin("keyward".into())
    );
    let changes: Value = serde_json::from_str(&disabled.changes).unwrap();
    assert_eq!(changes["webhook"]["after"], hook.id.to_string());
    assert_eq!(
        changes["enabled"],
        serde_json::json!({"before": true, "after": false})
    );
    // Where it is, never its path (which may carry a token).
    assert!(
        !disabled.changes.contains("/keyward"),
        "{}",
        disabled.changes
    );
    // Nothing is claimed for a disabled endpoint; a retry asked for waits for it to
    // be switched back on.
    assert!(
        f.store
            .retry_delivery(hook.id, log[0].id, at(40))
            .await
            .unwrap()
    );
    assert!(claim(&f, 41).await.is_empty());
    let on = switched(true);
    let hook = f
        .store
        .update_webhook(hook.id, &on, at(50), &admin())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((hook.disabled_at, hook.disabled_reason), (None, None));
    let claimed = claim(&f, 51).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_a_success_in_the_window_does_not_disable_the_endpoint() {
    let f = fixture().await;
    let hook = endpoint(&f, &[EventType::KeyCreated], 1).await;
    insert(&f.store, "alice", "ci", 10).await;
    insert(&f.store, "bob", "ci", 11).await;
    let claimed = claim(&f, 20).await;
    assert_eq!(claimed.len(), 2);
    // The endpoint answered after the second delivery was made: it is not dead.
    finish(&f, &claimed[0], 21, AfterAttempt::Delivered).await;
    finish(&f, &claimed[1], 22, AfterAttempt::GiveUp).await;
    let hook = f.store.get_webhook(hook).await.unwrap().unwrap();
    assert_eq!(hook.disabled_at, None);
    assert_eq!(hook.last_success_at, Some(at(21)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_changes_rotates_its_secret_and_is_deleted_with_its_deliveries() {
    let f = fixture().await;
    let hook = endpoint(&f, &[EventType::KeyCreated], 1).await;
    let before = f.store.signing_seeds(hook).await.unwrap().unwrap();
    assert_eq!(before.previous, None);
    let seed = SecretSeed {
        nonce: WebhookSecret::new_nonce(),
        pepper_version: 2,
    };
    let rotated = f
        .store
        .rotate_webhook_secret(hook, seed, at(86_400_000), at(10), &admin())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.previous_secret_until, Some(at(86_400_000)));
    let after = f.store.signing_seeds(hook).await.unwrap().unwrap();
    assert_eq!(after.current, seed);
    assert_eq!(after.previous, Some((before.current, at(86_400_000))));

    let change = ValidWebhookFields {
        url: Some("https://other.example.com/in".into()),
        events: Some(vec![EventType::KeyRevoked, EventType::KeyExpired]),
        description: Some(None),
        enabled: None,
    };
    let changed = f
        .store
        .update_webhook(hook, &change, at(20), &admin())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.url, "https://other.example.com/in");
    assert_eq!(
        changed.events,
        [EventType::KeyRevoked, EventType::KeyExpired]
    );
    assert_eq!(changed.description, None);
    assert_eq!(changed.updated_at, at(20));

    let test = f.store.send_test(hook, at(30), &admin()).await.unwrap();
    assert!(test.is_some_and(|id| id.starts_with("msg_")));
    let claimed = claim(&f, 31).await;
    assert_eq!(claimed[0].event_type, "webhook.test");
    assert_eq!(body(&claimed[0])["data"]["webhook_id"], hook.to_string());

    assert!(
        f.store
            .delete_webhook(hook, at(35), &admin())
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delete_webhook(hook, at(35), &admin())
            .await
            .unwrap()
    );
    assert_eq!(f.store.get_webhook(hook).await.unwrap(), None);
    assert_eq!(f.store.list_deliveries(hook, 10).await.unwrap(), None);
    assert_eq!(
        f.store.send_test(hook, at(40), &admin()).await.unwrap(),
        None
    );
    // Its claimed delivery went with it: finishing it changes nothing.
    finish(&f, &claimed[0], 50, AfterAttempt::Delivered).await;
    let missing = WebhookId::new(at(60));
    assert_eq!(
        f.store
            .update_webhook(missing, &change, at(60), &admin())
            .await
            .unwrap(),
        None
    );
    assert!(!f.store.retry_delivery(missing, 1, at(60)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deliveries_are_pruned_after_the_history_period() {
    let f = fixture().await;
    let hook = endpoint(&f, &[EventType::KeyCreated], 1).await;
    insert(&f.store, "alice", "ci", 10).await;
    insert(&f.store, "bob", "ci", 11).await;
    let claimed = claim(&f, 20).await;
    finish(&f, &claimed[0], 21, AfterAttempt::Delivered).await;
    finish(&f, &claimed[1], 21, AfterAttempt::RetryAt(at(1_000))).await;
    assert_eq!(f.store.prune_deliveries(at(21), at(0)).await.unwrap(), 0);
    assert_eq!(f.store.prune_deliveries(at(22), at(0)).await.unwrap(), 1);
    let log = f.store.list_deliveries(hook, 10).await.unwrap().unwrap();
    assert_eq!(log.len(), 1, "a pending delivery is never pruned");
    assert_eq!(log[0].state, DeliveryState::Pending);
}

const DAY: i64 = 86_400_000;

fn rules() -> ConditionRules {
    ConditionRules {
        expiry_notice: Some(std::time::Duration::from_secs(7 * 86_400)),
        expired_lookback: std::time::Duration::from_secs(7 * 86_400),
        credits_low_percent: 10,
        limit: 100,
    }
}

/// Runs the scan from two instances at once; the events they queued in all.
async fn announce_twice(f: &Fixture, now: i64) -> u32 {
    let other = keyward_store::connect(&f.url).await.unwrap();
    let rules = rules();
    let (a, b) = tokio::join!(
        f.store.announce_conditions(at(now), &rules),
        other.announce_conditions(at(now), &rules),
    );
    a.unwrap() + b.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_is_announced_once_coming_and_once_passed_by_either_instance() {
    let f = fixture().await;
    endpoint(&f, &[EventType::KeyExpiring, EventType::KeyExpired], 1).await;
    let mut soon = new_key("alice", "soon", 10);
    soon.key.expires_at = Some(at(3 * DAY));
    f.store.insert_key(&soon, 100, &admin()).await.unwrap();
    let mut later = new_key("bob", "later", 11);
    later.key.expires_at = Some(at(30 * DAY));
    f.store.insert_key(&later, 100, &admin()).await.unwrap();
    let mut revoked = new_key("carol", "revoked", 12);
    revoked.key.expires_at = Some(at(2 * DAY));
    f.store.insert_key(&revoked, 100, &admin()).await.unwrap();
    f.store
        .apply(
            Scope::Admin,
            revoked.key.id,
            &Mutation::Revoke,
            at(13),
            &admin(),
        )
        .await
        .unwrap();

    assert_eq!(announce_twice(&f, 100).await, 1, "soon is expiring");
    assert_eq!(announce_twice(&f, 200).await, 0, "once");
    let claimed = claim(&f, 300).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event_type, "api_key.expiring");
    let sent = body(&claimed[0]);
    assert_eq!(sent["data"]["key"]["id"], soon.key.id.to_string());
    assert_eq!(sent["data"]["actor"]["type"], "system");
    finish(&f, &claimed[0], 301, AfterAttempt::Delivered).await;

    assert_eq!(announce_twice(&f, 3 * DAY - 1).await, 0, "not passed yet");
    assert_eq!(announce_twice(&f, 3 * DAY).await, 1, "soon has expired");
    assert_eq!(announce_twice(&f, 3 * DAY + 1_000).await, 0, "once");
    let claimed = claim(&f, 3 * DAY + 2_000).await;
    assert_eq!(claimed[0].event_type, "api_key.expired");
    // A week on, an expiry long past (from before keyward watched) is not announced;
    // later's notice now is.
    assert_eq!(announce_twice(&f, 24 * DAY).await, 1);
    // Markers of expiries past the lookback go, and are never needed again.
    f.store.prune_deliveries(at(0), at(20 * DAY)).await.unwrap();
    assert_eq!(announce_twice(&f, 24 * DAY).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_and_exhausted_credits_are_announced_once_per_amount_set() {
    let f = fixture().await;
    endpoint(&f, &[EventType::CreditsLow, EventType::CreditsExhausted], 1).await;
    let mut record = new_key("alice", "metered", 10);
    record.key.remaining = Some(100);
    f.store.insert_key(&record, 100, &admin()).await.unwrap();
    let id = record.key.id;
    f.store.consume(id, 90, None).await.unwrap();
    assert_eq!(announce_twice(&f, 20).await, 0, "10 left: not below 10%");
    f.store.consume(id, 1, None).await.unwrap();
    assert_eq!(announce_twice(&f, 30).await, 1, "9 left: low");
    assert_eq!(announce_twice(&f, 40).await, 0, "once");
    f.store.consume(id, 9, None).await.unwrap();
    assert_eq!(
        announce_twice(&f, 50).await,
        1,
        "exhausted; low is not announced again"
    );
    let types: Vec<String> = claim(&f, 60)
        .await
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    assert_eq!(
        types,
        ["api_key.credits_low"],
        "the key's events go in order"
    );

    // A new amount: measured from it, announced anew.
    let top_up = KeyEdit::from(EditFields {
        remaining: Some(Some(1_000)),
        ..EditFields::default()
    })
    .validate(at(70))
    .unwrap();
    f.store
        .apply(Scope::Admin, id, &Mutation::Edit(top_up), at(70), &admin())
        .await
        .unwrap();
    // Another change leaves the amount set alone.
    let rename = KeyEdit::from(EditFields {
        name: Some("renamed".into()),
        ..EditFields::default()
    })
    .validate(at(75))
    .unwrap();
    f.store
        .apply(Scope::Admin, id, &Mutation::Edit(rename), at(75), &admin())
        .await
        .unwrap();
    f.store.consume(id, 950, None).await.unwrap();
    assert_eq!(
        announce_twice(&f, 80).await,
        1,
        "50 of the 1,000 set: low again"
    );
    assert_eq!(announce_twice(&f, 90).await, 0, "once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_that_renew_are_announced_once_per_period_and_pruning_keeps_that() {
    use keyward_core::credits::{Interval, Refill};
    let f = fixture().await;
    endpoint(&f, &[EventType::CreditsExhausted], 1).await;
    let refill = Refill::new(10, Interval::Minute, None).unwrap();
    let mut record = new_key("alice", "renewing", 0);
    record.key.remaining = Some(10);
    record.key.refill = Some(refill);
    record.key.credits_set_at = Some(at(0));
    f.store.insert_key(&record, 100, &admin()).await.unwrap();
    let id = record.key.id;
    let first = refill.period_start(at(0));
    f.store.consume(id, 10, Some(first)).await.unwrap();
    assert_eq!(announce_twice(&f, 20).await, 1, "exhausted this minute");
    let second = refill.next_after(at(0));
    f.store.consume(id, 10, Some(second)).await.unwrap();
    let later = second.as_millis() - at(0).as_millis() + 20;
    assert_eq!(
        announce_twice(&f, later).await,
        1,
        "and again the next minute"
    );
    // Pruning forgets the first minute's marker, never the current one.
    f.store.prune_deliveries(at(0), at(0)).await.unwrap();
    assert_eq!(announce_twice(&f, later + 10).await, 0, "still once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_key_is_announced_once_per_period_by_either_instance() {
    let f = fixture().await;
    let record = insert(&f.store, "alice", "busy", 10).await;
    let hits = [(record.key.id, at(60_000))];
    // Nobody listens: nothing is written.
    assert_eq!(
        f.store
            .record_rate_limited(&hits, at(70_000))
            .await
            .unwrap(),
        0
    );
    endpoint(&f, &[EventType::RateLimited], 1).await;
    let other = keyward_store::connect(&f.url).await.unwrap();
    let (a, b) = tokio::join!(
        f.store.record_rate_limited(&hits, at(70_000)),
        other.record_rate_limited(&hits, at(70_000)),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(
        f.store
            .record_rate_limited(&hits, at(70_000))
            .await
            .unwrap(),
        0,
        "once"
    );
    let next = [(record.key.id, at(120_000))];
    assert_eq!(
        f.store
            .record_rate_limited(&next, at(130_000))
            .await
            .unwrap(),
        1,
        "the next period"
    );
    let claimed = claim(&f, 200_000).await;
    assert_eq!(claimed[0].event_type, "api_key.rate_limited");
    assert_eq!(
        body(&claimed[0])["data"]["period_start"],
        at(60_000).to_rfc3339()
    );
    assert_eq!(
        body(&claimed[0])["data"]["key"]["rate_limit"]["requests"],
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_announces_each_key_that_still_worked_as_revoked() {
    let f = fixture().await;
    let alive = insert(&f.store, "alice", "alive", 10).await;
    let gone = insert(&f.store, "alice", "gone", 11).await;
    f.store
        .apply(
            Scope::Admin,
            gone.key.id,
            &Mutation::Revoke,
            at(12),
            &admin(),
        )
        .await
        .unwrap();
    endpoint(&f, &[EventType::KeyRevoked], 13).await;
    f.store
        .delete_user(&UserId::parse("alice").unwrap(), at(20), &admin())
        .await
        .unwrap();
    let claimed = claim(&f, 30).await;
    assert_eq!(
        claimed.len(),
        1,
        "the key already revoked is not announced again"
    );
    let sent = body(&claimed[0]);
    assert_eq!(sent["type"], "api_key.revoked");
    assert_eq!(sent["data"]["key"]["id"], alive.key.id.to_string());
    assert_eq!(sent["data"]["key"]["status"], "REVOKED");
    assert_eq!(sent["data"]["user_deleted"], true);
    assert_eq!(sent["data"]["changes"]["status"]["after"], "REVOKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managing_an_endpoint_is_in_the_audit_trail_without_its_path() {
    let f = fixture().await;
    let hook = endpoint(&f, &[EventType::KeyCreated], 1).await;
    let change = ValidWebhookFields {
        url: Some("https://other.example.com:8443/in?token=s3cret".into()),
        events: Some(vec![EventType::KeyRevoked]),
        description: None,
        enabled: Some(false),
    };
    f.store
        .update_webhook(hook, &change, at(10), &admin())
        .await
        .unwrap();
    let seed = SecretSeed {
        nonce: WebhookSecret::new_nonce(),
        pepper_version: 1,
    };
    f.store
        .rotate_webhook_secret(hook, seed, at(20 + DAY), at(20), &admin())
        .await
        .unwrap();
    assert!(
        f.store
            .delete_webhook(hook, at(30), &admin())
            .await
            .unwrap()
    );
    let query = EventQuery {
        user_id: Some(UserId::system()),
        ..EventQuery::default()
    };
    let events = f.store.list_events(&query).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create_webhook",
            "update_webhook",
            "rotate_webhook_secret",
            "delete_webhook"
        ]
    );
    assert!(events.iter().all(|e| e.actor == admin()));
    let update: Value = serde_json::from_str(&events[1].changes).unwrap();
    assert_eq!(
        update["origin"],
        serde_json::json!({"before": "https://hooks.example.com", "after": "https://other.example.com:8443"})
    );
    assert_eq!(
        update["events"]["after"],
        serde_json::json!(["api_key.revoked"])
    );
    assert_eq!(update["enabled"]["after"], false);
    for event in &events {
        assert!(!event.changes.contains("s3cret"), "{}", event.changes);
        assert!(!event.changes.contains("/in"), "{}", event.changes);
    }
    let deleted: Value = serde_json::from_str(&events[3].changes).unwrap();
    assert_eq!(
        deleted["webhook"],
        serde_json::json!({"before": hook.to_string(), "after": null})
    );
}
