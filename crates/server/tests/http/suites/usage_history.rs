//! Usage history: a key's verifications per hour or day for its owner, and per user
//! or for the deployment for the platform; the counts shown at once, before they
//! are written, and every bucket of the range answered.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::TestApp;

fn totals(usage: &Value) -> (u64, u64) {
    let buckets = usage["buckets"].as_array().unwrap();
    let sum = |field: &str| buckets.iter().map(|b| b[field].as_u64().unwrap()).sum();
    (sum("valid"), sum("refused"))
}

async fn key_usage(app: &TestApp, user: &str, id: &str, query: &str) -> Value {
    app.as_user(
        user,
        Method::GET,
        &format!("/api/api-keys/{id}/usage{query}"),
        None,
    )
    .await
    .ok()
    .clone()
}

async fn platform_usage(app: &TestApp, query: &str) -> Value {
    app.as_platform(Method::GET, &format!("/api/admin/usage{query}"), None)
        .await
        .ok()
        .clone()
}

#[tokio::test]
async fn a_keys_verifications_show_at_once_valid_or_refused() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &["READ_GRAPH"]).await;
    for _ in 0..3 {
        assert_eq!(app.verify_code(&plain, &["READ_GRAPH"]).await, "VALID");
    }
    assert_eq!(
        app.verify_code(&plain, &["EXECUTE_GRAPH"]).await,
        "INSUFFICIENT_PERMISSIONS"
    );
    let (_, other) = app.key_with("alice", &[]).await;
    app.verify_code(&other.replace("_", "-"), &[]).await;

    let usage = key_usage(&app, "alice", &id, "").await;
    assert_eq!(usage["key_id"], id.as_str());
    assert_eq!(usage["granularity"], "hour");
    let buckets = usage["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.len(),
        49,
        "48 hours back from now, now's hour included"
    );
    assert_eq!(usage["from"], buckets[0]["start"]);
    assert!(usage["to"].as_str().unwrap().ends_with(":00:00Z"));
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0]["start"].as_str() < w[1]["start"].as_str()),
        "oldest first"
    );
    assert_eq!(totals(&usage), (3, 1), "counted before any flush");

    app.engine.flush_usage().await.unwrap();
    let written = key_usage(&app, "alice", &id, "").await;
    assert_eq!(totals(&written), (3, 1), "the same once written");
}

#[tokio::test]
async fn daily_buckets_are_utc_days_summing_their_hours() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    app.verify_code(&plain, &[]).await;
    app.verify_code(&plain, &[]).await;
    let usage = key_usage(&app, "alice", &id, "?granularity=day").await;
    assert_eq!(usage["granularity"], "day");
    let buckets = usage["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 31, "30 days back from now, today included");
    assert!(
        buckets
            .iter()
            .all(|b| b["start"].as_str().unwrap().ends_with("T00:00:00Z"))
    );
    assert_eq!(totals(&usage), (2, 0));
}

#[tokio::test]
async fn an_explicit_range_is_widened_to_whole_buckets_and_answered_densely() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let usage = key_usage(
        &app,
        "alice",
        &id,
        "?from=2026-01-01T00:30:00Z&to=2026-01-01T03:00:00Z",
    )
    .await;
    assert_eq!(usage["from"], "2026-01-01T00:00:00Z");
    assert_eq!(usage["to"], "2026-01-01T03:00:00Z");
    let starts: Vec<&str> = usage["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00Z",
            "2026-01-01T02:00:00Z"
        ]
    );
    assert_eq!(totals(&usage), (0, 0));
}

#[tokio::test]
async fn bad_ranges_and_granularities_are_refused_with_400() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let cases = [
        ("?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("?from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "744"),
        ("?granularity=week", "granularity"),
        ("?from=yesterday", "from"),
    ];
    for (query, mentioned) in cases {
        let uri = format!("/api/api-keys/{id}/usage{query}");
        let response = app.as_user("alice", Method::GET, &uri, None).await;
        let error = response.error(StatusCode::BAD_REQUEST);
        let detail = error["detail"].as_str().unwrap();
        assert!(detail.contains(mentioned), "{query}: {detail}");
        let admin = app
            .as_platform(Method::GET, &format!("/api/admin/usage{query}"), None)
            .await;
        admin.error(StatusCode::BAD_REQUEST);
    }
    let days = key_usage(
        &app,
        "alice",
        &id,
        "?granularity=day&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
    )
    .await;
    assert_eq!(days["buckets"].as_array().unwrap().len(), 59);
}

#[tokio::test]
async fn another_users_key_usage_is_not_found() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    app.verify_code(&plain, &[]).await;
    let uri = format!("/api/api-keys/{id}/usage");
    let response = app.as_user("bob", Method::GET, &uri, None).await;
    response.error(StatusCode::NOT_FOUND);
    let unknown = "/api/api-keys/01900000-0000-7000-8000-000000000000/usage";
    let response = app.as_user("alice", Method::GET, unknown, None).await;
    response.error(StatusCode::NOT_FOUND);
    let unauthenticated = app.call(Method::GET, &uri, None, None).await;
    unauthenticated.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_platform_reads_usage_per_user_and_for_the_whole_deployment() {
    let app = TestApp::new().await;
    let (_, a1) = app.key_with("alice", &[]).await;
    let (a2_id, a2) = app.key_with("alice", &[]).await;
    let (_, b) = app.key_with("bob", &[]).await;
    app.verify_code(&a1, &[]).await;
    app.verify_code(&a2, &[]).await;
    app.verify_code(&b, &[]).await;
    app.verify_code(&b, &[]).await;
    let revoke = format!("/api/api-keys/{a2_id}");
    app.as_user("alice", Method::DELETE, &revoke, None)
        .await
        .ok();
    assert_eq!(app.verify_code(&a2, &[]).await, "REVOKED");
    app.engine.flush_usage().await.unwrap();
    app.verify_code(&a1, &[]).await;

    let of_alice = platform_usage(&app, "?user_id=alice").await;
    assert_eq!(of_alice["user_id"], "alice");
    assert!(of_alice.get("key_id").is_none());
    assert_eq!(of_alice["granularity"], "hour");
    assert_eq!(totals(&of_alice), (3, 1), "written and pending, summed");
    let everyone = platform_usage(&app, "?granularity=day").await;
    assert_eq!(everyone["user_id"], Value::Null);
    assert_eq!(totals(&everyone), (5, 1));
    let nobody = platform_usage(&app, "?user_id=carol").await;
    assert_eq!(totals(&nobody), (0, 0));

    let as_user = app
        .as_user("alice", Method::GET, "/api/admin/usage", None)
        .await;
    as_user.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn with_usage_history_off_every_bucket_is_zero() {
    let app = TestApp::builder()
        .engine(|c| c.usage_history_days = 0)
        .build()
        .await;
    let (id, plain) = app.key_with("alice", &[]).await;
    app.verify_code(&plain, &[]).await;
    app.engine.flush_usage().await.unwrap();
    let usage = key_usage(&app, "alice", &id, "").await;
    assert_eq!(usage["buckets"].as_array().unwrap().len(), 49);
    assert_eq!(totals(&usage), (0, 0));
    assert_eq!(totals(&platform_usage(&app, "").await), (0, 0));
}
