//! Request metrics and logs, recorded for every route, and the per-request deadline.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The longest a request may take, body upload included. Verifications take
/// microseconds; this only stops slow or stuck clients from holding a connection
/// (and a graceful shutdown) forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "Request timed out")
            .detail("the request did not complete within 30 s")
            .into_response(),
    }
}

pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The route template, not the path: ids would explode the label set.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    metrics::counter!(
        "keyward_http_requests_total",
        "method" => method.as_str().to_owned(),
        "route" => route.clone(),
        "status" => status.as_u16().to_string(),
    )
    .increment(1);
    metrics::histogram!("keyward_http_request_duration_seconds", "route" => route.clone())
        .record(elapsed);
    if status.is_server_error() {
        tracing::warn!(%method, %route, status = status.as_u16(), ?elapsed, "request failed");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), ?elapsed, "request");
    }
    response
}
