//! Administration, for the platform's services (service token): keys made or changed
//! on a user's behalf, with the usage credits and rate limits only the platform sets;
//! removing a user who left; the audit trail across users; a user's keys listed,
//! suspended, reactivated or revoked by the platform (its support staff, the console's
//! operator view); usage history across keys.

use axum::Json;
use axum::extract::State;
use keyward_core::audit;
use keyward_core::model::Scope;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::{AnyService, Service, scope};
use crate::http::documented::{self, Callers};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::{ApiJson, ApiQuery, KeyIdPath, UserIdPath};
use crate::http::state::AppState;
use crate::wire::credentials::WhoAmIResponse;
use crate::wire::events::{AdminEventsQuery, EventPage, KeyEventsQuery};
use crate::wire::keys::{ApiKeyResponse, CreateKeyRequest, CreateKeyResponse, PatchKeyRequest};
use crate::wire::usage::{AdminUsageQuery, UsageQuery, UsageResponse};
use crate::wire::users::{DeletedUserResponse, UserLimitsRequest, UserLimitsResponse};
use crate::wire::validate::Object;

/// The platform's services call every route here: the document gives each the
/// service token's scheme and 401.
pub const CALLERS: Callers = Callers::Services;
pub const TAG: &str = "admin";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delete_user))
        .routes(routes!(
            get_user_limits,
            set_user_limits,
            delete_user_limits
        ))
        .routes(routes!(create_key_for_user, list_keys_of_user))
        .routes(routes!(
            get_key_as_admin,
            update_key_as_admin,
            revoke_key_as_admin
        ))
        .routes(routes!(list_key_events_as_admin))
        .routes(routes!(suspend_key_as_admin))
        .routes(routes!(reactivate_key_as_admin))
        .routes(routes!(list_events))
        .routes(routes!(get_usage))
        .routes(routes!(whoami))
}

/// Who the calling service is: the static token or a credential (its name and id),
/// and the scopes it holds.
///
/// Needs no scope: a console or a script asks it to offer only what the secret may do.
#[utoipa::path(
    get,
    path = "/api/admin/whoami",
    operation_id = "whoami",
    responses(
        (status = 200, description = "The caller", body = WhoAmIResponse),
        documented::Database,
    )
)]
pub async fn whoami(
    State(state): State<AppState>,
    AnyService(identity): AnyService,
) -> Json<WhoAmIResponse> {
    let actor = identity.actor(&state.engine);
    Json(WhoAmIResponse {
        kind: actor.kind(),
        id: actor.id().to_owned(),
        credential_id: actor.credential_id().map(|id| *id.as_uuid()),
        scopes: identity.scopes().names(),
    })
}

/// Delete a user and all their keys.
///
/// Like the platform deleting a user account (AutoGPT's `onDelete: Cascade`): every
/// key of the user is removed and fails verification at once on this instance, and
/// within milliseconds on the others.
/// Deleting a user without keys succeeds with `deleted_keys: 0`.
#[utoipa::path(
    delete,
    path = "/api/admin/users/{user_id}",
    operation_id = "delete_user",
    params(("user_id" = String, Path, description = "The user id (the JWT `sub`)")),
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The user's keys are gone", body = DeletedUserResponse),
        (status = 422, description = "Not a valid user id", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn delete_user(
    caller: Service<scope::KeysWrite>,
    UserIdPath(user): UserIdPath,
) -> Result<Json<DeletedUserResponse>, ApiError> {
    let deleted = caller.engine.delete_user(&user).await?;
    Ok(Json(DeletedUserResponse {
        user_id: user.as_str().to_owned(),
        deleted_keys: deleted as u64,
    }))
}

/// The limits all of a user's keys share.
///
/// Theirs when set (`source: "user"`), the deployment's defaults otherwise
/// (`"default"`). Credits due a refill show refilled.
#[utoipa::path(
    get,
    path = "/api/admin/users/{user_id}/limits",
    operation_id = "get_user_limits",
    params(("user_id" = String, Path, description = "The user id (the JWT `sub`)")),
    security(("service_token" = ["keys.read"])),
    responses(
        (status = 200, description = "The user's limits", body = UserLimitsResponse),
        (status = 422, description = "Not a valid user id", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn get_user_limits(
    caller: Service<scope::KeysRead>,
    UserIdPath(user): UserIdPath,
) -> Result<Json<UserLimitsResponse>, ApiError> {
    Ok(Json(caller.engine.user_limits(&user).await?.into()))
}

/// Set the limits all of a user's keys share.
///
/// A verification must pass the key's own limits, then its owner's: the rate limit
/// is one pool for all the user's keys (per instance, or in the rate limit store),
/// and the credits one balance they all draw on. These replace the deployment's
/// defaults for this user (a limit absent here is none); credits given are a new
/// balance. Every instance applies them from its next verification of the user's
/// keys. Recorded in the audit trail (`set_user_limits`).
#[utoipa::path(
    put,
    path = "/api/admin/users/{user_id}/limits",
    operation_id = "set_user_limits",
    params(("user_id" = String, Path, description = "The user id (the JWT `sub`)")),
    request_body = UserLimitsRequest,
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The user's limits as set", body = UserLimitsResponse),
        (status = 422, description = "Invalid limits or user id", body = ErrorBody),
        documented::JsonBody,
        documented::Database,
    )
)]
pub async fn set_user_limits(
    caller: Service<scope::KeysWrite>,
    UserIdPath(user): UserIdPath,
    ApiJson(Object(body)): ApiJson<Object<UserLimitsRequest>>,
) -> Result<Json<UserLimitsResponse>, ApiError> {
    let limits = body.parse().map_err(keyward_engine::EngineError::Invalid)?;
    Ok(Json(
        caller.engine.set_user_limits(&user, limits).await?.into(),
    ))
}

