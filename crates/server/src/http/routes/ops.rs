//! Operations: health, readiness, metrics, the OpenAPI document and its viewer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::OnceLock;

use axum::http::HeaderValue;
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::MetricsReader;
use crate::http::documented::Callers;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::wire::health::StatusResponse;

/// Each route here documents its own callers.
pub const CALLERS: Callers = Callers::PerRoute;
pub const TAG: &str = "operations";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(docs))
}

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = TAG, operation_id = "healthz",
    responses((status = 200, description = "Up", body = StatusResponse)))]
pub async fn healthz() -> Json<StatusResponse> {
    Json(StatusResponse { status: "ok" })
}

/// Readiness: the database answers and stores changes, the JWT signing keys (`KEYWARD_JWT_JWKS_URL`)
/// have been loaded once, and the cache's warm-up at start has ended (10 s at most).
#[utoipa::path(get, path = "/readyz", tag = TAG, operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = StatusResponse),
        (status = 503, description = "The database is unreachable or not writable (a full \
            disk, a read-only file), the JWT signing keys were never loaded, or the cache is \
            still warming up", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<StatusResponse>, ApiError> {
    if let Err(err) = state.engine.ping().await {
        if let Some(why) = err.unwritable() {
            // Said once by the store when writes start failing.
            return Err(ApiError::not_writable(why)
                .detail(format!("the database is not writable: {why}"))
                .hint(
                    "Free space on the database's disk, or make it writable again; \
                     keyward notices by itself.",
                ));
        }
        tracing::warn!(error = %err, "readiness check failed");
        return Err(ApiError::unavailable());
    }
    state.auth.readiness().map_err(|why| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
            .detail(format!(
                "the JWT signing keys from KEYWARD_JWT_JWKS_URL are not loaded yet: {why}"
            ))
            .hint("Check that the URL answers from this host; keyward retries by itself.")
    })?;
    if state.engine.warming_up() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
            .detail("the cache is warming up with the most verified keys (10 s at most)")
            .hint("Wait; keyward is ready when the warm-up ends (KEYWARD_CACHE_WARMUP=0 turns it off)."));
    }
    Ok(Json(StatusResponse { status: "ready" }))
}

/// Prometheus metrics (text exposition format). With `KEYWARD_METRICS_TOKEN` set, only
/// for a caller presenting it.
#[utoipa::path(get, path = "/metrics", tag = TAG, operation_id = "metrics",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Metrics", content_type = "text/plain", body = String),
        (status = 401, description = "KEYWARD_METRICS_TOKEN is set and was not presented", body = ErrorBody),
    ))]
pub async fn metrics(_: MetricsReader, State(state): State<AppState>) -> Response {
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

const DOCS_PAGE: &str = include_str!("docs.html");

/// A page that renders the OpenAPI document; works offline.
///
/// Sent with a strict Content-Security-Policy: nothing but its own inline script and
/// style (allowed by their hashes, so no `unsafe-inline`) and `connect-src 'self'`
/// for `openapi.json`; no framing, no referrer.
#[utoipa::path(get, path = "/docs", tag = TAG, operation_id = "docs",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
pub async fn docs() -> Response {
    static POLICY: OnceLock<HeaderValue> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        HeaderValue::from_str(&docs_policy(DOCS_PAGE)).expect("a policy is plain ASCII")
    });
    ([(CONTENT_SECURITY_POLICY, policy.clone())], Html(DOCS_PAGE)).into_response()
}

/// The docs page's Content-Security-Policy: its one inline `<script>` and `<style>`
/// allowed by their SHA-256, nothing else loaded but `openapi.json`.
pub fn docs_policy(page: &str) -> String {
    let digest = |open: &str, close: &str| {
        let start = page
            .find(open)
            .map(|i| i + open.len())
            .expect("the page has the block");
        let end = start + page[start..].find(close).expect("the block ends");
        STANDARD.encode(Sha256::digest(&page.as_bytes()[start..end]))
    };
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        digest("<script>", "</script>"),
        digest("<style>", "</style>"),
    )
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
