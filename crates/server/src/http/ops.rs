//! Operations: health, readiness, metrics, the OpenAPI document and its viewer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::dto::StatusResponse;
use super::error::{ApiError, ErrorBody};

pub const TAG: &str = "operations";

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = TAG, operation_id = "healthz",
    responses((status = 200, description = "Up", body = StatusResponse)))]
pub async fn healthz() -> Json<StatusResponse> {
    Json(StatusResponse { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = TAG, operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = StatusResponse),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<StatusResponse>, ApiError> {
    match state.engine.ping().await {
        Ok(()) => Ok(Json(StatusResponse { status: "ready" })),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err(ApiError::unavailable())
        }
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = TAG, operation_id = "metrics",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!("keyward_cache_entries").set(state.engine.cached_keys() as f64);
    let text = state.metrics.render();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = TAG, operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        state.openapi_json.to_string(),
    )
        .into_response()
}

/// A page that renders the OpenAPI document; works offline.
#[utoipa::path(get, path = "/docs", tag = TAG, operation_id = "docs",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not found").detail("no such route; see /docs")
}

/// Known routes, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        .detail("this route does not accept this method; see /docs")
}