/// Remove a user's own limits: the deployment's defaults apply again.
///
/// Answers the limits that now apply. Recorded in the audit trail
/// (`delete_user_limits`).
#[utoipa::path(
    delete,
    path = "/api/admin/users/{user_id}/limits",
    operation_id = "delete_user_limits",
    params(("user_id" = String, Path, description = "The user id (the JWT `sub`)")),
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The limits that apply now", body = UserLimitsResponse),
        (status = 404, description = "The user has no limits of their own", body = ErrorBody),
        (status = 422, description = "Not a valid user id", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn delete_user_limits(
    caller: Service<scope::KeysWrite>,
    UserIdPath(user): UserIdPath,
) -> Result<Json<UserLimitsResponse>, ApiError> {
    match caller.engine.delete_user_limits(&user).await {
        Ok(view) => Ok(Json(view.into())),
        Err(keyward_engine::EngineError::NotFound) => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "No limits of the user's own",
        )
        .detail("this user has no limits set; the deployment's defaults apply")),
        Err(err) => Err(err.into()),
    }
}

/// The audit trail across keys: every change, oldest first, optionally for one user
/// and from a time on. Events of deleted users stay.
#[utoipa::path(
    get,
    path = "/api/admin/events",
    operation_id = "list_events",
    params(AdminEventsQuery),
    security(("service_token" = ["audit.read"])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 422, description = "Invalid filters or paging parameters", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn list_events(
    caller: Service<scope::AuditRead>,
    ApiQuery(query): ApiQuery<AdminEventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let query = query.to_query().map_err(ApiError::invalid)?;
    let events = caller.engine.events(&query).await?;
    Ok(Json(EventPage::new(events, query.limit)))
}

/// Create a key on a user's behalf. The plaintext is in this response only.
///
/// For platforms that provision keys server-side: the body is the user's create
/// body, and may set `remaining` (usage credits) and `rate_limit`, which users cannot
/// set on their own keys. The key counts toward the user's key limit; the audit trail
/// records the creation as the service's.
#[utoipa::path(
    post,
    path = "/api/admin/users/{user_id}/api-keys",
    operation_id = "create_api_key_for_user",
    params(("user_id" = String, Path, description = "The user id (the JWT `sub`)")),
    request_body = CreateKeyRequest,
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The key, with its plaintext (sent with Cache-Control: no-store)", body = CreateKeyResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The user holds the maximum number of keys", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "Invalid fields or user id", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn create_key_for_user(
    caller: Service<scope::KeysWrite>,
    UserIdPath(user): UserIdPath,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<Json<CreateKeyResponse>, ApiError> {
    let created = caller
        .engine
        .create_key_as_admin(&user, &body.into())
        .await?;
    Ok(Json(created.into()))
}

/// Change any key: its usage credits and rate limit (the platform's to set), and the
/// fields its owner may change too.
///
/// Only the fields given change; `null` removes the credits limit (`remaining`), the
/// rate limit, the description, the expiry or the metadata. A top-up is a new
/// `remaining`. Recorded in the audit trail as the service's change.
#[utoipa::path(
    patch,
    path = "/api/admin/api-keys/{id}",
    operation_id = "update_api_key_as_admin",
    params(("id" = Uuid, Path, description = "The key's id")),
    request_body = PatchKeyRequest,
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The key as changed", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked, or malformed JSON", body = ErrorBody),
        documented::AnyKey,
        documented::JsonBody,
        (status = 422, description = "Invalid fields", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn update_key_as_admin(
    caller: Service<scope::KeysWrite>,
    KeyIdPath(id): KeyIdPath,
    ApiJson(body): ApiJson<PatchKeyRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let key = caller.engine.edit(Scope::Admin, id, &body.into()).await?;
    Ok(Json(key.into()))
}

/// A user's keys, newest first, every status.
///
/// For the platform's support staff (the console's operator view): the same list the
/// user sees. A user without keys, or unknown, has an empty list.
#[utoipa::path(
    get,
    path = "/api/admin/users/{user_id}/api-keys",
    operation_id = "list_api_keys_of_user",
    params(("user_id" = String, Path, description = "The user id (the JWT `sub`)")),
    security(("service_token" = ["keys.read"])),
    responses(
        (status = 200, description = "The user's keys", body = Vec<ApiKeyResponse>),
        (status = 422, description = "Not a valid user id", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn list_keys_of_user(
    caller: Service<scope::KeysRead>,
    UserIdPath(user): UserIdPath,
) -> Result<Json<Vec<ApiKeyResponse>>, ApiError> {
    let keys = caller.engine.list_keys(Scope::User(&user)).await?;
    Ok(Json(keys.into_iter().map(Into::into).collect()))
}

/// Any key, whoever its owner (the support staff's view of one key).
#[utoipa::path(
    get,
    path = "/api/admin/api-keys/{id}",
    operation_id = "get_api_key_as_admin",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("service_token" = ["keys.read"])),
    responses(
        (status = 200, description = "The key", body = ApiKeyResponse),
        documented::AnyKey,
        documented::Database,
    )
)]
pub async fn get_key_as_admin(
    caller: Service<scope::KeysRead>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(caller.engine.get_key(Scope::Admin, id).await?.into()))
}

