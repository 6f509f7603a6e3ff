//! DELETE /api/admin/users/{user_id}

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::TestApp;
use crate::common::ADMIN_TOKEN;

#[tokio::test]
async fn deleting_a_user_removes_their_keys_and_fails_them_at_once() {
    let app = TestApp::new().await;
    let (_, first) = app.key_with("alice", &["READ_GRAPH"]).await;
    let (_, second) = app.key_with("alice", &[]).await;
    let (_, bobs) = app.key_with("bob", &[]).await;
    // Cached before the deletion.
    assert_eq!(app.verify_code(&first, &["READ_GRAPH"]).await, "VALID");

    let response = app
        .call(
            Method::DELETE,
            "/api/admin/users/alice",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(
        response.ok(),
        &json!({"user_id": "alice", "deleted_keys": 2})
    );
    assert_eq!(app.verify_code(&first, &["READ_GRAPH"]).await, "NOT_FOUND");
    assert_eq!(app.verify_code(&second, &[]).await, "NOT_FOUND");
    assert_eq!(app.verify_code(&bobs, &[]).await, "VALID");
    let list = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(list.ok(), &json!([]));

    // Deleting again, or a user who never had keys, succeeds and removes nothing.
    let again = app
        .call(
            Method::DELETE,
            "/api/admin/users/alice",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(again.ok()["deleted_keys"], 0);
}

#[tokio::test]
async fn user_ids_are_taken_verbatim_from_the_path() {
    let app = TestApp::new().await;
    app.key_with("auth0|user 7", &[]).await;
    let response = app
        .call(
            Method::DELETE,
            "/api/admin/users/auth0%7Cuser%207",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(
        response.ok(),
        &json!({"user_id": "auth0|user 7", "deleted_keys": 1})
    );
    let control = app
        .call(
            Method::DELETE,
            "/api/admin/users/a%0Ab",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    control.error(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn only_the_service_token_may_delete_users() {
    let app = TestApp::new().await;
    let (_, plain) = app.key_with("alice", &[]).await;
    let user_token = app.token("alice");
    for token in [
        None,
        Some(user_token.as_str()),
        Some("not-the-service-token"),
    ] {
        let response = app
            .call(Method::DELETE, "/api/admin/users/alice", token, None)
            .await;
        response.error(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
}
