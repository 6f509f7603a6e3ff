//! The one error type of the HTTP layer.
//!
//! Clients get a stable JSON body `{message, detail, hint}` (AutoGPT's shape) and a
//! status that says whose fault it is; internal causes go to the log, never to the
//! client. Every error the router can produce, including unknown routes, wrong
//! methods, bad JSON and panics, goes through here.

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::lifecycle::LifecycleError;
use keyward_engine::EngineError;
use keyward_store::Unwritable;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Serialize, ToSchema, Debug)]
pub struct ErrorBody {
    /// A short, stable description of the problem.
    #[schema(example = "Invalid request")]
    pub message: String,
    /// The specifics of this occurrence.
    #[schema(example = "name: must not be empty")]
    pub detail: Option<String>,
    /// What to do about it, when there is something to do.
    pub hint: Option<String>,
}

/// Request bodies larger than this are refused (413), on every route but those
/// taking batches from outside ([`body_limit`]).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The body limit of the routes that take batches from outside: GitHub's secret
/// scanning sends a thousand matches or so at most, about 200 KiB.
pub const BATCH_BODY_LIMIT: usize = 1024 * 1024;

/// The routes (templates) whose bodies may be up to [`BATCH_BODY_LIMIT`].
const BATCH_ROUTES: &[&str] = &["/api/secret-scanning/github"];

/// The largest body `route` (its template; `None`: no route matched) reads. The
/// one rule for both the early refusal of a declared length and the route's reading.
pub fn body_limit(route: Option<&str>) -> usize {
    match route {
        Some(route) if BATCH_ROUTES.contains(&route) => BATCH_BODY_LIMIT,
        _ => BODY_LIMIT,
    }
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
    detail: Option<String>,
    hint: Option<Cow<'static, str>>,
    /// Seconds, sent as `Retry-After`.
    retry_after: Option<u64>,
    /// The cause was logged once where it is known (a state, not this request).
    logged: bool,
}

