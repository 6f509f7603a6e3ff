//! The management API: a user's own keys, under `/api/api-keys`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use keyward_core::input::{FieldError, NewKeyRequest};
use keyward_core::time::Timestamp;

use super::AppState;
use super::auth::AuthUser;
use super::dto::{ApiKeyResponse, CreateKeyRequest, CreateKeyResponse, SetPermissionsRequest};
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, KeyIdPath};

pub const TAG: &str = "api-keys";

/// Create a key. The plaintext is in this response only.
#[utoipa::path(
    post,
    path = "/api/api-keys",
    tag = TAG,
    operation_id = "create_api_key",
    request_body = CreateKeyRequest,
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The key, with its plaintext (sent with Cache-Control: no-store)", body = CreateKeyResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 409, description = "The user holds the maximum number of keys", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let (expires_at, expiry_error) = match body.expires_at.as_deref().map(Timestamp::parse_rfc3339)
    {
        None => (None, None),
        Some(Ok(at)) => (Some(at), None),
        Some(Err(e)) => (None, Some(e.to_string())),
    };
    let request = NewKeyRequest {
        name: body.name,
        description: body.description,
        permissions: body.permissions,
        expires_at,
    };
    if let Some(message) = expiry_error {
        // Report the other fields' problems in the same answer.
        let config = state.engine.config();
        let mut errors = request
            .validate(&config.catalogue, (config.clock)())
            .err()
            .unwrap_or_default();
        errors.0.push(FieldError {
            field: "expires_at",
            message,
        });
        return Err(ApiError::invalid(errors.to_string()));
    }
    let created = state.engine.create_key(&user, &request).await?;
    let body = CreateKeyResponse {
        api_key: created.key.into(),
        plain_text_key: created.plain_text.expose().to_owned(),
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The caller's keys, newest first, every status.
#[utoipa::path(
    get,
    path = "/api/api-keys",
    tag = TAG,
    operation_id = "list_api_keys",
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The caller's keys", body = Vec<ApiKeyResponse>),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_keys(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Vec<ApiKeyResponse>>, ApiError> {
    let keys = state.engine.list_keys(Some(&user)).await?;
    Ok(Json(keys.into_iter().map(Into::into).collect()))
}

/// One of the caller's keys.
#[utoipa::path(
    get,
    path = "/api/api-keys/{id}",
    tag = TAG,
    operation_id = "get_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The key", body = ApiKeyResponse),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 404, description = "No such key among the caller's keys", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(state.engine.get_key(Some(&user), id).await?.into()))
}

/// Revoke a key, for good. Revoking again succeeds and keeps the first `revoked_at`.
#[utoipa::path(
    delete,
    path = "/api/api-keys/{id}",
    tag = TAG,
    operation_id = "revoke_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyResponse),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 404, description = "No such key among the caller's keys", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(state.engine.revoke(Some(&user), id).await?.into()))
}

/// Suspend a key: it fails verification until reactivated. Suspending again succeeds.
#[utoipa::path(
    post,
    path = "/api/api-keys/{id}/suspend",
    tag = TAG,
    operation_id = "suspend_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The suspended key", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 404, description = "No such key among the caller's keys", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn suspend_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(state.engine.suspend(Some(&user), id).await?.into()))
}

/// Reactivate a suspended key.
#[utoipa::path(
    post,
    path = "/api/api-keys/{id}/reactivate",
    tag = TAG,
    operation_id = "reactivate_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The active key", body = ApiKeyResponse),
        (status = 400, description = "The key is not suspended", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 404, description = "No such key among the caller's keys", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn reactivate_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(state.engine.reactivate(Some(&user), id).await?.into()))
}

/// Replace a key's permissions.
#[utoipa::path(
    put,
    path = "/api/api-keys/{id}/permissions",
    tag = TAG,
    operation_id = "set_api_key_permissions",
    params(("id" = Uuid, Path, description = "The key's id")),
    request_body = SetPermissionsRequest,
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The key with its new permissions", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked, or malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 404, description = "No such key among the caller's keys", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Unknown permissions", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_permissions(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<SetPermissionsRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let key = state
        .engine
        .set_permissions(Some(&user), id, &body.permissions)
        .await?;
    Ok(Json(key.into()))
}
