//! Rate limits: a key's own, failed verifications per end client, and changes per
//! user.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use keyward_core::model::Scope;
use keyward_core::rate::RateLimit;
use serde_json::{Value, json};

use super::TestApp;
use crate::common::{ADMIN_TOKEN, TestResponse};

async fn verify_from(app: &TestApp, key: &str, client_ip: Option<&str>) -> TestResponse {
    let mut body = json!({ "key": key });
    if let Some(ip) = client_ip {
        body["client_ip"] = json!(ip);
    }
    app.call(
        Method::POST,
        "/api/api-keys/verify",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
}

fn retry_after_header(response: &TestResponse) -> &str {
    response.headers[header::RETRY_AFTER].to_str().unwrap()
}

#[tokio::test]
async fn a_key_over_its_rate_limit_verifies_as_rate_limited_until_it_refills() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key_as_platform(
            "alice",
            json!({"name": "limited", "permissions": [], "rate_limit": {"requests": 3, "per_seconds": 60}}),
        )
        .await;
    assert_eq!(key["rate_limit"], json!({"requests": 3, "per_seconds": 60}));
    let (_, other) = app.key_with("alice", &[]).await;

    for _ in 0..3 {
        assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    }
    let limited = verify_from(&app, &plain, None).await;
    let verdict = limited.ok();
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["code"], "RATE_LIMITED");
    assert_eq!(verdict["key_id"], key["id"], "the key is named");
    assert_eq!(
        verdict["metered"], true,
        "callers must not cache its verdicts"
    );
    // One request is freed every 20 s.
    let wait = verdict["retry_after"].as_f64().unwrap();
    assert!((19.0..=20.0).contains(&wait), "{wait}");
    assert_eq!(retry_after_header(&limited), "20");
    assert_eq!(
        app.verify_code(&other, &[]).await,
        "VALID",
        "other keys are not limited"
    );

    app.advance(Duration::from_secs(20));
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    assert_eq!(app.verify_code(&plain, &[]).await, "RATE_LIMITED");
}