/// Marks a 5xx answer whose cause was logged once, where it is known (the database
/// refusing writes): the request log then keeps it at debug level, not one warning
/// per request.
#[derive(Clone, Copy, Debug)]
pub struct CauseLogged;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: None,
            hint: None,
            retry_after: None,
            logged: false,
        }
    }

    /// 429, with the wait in the body and in `Retry-After`.
    pub fn too_many_requests(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
            .detail(detail)
            .hint(format!("Retry in {retry_after} s."));
        error.retry_after = Some(retry_after);
        error
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<Cow<'static, str>>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Not authenticated").detail(detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request").detail(detail)
    }

    /// A usage history query that names no range (400, unlike other queries' 422:
    /// the contract of the usage routes since they came).
    pub fn invalid_usage_query(detail: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Invalid usage query").detail(detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "API key not found")
            .detail("no API key with this id exists among your keys")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            .hint("The error was logged; retrying may not help.")
    }

    /// 413: the body is over the route's `limit` (declared or read).
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large").detail(format!(
            "request bodies are limited to {} KiB",
            limit / 1024
        ))
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
            .detail("the database cannot be reached or is too busy")
            .hint("Retry in a few seconds.")
    }

    /// 503: the database answers but cannot store changes (`why`); nothing was stored.
    pub fn not_writable(why: Unwritable) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
            .detail(format!(
                "the database cannot store changes now: {why}; nothing was changed"
            ))
            .hint(
                "Retry later: the operator has been told (keyward's log, /readyz, \
                 keyward_database_writable). Verifications still work.",
            );
        error.logged = true;
        error
    }

    /// Body problems reported by axum's JSON extractor.
    pub fn from_json_rejection(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => {
                Self::invalid(detail).hint("Check the field names and types against /openapi.json.")
            }
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(StatusCode::BAD_REQUEST, "Malformed JSON").detail(detail)
            }
            JsonRejection::MissingJsonContentType(_) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
                    .detail("the body must be JSON")
                    .hint("Send the header Content-Type: application/json.")
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::payload_too_large(BODY_LIMIT)
            }
            other => Self::new(StatusCode::BAD_REQUEST, "Unreadable request body")
                .detail(other.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            message: self.message.into_owned(),
            detail: self.detail,
            hint: self.hint.map(Cow::into_owned),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.logged {
            response.extensions_mut().insert(CauseLogged);
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Invalid(errors) => Self::invalid(errors.to_string()),
            EngineError::NotFound => Self::not_found(),
            EngineError::NoSuchCredential => {
                Self::new(StatusCode::NOT_FOUND, "Credential not found")
                    .detail("no service credential with this id exists")
            }
            EngineError::NoSuchWebhook => Self::new(StatusCode::NOT_FOUND, "Webhook not found")
                .detail("no webhook endpoint with this id exists"),
            EngineError::NoSuchDelivery => Self::new(StatusCode::NOT_FOUND, "Delivery not found")
                .detail("this endpoint has no delivery with this id (finished ones are kept for KEYWARD_WEBHOOK_HISTORY_DAYS)"),
            EngineError::ScopeNotHeld { scope } => Self::new(StatusCode::FORBIDDEN, "Missing scope")
                .detail(format!(
                    "this credential does not hold the scope {scope}, so it cannot give it nor manage a credential holding it"
                ))
                .hint("A credential can give, rotate and revoke only what it holds itself; use one that holds it."),
            EngineError::CredentialRevoked => Self::new(
                StatusCode::BAD_REQUEST,
                "Operation not allowed for the credential's status",
            )
            .detail("the credential is revoked")
            .hint("Create a new credential instead."),
            EngineError::Refused(reason) => {
                let hint = match reason {
                    LifecycleError::Revoked => "Create a new key instead.",
                    LifecycleError::NotSuspended => "Only SUSPENDED keys can be reactivated.",
                    LifecycleError::Expired => "Create a new key instead.",
                    LifecycleError::AlreadyRotated => {
                        "Rotate the key that replaced it (rotated_to)."
                    }
                    LifecycleError::RotatedExpiry => {
                        "Change the key that replaced it (rotated_to), or revoke this one."
                    }
                };
                Self::new(
                    StatusCode::BAD_REQUEST,
                    "Operation not allowed for the key's status",
                )
                .detail(reason.to_string())
                .hint(hint)
            }
            EngineError::PlatformOnly { field } => {
                Self::new(StatusCode::FORBIDDEN, "Set by the platform")
                    .detail(format!(
                        "{field}: usage credits and rate limits are set by the platform, not by the key's owner"
                    ))
                    .hint(
                        "The platform's services set them with the service token: \
                         PATCH /api/admin/api-keys/{id}, or POST /api/admin/users/{user_id}/api-keys \
                         to create a key with them.",
                    )
            }
            EngineError::LimitReached { limit } => {
                Self::new(StatusCode::CONFLICT, "Key limit reached")
                    .detail(format!(
                        "a user may hold at most {limit} keys that are not revoked"
                    ))
                    .hint("Revoke keys you no longer use.")
            }
            EngineError::UnknownPermissions(unknown) => {
                Self::invalid(format!("permissions: {unknown}"))
            }
            EngineError::Unavailable(cause) => match cause.unwritable() {
                // The store logs when writes start and stop failing, not per request.
                Some(why) => {
                    tracing::debug!(error = %cause, "storage not writable");
                    Self::not_writable(why)
                }
                None => {
                    tracing::warn!(error = %cause, "storage unavailable");
                    Self::unavailable()
                }
            },
            EngineError::RateLimited { retry_after } => Self::too_many_requests(
                "too many changes to your keys in a short time",
                retry_after.whole_seconds(),
            ),
            EngineError::TooManyFailures { retry_after } => Self::too_many_requests(
                "too many requests from this address with a token that is not valid",
                retry_after.whole_seconds(),
            ),
            EngineError::ShuttingDown => Self::unavailable().detail("the service is shutting down"),
            EngineError::Internal(cause) => {
                tracing::error!(error = ?cause, "storage error");
                Self::internal()
            }
        }
    }
}
