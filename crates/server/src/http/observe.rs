//! What every answer goes through: the request deadline, the headers every answer
//! carries, request metrics and logs, a 500 for a handler that panicked, and the
//! refusals that need no handler: a method no HTTP client sends, a declared body over
//! the limit, a query parameter the route does not take.
//!
//! Every metric label comes from a fixed set (methods outside the standard ones are
//! `other`, routes are the router's templates or `unmatched`, statuses are the ones
//! keyward answers with): a client must not be able to mint label values, each of
//! which the registry keeps for the life of the process.
//!
//! One hand-written tower layer rather than a stack of `from_fn` middlewares and
//! header layers: it sits on every request's path, and each `from_fn` boxed its
//! future and cloned the boxed inner service per request, while the metrics macros
//! hashed names and labels into the registry on every call. Here the metric handles
//! are resolved once per route and status.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, REFERRER_POLICY,
    TRANSFER_ENCODING, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

use super::error::{ApiError, CauseLogged};
use super::query_params::QueryParams;

/// The longest a request may take, body upload included. Verifications take
/// microseconds; this only stops slow or stuck clients from holding a connection
/// (and a graceful shutdown) forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The Content-Security-Policy of every answer that does not set its own.
const NOTHING_ALLOWED: &str = "default-src 'none'; frame-ancestors 'none'";

/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// The longest method accepted: the standard ones have at most 7 letters; anything
/// much longer is an attack or a broken client (400).
pub const MAX_METHOD_LEN: usize = 16;

/// Routes with metric handles of their own. The router has about 25 templates; past
/// this bound (never, unless routes are added by the thousand) requests are counted
/// under `unmatched` rather than growing the map.
const MAX_ROUTES: usize = 256;

/// The `method` label: one of the standard methods, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Answers that need no route, decided from the request line and headers alone,
/// before any body is read (so before hyper sends `100 Continue`).
/// Whether the request has a body to read (declared, or chunked).
fn carries_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

fn refuse_early(request: &Request, route: Option<&MatchedPath>) -> Option<ApiError> {
    if request.method().as_str().len() > MAX_METHOD_LEN {
        return Some(
            ApiError::new(StatusCode::BAD_REQUEST, "Invalid method")
                .detail(format!("the method is longer than {MAX_METHOD_LEN} bytes")),
        );
    }
    let declared = request.headers().get(CONTENT_LENGTH)?;
    let limit = super::error::body_limit(route.map(MatchedPath::as_str));
    let too_large = declared
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        // A length that does not parse is hyper's to refuse; a huge one is ours.
        .is_some_and(|length| length > limit as u64);
    too_large.then(|| ApiError::payload_too_large(limit))
}

/// Applies [`Observe`] to every route (with `Router::layer`, so the matched route is
/// known for the metrics' labels and its query parameters).
#[derive(Clone, Default)]
pub struct ObserveLayer {
    metrics: Arc<RouteMetrics>,
    /// The query parameters each route takes; `None`: not checked.
    query_params: Option<Arc<QueryParams>>,
}

impl ObserveLayer {
    /// Refuses query parameters a route does not take (see [`QueryParams`]).
    pub fn new(query_params: QueryParams) -> Self {
        Self {
            metrics: Arc::default(),
            query_params: Some(Arc::new(query_params)),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: Arc::clone(&self.metrics),
            query_params: self.query_params.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<RouteMetrics>,
    query_params: Option<Arc<QueryParams>>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let refused = refuse_early(&request, route.as_ref()).or_else(|| {
            let (rules, route, query) = (
                self.query_params.as_deref()?,
                route.as_ref()?,
                request.uri().query()?,
            );
            rules.check(route.as_str(), query).err()
        });
        let carries_body = carries_body(&request);
        let answer = match refused {
            Some(error) => Err(error),
            None => panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request)))
                .map_err(|_| handler_panicked()),
        };
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let answer = match answer {
                Ok(answer) => tokio::time::timeout(REQUEST_TIMEOUT, unless_panics(answer))
                    .await
                    .unwrap_or_else(|_| {
                        Err(
                            ApiError::new(StatusCode::REQUEST_TIMEOUT, "Request timed out")
                                .detail("the request did not complete within 30 s"),
                        )
                    }),
                Err(error) => Err(error),
            };
            let mut response = match answer {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(error) => error.into_response(),
            };
            let status = response.status();
            let headers = response.headers_mut();
            // API answers are private to their caller; proxies and browsers must not keep them.
            headers
                .entry(CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
            // The security headers, here for every answer: a page (the console, the
            // docs) sets the Content-Security-Policy it needs; anything else gets one
            // that allows nothing, should a browser ever render it.
            headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            headers
                .entry(CONTENT_SECURITY_POLICY)
                .or_insert(HeaderValue::from_static(NOTHING_ALLOWED));
            // A refusal (a bad token, say) may be answered before the request's body has
            // arrived; hyper then closes the connection once the body comes, and a client
            // that reused it for its next request would find it gone ("disconnected
            // without a response"). Saying so up front lets the client open a new one.
            if carries_body && (status.is_client_error() || status.is_server_error()) {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            let elapsed = started.elapsed();
            // The route template, not the path: ids would explode the label set.
            let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            metrics.record(method, route, status, elapsed);
            if status.is_server_error() && response.extensions().get::<CauseLogged>().is_none() {
                tracing::warn!(%method, %route, status = status.as_u16(), ?elapsed, "request failed");
            } else {
                tracing::debug!(%method, %route, status = status.as_u16(), ?elapsed, "request");
            }
            Ok(response)
        })
    }
}

