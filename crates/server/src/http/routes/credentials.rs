//! Service credentials, for the platform's services holding `credentials.manage`:
//! made (the secret is in that answer only), listed, read, revoked and rotated.

use axum::Json;
use keyward_core::lifecycle::DEFAULT_ROTATION_GRACE_SECONDS;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::{Service, scope};
use crate::http::documented::{self, Callers};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::{ApiJson, ApiJsonOrEmpty, CredentialIdPath};
use crate::http::state::AppState;
use crate::wire::credentials::{
    CreateCredentialRequest, CreatedCredentialResponse, CredentialResponse, RotateCredentialRequest,
};

/// The platform's services call every route here: the document gives each the
/// service token's scheme, 401 and 403.
pub const CALLERS: Callers = Callers::Services;
pub const TAG: &str = "credentials";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_credential, list_credentials))
        .routes(routes!(get_credential, revoke_credential))
        .routes(routes!(rotate_credential))
}

/// Create a service credential. The secret is in this response only.
///
/// Give each service its own, holding only the scopes it needs: a gateway
/// `keys.verify`, a billing job `keys.write`. What a credential changes is recorded
/// in the audit trail as `credential:<name>`.
#[utoipa::path(
    post,
    path = "/api/admin/credentials",
    operation_id = "create_credential",
    request_body = CreateCredentialRequest,
    security(("service_token" = ["credentials.manage"])),
    responses(
        (status = 200, description = "The credential, with its secret (sent with Cache-Control: no-store)", body = CreatedCredentialResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "Invalid fields: a name, at least one known scope, an expiry in the future", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn create_credential(
    caller: Service<scope::CredentialsManage>,
    ApiJson(body): ApiJson<CreateCredentialRequest>,
) -> Result<Json<CreatedCredentialResponse>, ApiError> {
    // Never kept by a cache: every API answer is sent with Cache-Control: no-store
    // (`http::observe`).
    let created = caller.engine.create_credential(&body.into()).await?;
    Ok(Json(created.into()))
}

/// Every service credential, newest first, revoked ones too. Never a secret.
#[utoipa::path(
    get,
    path = "/api/admin/credentials",
    operation_id = "list_credentials",
    security(("service_token" = ["credentials.manage"])),
    responses(
        (status = 200, description = "The credentials", body = Vec<CredentialResponse>),
        documented::Database,
    )
)]
pub async fn list_credentials(
    caller: Service<scope::CredentialsManage>,
) -> Result<Json<Vec<CredentialResponse>>, ApiError> {
    let credentials = caller.engine.list_credentials().await?;
    Ok(Json(credentials.into_iter().map(Into::into).collect()))
}

/// One service credential. Never its secret.
#[utoipa::path(
    get,
    path = "/api/admin/credentials/{id}",
    operation_id = "get_credential",
    params(("id" = Uuid, Path, description = "The credential's id")),
    security(("service_token" = ["credentials.manage"])),
    responses(
        (status = 200, description = "The credential", body = CredentialResponse),
        (status = 404, description = "No such credential", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn get_credential(
    caller: Service<scope::CredentialsManage>,
    CredentialIdPath(id): CredentialIdPath,
) -> Result<Json<CredentialResponse>, ApiError> {
    Ok(Json(caller.engine.get_credential(id).await?.into()))
}

/// Revoke a service credential, for good: refused on every instance by its next
/// request. Revoking again succeeds and keeps the first `revoked_at`.
#[utoipa::path(
    delete,
    path = "/api/admin/credentials/{id}",
    operation_id = "revoke_credential",
    params(("id" = Uuid, Path, description = "The credential's id")),
    security(("service_token" = ["credentials.manage"])),
    responses(
        (status = 200, description = "The revoked credential", body = CredentialResponse),
        (status = 404, description = "No such credential", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn revoke_credential(
    caller: Service<scope::CredentialsManage>,
    CredentialIdPath(id): CredentialIdPath,
) -> Result<Json<CredentialResponse>, ApiError> {
    Ok(Json(caller.engine.revoke_credential(id).await?.into()))
}

/// Give a service credential a new secret, in this response only. The secret it
/// replaces keeps working for `grace_seconds` (default 3,600), so the service can be
/// redeployed with the new one without a gap; an older replaced secret stops at once.
#[utoipa::path(
    post,
    path = "/api/admin/credentials/{id}/rotate",
    operation_id = "rotate_credential",
    params(("id" = Uuid, Path, description = "The credential's id")),
    request_body(content = Option<RotateCredentialRequest>, description = "Optional; an empty body takes the default grace period"),
    security(("service_token" = ["credentials.manage"])),
    responses(
        (status = 200, description = "The credential, with its new secret (sent with Cache-Control: no-store)", body = CreatedCredentialResponse),
        (status = 400, description = "The credential is revoked, or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such credential", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "grace_seconds over a week", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn rotate_credential(
    caller: Service<scope::CredentialsManage>,
    CredentialIdPath(id): CredentialIdPath,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<RotateCredentialRequest>,
) -> Result<Json<CreatedCredentialResponse>, ApiError> {
    let grace = body.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS);
    let rotated = caller.engine.rotate_credential(id, grace).await?;
    Ok(Json(rotated.into()))
}
