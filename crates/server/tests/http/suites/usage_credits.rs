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
