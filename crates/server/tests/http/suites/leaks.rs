//! Leak reports: anyone holding a key kills it with one unauthenticated request that
//! answers the same whatever the key was; the report is in the key's audit trail and
//! announced to webhooks; reports are limited per client.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use keyward_core::leak::LeakAction;
use serde_json::{Value, json};

use super::TestApp;
use crate::common::{ADMIN_TOKEN, TestResponse};

const URL: &str = "https://github.com/acme/app/blob/main/.env#L3";

async fn report(app: &TestApp, key: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/api/api-keys/report-leak",
        None,
        Some(json!({"key": key, "url": URL})),
    )
    .await
}

/// The key's status once the report's background work has run (a second at most).
async fn status_after_report(app: &TestApp, key: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let code = app.verify_code(key, &[]).await;
        if code == want || std::time::Instant::now() > deadline {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn anyone_holding_a_key_can_kill_it_with_one_request() {
    let app = TestApp::new().await;
    let (id, key) = app.key_with("alice", &["READ_GRAPH"]).await;
    let answer = report(&app, &key).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.text, "");
    assert_eq!(status_after_report(&app, &key, "REVOKED").await, "REVOKED");
    let trail = app.key_events(&id).await;
    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "revoke", "leaked"]);
    let leaked = &trail[2];
    assert_eq!(leaked["changes"]["url"]["after"], URL);
    assert_eq!(leaked["changes"]["source"]["after"], "report");
    assert_eq!(leaked["actor"]["id"], "leak-report");
}

#[tokio::test]
async fn a_report_answers_the_same_whatever_the_key_was() {
    let app = TestApp::new().await;
    let (revoked_id, revoked) = app.key_with("alice", &[]).await;
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{revoked_id}"),
        None,
    )
    .await;
    let (_, live) = app.key_with("bob", &[]).await;
    // A key of the right format, checksum and all, that this deployment never made:
    // what a stranger guessing has.
    let unknown = keyward_core::key::KeyFormat::default()
        .generate()
        .expose()
        .to_owned();
    let answers = [
        report(&app, &live).await,
        report(&app, &revoked).await,
        report(&app, &unknown).await,
        report(&app, "not a key").await,
    ];
    for answer in &answers {
        assert_eq!(
            (answer.status, answer.text.as_str()),
            (StatusCode::ACCEPTED, "")
        );
    }
    assert_eq!(status_after_report(&app, &live, "REVOKED").await, "REVOKED");
    // A key already revoked is not reported again.
    let trail = app.key_events(&revoked_id).await;
    assert!(trail.iter().all(|e| e["action"] != "leaked"), "{trail:?}");
}

#[tokio::test]
async fn the_leak_action_may_suspend_or_only_report() {
    for (action, status) in [
        (LeakAction::Suspend, "SUSPENDED"),
        (LeakAction::Report, "VALID"),
    ] {
        let app = TestApp::builder()
            .engine(move |config| config.leak_action = action)
            .build()
            .await;
        let (id, key) = app.key_with("alice", &[]).await;
        assert_eq!(report(&app, &key).await.status, StatusCode::ACCEPTED);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !app
            .key_events(&id)
            .await
            .iter()
            .any(|e| e["action"] == "leaked")
        {
            assert!(std::time::Instant::now() < deadline, "no leaked event");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(app.verify_code(&key, &[]).await, status, "{action:?}");
    }
}

#[tokio::test]
async fn a_reported_leak_is_announced_to_webhooks() {
    let app = TestApp::new().await;
    let hook = app
        .call(
            Method::POST,
            "/api/admin/webhooks",
            Some(ADMIN_TOKEN),
            Some(json!({"url": "https://hooks.example.com/in", "events": ["api_key.leaked", "api_key.revoked"]})),
        )
        .await;
    let hook = hook.ok()["webhook"]["id"].as_str().unwrap().to_owned();
    let (_, key) = app.key_with("alice", &[]).await;
    report(&app, &key).await;
    status_after_report(&app, &key, "REVOKED").await;
    let log = app
        .call(
            Method::GET,
            &format!("/api/admin/webhooks/{hook}/deliveries"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    let types: Vec<&str> = log
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["api_key.leaked", "api_key.revoked"]);
}

#[tokio::test]
async fn reports_are_limited_per_client() {
    let app = TestApp::builder()
        .engine(|config| {
            config.failed_verify_limit = keyward_core::rate::RateLimit::per_minute(3).ok()
        })
        .build()
        .await;
    for _ in 0..3 {
        assert_eq!(report(&app, "not a key").await.status, StatusCode::ACCEPTED);
    }
    let refused = report(&app, "not a key").await;
    refused.error(StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_leaked_service_credential_is_revoked_unless_the_action_only_reports() {
    for (action, refused) in [
        (LeakAction::Revoke, true),
        (LeakAction::Suspend, true),
        (LeakAction::Report, false),
    ] {
        let app = TestApp::builder()
            .engine(move |config| config.leak_action = action)
            .build()
            .await;
        let (id, secret) = app.credential_with("gateway", &["keys.read"]).await;
        assert_eq!(report(&app, &secret).await.status, StatusCode::ACCEPTED);
        // Revoked within moments; for `report`, a moment is long enough to be sure.
        let wait = Duration::from_secs(if refused { 5 } else { 1 });
        let deadline = std::time::Instant::now() + wait;
        let status = loop {
            let shown = app
                .call(
                    Method::GET,
                    &format!("/api/admin/credentials/{id}"),
                    Some(ADMIN_TOKEN),
                    None,
                )
                .await;
            let shown = shown.ok();
            if shown["status"] == "REVOKED" || std::time::Instant::now() > deadline {
                break shown["status"].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status == "REVOKED", refused, "{action:?}: {status}");
        // Its secret is refused (or not) at once.
        let used = app
            .call(Method::GET, "/api/admin/whoami", Some(&secret), None)
            .await;
        assert_eq!(
            used.status == StatusCode::UNAUTHORIZED,
            refused,
            "{action:?}: {} {}",
            used.status,
            used.text
        );
    }
}

#[tokio::test]
async fn a_leaked_replaced_secret_ends_and_the_credential_keeps_its_new_one() {
    let app = TestApp::new().await;
    let (id, old) = app.credential_with("gateway", &["keys.read"]).await;
    // Rotated because of the leak, with a grace period for the redeploy.
    let rotated = app
        .call(
            Method::POST,
            &format!("/api/admin/credentials/{id}/rotate"),
            Some(ADMIN_TOKEN),
            Some(json!({"grace_seconds": 3600})),
        )
        .await;
    let new = rotated.ok()["secret"].as_str().unwrap().to_owned();
    let whoami = |secret: String| {
        let app = &app;
        async move {
            app.call(Method::GET, "/api/admin/whoami", Some(&secret), None)
                .await
                .status
        }
    };
    assert_eq!(whoami(old.clone()).await, StatusCode::OK);
    assert_eq!(report(&app, &old).await.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while whoami(old.clone()).await != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "the old secret still works"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(whoami(new.clone()).await, StatusCode::OK);
    let shown = app
        .call(
            Method::GET,
            &format!("/api/admin/credentials/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    let shown = shown.ok();
    assert_eq!(shown["status"], "ACTIVE");
    assert_eq!(shown["previous_secret_until"], Value::Null);
}
