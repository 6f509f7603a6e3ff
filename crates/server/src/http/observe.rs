//! Request metrics and logs, recorded for every route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

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
