//! The verify API, for the platform's services.

use axum::http::HeaderValue;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use keyward_core::model::MAX_REMAINING;
use keyward_engine::VerifyOptions;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::{Service, scope};
use crate::http::documented::{self, Callers};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use crate::wire::verify::{VerifyRequest, VerifyResponse};

/// The platform's services call every route here: the document gives each the
/// service token's scheme and 401.
pub const CALLERS: Callers = Callers::Services;
pub const TAG: &str = "verify";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify_key))
}

/// Verify a key and the permissions it must hold.
///
/// Answers 200 for every key, valid or not: `valid` and `code` carry the verdict.
/// `RATE_LIMITED` comes with `retry_after` (and a `Retry-After` header): the key's
/// own rate limit is spent, or the end client (`client_ip`) failed too often.
/// A key with usage credits gives up `cost` of them (default 1) on each `VALID`
/// answer, which reports `remaining`; with too few left the answer is
/// `USAGE_EXCEEDED`. That decrement is the verify path's only database write.
/// A successful verification updates the key's `last_used_at` when the recorded
/// time is older than the resolution (`KEYWARD_USAGE_RESOLUTION`, default 60 s),
/// written in batches within about a second: never one database write per request.
#[utoipa::path(
    post,
    path = "/api/api-keys/verify",
    operation_id = "verify_api_key",
    request_body = VerifyRequest,
    security(("service_token" = ["keys.verify"])),
    responses(
        (status = 200, description = "The verdict", body = VerifyResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "Unknown permission names or wrong field types", body = ErrorBody),
        (status = 503, description = "The key is not cached and the database is unavailable", body = ErrorBody),
    )
)]
pub async fn verify_key(
    caller: Service<scope::KeysVerify>,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let engine = &caller.engine;
    let required = engine.permission_set(&body.permissions)?;
    let cost = body.cost.unwrap_or(1);
    if cost > MAX_REMAINING {
        return Err(ApiError::invalid(format!(
            "cost: must be at most {MAX_REMAINING}"
        )));
    }
    let options = VerifyOptions {
        client: body.client_ip,
        vouched_client: body.client_ip,
        cost,
    };
    let verification = engine
        .verify_with(body.key.expose_secret(), required, options)
        .await?;
    // Serialised here, borrowing from the verification, rather than through an
    // owned `Json` value: no copies of the key's fields on every request.
    let mut json = Vec::with_capacity(256);
    serde_json::to_writer(&mut json, &VerifyResponse::from(&verification)).map_err(|err| {
        tracing::error!(error = %err, "serialising a verdict failed");
        ApiError::internal()
    })?;
    let mut response = (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response();
    if let Some(seconds) = verification.retry_after_seconds() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}
