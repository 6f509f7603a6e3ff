//! Limits a user's keys share (`/api/admin/users/{user_id}/limits`): one rate limit
//! pool and one credit balance, checked after each key's own.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApp;
use crate::common::ADMIN_TOKEN;

async fn verify(app: &TestApp, key: &str) -> Value {
    app.call(
        Method::POST,
        "/api/api-keys/verify",
        Some(ADMIN_TOKEN),
        Some(json!({"key": key})),
    )
    .await
    .ok()
    .clone()
}

async fn limits(
    app: &TestApp,
    method: Method,
    user: &str,
    body: Option<Value>,
) -> crate::common::TestResponse {
    app.as_platform(method, &format!("/api/admin/users/{user}/limits"), body)
        .await
}

/// Two keys of `user`; their plaintexts.
async fn two_keys(app: &TestApp, user: &str) -> [String; 2] {
    let (_, one) = app
        .create_key_as_platform(user, json!({"name": "one", "permissions": []}))
        .await;
    let (_, two) = app
        .create_key_as_platform(user, json!({"name": "two", "permissions": []}))
        .await;
    [one, two]
}

#[tokio::test]
async fn the_platform_sets_reads_and_removes_a_users_limits() {
    let app = TestApp::new().await;
    let none = limits(&app, Method::GET, "alice", None).await;
    assert_eq!(
        none.ok(),
        &json!({"user_id": "alice", "source": "default", "rate_limit": null, "credits": null})
    );
    let set = limits(
        &app,
        Method::PUT,
        "alice",
        Some(json!({"rate_limit": {"requests": 10, "per_seconds": 60},
                    "credits": {"refill": {"amount": 7, "interval": "day"}}})),
    )
    .await;
    let body = set.ok();
    assert_eq!(body["source"], "user");
    assert_eq!(
        body["rate_limit"],
        json!({"requests": 10, "per_seconds": 60})
    );
    assert_eq!(
        body["credits"]["remaining"], 7,
        "starts at the refill's amount"
    );
    assert!(
        body["credits"]["next_refill_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00.000Z")
    );
    assert_eq!(limits(&app, Method::GET, "alice", None).await.ok(), body);

    // The platform's business: a user's JWT does not reach these routes.
    let owner = app
        .as_user("alice", Method::GET, "/api/admin/users/alice/limits", None)
        .await;
    assert!(owner.status == StatusCode::UNAUTHORIZED || owner.status == StatusCode::FORBIDDEN);
    for bad in [
        json!({"rate_limit": {"requests": 0, "per_seconds": 60}}),
        json!({"credits": {}}),
        json!({"credits": {"remaining": 5, "refill": {"amount": 5, "interval": "fortnight"}}}),
        json!({"credits": {"remaining": 1_000_000_000_000_001_u64}}),
        json!({"rate_limit": null, "extra": 1}),
        json!([]),
    ] {
        let refused = limits(&app, Method::PUT, "alice", Some(bad.clone())).await;
        assert!(
            refused.status == StatusCode::UNPROCESSABLE_ENTITY
                || refused.status == StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.text
        );
    }
    assert_eq!(
        limits(&app, Method::GET, "alice", None).await.ok(),
        body,
        "unchanged"
    );
    let bad_user = limits(&app, Method::PUT, "a%0Ab", Some(json!({}))).await;
    assert_eq!(
        bad_user.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_user.text
    );

    let removed = limits(&app, Method::DELETE, "alice", None).await;
    assert_eq!(removed.ok()["source"], "default");
    assert_eq!(removed.ok()["credits"], Value::Null);
    limits(&app, Method::DELETE, "alice", None)
        .await
        .error(StatusCode::NOT_FOUND);
    let feed = app
        .as_platform(Method::GET, "/api/admin/events?user_id=alice", None)
        .await;
    let actions: Vec<&str> = feed.ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["set_user_limits", "delete_user_limits"]);
}

#[tokio::test]
async fn all_of_a_users_keys_share_its_rate_limit_and_credits() {
    let app = TestApp::new().await;
    let keys = two_keys(&app, "bob").await;
    let (_, elsewhere) = app
        .create_key_as_platform("carol", json!({"name": "other", "permissions": []}))
        .await;
    limits(
        &app,
        Method::PUT,
        "bob",
        Some(json!({"rate_limit": {"requests": 10, "per_seconds": 60}})),
    )
    .await
    .ok();
    let mut valid = 0;
    for i in 0..20 {
        let answer = verify(&app, &keys[i % 2]).await;
        if answer["code"] == "VALID" {
            valid += 1;
        } else {
            assert_eq!(
                (
                    &answer["code"],
                    &answer["limit"],
                    answer["retry_after"].is_number()
                ),
                (&json!("RATE_LIMITED"), &json!("user"), true),
                "{answer}"
            );
            assert_eq!(answer["metered"], true);
        }
    }
    assert_eq!(valid, 10, "one pool for both keys");
    assert_eq!(
        verify(&app, &elsewhere).await["code"],
        "VALID",
        "another user's pool"
    );

    // Credits instead: one balance both keys draw on; a new pool starts afresh.
    limits(
        &app,
        Method::PUT,
        "bob",
        Some(json!({"credits": {"remaining": 7}})),
    )
    .await
    .ok();
    let answers = [verify(&app, &keys[0]).await, verify(&app, &keys[1]).await];
    assert!(answers.iter().all(|a| a["code"] == "VALID"), "{answers:?}");
    let mut valid = 2;
    for i in 0..10 {
        let answer = verify(&app, &keys[i % 2]).await;
        if answer["code"] == "VALID" {
            valid += 1;
        } else {
            assert_eq!(
                (&answer["code"], &answer["limit"]),
                (&json!("USAGE_EXCEEDED"), &json!("user"))
            );
        }
    }
    assert_eq!(valid, 7);

    // A key's own credits refuse first, and say so; the owner's are not taken then.
    let (key, own) = app
        .create_key_as_platform(
            "dan",
            json!({"name": "own", "permissions": [], "remaining": 1}),
        )
        .await;
    limits(
        &app,
        Method::PUT,
        "dan",
        Some(json!({"credits": {"remaining": 5}})),
    )
    .await
    .ok();
    assert_eq!(verify(&app, &own).await["remaining"], 0);
    let refused = verify(&app, &own).await;
    assert_eq!(
        (&refused["code"], &refused["limit"]),
        (&json!("USAGE_EXCEEDED"), &json!("key"))
    );
    let left = limits(&app, Method::GET, "dan", None).await;
    assert_eq!(
        left.ok()["credits"]["remaining"],
        4,
        "only the valid one drew: {key}"
    );
}

