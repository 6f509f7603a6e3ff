//! Leaked keys: anyone holding a key may report it found in public, and keyward acts
//! on it (`KEYWARD_LEAKED_KEY_ACTION`) without saying whether it was one.

use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::audit::Actor;
use keyward_core::credential::ScopeSet;
use keyward_core::leak::Sighting;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::client_address::Peer;
use crate::http::documented::{self, Callers};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use crate::wire::leaks::ReportLeakRequest;

/// The route documents its own (absent) authentication.
pub const CALLERS: Callers = Callers::PerRoute;
pub const TAG: &str = "leaks";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report_leak))
}

/// Report a key found where it should not be (a public repository, a paste). No
/// authentication: holding the key is the proof. A live key of this deployment is
/// then revoked (or suspended, or only recorded: `KEYWARD_LEAKED_KEY_ACTION`), the
/// report is recorded in its audit trail (`leaked`, with the URL) and announced
/// (`api_key.leaked`). The answer is the same 202, after the same work, whether or not
/// the key was one: it tells nothing. Reports count against the client's
/// failed-attempt limit, like failed verifications.
#[utoipa::path(
    post,
    path = "/api/api-keys/report-leak",
    operation_id = "report_leak",
    request_body = ReportLeakRequest,
    security(()),
    responses(
        (status = 202, description = "Taken: acted on if it was a live key"),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "Unknown or mistyped fields", body = ErrorBody),
        (status = 429, description = "Too many reports or failed verifications from this client; retry after Retry-After", body = ErrorBody),
    )
)]
pub async fn report_leak(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<ReportLeakRequest>,
) -> Result<StatusCode, ApiError> {
    let client = state.trusted_proxies.client(peer, &headers);
    let engine = state
        .engine
        .acting_as(Actor::Admin("leak-report".into()), ScopeSet::default());
    let sighting = Sighting::new(body.url.as_deref(), Some("report"));
    engine
        .report_leak_anonymously(Some(client), body.key, sighting)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
