//! Usage credits: each valid verification takes its cost; at zero, USAGE_EXCEEDED.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::TestApp;
use crate::common::ADMIN_TOKEN;

async fn verify(app: &TestApp, key: &str, extra: Value) -> Value {
    let mut body = json!({ "key": key });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.call(
        Method::POST,
        "/api/api-keys/verify",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
    .ok()
    .clone()
}

async fn remaining(app: &TestApp, id: &str) -> Value {
    let key = app
        .as_user("alice", Method::GET, &format!("/api/api-keys/{id}"), None)
        .await;
    key.ok()["remaining"].clone()
}

#[tokio::test]
async fn each_valid_verification_takes_its_cost_until_none_are_left() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key_as_platform(
            "alice",
            json!({"name": "metered", "permissions": [], "remaining": 3}),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(key["remaining"], 3);

    let first = verify(&app, &plain, json!({})).await;
    assert_eq!(
        (&first["code"], &first["remaining"]),
        (&json!("VALID"), &json!(2))
    );
    let second = verify(&app, &plain, json!({"cost": 2})).await;
    assert_eq!(
        (&second["code"], &second["remaining"]),
        (&json!("VALID"), &json!(0))
    );
    let spent = verify(&app, &plain, json!({})).await;
    assert_eq!(spent["valid"], false);
    assert_eq!(spent["code"], "USAGE_EXCEEDED");
    assert_eq!(spent["key_id"], key["id"]);
    // Every use must reach keyward: callers that cache verdicts are told so.
    assert_eq!(
        (&first["metered"], &spent["metered"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        verify(&app, &plain, json!({"cost": 0})).await["code"],
        "USAGE_EXCEEDED"
    );
    assert_eq!(remaining(&app, id).await, 0);

    // A top-up by the platform; then no limit at all.
    app.patch_as_platform(id, json!({"remaining": 10}))
        .await
        .ok();
    let checked = verify(&app, &plain, json!({"cost": 0})).await;
    assert_eq!(
        (&checked["code"], &checked["remaining"]),
        (&json!("VALID"), &json!(10))
    );
    assert_eq!(verify(&app, &plain, json!({})).await["remaining"], 9);
    app.patch_as_platform(id, json!({"remaining": null}))
        .await
        .ok();
    let free = verify(&app, &plain, json!({"cost": 5})).await;
    assert_eq!(free["code"], "VALID");
    assert!(free.get("remaining").is_none(), "{free}");
    assert_eq!(remaining(&app, id).await, Value::Null);
}

#[tokio::test]
async fn verifications_that_fail_take_nothing() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key_as_platform(
            "alice",
            json!({"name": "m", "permissions": ["READ_GRAPH"], "remaining": 2}),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    let denied = verify(&app, &plain, json!({"permissions": ["WRITE_GRAPH"]})).await;
    assert_eq!(denied["code"], "INSUFFICIENT_PERMISSIONS");
    app.as_user(
        "alice",
        Method::POST,
        &format!("/api/api-keys/{id}/suspend"),
        None,
    )
    .await
    .ok();
    assert_eq!(verify(&app, &plain, json!({})).await["code"], "SUSPENDED");
    assert_eq!(remaining(&app, id).await, 2);
    // Keys without credits ignore the cost.
    let (_, free) = app.key_with("alice", &[]).await;
    assert_eq!(
        verify(&app, &free, json!({"cost": 1000})).await["code"],
        "VALID"
    );
}

#[tokio::test]
async fn concurrent_verifications_never_spend_more_than_there_is() {
    let app = TestApp::new().await;
    let (_, plain) = app
        .create_key_as_platform(
            "alice",
            json!({"name": "m", "permissions": [], "remaining": 20}),
        )
        .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let router = app.router.clone();
        let body = json!({ "key": plain }).to_string();
        tasks.spawn(async move {
            let request = Request::post("/api/api-keys/verify")
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()["code"].clone()
        });
    }
    let mut valid = 0;
    while let Some(code) = tasks.join_next().await {
        match code.unwrap().as_str().unwrap() {
            "VALID" => valid += 1,
            "USAGE_EXCEEDED" => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(valid, 20);
}

#[tokio::test]
async fn credits_and_costs_out_of_bounds_are_refused() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    for cost in [
        json!(-1),
        json!(1.5),
        json!("1"),
        json!(1_000_000_000_000_001_u64),
    ] {
        app.call(
            Method::POST,
            "/api/api-keys/verify",
            Some(ADMIN_TOKEN),
            Some(json!({"key": plain, "cost": cost})),
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    for remaining in [json!(-1), json!(1_000_000_000_000_001_u64), json!("ten")] {
        app.as_platform(
            Method::POST,
            "/api/admin/users/alice/api-keys",
            Some(json!({"name": "m", "permissions": [], "remaining": remaining})),
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
        app.patch_as_platform(&id, json!({ "remaining": remaining }))
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
    }
}

/// Moves `apps`' clocks (one instance's or several on one database) to one second
/// past the next minute: a test then has most of a minute before the next boundary.
fn just_past_the_next_minute(apps: &[&TestApp]) {
    let now = apps[0].engine.now().as_millis();
    let by = 60_000 - now.rem_euclid(60_000) + 1_000;
    for app in apps {
        app.advance(std::time::Duration::from_millis(by as u64));
    }
}

#[tokio::test]
async fn credits_that_renew_are_set_back_at_the_first_verification_after_a_boundary() {
    let app = TestApp::new().await;
    just_past_the_next_minute(&[&app]);
    let (key, plain) = app
        .create_key_as_platform(
            "alice",
            json!({"name": "renewing", "permissions": [],
                   "refill": {"amount": 2, "interval": "minute"}}),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(key["remaining"], 2, "starts at the refill's amount");
    assert_eq!(key["refill"], json!({"amount": 2, "interval": "minute"}));
    let next = app.engine.now().as_millis().div_euclid(60_000) * 60_000 + 60_000;
    let next = keyward_core::time::Timestamp::from_millis(next).unwrap();
    assert_eq!(key["next_refill_at"], next.to_rfc3339());

    for left in [1, 0] {
        let valid = verify(&app, &plain, json!({})).await;
        assert_eq!(
            (&valid["code"], &valid["remaining"]),
            (&json!("VALID"), &json!(left))
        );
        assert_eq!(valid["next_refill_at"], next.to_rfc3339());
    }
    let spent = verify(&app, &plain, json!({})).await;
    assert_eq!(spent["code"], "USAGE_EXCEEDED");
    assert_eq!(
        spent["next_refill_at"],
        next.to_rfc3339(),
        "says when to come back"
    );
    assert_eq!(remaining(&app, id).await, 0);

    app.advance(std::time::Duration::from_secs(60));
    assert_eq!(
        remaining(&app, id).await,
        2,
        "the key's record shows the refill its next use will find"
    );
    let renewed = verify(&app, &plain, json!({})).await;
    assert_eq!(
        (&renewed["code"], &renewed["remaining"]),
        (&json!("VALID"), &json!(1))
    );
    // Set back to the amount, not added to: two minutes later, still 2.
    app.advance(std::time::Duration::from_secs(120));
    let later = verify(&app, &plain, json!({"cost": 0})).await;
    assert_eq!(
        (&later["code"], &later["remaining"]),
        (&json!("VALID"), &json!(2)),
        "{later}"
    );

    // The platform stops the renewal; what is left stays.
    let stopped = app.patch_as_platform(id, json!({"refill": null})).await;
    assert_eq!(
        (&stopped.ok()["refill"], &stopped.ok()["next_refill_at"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(stopped.ok()["remaining"], 2);
    let events = app.key_events(id).await;
    assert_eq!(
        events.last().unwrap()["changes"]["refill"],
        json!({"before": {"amount": 2, "interval": "minute"}, "after": null}),
        "the audit trail records the rule's changes"
    );
}

#[tokio::test]
async fn a_refill_is_the_platforms_to_set_and_must_make_sense() {
    let app = TestApp::new().await;
    let (free, _) = app
        .create_key_as_platform("alice", json!({"name": "free", "permissions": []}))
        .await;
    let id = free["id"].as_str().unwrap();
    let monthly = app
        .patch_as_platform(
            id,
            json!({"refill": {"amount": 1000, "interval": "month", "day_of_month": 31}}),
        )
        .await;
    assert_eq!(
        monthly.ok()["remaining"],
        1000,
        "a key without credits gets the amount"
    );
    let next = monthly.ok()["next_refill_at"].as_str().unwrap().to_owned();
    assert!(next.ends_with("T00:00:00.000Z"), "{next}");

    let owner = app
        .as_user(
            "alice",
            Method::PATCH,
            &format!("/api/api-keys/{id}"),
            Some(json!({"refill": {"amount": 5, "interval": "day"}})),
        )
        .await;
    assert!(
        owner.error(StatusCode::FORBIDDEN)["detail"]
            .to_string()
            .contains("refill"),
        "{}",
        owner.text
    );
    for (bad, field) in [
        (
            json!({"refill": {"amount": 5, "interval": "fortnight"}}),
            "refill",
        ),
        (
            json!({"refill": {"amount": 0, "interval": "day"}}),
            "refill",
        ),
        (
            json!({"refill": {"amount": 5, "interval": "day", "day_of_month": 2}}),
            "refill",
        ),
        (
            json!({"refill": {"amount": 5, "interval": "month", "day_of_month": 32}}),
            "refill",
        ),
        (
            json!({"refill": {"amount": 5, "interval": "day", "extra": 1}}),
            "refill",
        ),
        (
            json!({"refill": {"amount": 5, "interval": "day"}, "remaining": null}),
            "refill",
        ),
    ] {
        let refused = app.patch_as_platform(id, bad.clone()).await;
        assert!(
            refused.status == StatusCode::UNPROCESSABLE_ENTITY
                || refused.status == StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.text
        );
        assert!(refused.text.contains(field), "{bad}: {}", refused.text);
    }
    let unchanged = app
        .as_platform(Method::GET, &format!("/api/admin/api-keys/{id}"), None)
        .await;
    assert_eq!(unchanged.ok()["refill"]["interval"], "month");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_let_exactly_the_refill_through_each_minute() {
    let first = TestApp::new().await;
    let second = TestApp::builder().another_instance_of(&first).build().await;
    let (_, plain) = first
        .create_key_as_platform(
            "alice",
            json!({"name": "five a minute", "permissions": [], "remaining": 5,
                   "refill": {"amount": 5, "interval": "minute"}}),
        )
        .await;
    just_past_the_next_minute(&[&first, &second]);
    for minute in 0..3 {
        let attempts = (0..16).map(|i| {
            let app = if i % 2 == 0 { &first } else { &second };
            verify(app, &plain, json!({}))
        });
        let answers = futures_util::future::join_all(attempts).await;
        let valid = answers.iter().filter(|a| a["code"] == "VALID").count();
        let spent = answers
            .iter()
            .filter(|a| a["code"] == "USAGE_EXCEEDED")
            .count();
        assert_eq!((valid, spent), (5, 11), "minute {minute}: {answers:?}");
        let mut left: Vec<u64> = answers
            .iter()
            .filter_map(|a| a["remaining"].as_u64())
            .collect();
        left.sort_unstable();
        assert_eq!(
            left,
            vec![0, 1, 2, 3, 4],
            "minute {minute}: each credit once"
        );
        for app in [&first, &second] {
            app.advance(std::time::Duration::from_secs(60));
        }
    }
}
