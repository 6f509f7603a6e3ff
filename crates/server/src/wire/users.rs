//! A user's shapes: what deleting a user answers, and the limits their keys share.

use keyward_core::credits::{CreditGrant, UserLimits};
use keyward_core::input::ValidationErrors;
use keyward_engine::{LimitsSource, UserLimitsView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::keys::{RateLimitDto, RefillDto};
use super::validate::Unreadable;

/// A deleted user.
#[derive(Serialize, ToSchema)]
pub struct DeletedUserResponse {
    pub user_id: String,
    /// How many keys were removed.
    pub deleted_keys: u64,
}

/// A user's credits: one balance all the user's keys draw on (after their own).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreditsRequest {
    /// 0 to 10^15; default: the refill's amount.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_u64, example = 1000)]
    pub remaining: Option<u64>,
    /// How the balance renews; absent: it does not.
    #[serde(default)]
    pub refill: Option<RefillDto>,
}

/// Limits all of a user's keys share, each checked after the key's own: one rate
/// limit pool and one credit balance. They replace the deployment's defaults
/// (`KEYWARD_DEFAULT_USER_RATE_LIMIT`, `KEYWARD_DEFAULT_USER_CREDITS`) for this user:
/// a limit absent here is no limit. Credits given are a new balance.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UserLimitsRequest {
    #[serde(default)]
    pub rate_limit: Option<RateLimitDto>,
    #[serde(default)]
    pub credits: Option<UserCreditsRequest>,
}

impl UserLimitsRequest {
    /// The limits as the engine takes them; every problem at once.
    pub fn parse(self) -> Result<UserLimits, ValidationErrors> {
        let mut unreadable = Unreadable::default();
        let rate_limit = unreadable.read("rate_limit", self.rate_limit, RateLimitDto::parse);
        let credits = unreadable.read("credits", self.credits, |credits| {
            let refill = credits.refill.map(RefillDto::parse).transpose()?;
            CreditGrant::new(credits.remaining, refill)
        });
        if !unreadable.0.is_empty() {
            return Err(ValidationErrors(unreadable.0));
        }
        Ok(UserLimits {
            rate_limit,
            credits,
        })
    }
}

/// Where a user's limits come from.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum LimitsSourceName {
    /// Set for this user (`PUT`).
    User,
    /// The deployment's defaults.
    Default,
}

/// A user's credit balance as it stands now.
#[derive(Serialize, ToSchema)]
pub struct UserCreditsResponse {
    pub remaining: u64,
    pub refill: Option<RefillDto>,
    #[schema(format = DateTime)]
    pub next_refill_at: Option<String>,
}

/// The limits all of a user's keys share, as they stand now.
#[derive(Serialize, ToSchema)]
pub struct UserLimitsResponse {
    pub user_id: String,
    pub source: LimitsSourceName,
    /// One pool for all the user's keys; null: none.
    pub rate_limit: Option<RateLimitDto>,
    /// One balance all the user's keys draw on; null: none.
    pub credits: Option<UserCreditsResponse>,
}

impl From<UserLimitsView> for UserLimitsResponse {
    fn from(view: UserLimitsView) -> Self {
        Self {
            user_id: view.user_id.as_str().to_owned(),
            source: match view.source {
                LimitsSource::User => LimitsSourceName::User,
                LimitsSource::Default => LimitsSourceName::Default,
            },
            rate_limit: view.rate_limit.map(Into::into),
            credits: view.credits.map(|c| UserCreditsResponse {
                remaining: c.remaining,
                refill: c.refill.map(Into::into),
                next_refill_at: c.next_refill_at.map(|t| t.to_rfc3339()),
            }),
        }
    }
}
