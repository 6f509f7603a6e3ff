//! `PATCH /api/api-keys/{id}`: name, description, expiry and metadata; metadata
//! returned by verification.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApp;
use crate::common::ADMIN_TOKEN;

async fn patch(app: &TestApp, user: &str, id: &str, body: Value) -> crate::common::TestResponse {
    app.as_user(
        user,
        Method::PATCH,
        &format!("/api/api-keys/{id}"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn only_the_fields_given_change_and_null_clears() {
    let app = TestApp::new().await;
    let (key, _) = app
        .create_key(
            "alice",
            json!({"name": "ci", "permissions": ["READ_GRAPH"], "description": "deploys",
                   "expires_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    let id = key["id"].as_str().unwrap();

    let renamed = patch(&app, "alice", id, json!({"name": "  deploy bot "})).await;
    let renamed = renamed.ok();
    assert_eq!(renamed["name"], "deploy bot");
    assert_eq!(renamed["description"], "deploys");
    assert_eq!(renamed["expires_at"], "2999-01-01T00:00:00.000Z");
    assert_eq!(renamed["permissions"], json!(["READ_GRAPH"]));

    let moved = patch(
        &app,
        "alice",
        id,
        json!({"expires_at": "2998-06-01T12:00:00Z"}),
    )
    .await;
    assert_eq!(moved.ok()["expires_at"], "2998-06-01T12:00:00.000Z");

    let cleared = patch(
        &app,
        "alice",
        id,
        json!({"description": null, "expires_at": null}),
    )
    .await;
    let cleared = cleared.ok();
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["expires_at"], Value::Null);
    assert_eq!(cleared["name"], "deploy bot");

    // Nothing given: nothing changes.
    let same = patch(&app, "alice", id, json!({})).await;
    assert_eq!(same.ok(), cleared);
    let shown = app
        .as_user("alice", Method::GET, &format!("/api/api-keys/{id}"), None)
        .await;
    assert_eq!(shown.ok(), cleared);
}

#[tokio::test]
async fn a_moved_expiry_is_seen_by_the_next_verification() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    patch(&app, "alice", &id, json!({ "expires_at": soon }))
        .await
        .ok();
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    app.advance(Duration::from_secs(11 * 60));
    assert_eq!(app.verify_code(&plain, &[]).await, "EXPIRED");
    // Cleared: it never expires again.
    patch(&app, "alice", &id, json!({"expires_at": null}))
        .await
        .ok();
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
}

#[tokio::test]
async fn metadata_is_kept_with_the_key_and_returned_by_verification() {
    let app = TestApp::new().await;
    let metadata = json!({"team": "ci", "tier": 2, "tags": ["a", "b"], "nested": {"ok": true}});
    let (key, plain) = app
        .create_key(
            "alice",
            json!({"name": "ci", "permissions": [], "metadata": metadata}),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(key["metadata"], metadata);
    let verdict = app.verify(&plain, &[]).await;
    assert_eq!(verdict["metadata"], metadata);

    let replaced = json!({"team": "ops"});
    patch(&app, "alice", id, json!({ "metadata": replaced }))
        .await
        .ok();
    assert_eq!(app.verify(&plain, &[]).await["metadata"], replaced);

    patch(&app, "alice", id, json!({"metadata": null}))
        .await
        .ok();
    let verdict = app.verify(&plain, &[]).await;
    assert!(verdict.get("metadata").is_none(), "{verdict}");
    // A failed verification of a found key carries its metadata too.
    patch(&app, "alice", id, json!({ "metadata": replaced }))
        .await
        .ok();
    let denied = app.verify(&plain, &["WRITE_GRAPH"]).await;
    assert_eq!(denied["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(denied["metadata"], replaced);
}

#[tokio::test]
async fn bad_edits_are_refused_with_every_reason() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let big = json!({"blob": "x".repeat(5_000)});
    for body in [
        json!({"name": null}),
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"description": "d".repeat(1_001)}),
        json!({"expires_at": "2001-01-01T00:00:00Z"}),
        json!({"expires_at": "soon"}),
        json!({"metadata": [1, 2]}),
        json!({"metadata": "text"}),
        json!({"metadata": 5}),
        json!({ "metadata": big }),
        json!({"permissions": []}),
        json!({"status": "ACTIVE"}),
    ] {
        patch(&app, "alice", &id, body.clone())
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let several = patch(
        &app,
        "alice",
        &id,
        json!({"name": "", "expires_at": "2001-01-01T00:00:00Z", "metadata": big}),
    )
    .await;
    let detail = several.error(StatusCode::UNPROCESSABLE_ENTITY)["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    for field in ["name:", "expires_at:", "metadata:"] {
        assert!(detail.contains(field), "{detail}");
    }
    // Creating with metadata that is too large or not an object is refused too.
    app.as_user(
        "alice",
        Method::POST,
        "/api/api-keys",
        Some(json!({"name": "k", "permissions": [], "metadata": big})),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY);

    patch(&app, "bob", &id, json!({"name": "mine"}))
        .await
        .error(StatusCode::NOT_FOUND);
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{id}"),
        None,
    )
    .await
    .ok();
    patch(&app, "alice", &id, json!({"name": "late"}))
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_edit_is_in_the_audit_trail() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    patch(
        &app,
        "alice",
        &id,
        json!({"name": "renamed", "metadata": {"team": "ci"}}),
    )
    .await
    .ok();
    let page = app
        .call(Method::GET, "/api/admin/events", Some(ADMIN_TOKEN), None)
        .await;
    let edit = &page.ok()["events"][1];
    assert_eq!(edit["action"], "edit");
    assert_eq!(
        edit["changes"],
        json!({
            "name": {"before": "test key", "after": "renamed"},
            "metadata": {"before": null, "after": {"team": "ci"}},
        })
    );
}
