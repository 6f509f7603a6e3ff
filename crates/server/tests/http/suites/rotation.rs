//! Rotation: a new key replaces an old one, which keeps working for a grace period.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::TestApp;
use crate::common::{ADMIN_TOKEN, TestResponse};

async fn rotate(app: &TestApp, user: &str, id: &str, body: Value) -> TestResponse {
    app.as_user(
        user,
        Method::POST,
        &format!("/api/api-keys/{id}/rotate"),
        Some(body),
    )
    .await
}

fn millis(rfc3339: &Value) -> i64 {
    keyward_core::time::Timestamp::parse_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .as_millis()
}

#[tokio::test]
async fn the_new_key_carries_everything_and_the_old_one_works_for_the_grace_period() {
    let app = TestApp::new().await;
    let (old, old_plain) = app
        .create_key_as_platform(
            "alice",
            json!({
                "name": "ci", "description": "deploys", "permissions": ["READ_GRAPH", "EXECUTE_GRAPH"],
                "expires_at": "2999-01-01T00:00:00Z",
                "rate_limit": {"requests": 100, "per_seconds": 60},
                "metadata": {"team": "ci"},
            }),
        )
        .await;
    let old_id = old["id"].as_str().unwrap();
    let response = rotate(&app, "alice", old_id, json!({"grace_seconds": 600})).await;
    assert_eq!(response.headers[header::CACHE_CONTROL], "no-store");
    let body = response.ok().clone();
    let new = &body["api_key"];
    let new_plain = body["plain_text_key"].as_str().unwrap();
    assert_ne!(new["id"], old["id"]);
    assert_ne!(new_plain, old_plain);
    for field in [
        "name",
        "description",
        "permissions",
        "expires_at",
        "rate_limit",
        "metadata",
        "status",
        "user_id",
    ] {
        assert_eq!(new[field], old[field], "{field}");
    }
    assert_eq!(new["rotated_from"], old["id"]);
    assert_eq!(new["rotated_to"], Value::Null);
    let previous = &body["previous_key"];
    assert_eq!(previous["rotated_to"], new["id"]);
    let grace_end = millis(&previous["expires_at"]) - millis(&new["created_at"]);
    assert_eq!(grace_end, 600_000);

    let verdict = app.verify(new_plain, &["EXECUTE_GRAPH"]).await;
    assert_eq!(verdict["code"], "VALID");
    assert_eq!(verdict["metadata"], json!({"team": "ci"}));
    assert_eq!(
        app.verify_code(&old_plain, &[]).await,
        "VALID",
        "in the grace period"
    );
    app.advance(Duration::from_secs(601));
    assert_eq!(app.verify_code(&old_plain, &[]).await, "EXPIRED");
    assert_eq!(app.verify_code(new_plain, &[]).await, "VALID");

    // Both keys show their link; the trail has the rotation and the new key's creation.
    let shown = app
        .as_user(
            "alice",
            Method::GET,
            &format!("/api/api-keys/{old_id}"),
            None,
        )
        .await;
    assert_eq!(shown.ok()["rotated_to"], new["id"]);
    let trail = app
        .call(Method::GET, "/api/admin/events", Some(ADMIN_TOKEN), None)
        .await;
    let events = trail.ok()["events"].as_array().unwrap().clone();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "rotate", "create"]);
    assert_eq!(events[1]["changes"]["rotated_to"]["after"], new["id"]);
    assert_eq!(events[2]["changes"]["rotated_from"]["after"], old["id"]);
}

