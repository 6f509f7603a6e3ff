//! The audit trail: every change recorded with who made it, readable by the key's
//! owner and, across keys, by the platform's services.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApp;
use crate::common::ADMIN_TOKEN;

async fn key_events(app: &TestApp, user: &str, id: &str, query: &str) -> Value {
    let uri = format!("/api/api-keys/{id}/events{query}");
    app.as_user(user, Method::GET, &uri, None)
        .await
        .ok()
        .clone()
}

async fn admin_events(app: &TestApp, query: &str) -> Value {
    let uri = format!("/api/admin/events{query}");
    app.call(Method::GET, &uri, Some(ADMIN_TOKEN), None)
        .await
        .ok()
        .clone()
}

fn actions(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_change_to_a_key_is_in_its_trail_with_before_and_after() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key(
            "alice",
            json!({"name": "ci", "permissions": ["READ_GRAPH"], "description": "deploys"}),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    let path = |tail: &str| format!("/api/api-keys/{id}{tail}");
    let calls = [
        (Method::POST, path("/suspend"), None),
        (Method::POST, path("/reactivate"), None),
        (
            Method::PUT,
            path("/permissions"),
            Some(json!({"permissions": ["READ_GRAPH", "EXECUTE_GRAPH"]})),
        ),
        // The platform's change: recorded as the service's.
        (
            Method::PATCH,
            format!("/api/admin/api-keys/{id}"),
            Some(json!({"rate_limit": {"requests": 10, "per_seconds": 60}, "remaining": 500})),
        ),
        (Method::DELETE, path(""), None),
        // Already revoked: succeeds, changes nothing, records nothing.
        (Method::DELETE, path(""), None),
    ];
    for (method, uri, body) in calls {
        if uri.starts_with("/api/admin/") {
            app.as_platform(method, &uri, body).await.ok();
        } else {
            app.as_user("alice", method, &uri, body).await.ok();
        }
    }
    // A verification is not a change.
    app.verify(&plain, &[]).await;

    let page = key_events(&app, "alice", id, "").await;
    let text = page.to_string();
    assert!(
        !text.contains(&plain) && !text.contains(&plain[5..]),
        "no secret"
    );
    insta::assert_json_snapshot!(page, {
        ".events[].id" => "[event id]",
        ".events[].at" => "[time]",
        ".events[].key_id" => "[key id]",
        ".events[].changes.revoked_at.after" => "[time]",
    });
}

#[tokio::test]
async fn only_the_owner_reads_a_keys_trail() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    for (user, uri) in [
        ("bob", format!("/api/api-keys/{id}/events")),
        (
            "alice",
            "/api/api-keys/01900000-0000-7000-8000-000000000000/events".to_owned(),
        ),
        ("alice", "/api/api-keys/not-a-key/events".to_owned()),
    ] {
        app.as_user(user, Method::GET, &uri, None)
            .await
            .error(StatusCode::NOT_FOUND);
    }
    app.call(
        Method::GET,
        &format!("/api/api-keys/{id}/events"),
        None,
        None,
    )
    .await
    .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_trail_filters_by_user_and_time_and_pages_in_order() {
    let app = TestApp::new().await;
    for user in ["alice", "bob", "alice", "carol", "alice"] {
        app.key_with(user, &[]).await;
    }
    let all = admin_events(&app, "").await;
    assert_eq!(all["events"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_after"], Value::Null);

    let alice = admin_events(&app, "?user_id=alice").await;
    assert_eq!(actions(&alice), ["create", "create", "create"]);
    assert!(
        alice["events"].as_array().unwrap().iter().all(
            |e| e["user_id"] == "alice" && e["actor"] == json!({"type": "user", "id": "alice"})
        )
    );

    // Two pages of two, then the rest: the same events, in the same order.
    let first = admin_events(&app, "?limit=2").await;
    let after = first["next_after"].as_i64().unwrap();
    let second = admin_events(&app, &format!("?limit=2&after={after}")).await;
    let after = second["next_after"].as_i64().unwrap();
    let third = admin_events(&app, &format!("?limit=2&after={after}")).await;
    assert_eq!(third["next_after"], Value::Null);
    let ids = |page: &Value| -> Vec<i64> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let paged: Vec<i64> = [ids(&first), ids(&second), ids(&third)].concat();
    assert_eq!(paged, ids(&all));

    // `since` takes an RFC 3339 time; in the future, nothing yet.
    let future = admin_events(&app, "?since=2999-01-01T00:00:00Z").await;
    assert!(future["events"].as_array().unwrap().is_empty());
    let past = admin_events(&app, "?since=2000-01-01T00:00:00Z").await;
    assert_eq!(ids(&past), ids(&all));

    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?after=-1",
        "?since=yesterday",
        "?user_id=%00",
    ] {
        let uri = format!("/api/admin/events{bad}");
        app.call(Method::GET, &uri, Some(ADMIN_TOKEN), None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Users cannot read the whole trail.
    app.as_user("alice", Method::GET, "/api/admin/events", None)
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleting_a_user_is_recorded_as_the_services_and_the_trail_stays() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    app.call(
        Method::DELETE,
        "/api/admin/users/alice",
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .ok();
    let trail = admin_events(&app, "?user_id=alice").await;
    assert_eq!(actions(&trail), ["create", "delete_user"]);
    let deletion = &trail["events"][1];
    assert_eq!(deletion["actor"], json!({"type": "admin", "id": "service"}));
    assert_eq!(deletion["key_id"], Value::Null);
    assert_eq!(
        deletion["changes"],
        json!({"keys": {"before": [id], "after": []}})
    );
}

#[tokio::test]
async fn a_refused_change_leaves_no_trace() {
    let app = TestApp::builder().max_keys_per_user(1).build().await;
    let (id, _) = app.key_with("alice", &[]).await;
    app.as_user(
        "alice",
        Method::POST,
        "/api/api-keys",
        Some(json!({"name": "second", "permissions": []})),
    )
    .await
    .error(StatusCode::CONFLICT);
    app.as_user(
        "alice",
        Method::POST,
        &format!("/api/api-keys/{id}/reactivate"),
        None,
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    let trail = admin_events(&app, "").await;
    assert_eq!(actions(&trail), ["create"]);
}
