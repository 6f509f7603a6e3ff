//! POST /api/api-keys

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use super::TestApp;

#[tokio::test]
async fn creating_a_key_returns_it_once_with_its_plaintext() {
    let app = TestApp::new().await;
    let response = app
        .as_user(
            "alice",
            Method::POST,
            "/api/api-keys",
            Some(json!({
                "name": "  CI pipeline  ",
                "permissions": ["READ_GRAPH", "EXECUTE_GRAPH"],
                "description": "deploys from main",
                "expires_at": "2099-01-01T00:00:00+02:00"
            })),
        )
        .await;
    let body = response.ok();
    assert_eq!(response.headers[header::CACHE_CONTROL], "no-store");

    let plain = body["plain_text_key"].as_str().unwrap();
    assert_eq!(plain.len(), 54);
    assert!(plain.starts_with("agpt_"));
    assert!(plain[5..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(body["api_key"]["prefix"], plain[..8]);
    assert_eq!(body["api_key"]["postfix"], plain[46..]);

    insta::assert_json_snapshot!(body, {
        ".api_key.id" => "[id]",
        ".api_key.created_at" => "[time]",
        ".api_key.prefix" => "[prefix]",
        ".api_key.postfix" => "[postfix]",
        ".plain_text_key" => "[plaintext]",
    });
}

#[tokio::test]
async fn the_plaintext_is_never_shown_again() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key("alice", json!({"name": "k", "permissions": []}))
        .await;
    let id = key["id"].as_str().unwrap();
    let list = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    let one = app
        .as_user("alice", Method::GET, &format!("/api/api-keys/{id}"), None)
        .await;
    for text in [&list.text, &one.text] {
        assert!(
            !text.contains(&plain[8..46]),
            "the secret part leaked: {text}"
        );
    }
}

#[tokio::test]
async fn permissions_are_deduplicated_and_kept_in_catalogue_order() {
    let app = TestApp::new().await;
    let (key, _) = app
        .create_key(
            "alice",
            json!({"name": "k", "permissions": ["READ_BLOCK", "IDENTITY", "READ_BLOCK"]}),
        )
        .await;
    assert_eq!(key["permissions"], json!(["IDENTITY", "READ_BLOCK"]));
}

#[tokio::test]
async fn an_empty_permission_list_makes_a_key_that_only_identifies() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key("alice", json!({"name": "k", "permissions": []}))
        .await;
    assert_eq!(key["permissions"], json!([]));
    let verdict = app.verify(&plain, &[]).await;
    assert_eq!(verdict["code"], "VALID");
    assert_eq!(verdict["user_id"], "alice");
}

#[tokio::test]
async fn each_key_is_different() {
    let app = TestApp::new().await;
    let (_, a) = app
        .create_key("alice", json!({"name": "a", "permissions": []}))
        .await;
    let (_, b) = app
        .create_key("alice", json!({"name": "a", "permissions": []}))
        .await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn invalid_fields_are_refused_with_the_reason() {
    let app = TestApp::new().await;
    let long_name = "x".repeat(101);
    let long_description = "d".repeat(1001);
    let cases = [
        (
            json!({"name": "", "permissions": []}),
            "name: must not be empty",
        ),
        (
            json!({"name": "   ", "permissions": []}),
            "name: must not be empty",
        ),
        (
            json!({"name": long_name, "permissions": []}),
            "name: must be at most 100 characters",
        ),
        (
            json!({"name": "a\u{0007}b", "permissions": []}),
            "name: must not contain control characters",
        ),
        (
            json!({"name": "k", "permissions": [], "description": long_description}),
            "description: must be at most 1000 characters",
        ),
        (
            json!({"name": "k", "permissions": ["ADMIN"]}),
            "permissions: unknown permission(s): ADMIN",
        ),
        (
            json!({"name": "k", "permissions": ["read_graph"]}),
            "unknown permission(s): read_graph",
        ),
        (
            json!({"name": "k", "permissions": [], "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at: must be in the future",
        ),
        (
            json!({"name": "k", "permissions": [], "expires_at": "next week"}),
            "expires_at: expected an RFC 3339 time",
        ),
        (json!({"permissions": []}), "missing field `name`"),
        (json!({"name": "k"}), "missing field `permissions`"),
        (
            json!({"name": "k", "permissions": [], "scopes": []}),
            "unknown field `scopes`",
        ),
        (json!({"name": 7, "permissions": []}), "invalid type"),
        (
            json!({"name": "k", "permissions": "READ_GRAPH"}),
            "invalid type",
        ),
        (json!([1, 2]), "invalid type"),
    ];
    for (body, expected) in cases {
        let response = app
            .as_user("alice", Method::POST, "/api/api-keys", Some(body.clone()))
            .await;
        let error = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        let detail = error["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    let list = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(list.ok(), &json!([]), "nothing was created");
}

#[tokio::test]
async fn every_invalid_field_is_reported_in_one_answer() {
    let app = TestApp::new().await;
    let response = app
        .as_user(
            "alice",
            Method::POST,
            "/api/api-keys",
            Some(json!({"name": "", "permissions": ["NOPE"], "expires_at": "soon"})),
        )
        .await;
    insta::assert_json_snapshot!(response.error(StatusCode::UNPROCESSABLE_ENTITY));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused() {
    let app = TestApp::new().await;
    let token = app.token("alice");
    let malformed = Request::post("/api/api-keys")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    app.send(malformed).await.error(StatusCode::BAD_REQUEST);

    let no_content_type = Request::post("/api/api-keys")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(r#"{"name":"k","permissions":[]}"#))
        .unwrap();
    app.send(no_content_type)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused() {
    let app = TestApp::new().await;
    let huge = json!({"name": "k", "permissions": [], "description": "x".repeat(70 * 1024)});
    let response = app
        .as_user("alice", Method::POST, "/api/api-keys", Some(huge))
        .await;
    response.error(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_user_may_hold_a_limited_number_of_keys_that_are_not_revoked() {
    let app = TestApp::builder().max_keys_per_user(2).build().await;
    let body = json!({"name": "k", "permissions": []});
    let (first, _) = app.create_key("alice", body.clone()).await;
    app.create_key("alice", body.clone()).await;
    let refused = app
        .as_user("alice", Method::POST, "/api/api-keys", Some(body.clone()))
        .await;
    let error = refused.error(StatusCode::CONFLICT);
    assert_eq!(error["message"], "Key limit reached");

    // Other users have their own allowance; revoking frees a slot.
    app.create_key("bob", body.clone()).await;
    let id = first["id"].as_str().unwrap();
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{id}"),
        None,
    )
    .await
    .ok();
    app.create_key("alice", body).await;
}

#[tokio::test]
async fn a_custom_catalogue_replaces_the_default_one() {
    let app = TestApp::builder()
        .permissions(&["BILLING_READ", "BILLING_WRITE"])
        .build()
        .await;
    let (key, _) = app
        .create_key(
            "alice",
            json!({"name": "k", "permissions": ["BILLING_READ"]}),
        )
        .await;
    assert_eq!(key["permissions"], json!(["BILLING_READ"]));
    let response = app
        .as_user(
            "alice",
            Method::POST,
            "/api/api-keys",
            Some(json!({"name": "k", "permissions": ["READ_GRAPH"]})),
        )
        .await;
    response.error(StatusCode::UNPROCESSABLE_ENTITY);
}
