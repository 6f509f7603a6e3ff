//! The permission catalogue, for the UIs that offer permissions and for the services
//! that check the names their routes require.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::AnyCaller;
use crate::http::documented::Callers;
use crate::http::error::ErrorBody;
use crate::http::state::AppState;
use crate::wire::permissions::PermissionCatalogue;

/// Each route here documents its own callers.
pub const CALLERS: Callers = Callers::PerRoute;
pub const TAG: &str = "permissions";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_permissions))
}

/// The permission names this deployment accepts, in catalogue order
/// (`KEYWARD_PERMISSIONS`, by default AutoGPT's). Open to users (JWT) and to the
/// platform's services (service token).
#[utoipa::path(
    get,
    path = "/api/permissions",
    operation_id = "list_permissions",
    security(("user_jwt" = []), ("service_token" = [])),
    responses(
        (status = 200, description = "The catalogue", body = PermissionCatalogue),
        (status = 401, description = "Neither a valid JWT nor the service token", body = ErrorBody),
    )
)]
pub async fn list_permissions(
    State(state): State<AppState>,
    _caller: AnyCaller,
) -> Json<PermissionCatalogue> {
    let permissions = state
        .engine
        .config()
        .catalogue
        .names()
        .map(str::to_owned)
        .collect();
    Json(PermissionCatalogue { permissions })
}
