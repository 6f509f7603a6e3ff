//! What both modes' tests share: a handler showing the identity, and a call helper.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keyward_guard::KeyIdentity;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A handler answering with the identity the guard handed it.
pub async fn whoami(key: KeyIdentity) -> axum::Json<Value> {
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
