//! Protect axum/tower routes with keyward API keys.
//!
//! ```no_run
//! # async fn example(engine: keyward_engine::Engine<keyward_store::AnyStore>) {
//! use axum::{Router, routing::get};
//! use keyward_guard::{Guard, KeyIdentity};
//!
//! async fn graphs(key: KeyIdentity) -> String {
//!     format!("graphs of {}", key.user_id)
//! }
//!
//! let guard = Guard::in_process(engine);
//! let app: Router = Router::new()
//!     .route("/graphs", get(graphs))
//!     .layer(guard.require(&["READ_GRAPH"]).unwrap());
//! # }
//! ```
//!
//! The layer reads the key from `X-API-Key` (AutoGPT's header) or
//! `Authorization: Bearer …`, verifies it and the permissions the routes need, and
//! answers as AutoGPT's external API did: 401 `{"detail": "Missing API key"}` or
//! `{"detail": "Invalid API key"}`, 403 `{"detail": "Missing required permission(s):
//! A, B"}`, 429 with `Retry-After`, 503 when the key cannot be checked. Otherwise the
//! request goes on, carrying a [`KeyIdentity`] that handlers take as an extractor.
//!
//! In-process mode embeds the engine on keyward's database: the same cache, the same
//! change feed, so a revocation is refused by the very next request here (and within
//! milliseconds on PostgreSQL when made elsewhere).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::permissions::{PermissionSet, UnknownPermissions};
use keyward_core::verify::VerifyCode;
use keyward_engine::{Engine, EngineError};
use keyward_store::AnyStore;

/// Who a verified request is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIdentity {
    pub user_id: String,
    pub key_id: String,
    pub permissions: Vec<String>,
}

/// Verifies keys for routes; cheap to clone.
#[derive(Clone)]
pub struct Guard {
    engine: Engine<AnyStore>,
}

impl Guard {
    /// Verifies in this process, with keyward's engine on its database.
    pub fn in_process(engine: Engine<AnyStore>) -> Self {
        Self { engine }
    }

    /// A layer for routes that need a key holding all of `permissions` (none: any
    /// valid key). Unknown permission names are refused here, at start-up, rather
    /// than on every request.
    pub fn require<N: AsRef<str>>(
        &self,
        permissions: &[N],
    ) -> Result<RequireKeyLayer, UnknownPermissions> {
        let set = self
            .engine
            .permission_set(permissions)
            .map_err(|err| match err {
                EngineError::UnknownPermissions(unknown) => unknown,
                other => unreachable!("parsing names only fails on unknown ones: {other}"),
            })?;
        Ok(RequireKeyLayer {
            guard: self.clone(),
            required: set,
            names: Arc::new(permissions.iter().map(|n| n.as_ref().to_owned()).collect()),
        })
    }

    async fn check(
        &self,
        headers: &HeaderMap,
        layer: &RequireKeyLayer,
    ) -> Result<KeyIdentity, Response> {
        let Some(key) = presented_key(headers) else {
            return Err(refusal(StatusCode::UNAUTHORIZED, "Missing API key".into()));
        };
        let verification = match self.engine.verify_with(key, layer.required).await {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(error = %err, "a key could not be verified");
                return Err(refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The API key cannot be checked right now".into(),
                ));
            }
        };
        match (verification.code, verification.key.as_deref()) {
            (VerifyCode::Valid, Some(found)) => Ok(KeyIdentity {
                user_id: found.user_id.as_str().to_owned(),
                key_id: found.id.to_string(),
                permissions: found.permissions.clone(),
            }),
            (VerifyCode::InsufficientPermissions, Some(found)) => {
                let missing: Vec<&str> = layer
                    .names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !found.permissions.iter().any(|p| p == n))
                    .collect();
                Err(refusal(
                    StatusCode::FORBIDDEN,
                    format!("Missing required permission(s): {}", missing.join(", ")),
                ))
            }
            (VerifyCode::RateLimited, _) => {
                let mut response =
                    refusal(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded".into());
                let seconds = verification.retry_after_seconds().unwrap_or(1);
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
                Err(response)
            }
            (VerifyCode::UsageExceeded, _) => Err(refusal(
                StatusCode::FORBIDDEN,
                "API key usage credits exhausted".into(),
            )),
            _ => Err(refusal(StatusCode::UNAUTHORIZED, "Invalid API key".into())),
        }
    }
}

/// AutoGPT's (FastAPI's) error shape: `{"detail": …}`.
fn refusal(status: StatusCode, detail: String) -> Response {
    let mut response =
        (status, axum::Json(serde_json::json!({ "detail": detail }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// `X-API-Key` first, else `Authorization: Bearer …`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim()).filter(|k| !k.is_empty());
    }
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The layer [`Guard::require`] makes.
#[derive(Clone)]
pub struct RequireKeyLayer {
    guard: Guard,
    required: PermissionSet,
    names: Arc<Vec<String>>,
}

impl<S> tower::Layer<S> for RequireKeyLayer {
    type Service = RequireKey<S>;
    fn layer(&self, inner: S) -> RequireKey<S> {
        RequireKey {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service of [`RequireKeyLayer`].
#[derive(Clone)]
pub struct RequireKey<S> {
    layer: RequireKeyLayer,
    inner: S,
}

impl<S> tower::Service<Request<Body>> for RequireKey<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let layer = self.layer.clone();
        // The clone that was made ready serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match layer.guard.check(request.headers(), &layer).await {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(refused) => Ok(refused),
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for KeyIdentity {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<KeyIdentity>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("KeyIdentity used on a route without keyward's guard layer");
                refusal(StatusCode::INTERNAL_SERVER_ERROR, "Internal error".into())
            })
    }
}