#[tokio::test]
async fn a_rotation_needs_no_body() {
    let app = TestApp::new().await;
    for body in [None, Some(Value::Null)] {
        let (id, _) = app.key_with("alice", &[]).await;
        let path = format!("/api/api-keys/{id}/rotate");
        let rotated = app.as_user("alice", Method::POST, &path, body).await;
        let body = rotated.ok();
        let grace =
            millis(&body["previous_key"]["expires_at"]) - millis(&body["api_key"]["created_at"]);
        assert_eq!(grace, 3_600_000, "the default grace period");
    }
    // A body that is there must still be JSON.
    let (id, _) = app.key_with("alice", &[]).await;
    let request = axum::http::Request::post(format!("/api/api-keys/{id}/rotate"))
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", app.token("alice")),
        )
        .body(axum::body::Body::from("grace_seconds=5"))
        .unwrap();
    app.send(request)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn the_grace_period_defaults_to_an_hour_and_never_outlasts_the_old_expiry() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let body = rotate(&app, "alice", &id, json!({})).await.ok().clone();
    let grace =
        millis(&body["previous_key"]["expires_at"]) - millis(&body["api_key"]["created_at"]);
    assert_eq!(grace, 3_600_000);
    assert_eq!(
        body["api_key"]["expires_at"],
        Value::Null,
        "the new key keeps no expiry"
    );

    let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (key, _) = app
        .create_key(
            "alice",
            json!({"name": "short", "permissions": [], "expires_at": soon}),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    let body = rotate(&app, "alice", id, json!({"grace_seconds": 86_400}))
        .await
        .ok()
        .clone();
    assert_eq!(body["previous_key"]["expires_at"], key["expires_at"]);
    assert_eq!(body["api_key"]["expires_at"], key["expires_at"]);
}

#[tokio::test]
async fn a_grace_of_zero_ends_the_old_key_at_once() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    let body = rotate(&app, "alice", &id, json!({"grace_seconds": 0}))
        .await
        .ok()
        .clone();
    assert_eq!(app.verify_code(&plain, &[]).await, "EXPIRED");
    let new = body["plain_text_key"].as_str().unwrap();
    assert_eq!(app.verify_code(new, &[]).await, "VALID");
}

#[tokio::test]
async fn revoked_expired_and_rotated_keys_cannot_be_rotated() {
    let app = TestApp::builder().max_keys_per_user(2).build().await;
    let (revoked, _) = app.key_with("alice", &[]).await;
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{revoked}"),
        None,
    )
    .await
    .ok();
    let refused = rotate(&app, "alice", &revoked, json!({})).await;
    assert!(
        refused.error(StatusCode::BAD_REQUEST)["detail"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );

    // At the cap, a rotation with a grace period would hold both keys: refused. One
    // without a grace period replaces the old key at once: it works.
    let (first, _) = app.key_with("alice", &[]).await;
    let (second, _) = app.key_with("alice", &[]).await;
    rotate(&app, "alice", &first, json!({"grace_seconds": 600}))
        .await
        .error(StatusCode::CONFLICT);
    rotate(&app, "alice", &first, json!({"grace_seconds": 0}))
        .await
        .ok();
    let (carols, _) = app.key_with("carol", &[]).await;
    rotate(&app, "carol", &carols, json!({"grace_seconds": 600}))
        .await
        .ok();
    let again = rotate(&app, "carol", &carols, json!({})).await;
    let error = again.error(StatusCode::BAD_REQUEST);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("already rotated"),
        "{error}"
    );
    assert!(error["hint"].as_str().unwrap().contains("rotated_to"));
    rotate(&app, "bob", &second, json!({}))
        .await
        .error(StatusCode::NOT_FOUND);
    for bad in [
        json!({"grace_seconds": 604_801}),
        json!({"grace_seconds": -1}),
        json!({"grace": 5}),
    ] {
        rotate(&app, "alice", &second, bad)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.advance(Duration::from_secs(1));
    let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.as_user(
        "alice",
        Method::PATCH,
        &format!("/api/api-keys/{second}"),
        Some(json!({ "expires_at": soon })),
    )
    .await
    .ok();
    app.advance(Duration::from_secs(120));
    let expired = rotate(&app, "alice", &second, json!({})).await;
    assert!(
        expired.error(StatusCode::BAD_REQUEST)["detail"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn usage_credits_move_to_the_new_key_instead_of_doubling() {
    let app = TestApp::new().await;
    let (old, old_plain) = app
        .create_key_as_platform(
            "alice",
            json!({"name": "metered", "permissions": [], "remaining": 5}),
        )
        .await;
    let body = rotate(&app, "alice", old["id"].as_str().unwrap(), json!({}))
        .await
        .ok()
        .clone();
    assert_eq!(body["api_key"]["remaining"], 5);
    assert_eq!(body["previous_key"]["remaining"], 0);
    assert_eq!(app.verify_code(&old_plain, &[]).await, "USAGE_EXCEEDED");
    let new = body["plain_text_key"].as_str().unwrap();
    assert_eq!(app.verify(new, &[]).await["remaining"], 4);
}
