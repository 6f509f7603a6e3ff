//! Webhook endpoints through their routes: added with a secret shown once, read
//! without it, changed, switched off and on, deleted; their delivery log shows the
//! events committed changes queued (and none for a refused change); ids that are
//! not an endpoint's or a delivery's are 404s. (Delivery itself is tested against a
//! real consumer in the CLI tests.)

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::TestApp;
use crate::common::ADMIN_TOKEN;

const URL: &str = "https://hooks.example.com/keyward";

async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::common::TestResponse {
    app.call(method, path, Some(ADMIN_TOKEN), body).await
}

async fn add(app: &TestApp, events: &[&str]) -> (String, String) {
    let answer = admin(
        app,
        Method::POST,
        "/api/admin/webhooks",
        Some(json!({"url": URL, "events": events, "description": "billing"})),
    )
    .await;
    let body = answer.ok().clone();
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    let secret = body["secret"].as_str().unwrap().to_owned();
    (body["webhook"]["id"].as_str().unwrap().to_owned(), secret)
}

#[tokio::test]
async fn an_endpoint_is_added_read_changed_switched_off_and_deleted() {
    let app = TestApp::new().await;
    let (id, secret) = add(&app, &["api_key.revoked", "api_key.created"]).await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    let listed = admin(&app, Method::GET, "/api/admin/webhooks", None).await;
    assert!(
        !listed.text.contains(&secret[6..]),
        "a listing shows the secret"
    );
    let shown = admin(
        &app,
        Method::GET,
        &format!("/api/admin/webhooks/{id}"),
        None,
    )
    .await;
    let webhook = shown.ok();
    assert_eq!(webhook["url"], URL);
    assert_eq!(
        webhook["events"],
        json!(["api_key.created", "api_key.revoked"])
    );
    assert_eq!(webhook["enabled"], true);
    assert_eq!(webhook["created_by"], "admin:service");
    assert!(!shown.text.contains(&secret[6..]));

    let path = format!("/api/admin/webhooks/{id}");
    let changed = admin(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"events": ["api_key.expired"], "description": null, "enabled": false})),
    )
    .await;
    let changed = changed.ok();
    assert_eq!(changed["events"], json!(["api_key.expired"]));
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["disabled_reason"], "disabled by admin:service");
    let on = admin(&app, Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    assert_eq!(on.ok()["disabled_reason"], Value::Null);

    for bad in [
        json!({"url": "http://hooks.example.com/"}),
        json!({"url": "https://192.168.1.10/"}),
        json!({"events": []}),
        json!({"events": ["api_key.created", "nope"]}),
    ] {
        let refused = admin(&app, Method::PATCH, &path, Some(bad.clone())).await;
        refused.error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let unknown = admin(&app, Method::PATCH, &path, Some(json!({"secret": "x"}))).await;
    assert!(unknown.status.is_client_error(), "{unknown:?}");

    let rotated = admin(&app, Method::POST, &format!("{path}/rotate-secret"), None).await;
    assert_eq!(rotated.headers[header::CACHE_CONTROL], "no-store");
    let new_secret = rotated.ok()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated.ok()["webhook"]["previous_secret_until"].is_string());

    let deleted = admin(&app, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = admin(&app, Method::GET, &path, None).await;
    assert_eq!(
        gone.error(StatusCode::NOT_FOUND)["message"],
        "Webhook not found"
    );
}

#[tokio::test]
async fn the_delivery_log_holds_what_committed_changes_queued() {
    let app = TestApp::new().await;
    let (id, _) = add(
        &app,
        &["api_key.created", "api_key.revoked", "api_key.reactivated"],
    )
    .await;
    let (key, _) = app.key_with("alice", &[]).await;
    let revoked = app
        .as_user(
            "alice",
            Method::DELETE,
            &format!("/api/api-keys/{key}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    // Refused (a revoked key stays revoked): nothing queued.
    let refused = app
        .as_user(
            "alice",
            Method::POST,
            &format!("/api/api-keys/{key}/reactivate"),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let test = admin(
        &app,
        Method::POST,
        &format!("/api/admin/webhooks/{id}/test"),
        None,
    )
    .await;
    assert_eq!(test.status, StatusCode::ACCEPTED);
    let event_id = test.body["event_id"].as_str().unwrap().to_owned();

    let log = admin(
        &app,
        Method::GET,
        &format!("/api/admin/webhooks/{id}/deliveries"),
        None,
    )
    .await;
    let log = log.ok().as_array().unwrap().clone();
    let types: Vec<&str> = log
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["webhook.test", "api_key.revoked", "api_key.created"]
    );
    assert_eq!(log[0]["event_id"], event_id);
    assert_eq!(log[1]["key_id"], key);
    for delivery in &log {
        assert_eq!(delivery["state"], "pending");
        assert_eq!(delivery["attempts"], json!([]));
    }
    let retry = format!("/api/admin/webhooks/{id}/deliveries/{}/retry", log[1]["id"]);
    assert_eq!(
        admin(&app, Method::POST, &retry, None).await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn ids_that_name_no_endpoint_or_delivery_are_404() {
    let app = TestApp::new().await;
    let (id, _) = add(&app, &["api_key.created"]).await;
    for path in [
        "/api/admin/webhooks/0190b1c4-9f43-7cc4-8a5e-2f1d3c4b5a69".to_owned(),
        format!("/api/admin/webhooks/{}", id.to_uppercase()),
        format!("/api/admin/webhooks/%30{}", &id[1..]),
        "/api/admin/webhooks/not-an-id".to_owned(),
    ] {
        let answer = admin(&app, Method::GET, &path, None).await;
        assert_eq!(
            answer.error(StatusCode::NOT_FOUND)["message"],
            "Webhook not found",
            "{path}"
        );
    }
    for delivery in [
        "0",
        "01",
        "-1",
        "%31",
        "abc",
        "99999999999999999999",
        "12345",
    ] {
        let path = format!("/api/admin/webhooks/{id}/deliveries/{delivery}/retry");
        let answer = admin(&app, Method::POST, &path, None).await;
        assert_eq!(
            answer.error(StatusCode::NOT_FOUND)["message"],
            "Delivery not found",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_credential_needs_webhooks_manage() {
    let app = TestApp::new().await;
    let made = admin(
        &app,
        Method::POST,
        "/api/admin/credentials",
        Some(json!({"name": "billing", "scopes": ["keys.read"]})),
    )
    .await;
    let secret = made.ok()["secret"].as_str().unwrap().to_owned();
    let refused = app
        .call(Method::GET, "/api/admin/webhooks", Some(&secret), None)
        .await;
    let error = refused.error(StatusCode::FORBIDDEN);
    assert!(error.to_string().contains("webhooks.manage"), "{error}");
}
