//! What the guard's tests share: a handler showing the identity, a route behind a
//! layer, a call helper, and (in [`server`]) a real keyward server.

// Each test binary uses its own part of these.
#![allow(dead_code)]

pub mod server;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use keyward_guard::{Guard, VerifiedKey};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A handler answering with the identity the guard handed it.
pub async fn whoami(key: VerifiedKey) -> axum::Json<Value> {
    axum::Json(
        json!({"user_id": key.user_id, "key_id": key.key_id, "permissions": key.permissions}),
    )
}

/// GET /whoami with `headers`: the status, `Retry-After` and the JSON body.
pub async fn call(app: &Router, headers: &[(&str, &str)]) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::get("/whoami");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A `/whoami` route behind a layer requiring `permissions`.
pub fn app(guard: &Guard, permissions: &[&str]) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(guard.require(permissions).unwrap())
}

/// A refusal as the guard answers it: `{"detail": …}`.
pub fn detail(status: StatusCode, detail: &str) -> (StatusCode, Value) {
    (status, json!({ "detail": detail }))
}
