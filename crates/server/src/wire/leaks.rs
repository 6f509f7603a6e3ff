//! A leak report's shapes.

use serde::Deserialize;
use utoipa::ToSchema;

/// A key found where it should not be.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportLeakRequest {
    /// The whole key, as found.
    #[schema(example = "agpt_x7Q2mV0aLr8TzKc1bW5nYs3hJ6dPqE9fGu4iXo7kR2N9dPqZ")]
    pub key: String,
    /// Where it was found (kept in the audit trail when it is plain text of at most
    /// 2,000 characters).
    #[serde(default)]
    #[schema(example = "https://github.com/acme/app/blob/main/.env#L3")]
    pub url: Option<String>,
}
