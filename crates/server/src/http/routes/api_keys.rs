//! The management API: a user's own keys, under `/api/api-keys`, with their audit
//! trail and usage history.

use axum::Json;
use axum::extract::State;
use keyward_core::audit;
use keyward_core::lifecycle::{DEFAULT_ROTATION_GRACE_SECONDS, MAX_ROTATION_GRACE_SECONDS};
use keyward_core::model::Scope;
use keyward_engine::EngineError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::AuthUser;
use crate::http::documented::{self, Callers};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::{ApiJson, ApiJsonOrEmpty, ApiQuery, KeyIdPath};
use crate::http::state::AppState;
use crate::wire::events::{EventPage, KeyEventsQuery};
use crate::wire::keys::{
    ApiKeyResponse, CreateKeyRequest, CreateKeyResponse, PatchKeyRequest, RotateKeyRequest,
    RotateKeyResponse, SetPermissionsRequest, SetRateLimitRequest,
};
use crate::wire::usage::{KeyUsageResponse, UsageQuery};

/// Users call every route here: the document gives each their JWT scheme and 401.
pub const CALLERS: Callers = Callers::Users;
pub const TAG: &str = "api-keys";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(get_key, revoke_key, update_key))
        .routes(routes!(suspend_key))
        .routes(routes!(reactivate_key))
        .routes(routes!(set_permissions))
        .routes(routes!(set_rate_limit))
        .routes(routes!(rotate_key))
        .routes(routes!(list_key_events))
        .routes(routes!(get_key_usage))
}

/// Create a key. The plaintext is in this response only.
#[utoipa::path(
    post,
    path = "/api/api-keys",
    operation_id = "create_api_key",
    request_body = CreateKeyRequest,
    responses(
        (status = 200, description = "The key, with its plaintext (sent with Cache-Control: no-store)", body = CreateKeyResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        documented::PlatformFields,
        (status = 409, description = "The user holds the maximum number of keys", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "Invalid fields", body = ErrorBody),
        documented::UserChange,
        documented::Database,
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<Json<CreateKeyResponse>, ApiError> {
    // Never kept by a cache: every API answer is sent with Cache-Control: no-store
    // (`http::observe`).
    let created = state.engine.create_key(&user, &body.into()).await?;
    Ok(Json(created.into()))
}

/// The caller's keys, newest first, every status.
#[utoipa::path(
    get,
    path = "/api/api-keys",
    operation_id = "list_api_keys",
    responses(
        (status = 200, description = "The caller's keys", body = Vec<ApiKeyResponse>),
        documented::Database,
    )
)]
pub async fn list_keys(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Vec<ApiKeyResponse>>, ApiError> {
    let keys = state.engine.list_keys(Scope::User(&user)).await?;
    Ok(Json(keys.into_iter().map(Into::into).collect()))
}

/// One of the caller's keys.
#[utoipa::path(
    get,
    path = "/api/api-keys/{id}",
    operation_id = "get_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = ApiKeyResponse),
        documented::CallersKey,
        documented::Database,
    )
)]
pub async fn get_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(
        state.engine.get_key(Scope::User(&user), id).await?.into(),
    ))
}

/// Revoke a key, for good. Revoking again succeeds and keeps the first `revoked_at`.
#[utoipa::path(
    delete,
    path = "/api/api-keys/{id}",
    operation_id = "revoke_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyResponse),
        documented::CallersKey,
        documented::UserChange,
        documented::Database,
    )
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(
        state.engine.revoke(Scope::User(&user), id).await?.into(),
    ))
}

/// Suspend a key: it fails verification until reactivated. Suspending again succeeds.
#[utoipa::path(
    post,
    path = "/api/api-keys/{id}/suspend",
    operation_id = "suspend_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The suspended key", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked", body = ErrorBody),
        documented::CallersKey,
        documented::UserChange,
        documented::Database,
    )
)]
pub async fn suspend_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(
        state.engine.suspend(Scope::User(&user), id).await?.into(),
    ))
}

/// Reactivate a suspended key.
#[utoipa::path(
    post,
    path = "/api/api-keys/{id}/reactivate",
    operation_id = "reactivate_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The active key", body = ApiKeyResponse),
        (status = 400, description = "The key is not suspended", body = ErrorBody),
        documented::CallersKey,
        documented::UserChange,
        documented::Database,
    )
)]
pub async fn reactivate_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(
        state
            .engine
            .reactivate(Scope::User(&user), id)
            .await?
            .into(),
    ))
}

/// Replace a key's permissions.
#[utoipa::path(
    put,
    path = "/api/api-keys/{id}/permissions",
    operation_id = "set_api_key_permissions",
    params(("id" = Uuid, Path, description = "The key's id")),
    request_body = SetPermissionsRequest,
    responses(
        (status = 200, description = "The key with its new permissions", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked, or malformed JSON", body = ErrorBody),
        documented::CallersKey,
        documented::JsonBody,
        (status = 422, description = "Unknown permissions", body = ErrorBody),
        documented::UserChange,
        documented::Database,
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
        .set_permissions(Scope::User(&user), id, &body.permissions)
        .await?;
    Ok(Json(key.into()))
}

/// Deprecated: a key's verification rate limit is the platform's to set, so this
/// answers 403 to every authenticated caller, whatever the key or the body.
///
/// Kept so that clients of earlier versions get a clear answer rather than a 404: the
/// platform's services set or remove a rate limit with `PATCH /api/admin/api-keys/{id}`
/// (service token), and `POST /api/admin/users/{user_id}/api-keys` creates a key with
/// one. Past the limit, verification answers `RATE_LIMITED` with `retry_after`.
#[utoipa::path(
    put,
    path = "/api/api-keys/{id}/rate-limit",
    operation_id = "set_api_key_rate_limit",
    params(("id" = Uuid, Path, description = "The key's id")),
    request_body(content = Option<SetRateLimitRequest>, description = "Not read"),
    responses(
        documented::PlatformFields,
    )
)]
pub async fn set_rate_limit(AuthUser(_): AuthUser) -> ApiError {
    ApiError::from(EngineError::PlatformOnly {
        field: "rate_limit",
    })
}

