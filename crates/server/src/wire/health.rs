//! The liveness and readiness answer.

use serde::Serialize;
use utoipa::ToSchema;

/// Liveness/readiness answer.
#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}
