//! Administration, for the platform's services: removing a user who left.

use axum::Json;
use axum::extract::{Path, State};
use keyward_core::model::UserId;

use super::AppState;
use super::auth::ServiceCaller;
use super::dto::DeletedUserResponse;
use super::error::{ApiError, ErrorBody};

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
