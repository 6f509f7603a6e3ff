//! Usage history's shapes: verifications per hour or day, of one key, a user's keys
//! or the deployment, and the queries that choose the range. Every bucket of the
//! range is answered, zeros included, oldest first, with what was counted and not
//! yet written to the database: a verification shows at once.

use keyward_core::model::{KeyId, UserId};
use keyward_core::time::Timestamp;
use keyward_core::usage::{Granularity, HourlyUsage, UsageRange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validate::optional;

/// The range of a key's usage history.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The start (RFC 3339), rounded down to the bucket; default: `to` minus 48 hours
    /// (`hour`) or 30 days (`day`).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// The end (RFC 3339, exclusive), rounded up to the bucket; default: now.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `hour` (default) or `day`: UTC hours or days; at most 744 buckets.
    #[param(example = "hour")]
    pub granularity: Option<String>,
}

impl UsageQuery {
    /// The range asked for, ending `now` by default.
    pub fn range(&self, now: Timestamp) -> Result<UsageRange, String> {
        let from = optional("from", self.from.as_deref(), Timestamp::parse_rfc3339)?;
        let to = optional("to", self.to.as_deref(), Timestamp::parse_rfc3339)?;
        let granularity = self
            .granularity
            .as_deref()
            .map(Granularity::parse)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        UsageRange::new(from, to, granularity, now).map_err(|e| e.to_string())
    }
}

/// The range and owner of the deployment's (or a user's) usage history. Its
/// documented parameters are `user_id` (on the route) and [`UsageQuery`]'s.
#[derive(Deserialize)]
pub struct AdminUsageQuery {
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub range: UsageQuery,
}

impl AdminUsageQuery {
    /// Whose usage: a user id as stored, or everyone's.
    pub fn user(&self) -> Result<Option<UserId>, String> {
        optional("user_id", self.user_id.as_deref(), UserId::from_stored)
    }
}

/// Verifications in one bucket.
#[derive(Serialize, ToSchema, Debug, PartialEq, Eq)]
pub struct UsageBucket {
    /// The bucket's start: a UTC hour or day.
    #[schema(format = DateTime, example = "2026-11-29T10:00:00Z")]
    pub start: String,
    /// Verifications that answered VALID.
    pub valid: u64,
    /// Verifications of the key that did not answer VALID (suspended, revoked,
    /// expired, missing permissions, rate limited, out of credits). Unknown or
    /// malformed keys are not counted: they are no one's.
    pub refused: u64,
}

/// Verifications per bucket: every bucket of the range, oldest first.
#[derive(Serialize, ToSchema)]
pub struct UsageSeries {
    /// `hour` or `day`.
    #[schema(example = "hour")]
    pub granularity: &'static str,
    /// The first bucket's start.
    #[schema(format = DateTime, example = "2026-11-27T10:00:00Z")]
    pub from: String,
    /// The last bucket's end (exclusive).
    #[schema(format = DateTime, example = "2026-11-29T11:00:00Z")]
    pub to: String,
    pub buckets: Vec<UsageBucket>,
}

impl UsageSeries {
    pub fn new(range: &UsageRange, buckets: &[HourlyUsage]) -> Self {
        Self {
            granularity: range.granularity().as_str(),
            from: range.from().to_rfc3339_seconds(),
            to: range.to().to_rfc3339_seconds(),
            buckets: buckets.iter().map(bucket).collect(),
        }
    }
}

/// A key's verifications per bucket.
#[derive(Serialize, ToSchema)]
pub struct KeyUsageResponse {
    pub key_id: Uuid,
    #[serde(flatten)]
    pub series: UsageSeries,
}

/// A user's keys' (or every key's) verifications per bucket, summed.
#[derive(Serialize, ToSchema)]
pub struct UsageResponse {
    /// The user whose keys are summed; null: the whole deployment.
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub series: UsageSeries,
}

impl KeyUsageResponse {
    pub fn new(key_id: KeyId, range: &UsageRange, buckets: &[HourlyUsage]) -> Self {
        Self {
            key_id: *key_id.as_uuid(),
            series: UsageSeries::new(range, buckets),
        }
    }
}

impl UsageResponse {
    pub fn new(user_id: Option<&UserId>, range: &UsageRange, buckets: &[HourlyUsage]) -> Self {
        Self {
            user_id: user_id.map(|user| user.as_str().to_owned()),
            series: UsageSeries::new(range, buckets),
        }
    }
}

fn bucket(usage: &HourlyUsage) -> UsageBucket {
    UsageBucket {
        start: usage.hour.to_rfc3339_seconds(),
        valid: usage.counts.valid,
        refused: usage.counts.refused,
    }
}
