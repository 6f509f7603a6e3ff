//! POST /api/api-keys/verify

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::TestApp;
use crate::common::ADMIN_TOKEN;

#[tokio::test]
async fn a_valid_key_is_reported_with_its_owner_and_permissions() {
    let app = TestApp::new().await;
    let (id, plain) = app
        .key_with("alice", &["READ_GRAPH", "EXECUTE_GRAPH"])
        .await;
    let verdict = app.verify(&plain, &["READ_GRAPH"]).await;
    assert_eq!(verdict["key_id"], id.as_str());
    insta::assert_json_snapshot!(verdict, { ".key_id" => "[id]" });
}

#[tokio::test]
async fn every_code_is_reported() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &["READ_GRAPH"]).await;

    let malformed = app.verify("agpt_short", &[]).await;
    assert_eq!(malformed, json!({"valid": false, "code": "MALFORMED"}));
    let mut typo = plain.clone();
    let swapped = if &typo[20..21] == "A" { "B" } else { "A" };
    typo.replace_range(20..21, swapped);
    assert_eq!(app.verify_code(&typo, &[]).await, "MALFORMED");

    let unknown = keyward_core::key::KeyFormat::default().generate();
    let not_found = app.verify(unknown.expose(), &[]).await;
    assert_eq!(not_found, json!({"valid": false, "code": "NOT_FOUND"}));

    assert_eq!(
        app.verify_code(&plain, &["EXECUTE_GRAPH"]).await,
        "INSUFFICIENT_PERMISSIONS"
    );

    app.as_user(
        "alice",
        Method::POST,
        &format!("/api/api-keys/{id}/suspend"),
        None,
    )
    .await
    .ok();
    let suspended = app.verify(&plain, &[]).await;
    assert_eq!(suspended["code"], "SUSPENDED");
    assert_eq!(suspended["valid"], false);
    assert_eq!(
        suspended["key_id"],
        id.as_str(),
        "a found key is identified whatever the code"
    );

    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{id}"),
        None,
    )
    .await
    .ok();
    assert_eq!(app.verify_code(&plain, &[]).await, "REVOKED");
}

#[tokio::test]
async fn a_key_verifies_as_expired_from_its_expiry_time() {
    let app = TestApp::new().await;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let expires = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (key, plain) = app
        .create_key(
            "alice",
            json!({"name": "k", "permissions": [], "expires_at": expires}),
        )
        .await;
    let verdict = app.verify(&plain, &[]).await;
    assert_eq!(verdict["code"], "VALID");
    assert_eq!(verdict["expires_at"], key["expires_at"]);
    app.advance(Duration::from_secs(3601));
    let verdict = app.verify(&plain, &[]).await;
    assert_eq!(verdict["code"], "EXPIRED");
    assert_eq!(verdict["valid"], false);
}

#[tokio::test]
async fn requiring_several_permissions_requires_all_of_them() {
    let app = TestApp::new().await;
    let (_, plain) = app
        .key_with("alice", &["READ_GRAPH", "EXECUTE_GRAPH"])
        .await;
    assert_eq!(
        app.verify_code(&plain, &["READ_GRAPH", "EXECUTE_GRAPH"])
            .await,
        "VALID"
    );
    assert_eq!(
        app.verify_code(&plain, &["READ_GRAPH", "EXECUTE_GRAPH", "READ_BLOCK"])
            .await,
        "INSUFFICIENT_PERMISSIONS"
    );
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
}

#[tokio::test]
async fn changes_are_seen_by_the_very_next_verification() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &["READ_GRAPH"]).await;
    // Warm the cache first.
    for _ in 0..3 {
        assert_eq!(app.verify_code(&plain, &["READ_GRAPH"]).await, "VALID");
    }
    let key_uri = format!("/api/api-keys/{id}");

    app.as_user("alice", Method::POST, &format!("{key_uri}/suspend"), None)
        .await
        .ok();
    assert_eq!(app.verify_code(&plain, &["READ_GRAPH"]).await, "SUSPENDED");
    app.as_user(
        "alice",
        Method::POST,
        &format!("{key_uri}/reactivate"),
        None,
    )
    .await
    .ok();
    assert_eq!(app.verify_code(&plain, &["READ_GRAPH"]).await, "VALID");
    app.as_user(
        "alice",
        Method::PUT,
        &format!("{key_uri}/permissions"),
        Some(json!({"permissions": ["IDENTITY"]})),
    )
    .await
    .ok();
    assert_eq!(
        app.verify_code(&plain, &["READ_GRAPH"]).await,
        "INSUFFICIENT_PERMISSIONS"
    );
    app.as_user("alice", Method::DELETE, &key_uri, None)
        .await
        .ok();
    assert_eq!(app.verify_code(&plain, &["IDENTITY"]).await, "REVOKED");
}