/// The audit trail of one of the caller's keys: every change, oldest first, with who
/// made it and each changed field's value before and after.
#[utoipa::path(
    get,
    path = "/api/api-keys/{id}/events",
    operation_id = "list_api_key_events",
    params(("id" = Uuid, Path, description = "The key's id"), KeyEventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        documented::CallersKey,
        (status = 422, description = "Invalid paging parameters", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn list_key_events(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
    ApiQuery(query): ApiQuery<KeyEventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let (after, limit) = audit::page(query.after, query.limit).map_err(ApiError::invalid)?;
    let events = state
        .engine
        .key_events(Scope::User(&user), id, after, limit)
        .await?;
    Ok(Json(EventPage::new(events, limit)))
}

/// Change a key's name, description, expiry or metadata.
///
/// Only the fields given change; `null` clears `description`, `expires_at` (the key
/// then never expires) or `metadata`. Validation is as on create; an expiry may move
/// earlier or later, never into the past. A revoked key cannot change (400).
#[utoipa::path(
    patch,
    path = "/api/api-keys/{id}",
    operation_id = "update_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    request_body = PatchKeyRequest,
    responses(
        (status = 200, description = "The key as changed", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked, or malformed JSON", body = ErrorBody),
        documented::PlatformFields,
        documented::CallersKey,
        documented::JsonBody,
        (status = 422, description = "Invalid fields", body = ErrorBody),
        documented::UserChange,
        documented::Database,
    )
)]
pub async fn update_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<PatchKeyRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let key = state
        .engine
        .edit(Scope::User(&user), id, &body.into())
        .await?;
    Ok(Json(key.into()))
}

/// Rotate a key: a new key (new id, new secret) replaces it.
///
/// The new key carries the old one's name, description, permissions, rate limit,
/// metadata, expiry and status, and `rotated_from`; the old key gets `rotated_to` and
/// keeps working until the end of the grace period (`grace_seconds`, default an hour,
/// at most a week, never beyond its own expiry), then verifies as `EXPIRED`. A
/// revoked, expired or already-rotated key cannot be rotated (400). During the grace
/// period both keys count toward the per-user key limit: at the limit, a rotation with
/// a grace period is refused (409) and one with `grace_seconds: 0` is allowed. The
/// plaintext is in this response only.
#[utoipa::path(
    post,
    path = "/api/api-keys/{id}/rotate",
    operation_id = "rotate_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    request_body(content = Option<RotateKeyRequest>, description = "Optional: no body rotates with the default grace period"),
    responses(
        (status = 200, description = "The new key with its plaintext, and the old key (sent with Cache-Control: no-store)", body = RotateKeyResponse),
        (status = 400, description = "The key is revoked, expired or already rotated; or malformed JSON", body = ErrorBody),
        documented::CallersKey,
        (status = 409, description = "At the key limit, a rotation with a grace period (grace_seconds: 0 works)", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "A grace period out of bounds", body = ErrorBody),
        documented::UserChange,
        documented::Database,
    )
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<RotateKeyRequest>,
) -> Result<Json<RotateKeyResponse>, ApiError> {
    let grace = body.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS);
    if grace > MAX_ROTATION_GRACE_SECONDS {
        return Err(ApiError::invalid(format!(
            "grace_seconds: must be between 0 and {MAX_ROTATION_GRACE_SECONDS}"
        )));
    }
    let rotated = match state.engine.rotate(Scope::User(&user), id, grace).await {
        Err(err @ EngineError::LimitReached { .. }) => {
            return Err(ApiError::from(err).hint(
                "During its grace period the old key counts toward the limit too: rotate with \
                 \"grace_seconds\": 0 to replace it at once, or revoke keys you no longer use.",
            ));
        }
        other => other?,
    };
    Ok(Json(RotateKeyResponse {
        api_key: rotated.new.key.into(),
        plain_text_key: rotated.new.plain_text.expose().to_owned(),
        previous_key: rotated.old.into(),
    }))
}

/// A key's verifications per hour or day: VALID and refused.
///
/// Buckets are UTC hours or days, every one of the range (zeros included), oldest
/// first, at most 744. The range defaults to the last 48 hours (`hour`) or 30 days
/// (`day`) up to now. Verifications are counted whatever their answer, once the key
/// is found; history is kept `KEYWARD_USAGE_HISTORY_DAYS` days (0: not counted, all
/// zeros).
#[utoipa::path(
    get,
    path = "/api/api-keys/{id}/usage",
    operation_id = "get_api_key_usage",
    params(("id" = Uuid, Path, description = "The key's id"), UsageQuery),
    responses(
        (status = 200, description = "The key's verifications per bucket", body = KeyUsageResponse),
        (status = 400, description = "A time that is not RFC 3339, from not before to, more than 744 buckets, or a granularity other than hour or day", body = ErrorBody),
        documented::CallersKey,
        (status = 422, description = "A query string that cannot be read (a parameter given twice)", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn get_key_usage(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    KeyIdPath(id): KeyIdPath,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<KeyUsageResponse>, ApiError> {
    let range = query
        .range(state.engine.now())
        .map_err(ApiError::invalid_usage_query)?;
    let buckets = state
        .engine
        .key_usage(Scope::User(&user), id, &range)
        .await?;
    Ok(Json(KeyUsageResponse::new(id, &range, &buckets)))
}
