//! Suspend, reactivate, revoke and re-scope; and that nobody else can.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApp;

async fn act(app: &TestApp, user: &str, action: &str, id: &str) -> crate::common::TestResponse {
    let (method, uri, body) = match action {
        "suspend" | "reactivate" => (Method::POST, format!("/api/api-keys/{id}/{action}"), None),
        "revoke" => (Method::DELETE, format!("/api/api-keys/{id}"), None),
        "get" => (Method::GET, format!("/api/api-keys/{id}"), None),
        "permissions" => (
            Method::PUT,
            format!("/api/api-keys/{id}/permissions"),
            Some(json!({"permissions": ["IDENTITY"]})),
        ),
        other => panic!("unknown action {other}"),
    };
    app.as_user(user, method, &uri, body).await
}

async fn new_key(app: &TestApp) -> String {
    app.key_with("alice", &["READ_GRAPH"]).await.0
}

#[tokio::test]
async fn suspending_and_reactivating_round_trip() {
    let app = TestApp::new().await;
    let id = new_key(&app).await;
    let suspended = act(&app, "alice", "suspend", &id).await;
    assert_eq!(suspended.ok()["status"], "SUSPENDED");
    // Suspending again is harmless.
    assert_eq!(
        act(&app, "alice", "suspend", &id).await.ok()["status"],
        "SUSPENDED"
    );
    let active = act(&app, "alice", "reactivate", &id).await;
    assert_eq!(active.ok()["status"], "ACTIVE");
    assert_eq!(active.body["revoked_at"], Value::Null);
}