#[tokio::test]
async fn a_successful_verification_sets_last_used_at() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    let uri = format!("/api/api-keys/{id}");
    let before = app.as_user("alice", Method::GET, &uri, None).await;
    assert_eq!(before.ok()["last_used_at"], serde_json::Value::Null);

    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    app.engine.flush_usage().await.unwrap();
    let stored = app
        .stored_last_used(&id)
        .await
        .expect("written to the database by the flush");
    let after = app.as_user("alice", Method::GET, &uri, None).await;
    assert_eq!(after.ok()["last_used_at"], stored.as_str());
}

#[tokio::test]
async fn a_failed_verification_does_not_set_last_used_at() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    assert_eq!(
        app.verify_code(&plain, &["READ_GRAPH"]).await,
        "INSUFFICIENT_PERMISSIONS"
    );
    app.engine.flush_usage().await.unwrap();
    assert_eq!(app.stored_last_used(&id).await, None);
}

#[tokio::test]
async fn unknown_required_permissions_are_a_client_error() {
    let app = TestApp::new().await;
    let (_, plain) = app.key_with("alice", &[]).await;
    let response = app
        .call(
            Method::POST,
            "/api/api-keys/verify",
            Some(ADMIN_TOKEN),
            Some(json!({"key": plain, "permissions": ["GOD_MODE"]})),
        )
        .await;
    let error = response.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["detail"].as_str().unwrap().contains("GOD_MODE"));
}

#[tokio::test]
async fn the_verify_api_needs_the_service_token() {
    let app = TestApp::new().await;
    let (_, plain) = app.key_with("alice", &[]).await;
    let body = Some(json!({"key": plain}));
    let missing = app
        .call(Method::POST, "/api/api-keys/verify", None, body.clone())
        .await;
    missing.error(StatusCode::UNAUTHORIZED);
    let wrong = app
        .call(
            Method::POST,
            "/api/api-keys/verify",
            Some("wrong-token-of-some-length"),
            body,
        )
        .await;
    wrong.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_verify_bodies_are_client_errors() {
    let app = TestApp::new().await;
    let cases = [
        json!({}),
        json!({"key": 5}),
        json!({"key": "agpt_x", "permissions": "READ_GRAPH"}),
        json!({"key": "agpt_x", "extra": true}),
    ];
    for body in cases {
        let response = app
            .call(
                Method::POST,
                "/api/api-keys/verify",
                Some(ADMIN_TOKEN),
                Some(body.clone()),
            )
            .await;
        response.error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let raw = |content_type: Option<&str>, body: String| {
        let mut request = axum::http::Request::post("/api/api-keys/verify").header(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {ADMIN_TOKEN}"),
        );
        if let Some(ct) = content_type {
            request = request.header(axum::http::header::CONTENT_TYPE, ct);
        }
        request.body(axum::body::Body::from(body)).unwrap()
    };
    app.send(raw(Some("application/json"), "{\"key\":".into()))
        .await
        .error(StatusCode::BAD_REQUEST);
    app.send(raw(Some("text/plain"), r#"{"key":"agpt_x"}"#.into()))
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.send(raw(
        Some("application/json"),
        format!(r#"{{"key":"{}"}}"#, "k".repeat(70 * 1024)),
    ))
    .await
    .error(StatusCode::PAYLOAD_TOO_LARGE);
    // Very long or exotic "keys" are simply malformed.
    for key in ["x".repeat(10_000), "agpt_🔑".to_owned(), String::new()] {
        assert_eq!(app.verify_code(&key, &[]).await, "MALFORMED");
    }
}
