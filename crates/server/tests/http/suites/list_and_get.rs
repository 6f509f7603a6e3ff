//! GET /api/api-keys and GET /api/api-keys/{id}

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::TestApp;

#[tokio::test]
async fn listing_shows_the_callers_keys_newest_first_with_every_status() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let (key, _) = app
            .create_key("alice", json!({"name": name, "permissions": []}))
            .await;
        ids.push(key["id"].as_str().unwrap().to_owned());
        // Distinct creation times make the order observable.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    app.create_key("bob", json!({"name": "bobs", "permissions": []}))
        .await;
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{}", ids[0]),
        None,
    )
    .await
    .ok();
    app.as_user(
        "alice",
        Method::POST,
        &format!("/api/api-keys/{}/suspend", ids[1]),
        None,
    )
    .await
    .ok();

    let response = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    let keys = response.ok().as_array().unwrap();
    let names: Vec<_> = keys.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["third", "second", "first"]);
    let statuses: Vec<_> = keys.iter().map(|k| k["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["ACTIVE", "SUSPENDED", "REVOKED"]);
    insta::assert_json_snapshot!(keys, {
        "[].id" => "[id]",
        "[].created_at" => "[time]",
        "[].revoked_at" => insta::dynamic_redaction(|value, _| {
            if value.as_str().is_some() { "[time]".into() } else { value }
        }),
        "[].prefix" => "[prefix]",
        "[].postfix" => "[postfix]",
    });
}

#[tokio::test]
async fn a_user_without_keys_gets_an_empty_list() {
    let app = TestApp::new().await;
    let response = app
        .as_user("nobody", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(response.ok(), &json!([]));
}

#[tokio::test]
async fn getting_a_key_returns_what_create_returned() {
    let app = TestApp::new().await;
    let (created, _) = app
        .create_key("alice", json!({"name": "k", "permissions": ["IDENTITY"]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .as_user("alice", Method::GET, &format!("/api/api-keys/{id}"), None)
        .await;
    assert_eq!(response.ok(), &created);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found() {
    let app = TestApp::new().await;
    let unknown = "01900000-0000-7000-8000-000000000000";
    let response = app
        .as_user(
            "alice",
            Method::GET,
            &format!("/api/api-keys/{unknown}"),
            None,
        )
        .await;
    insta::assert_json_snapshot!(response.error(StatusCode::NOT_FOUND));
    let response = app
        .as_user("alice", Method::GET, "/api/api-keys/not-a-uuid", None)
        .await;
    assert_eq!(
        response.error(StatusCode::NOT_FOUND)["message"],
        "API key not found"
    );
}