#[tokio::test]
async fn the_platform_sets_changes_and_removes_a_rate_limit() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    let set = |limit: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            app.patch_as_platform(&id, json!({ "rate_limit": limit }))
                .await
        }
    };

    let response = set(json!({"requests": 1, "per_seconds": 3600})).await;
    assert_eq!(
        response.ok()["rate_limit"],
        json!({"requests": 1, "per_seconds": 3600})
    );
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    assert_eq!(app.verify_code(&plain, &[]).await, "RATE_LIMITED");
    // A new quota starts afresh.
    set(json!({"requests": 5, "per_seconds": 3600})).await.ok();
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    let response = set(Value::Null).await;
    assert_eq!(response.ok()["rate_limit"], Value::Null);
    for _ in 0..10 {
        assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    }
    let shown = app
        .as_user("alice", Method::GET, &format!("/api/api-keys/{id}"), None)
        .await;
    assert_eq!(shown.ok()["rate_limit"], Value::Null);

    for bad in [
        json!({"requests": 0, "per_seconds": 60}),
        json!({"requests": 1, "per_seconds": 0}),
        json!({"requests": 1, "per_seconds": 86_401}),
        json!({"requests": 1_000_001, "per_seconds": 1}),
        json!({"requests": -1, "per_seconds": 1}),
        json!({"requests": 1}),
        json!({"requests": 1, "per_seconds": 1, "burst": 5}),
        json!("10/s"),
    ] {
        set(bad.clone())
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // An unknown key is not found; a revoked key cannot change.
    let unknown = "01900000-0000-7000-8000-000000000000";
    app.patch_as_platform(unknown, json!({"rate_limit": null}))
        .await
        .error(StatusCode::NOT_FOUND);
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{id}"),
        None,
    )
    .await
    .ok();
    set(Value::Null).await.error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn create_refuses_a_rate_limit_out_of_bounds_with_the_other_problems() {
    let app = TestApp::new().await;
    let response = app
        .as_user(
            "alice",
            Method::POST,
            "/api/api-keys",
            Some(json!({"name": "", "permissions": [], "rate_limit": {"requests": 0, "per_seconds": 60}})),
        )
        .await;
    let detail = response.error(StatusCode::UNPROCESSABLE_ENTITY)["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("name:") && detail.contains("rate_limit:"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_client_that_fails_too_often_is_refused_before_its_keys_are_looked_at() {
    let app = TestApp::builder()
        .engine(|c| c.failed_verify_limit = RateLimit::per_minute(5).ok())
        .build()
        .await;
    let (_, valid) = app.key_with("alice", &[]).await;
    let forged = keyward_core::key::KeyFormat::default().generate();
    let attacker = "203.0.113.7";

    for bad in ["agpt_guess", forged.expose(), "x", forged.expose(), "agpt_"] {
        let verdict = verify_from(&app, bad, Some(attacker)).await;
        assert_ne!(verdict.ok()["code"], "RATE_LIMITED");
    }
    // Spent: even a valid key from that client is refused, without a lookup.
    let refused = verify_from(&app, &valid, Some(attacker)).await;
    let verdict = refused.ok();
    assert_eq!(verdict["code"], "RATE_LIMITED");
    assert!(verdict.get("key_id").is_none(), "no key was looked at");
    let wait = verdict["retry_after"].as_f64().unwrap();
    assert!((11.0..=12.0).contains(&wait), "{wait}");
    assert_eq!(retry_after_header(&refused), "12");
    // Other clients, and calls that name no client, are not affected.
    for client in [Some("203.0.113.8"), Some("2001:db8::1"), None] {
        let verdict = verify_from(&app, &valid, client).await;
        assert_eq!(verdict.ok()["code"], "VALID", "{client:?}");
    }
    // Successes do not count; one failure is forgiven every 12 s.
    app.advance(Duration::from_secs(12));
    assert_eq!(
        verify_from(&app, &valid, Some(attacker)).await.ok()["code"],
        "VALID"
    );
    assert_eq!(
        verify_from(&app, "agpt_guess", Some(attacker)).await.ok()["code"],
        "MALFORMED"
    );
    assert_eq!(
        verify_from(&app, &valid, Some(attacker)).await.ok()["code"],
        "RATE_LIMITED"
    );

    // IPv6 clients count per /64.
    for n in 1..=5 {
        let ip = format!("2001:db8:aa:bb::{n}");
        verify_from(&app, "agpt_guess", Some(&ip)).await.ok();
    }
    let neighbour = verify_from(&app, &valid, Some("2001:db8:aa:bb:ffff::9")).await;
    assert_eq!(neighbour.ok()["code"], "RATE_LIMITED");
    let elsewhere = verify_from(&app, &valid, Some("2001:db8:aa:bc::1")).await;
    assert_eq!(elsewhere.ok()["code"], "VALID");

    // Not an address: a client error, not a guess.
    verify_from(&app, &valid, Some("not-an-ip"))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn too_many_changes_by_one_user_are_refused_with_retry_after() {
    let app = TestApp::builder()
        .engine(|c| c.user_write_limit = RateLimit::new(3, 60).ok())
        .build()
        .await;
    let (id, _) = app.key_with("alice", &[]).await;
    app.as_user(
        "alice",
        Method::POST,
        &format!("/api/api-keys/{id}/suspend"),
        None,
    )
    .await
    .ok();
    app.key_with("alice", &[]).await;
    let refused = app
        .as_user(
            "alice",
            Method::POST,
            "/api/api-keys",
            Some(json!({"name": "one too many", "permissions": []})),
        )
        .await;
    let error = refused.error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["message"], "Too many requests");
    assert_eq!(retry_after_header(&refused), "20");
    // Every change counts; reads do not; other users are not affected.
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{id}"),
        None,
    )
    .await
    .error(StatusCode::TOO_MANY_REQUESTS);
    app.as_user("alice", Method::GET, "/api/api-keys", None)
        .await
        .ok();
    app.key_with("bob", &[]).await;
    // Administrators (no owner scope) are not limited.
    app.engine
        .revoke(Scope::Admin, id.parse().unwrap())
        .await
        .unwrap();

    app.advance(Duration::from_secs(20));
    app.key_with("alice", &[]).await;
    let listed = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(
        listed.ok().as_array().unwrap().len(),
        3,
        "nothing refused was written"
    );
}
