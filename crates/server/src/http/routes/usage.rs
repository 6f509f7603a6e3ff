//! Usage history over HTTP: a key's verifications per hour or day for its owner,
//! and a user's or the deployment's for the platform's services.
//!
//! Every bucket of the range is answered, zeros included, oldest first, with what
//! was counted and not yet written to the database: a verification shows at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::model::{Scope, UserId};
use keyward_core::time::Timestamp;
use keyward_core::usage::{Granularity, UsageRange};

use crate::http::auth::{AuthUser, ServiceCaller};
use crate::http::error::{ApiError, ErrorBody, documented};
use crate::http::json::{ApiQuery, KeyIdPath};
use crate::http::state::AppState;
use crate::wire::usage::{AdminUsageQuery, KeyUsageResponse, UsageQuery, UsageResponse};

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
    tag = super::api_keys::TAG,
    operation_id = "get_api_key_usage",
    params(("id" = Uuid, Path, description = "The key's id"), UsageQuery),
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "The key's verifications per bucket", body = KeyUsageResponse),
        (status = 400, description = "A time that is not RFC 3339, from not before to, more than 744 buckets, or a granularity other than hour or day", body = ErrorBody),
        documented::UserToken,
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
    let range = usage_range(&state, query)?;
    let buckets = state
        .engine
        .key_usage(Scope::User(&user), id, &range)
        .await?;
    Ok(Json(KeyUsageResponse::new(id, &range, &buckets)))
}

/// Verifications per hour or day of a user's keys, or of every key: VALID and
/// refused, summed.
///
/// As for one key (`GET /api/api-keys/{id}/usage`): every bucket of the range,
/// oldest first, at most 744. A user without keys has all zeros.
#[utoipa::path(
    get,
    path = "/api/admin/usage",
    tag = super::admin::TAG,
    operation_id = "get_usage",
    params(
        ("user_id" = Option<String>, Query, description = "Only this user's keys (the JWT `sub`); the whole deployment without it"),
        UsageQuery,
    ),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "Verifications per bucket", body = UsageResponse),
        (status = 400, description = "A time that is not RFC 3339, from not before to, more than 744 buckets, a granularity other than hour or day, or an invalid user id", body = ErrorBody),
        documented::ServiceToken,
        (status = 422, description = "A query string that cannot be read (a parameter given twice)", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn get_usage(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    ApiQuery(query): ApiQuery<AdminUsageQuery>,
) -> Result<Json<UsageResponse>, ApiError> {
    let user = query
        .user_id
        .as_deref()
        .map(UserId::from_stored)
        .transpose()
        .map_err(|e| bad_query(format!("user_id: {e}")))?;
    let range = usage_range(&state, query.range)?;
    let buckets = state.engine.usage(user.as_ref(), &range).await?;
    Ok(Json(UsageResponse::new(user.as_ref(), &range, &buckets)))
}

/// The query's range, parsed once; anything wrong with it is a 400.
fn usage_range(state: &AppState, query: UsageQuery) -> Result<UsageRange, ApiError> {
    let UsageQuery {
        from,
        to,
        granularity,
    } = query;
    let time = |name: &str, text: Option<String>| {
        text.as_deref()
            .map(Timestamp::parse_rfc3339)
            .transpose()
            .map_err(|e| bad_query(format!("{name}: {e}")))
    };
    let from = time("from", from)?;
    let to = time("to", to)?;
    let granularity = granularity
        .as_deref()
        .map(Granularity::parse)
        .transpose()
        .map_err(|e| bad_query(e.to_string()))?
        .unwrap_or_default();
    UsageRange::new(from, to, granularity, state.engine.now()).map_err(|e| bad_query(e.to_string()))
}

fn bad_query(detail: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Invalid usage query").detail(detail)
}