/// The audit trail of any key: every change, oldest first, with who made it and each
/// changed field's value before and after.
#[utoipa::path(
    get,
    path = "/api/admin/api-keys/{id}/events",
    operation_id = "list_api_key_events_as_admin",
    params(("id" = Uuid, Path, description = "The key's id"), KeyEventsQuery),
    security(("service_token" = ["keys.read"])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        documented::AnyKey,
        (status = 422, description = "Invalid paging parameters", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn list_key_events_as_admin(
    caller: Service<scope::KeysRead>,
    KeyIdPath(id): KeyIdPath,
    ApiQuery(query): ApiQuery<KeyEventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let (after, limit) = audit::page(query.after, query.limit).map_err(ApiError::invalid)?;
    let events = caller
        .engine
        .key_events(Scope::Admin, id, after, limit)
        .await?;
    Ok(Json(EventPage::new(events, limit)))
}

/// Suspend any key: it fails verification until reactivated. Suspending again
/// succeeds. Recorded in the audit trail as the service's change.
#[utoipa::path(
    post,
    path = "/api/admin/api-keys/{id}/suspend",
    operation_id = "suspend_api_key_as_admin",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The suspended key", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked", body = ErrorBody),
        documented::AnyKey,
        documented::Database,
    )
)]
pub async fn suspend_key_as_admin(
    caller: Service<scope::KeysWrite>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(caller.engine.suspend(Scope::Admin, id).await?.into()))
}

/// Reactivate a suspended key. Recorded in the audit trail as the service's change.
#[utoipa::path(
    post,
    path = "/api/admin/api-keys/{id}/reactivate",
    operation_id = "reactivate_api_key_as_admin",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The reactivated key", body = ApiKeyResponse),
        (status = 400, description = "The key is revoked, or not suspended", body = ErrorBody),
        documented::AnyKey,
        documented::Database,
    )
)]
pub async fn reactivate_key_as_admin(
    caller: Service<scope::KeysWrite>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(
        caller.engine.reactivate(Scope::Admin, id).await?.into(),
    ))
}

/// Revoke any key, for good. Revoking again succeeds and keeps the first
/// `revoked_at`. Recorded in the audit trail as the service's change.
#[utoipa::path(
    delete,
    path = "/api/admin/api-keys/{id}",
    operation_id = "revoke_api_key_as_admin",
    params(("id" = Uuid, Path, description = "The key's id")),
    security(("service_token" = ["keys.write"])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyResponse),
        documented::AnyKey,
        documented::Database,
    )
)]
pub async fn revoke_key_as_admin(
    caller: Service<scope::KeysWrite>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(caller.engine.revoke(Scope::Admin, id).await?.into()))
}

/// Verifications per hour or day of a user's keys, or of every key: VALID and
/// refused, summed.
///
/// As for one key (`GET /api/api-keys/{id}/usage`): every bucket of the range,
/// oldest first, at most 744. A user without keys has all zeros.
#[utoipa::path(
    get,
    path = "/api/admin/usage",
    operation_id = "get_usage",
    params(
        ("user_id" = Option<String>, Query, description = "Only this user's keys (the JWT `sub`); the whole deployment without it"),
        UsageQuery,
    ),
    security(("service_token" = ["usage.read"])),
    responses(
        (status = 200, description = "Verifications per bucket", body = UsageResponse),
        (status = 400, description = "A time that is not RFC 3339, from not before to, more than 744 buckets, a granularity other than hour or day, or an invalid user id", body = ErrorBody),
        (status = 422, description = "A query string that cannot be read (a parameter given twice)", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn get_usage(
    caller: Service<scope::UsageRead>,
    ApiQuery(query): ApiQuery<AdminUsageQuery>,
) -> Result<Json<UsageResponse>, ApiError> {
    let user = query.user().map_err(ApiError::invalid_usage_query)?;
    let range = (query.range)
        .range(caller.engine.now())
        .map_err(ApiError::invalid_usage_query)?;
    let buckets = caller.engine.usage(user.as_ref(), &range).await?;
    Ok(Json(UsageResponse::new(user.as_ref(), &range, &buckets)))
}