#[tokio::test]
async fn every_user_gets_the_default_pool_until_the_platform_sets_one() {
    let app = TestApp::builder()
        .engine(|c| {
            c.default_user_rate_limit = keyward_core::rate::RateLimit::new(3, 60).ok();
            c.default_user_credits = Some("5/day".parse().unwrap());
        })
        .build()
        .await;
    let keys = two_keys(&app, "erin").await;
    let view = limits(&app, Method::GET, "erin", None).await;
    assert_eq!(view.ok()["source"], "default");
    assert_eq!(
        view.ok()["rate_limit"],
        json!({"requests": 3, "per_seconds": 60})
    );
    assert_eq!(view.ok()["credits"]["remaining"], 5);
    let mut answers = Vec::new();
    for i in 0..4 {
        answers.push(verify(&app, &keys[i % 2]).await);
    }
    let valid = answers.iter().filter(|a| a["code"] == "VALID").count();
    assert_eq!(valid, 3, "{answers:?}");
    assert_eq!(answers[3]["limit"], "user");
    let view = limits(&app, Method::GET, "erin", None).await;
    assert_eq!(
        (&view.ok()["source"], &view.ok()["credits"]["remaining"]),
        (&json!("default"), &json!(2)),
        "the default balance, drawn by both keys"
    );
    // The platform lifts them for one user: no limit set is no limit.
    limits(&app, Method::PUT, "erin", Some(json!({})))
        .await
        .ok();
    for i in 0..6 {
        assert_eq!(verify(&app, &keys[i % 2]).await["code"], "VALID");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_let_a_users_credits_through_exactly_once() {
    let first = TestApp::new().await;
    let second = TestApp::builder().another_instance_of(&first).build().await;
    let keys = two_keys(&first, "frank").await;
    // Both instances have the keys cached before the limits are set: the change
    // must reach the other instance's cache.
    assert_eq!(verify(&second, &keys[0]).await["code"], "VALID");
    assert_eq!(verify(&second, &keys[1]).await["code"], "VALID");
    limits(
        &first,
        Method::PUT,
        "frank",
        Some(json!({"credits": {"remaining": 7}})),
    )
    .await
    .ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        // Until the other instance sees the change (a check takes no credit).
        let answer = second
            .call(
                Method::POST,
                "/api/api-keys/verify",
                Some(ADMIN_TOKEN),
                Some(json!({"key": keys[1], "cost": 0})),
            )
            .await;
        if answer.ok()["metered"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let attempts = (0..20).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        verify(app, &keys[(i / 2) % 2])
    });
    let answers = futures_util::future::join_all(attempts).await;
    let valid = answers.iter().filter(|a| a["code"] == "VALID").count();
    assert_eq!(valid, 7, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a["code"] != "VALID")
            .all(|a| a["code"] == "USAGE_EXCEEDED" && a["limit"] == "user")
    );
}

#[tokio::test]
async fn a_key_refused_by_its_owners_credits_keeps_its_own() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key_as_platform(
            "gus",
            json!({"name": "own", "permissions": [], "remaining": 5}),
        )
        .await;
    limits(
        &app,
        Method::PUT,
        "gus",
        Some(json!({"credits": {"remaining": 1}})),
    )
    .await
    .ok();
    assert_eq!(verify(&app, &plain).await["remaining"], 4);
    let refused = verify(&app, &plain).await;
    assert_eq!(
        (&refused["code"], &refused["limit"]),
        (&json!("USAGE_EXCEEDED"), &json!("user"))
    );
    assert_eq!(
        refused["remaining"],
        Value::Null,
        "nothing was taken: {refused}"
    );
    let id = key["id"].as_str().unwrap();
    let stored = app
        .as_platform(Method::GET, &format!("/api/admin/api-keys/{id}"), None)
        .await;
    assert_eq!(stored.ok()["remaining"], 4, "both or neither");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_balance_lapses_when_the_defaults_are_unset() {
    let with_defaults = TestApp::builder()
        .engine(|c| c.default_user_credits = Some("1".parse().unwrap()))
        .build()
        .await;
    let [key, _] = two_keys(&with_defaults, "hal").await;
    assert_eq!(verify(&with_defaults, &key).await["code"], "VALID");
    assert_eq!(verify(&with_defaults, &key).await["code"], "USAGE_EXCEEDED");
    // Restarted without KEYWARD_DEFAULT_USER_CREDITS: the balance kept for them no
    // longer limits the user.
    let without = TestApp::builder()
        .another_instance_of(&with_defaults)
        .build()
        .await;
    assert_eq!(verify(&without, &key).await["code"], "VALID");
    let view = limits(&without, Method::GET, "hal", None).await;
    assert_eq!(
        (&view.ok()["source"], &view.ok()["credits"]),
        (&json!("default"), &Value::Null)
    );
}
