//! GitHub's secret scanning partner messages: the matches it sends, and the feedback
//! keyward answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A token GitHub found in public.
#[derive(Deserialize, ToSchema)]
pub struct GithubMatch {
    /// The token as found.
    pub token: String,
    /// The token type this deployment enrolled (`keyward_api_key`).
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place (`content`, `commit`, `issue_description`, `gist_content`, `npm`…).
    #[serde(default)]
    pub source: Option<String>,
}

/// What keyward made of one token: a live key of this deployment
/// (`true_positive`), or a well-formed token that is not one (`false_positive`).
#[derive(Serialize, ToSchema)]
pub struct GithubFeedback {
    /// Hex SHA-256 of the token as sent.
    pub token_hash: String,
    pub token_type: String,
    #[schema(example = "true_positive")]
    pub label: &'static str,
}