#[tokio::test]
async fn only_a_suspended_key_can_be_reactivated() {
    let app = TestApp::new().await;
    let id = new_key(&app).await;
    let response = act(&app, "alice", "reactivate", &id).await;
    insta::assert_json_snapshot!(response.error(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn revoking_is_idempotent_and_keeps_the_first_revocation_time() {
    let app = TestApp::new().await;
    let id = new_key(&app).await;
    let first = act(&app, "alice", "revoke", &id).await;
    assert_eq!(first.ok()["status"], "REVOKED");
    let revoked_at = first.body["revoked_at"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = act(&app, "alice", "revoke", &id).await;
    assert_eq!(again.ok()["revoked_at"], revoked_at.as_str());
}

#[tokio::test]
async fn a_revoked_key_is_terminal() {
    let app = TestApp::new().await;
    let id = new_key(&app).await;
    act(&app, "alice", "revoke", &id).await.ok();
    for action in ["suspend", "reactivate", "permissions"] {
        let response = act(&app, "alice", action, &id).await;
        let error = response.error(StatusCode::BAD_REQUEST);
        assert!(
            error["detail"].as_str().unwrap().contains("revoked"),
            "{action}: {error}"
        );
    }
    let key = act(&app, "alice", "get", &id).await;
    assert_eq!(key.ok()["status"], "REVOKED");
    assert_eq!(key.body["permissions"], json!(["READ_GRAPH"]));
}

#[tokio::test]
async fn permissions_are_replaced_whole() {
    let app = TestApp::new().await;
    let id = new_key(&app).await;
    let uri = format!("/api/api-keys/{id}/permissions");
    let response = app
        .as_user(
            "alice",
            Method::PUT,
            &uri,
            Some(json!({"permissions": ["WRITE_GRAPH", "IDENTITY", "WRITE_GRAPH"]})),
        )
        .await;
    assert_eq!(
        response.ok()["permissions"],
        json!(["IDENTITY", "WRITE_GRAPH"])
    );
    let cleared = app
        .as_user("alice", Method::PUT, &uri, Some(json!({"permissions": []})))
        .await;
    assert_eq!(cleared.ok()["permissions"], json!([]));

    // A suspended key can be re-scoped and stays suspended.
    act(&app, "alice", "suspend", &id).await.ok();
    let rescoped = act(&app, "alice", "permissions", &id).await;
    assert_eq!(rescoped.ok()["status"], "SUSPENDED");
    assert_eq!(rescoped.body["permissions"], json!(["IDENTITY"]));
}

#[tokio::test]
async fn unknown_permissions_are_refused_and_nothing_changes() {
    let app = TestApp::new().await;
    let id = new_key(&app).await;
    let response = app
        .as_user(
            "alice",
            Method::PUT,
            &format!("/api/api-keys/{id}/permissions"),
            Some(json!({"permissions": ["READ_GRAPH", "SUPERUSER"]})),
        )
        .await;
    let error = response.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["detail"].as_str().unwrap().contains("SUPERUSER"));
    let key = act(&app, "alice", "get", &id).await;
    assert_eq!(key.ok()["permissions"], json!(["READ_GRAPH"]));
}

const ACTIONS: [&str; 5] = ["get", "suspend", "reactivate", "revoke", "permissions"];

#[tokio::test]
async fn another_users_key_is_not_found_on_every_route() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &["READ_GRAPH"]).await;
    for action in ACTIONS {
        let response = act(&app, "mallory", action, &id).await;
        let error = response.error(StatusCode::NOT_FOUND);
        assert_eq!(error["message"], "API key not found", "{action}");
    }
    let list = app
        .as_user("mallory", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(list.ok(), &json!([]));
    // Untouched.
    let key = act(&app, "alice", "get", &id).await;
    assert_eq!(key.ok()["status"], "ACTIVE");
    assert_eq!(key.body["permissions"], json!(["READ_GRAPH"]));
    assert_eq!(app.verify_code(&plain, &["READ_GRAPH"]).await, "VALID");
}

#[tokio::test]
async fn unknown_ids_are_not_found_on_every_route() {
    let app = TestApp::new().await;
    let unknown = "01900000-0000-7000-8000-000000000000";
    for action in ["get", "suspend", "reactivate", "revoke", "permissions"] {
        act(&app, "alice", action, unknown)
            .await
            .error(StatusCode::NOT_FOUND);
        act(&app, "alice", action, "123")
            .await
            .error(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn another_users_suspended_or_revoked_key_is_not_found_either() {
    // The owner check comes before any status rule: a 400 would reveal the key.
    let app = TestApp::new().await;
    let (suspended, _) = app.key_with("alice", &[]).await;
    act(&app, "alice", "suspend", &suspended).await.ok();
    let (revoked, _) = app.key_with("alice", &[]).await;
    act(&app, "alice", "revoke", &revoked).await.ok();
    for id in [&suspended, &revoked] {
        for action in ACTIONS {
            let response = act(&app, "mallory", action, id).await;
            response.error(StatusCode::NOT_FOUND);
        }
    }
    let key = act(&app, "alice", "get", &suspended).await;
    assert_eq!(key.ok()["status"], "SUSPENDED");
}

#[tokio::test]
async fn bad_permission_bodies_are_client_errors_and_change_nothing() {
    use axum::body::Body;
    use axum::http::{Request, header};

    let app = TestApp::new().await;
    let id = new_key(&app).await;
    let uri = format!("/api/api-keys/{id}/permissions");
    for body in [
        json!({}),
        json!({"permissions": "IDENTITY"}),
        json!({"permissions": [], "name": "x"}),
    ] {
        let response = app
            .as_user("alice", Method::PUT, &uri, Some(body.clone()))
            .await;
        response.error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let token = app.token("alice");
    let raw = |content_type: Option<&str>, body: String| {
        let mut request =
            Request::put(&uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        request.body(Body::from(body)).unwrap()
    };
    app.send(raw(Some("application/json"), "{".into()))
        .await
        .error(StatusCode::BAD_REQUEST);
    app.send(raw(None, r#"{"permissions":[]}"#.into()))
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(r#"{{"permissions":["{}"]}}"#, "A".repeat(70 * 1024));
    app.send(raw(Some("application/json"), huge))
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE);
    let key = act(&app, "alice", "get", &id).await;
    assert_eq!(key.ok()["permissions"], json!(["READ_GRAPH"]));
}
