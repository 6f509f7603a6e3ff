//! The verify API, for the platform's services.

use axum::Json;
use axum::extract::State;
use secrecy::ExposeSecret;

use super::AppState;
use super::auth::ServiceCaller;
use super::dto::{VerifyRequest, VerifyResponse};
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;

pub const TAG: &str = "verify";

/// Verify a key and the permissions it must hold.
///
/// Answers 200 for every key, valid or not: `valid` and `code` carry the verdict.
/// A successful verification updates the key's `last_used_at` (written within about
/// a second, never one database write per request).
#[utoipa::path(
    post,
    path = "/api/api-keys/verify",
    tag = TAG,
    operation_id = "verify_api_key",
    request_body = VerifyRequest,
    security(("service_token" = [])),
    responses(
        (status = 200, description = "The verdict", body = VerifyResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid service token", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Unknown permission names or wrong field types", body = ErrorBody),
        (status = 503, description = "The key is not cached and the database is unavailable", body = ErrorBody),
    )
)]
pub async fn verify_key(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let verification = state
        .engine
        .verify(body.key.expose_secret(), &body.permissions)
        .await?;
    Ok(Json(VerifyResponse::from(&verification)))
}
