//! Administration, for the platform's services: removing a user who left.

use axum::Json;
use axum::extract::{Path, State};
use keyward_core::audit::EventQuery;
use keyward_core::model::UserId;
use keyward_core::time::Timestamp;

use super::AppState;
use super::auth::ServiceCaller;
use super::dto::{AdminEventsQuery, DeletedUserResponse, EventPage};
use super::error::{ApiError, ErrorBody};
use super::json::ApiQuery;

pub const TAG: &str = "admin";

/// Delete a user and all their keys.
///
/// Like the platform deleting a user account (AutoGPT's `onDelete: Cascade`): every
/// key of the user is removed and fails verification at once on this instance, and
/// within milliseconds on the others.
/// Deleting a user without keys succeeds with `deleted_keys: 0`.
#[utoipa::path(
    delete,
    path = "/api/admin/users/{user_id}",
    tag = TAG,
    operation_id = "delete_user",
    params(("user_id" = String, Path, description = "The user id (the JWT `sub`)")),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "The user's keys are gone", body = DeletedUserResponse),
        (status = 401, description = "Missing or invalid service token", body = ErrorBody),
        (status = 422, description = "Not a valid user id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(user_id): Path<String>,
) -> Result<Json<DeletedUserResponse>, ApiError> {
    let user = UserId::parse(&user_id).map_err(|e| ApiError::invalid(format!("user_id: {e}")))?;
    let deleted = state.engine.delete_user(&user).await?;
    Ok(Json(DeletedUserResponse {
        user_id: user.as_str().to_owned(),
        deleted_keys: deleted as u64,
    }))
}

/// The audit trail across keys: every change, oldest first, optionally for one user
/// and from a time on. Events of deleted users stay.
#[utoipa::path(
    get,
    path = "/api/admin/events",
    tag = TAG,
    operation_id = "list_events",
    params(AdminEventsQuery),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 401, description = "Missing or invalid service token", body = ErrorBody),
        (status = 422, description = "Invalid filters or paging parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_events(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    ApiQuery(query): ApiQuery<AdminEventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let (after, limit) = super::dto::page(query.after, query.limit).map_err(ApiError::invalid)?;
    let user_id = query
        .user_id
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("user_id: {e}")))?;
    let since = query
        .since
        .as_deref()
        .map(Timestamp::parse_rfc3339)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("since: {e}")))?;
    let events = state
        .engine
        .events(&EventQuery {
            key_id: None,
            user_id,
            since,
            after,
            limit,
        })
        .await?;
    Ok(Json(EventPage::new(events, limit)))
}
