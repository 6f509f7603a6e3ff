//! DELETE /api/admin/users/{user_id}; a user's keys listed, suspended, reactivated and
//! revoked by the platform.

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
async fn every_user_id_route_answers_422_for_what_is_not_a_user_id() {
    let app = TestApp::new().await;
    let body = json!({"name": "x", "permissions": []});
    // Not UTF-8 once decoded, a control character, and (for a new key only) an id
    // that starts with a space: each route reads the segment the same way.
    for id in ["%FF", "a%0Ab"] {
        let path = format!("/api/admin/users/{id}");
        let keys = format!("{path}/api-keys");
        for (method, uri, body) in [
            (Method::DELETE, &path, None),
            (Method::GET, &keys, None),
            (Method::POST, &keys, Some(body.clone())),
        ] {
            let response = app.as_platform(method.clone(), uri, body).await;
            let error = response.error(StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                error["detail"].as_str().unwrap().starts_with("user_id: "),
                "{method} {uri}: {error}"
            );
        }
    }
    let padded = app
        .as_platform(Method::POST, "/api/admin/users/%20bob/api-keys", Some(body))
        .await;
    let error = padded.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["detail"].as_str().unwrap().starts_with("user_id: "));
    // An id stored before today's rules still names its user for reading.
    let listed = app
        .as_platform(Method::GET, "/api/admin/users/%20bob/api-keys", None)
        .await;
    assert_eq!(listed.ok(), &json!([]));
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

#[tokio::test]
async fn the_platform_lists_one_users_keys_with_every_status() {
    let app = TestApp::new().await;
    let (first, _) = app.key_with("alice", &["READ_GRAPH"]).await;
    let (second, _) = app.key_with("alice", &[]).await;
    app.key_with("bob", &[]).await;
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{first}"),
        None,
    )
    .await
    .ok();
    let listed = app
        .as_platform(Method::GET, "/api/admin/users/alice/api-keys", None)
        .await;
    // What alice sees herself, newest first.
    let own = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(listed.ok(), own.ok());
    let ids: Vec<_> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    assert_eq!(listed.body[1]["status"], "REVOKED");
    // A user without keys has an empty list.
    let nobody = app
        .as_platform(Method::GET, "/api/admin/users/nobody/api-keys", None)
        .await;
    assert_eq!(nobody.ok(), &json!([]));
}

#[tokio::test]
async fn the_platform_suspends_reactivates_and_revokes_any_key_on_the_record() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    let suspend = format!("/api/admin/api-keys/{id}/suspend");
    let reactivate = format!("/api/admin/api-keys/{id}/reactivate");
    let revoke = format!("/api/admin/api-keys/{id}");

    assert_eq!(
        app.as_platform(Method::POST, &suspend, None).await.ok()["status"],
        "SUSPENDED"
    );
    assert_eq!(app.verify_code(&plain, &[]).await, "SUSPENDED");
    assert_eq!(
        app.as_platform(Method::POST, &reactivate, None).await.ok()["status"],
        "ACTIVE"
    );
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    assert_eq!(
        app.as_platform(Method::DELETE, &revoke, None).await.ok()["status"],
        "REVOKED"
    );
    assert_eq!(app.verify_code(&plain, &[]).await, "REVOKED");
    // Revoked is final; revoking again succeeds.
    app.as_platform(Method::POST, &suspend, None)
        .await
        .error(StatusCode::BAD_REQUEST);
    app.as_platform(Method::DELETE, &revoke, None).await.ok();

    // Recorded as the service's changes in the key's trail.
    let trail = app
        .as_user(
            "alice",
            Method::GET,
            &format!("/api/api-keys/{id}/events"),
            None,
        )
        .await;
    let actions: Vec<_> = trail.ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("create".to_owned(), "user".to_owned()),
            ("suspend".to_owned(), "admin".to_owned()),
            ("reactivate".to_owned(), "admin".to_owned()),
            ("revoke".to_owned(), "admin".to_owned()),
        ]
    );
}

#[tokio::test]
async fn only_the_service_token_reaches_a_users_keys() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let unknown = "01900000-0000-7000-8000-000000000000";
    for (method, uri) in [
        (Method::GET, "/api/admin/users/alice/api-keys".to_owned()),
        (Method::POST, format!("/api/admin/api-keys/{id}/suspend")),
        (Method::POST, format!("/api/admin/api-keys/{id}/reactivate")),
        (Method::DELETE, format!("/api/admin/api-keys/{id}")),
    ] {
        // alice's own JWT is not the service token.
        app.as_user("alice", method.clone(), &uri, None)
            .await
            .error(StatusCode::UNAUTHORIZED);
        app.call(method, &uri, None, None)
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    for (method, uri) in [
        (
            Method::POST,
            format!("/api/admin/api-keys/{unknown}/suspend"),
        ),
        (
            Method::POST,
            format!("/api/admin/api-keys/{unknown}/reactivate"),
        ),
        (Method::DELETE, format!("/api/admin/api-keys/{unknown}")),
    ] {
        app.as_platform(method, &uri, None)
            .await
            .error(StatusCode::NOT_FOUND);
    }
    let listed = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(listed.ok()[0]["status"], "ACTIVE");
}