/// A handler that panicked answers 500 in the API's error shape; the connection and
/// the process go on. Caught here rather than by a layer of its own: each layer on
/// the router boxes every route once more, per request.
fn handler_panicked() -> ApiError {
    tracing::error!("a request handler panicked");
    ApiError::internal()
}

/// Polls `future` to its end, or to a panic ([`handler_panicked`]).
async fn unless_panics<F: Future>(future: F) -> Result<F::Output, ApiError> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        match panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(handler_panicked())),
        }
    })
    .await
}

/// `keyward_http_requests_total{method, route, status}` and
/// `keyward_http_request_duration_seconds{route}`, by route.
#[derive(Default)]
struct RouteMetrics {
    routes: RwLock<HashMap<String, RouteHandles>>,
}

struct RouteHandles {
    duration: Histogram,
    requests: RwLock<HashMap<(&'static str, u16), Counter>>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl RouteMetrics {
    fn record(&self, method: &'static str, route: &str, status: StatusCode, elapsed: Duration) {
        // The common case takes two read locks; a new route, method or status is
        // registered once.
        if let Some(handles) = read(&self.routes).get(route) {
            handles.duration.record(elapsed);
            handles.count(method, route, status);
            return;
        }
        let mut routes = write(&self.routes);
        let route = if routes.len() >= MAX_ROUTES && !routes.contains_key(route) {
            UNMATCHED
        } else {
            route
        };
        routes
            .entry(route.to_owned())
            .or_insert_with(|| RouteHandles {
                duration: metrics::histogram!(
                    "keyward_http_request_duration_seconds",
                    "route" => route.to_owned()
                ),
                requests: RwLock::default(),
            });
        drop(routes);
        self.record(method, route, status, elapsed);
    }
}

impl RouteHandles {
    fn count(&self, method: &'static str, route: &str, status: StatusCode) {
        let key = (method, status.as_u16());
        if let Some(counter) = read(&self.requests).get(&key) {
            counter.increment(1);
            return;
        }
        write(&self.requests)
            .entry(key)
            .or_insert_with(|| {
                metrics::counter!(
                    "keyward_http_requests_total",
                    "method" => method,
                    "route" => route.to_owned(),
                    "status" => status.as_u16().to_string(),
                )
            })
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;

    async fn answer<S>(service: S) -> (StatusCode, serde_json::Value)
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let observed = ObserveLayer::default().layer(service);
        let request = Request::builder().uri("/").body(Body::empty()).unwrap();
        let response = observed.oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_handler_that_panics_while_answering_gets_a_json_500() {
        let service = service_fn(|_: Request| async {
            if true {
                panic!("a handler's bug");
            }
            Ok::<Response, Infallible>(Response::default())
        });
        let (status, body) = answer(service).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["message"], "Internal error");
    }

    #[tokio::test]
    async fn a_service_that_panics_when_called_gets_a_json_500() {
        let service = service_fn(
            |_: Request| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("a service's bug")
            },
        );
        let (status, body) = answer(service).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["message"], "Internal error");
    }
}
