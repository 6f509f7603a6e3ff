//! A key's shapes: the key as shown, and the requests that create, change and
//! rotate it, with the answers that carry a new key's plaintext.

use keyward_core::credits::{Interval, Refill};
use keyward_core::input::{EditFields, FieldError, KeyEdit, NewKeyRequest};
use keyward_core::model::{ApiKey, KeyStatus};
use keyward_core::network::AllowedNetworks;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::permissions::Permission;
use super::validate::{Unreadable, parse_metadata};

/// A key's stored status. `EXPIRED` is not a status: compare `expires_at` with now.
#[derive(Serialize, ToSchema, Debug, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiKeyStatus {
    Active,
    Suspended,
    Revoked,
}

impl From<KeyStatus> for ApiKeyStatus {
    fn from(status: KeyStatus) -> Self {
        match status {
            KeyStatus::Active => Self::Active,
            KeyStatus::Suspended => Self::Suspended,
            KeyStatus::Revoked => Self::Revoked,
        }
    }
}

/// At most `requests` verifications per `per_seconds`, in bursts of up to `requests`.
/// Past it, verification answers `RATE_LIMITED` with `retry_after`. Counted by each
/// keyward instance on its own.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RateLimitDto {
    /// 1 to 1,000,000.
    #[schema(example = 100, minimum = 1, maximum = 1_000_000)]
    pub requests: u32,
    /// 1 to 86,400 (a day).
    #[schema(example = 60, minimum = 1, maximum = 86_400)]
    pub per_seconds: u32,
}

impl RateLimitDto {
    pub fn parse(self) -> Result<RateLimit, String> {
        RateLimit::new(self.requests, self.per_seconds)
    }
}

impl From<RateLimit> for RateLimitDto {
    fn from(limit: RateLimit) -> Self {
        Self {
            requests: limit.requests(),
            per_seconds: limit.per_seconds(),
        }
    }
}

/// When credits renew: `minute`, `hour`, `day`, `week` (Mondays) or `month`, at the
/// start of each in UTC.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl From<RefillInterval> for Interval {
    fn from(interval: RefillInterval) -> Self {
        match interval {
            RefillInterval::Minute => Self::Minute,
            RefillInterval::Hour => Self::Hour,
            RefillInterval::Day => Self::Day,
            RefillInterval::Week => Self::Week,
            RefillInterval::Month => Self::Month,
        }
    }
}

impl From<Interval> for RefillInterval {
    fn from(interval: Interval) -> Self {
        match interval {
            Interval::Minute => Self::Minute,
            Interval::Hour => Self::Hour,
            Interval::Day => Self::Day,
            Interval::Week => Self::Week,
            Interval::Month => Self::Month,
        }
    }
}

/// Usage credits that renew: at the first verification after each boundary of
/// `interval` (UTC), `remaining` is set back to `amount` (not added to), once
/// across all instances.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RefillDto {
    /// 1 to 10^15.
    #[schema(example = 1000, minimum = 1, maximum = 1_000_000_000_000_000_u64)]
    pub amount: u64,
    pub interval: RefillInterval,
    /// A monthly refill's day (1 to 31; on the month's last day when it has fewer);
    /// default the 1st. Only with `"interval": "month"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 31)]
    pub day_of_month: Option<u8>,
}

impl RefillDto {
    pub fn parse(self) -> Result<Refill, String> {
        Refill::new(self.amount, self.interval.into(), self.day_of_month)
    }
}

impl From<Refill> for RefillDto {
    fn from(refill: Refill) -> Self {
        Self {
            amount: refill.amount(),
            interval: refill.interval().into(),
            day_of_month: refill.day_of_month(),
        }
    }
}

/// An API key, without its secret.
#[derive(Serialize, ToSchema, Debug)]
pub struct ApiKeyResponse {
    /// UUID v7: ids sort by creation time.
    pub id: Uuid,
    /// The owner (the JWT `sub` that created it).
    pub user_id: String,
    pub name: String,
    pub description: Option<String>,
    /// The key's first 8 characters, for display (`prefix****postfix`).
    #[schema(example = "agpt_x7Q")]
    pub prefix: String,
    /// The key's last 8 characters, for display.
    #[schema(example = "k2N9dPqZ")]
    pub postfix: String,
    pub status: ApiKeyStatus,
    #[schema(value_type = Vec<Permission>)]
    pub permissions: Vec<String>,
    #[schema(format = DateTime, example = "2026-11-28T09:30:00.000Z")]
    pub created_at: String,
    /// When the key last passed verification, to the usage resolution (default 60 s).
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// From this time on the key verifies as `EXPIRED`.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The key's verification rate limit; null: none.
    pub rate_limit: Option<RateLimitDto>,
    /// The owner's JSON object, returned by verification; null: none.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// The key this one replaced (rotation).
    pub rotated_from: Option<Uuid>,
    /// The key that replaced this one: this one verifies until its `expires_at`
    /// (the end of the rotation's grace period).
    pub rotated_to: Option<Uuid>,
    /// Usage credits left; null: unlimited.
    pub remaining: Option<u64>,
    /// How the credits renew; null: they do not.
    pub refill: Option<RefillDto>,
    /// When the credits are next set back to the refill's amount; null: no refill.
    #[schema(format = DateTime, example = "2027-01-01T00:00:00.000Z")]
    pub next_refill_at: Option<String>,
    /// The networks the key may be used from (CIDR); null: any address. A
    /// verification on behalf of an end client outside them, or naming none
    /// (`client_ip`), answers `IP_NOT_ALLOWED`.
    #[schema(example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    pub allowed_ips: Option<Vec<String>>,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(key: ApiKey) -> Self {
        let next_refill_at = key.next_refill_at().map(|t| t.to_rfc3339());
        Self {
            id: *key.id.as_uuid(),
            user_id: key.user_id.as_str().to_owned(),
            name: key.name,
            description: key.description,
            prefix: key.prefix,
            postfix: key.postfix,
            status: key.status.into(),
            permissions: key.permissions,
            created_at: key.created_at.to_rfc3339(),
            last_used_at: key.last_used_at.map(|t| t.to_rfc3339()),
            revoked_at: key.revoked_at.map(|t| t.to_rfc3339()),
            expires_at: key.expires_at.map(|t| t.to_rfc3339()),
            rate_limit: key.rate_limit.map(Into::into),
            metadata: key
                .metadata
                .and_then(|m| serde_json::from_str(m.as_str()).ok()),
            rotated_from: key.rotated_from.map(|id| *id.as_uuid()),
            rotated_to: key.rotated_to.map(|id| *id.as_uuid()),
            remaining: key.remaining,
            refill: key.refill.map(Into::into),
            next_refill_at,
            allowed_ips: key.allowed_ips.as_ref().map(AllowedNetworks::to_strings),
        }
    }
}

/// For `PATCH` fields: absent is `None` (unchanged), `null` is `Some(None)` (clear).
pub(crate) fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A change to a key's editable attributes: only the fields given change; `null`
/// clears `description`, `expires_at` or `metadata`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchKeyRequest {
    /// 1–100 characters after trimming; cannot be cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// At most 1000 characters; null or blank clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// RFC 3339, in the future; null: the key never expires.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// A JSON object, at most 4 KiB serialised; null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<serde_json::Map<String, serde_json::Value>>>,
    /// Sets the usage credits left (a top-up); null removes the limit. The platform's
    /// to set (`PATCH /api/admin/api-keys/{id}`): with a user's JWT, 403.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 1_000_000_000_000_000_u64)]
    pub remaining: Option<Option<u64>>,
    /// Sets how the credits renew; null: they stop renewing. A key without credits
    /// gets the refill's amount. The platform's to set, as `remaining`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RefillDto>)]
    pub refill: Option<Option<RefillDto>>,
    /// Sets the verification rate limit; null removes it. The platform's to set
    /// (`PATCH /api/admin/api-keys/{id}`): with a user's JWT, 403.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimitDto>)]
    pub rate_limit: Option<Option<RateLimitDto>>,
    /// Binds the key to these networks (1 to 100 IPv4 or IPv6 CIDR networks, or
    /// addresses); null lets it be used from any address.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<Option<Vec<String>>>,
}

/// A request to create a key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1–100 characters after trimming; no control characters.
    #[schema(example = "CI pipeline")]
    pub name: String,
    /// Names from the catalogue; duplicates are removed. May be empty: such a key only identifies its owner.
    #[schema(value_type = Vec<Permission>)]
    pub permissions: Vec<String>,
    /// At most 1000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// RFC 3339; must be in the future.
    #[serde(default)]
    #[schema(format = DateTime, example = "2027-01-01T00:00:00Z")]
    pub expires_at: Option<String>,
    /// Optional verification rate limit. The platform's to set (`POST
    /// /api/admin/users/{user_id}/api-keys`): with a user's JWT, 403; a user's keys get
    /// the deployment's default (`KEYWARD_DEFAULT_RATE_LIMIT`).
    #[serde(default)]
    pub rate_limit: Option<RateLimitDto>,
    /// Optional JSON object (at most 4 KiB serialised), returned with every
    /// successful verification.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Optional usage credits: each valid verification takes its `cost` (default 1);
    /// at zero the key verifies as `USAGE_EXCEEDED`. Absent: unlimited. The
    /// platform's to set, as `rate_limit`; a user's keys get the deployment's default
    /// (`KEYWARD_DEFAULT_CREDITS`).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_u64)]
    pub remaining: Option<u64>,
    /// Optional: credits that renew (`remaining`, when absent, starts at `amount`).
    /// The platform's to set, as `remaining`; a user's keys get the deployment's
    /// default.
    #[serde(default)]
    pub refill: Option<RefillDto>,
    /// Optional: the networks the key may be used from (1 to 100 IPv4 or IPv6 CIDR
    /// networks, or addresses). A verification on behalf of an end client outside
    /// them, or naming none (`client_ip`), answers `IP_NOT_ALLOWED`. Absent: any.
    #[serde(default)]
    #[schema(example = json!(["203.0.113.0/24"]))]
    pub allowed_ips: Option<Vec<String>>,
}

/// A created key. `plain_text_key` is shown this once and cannot be retrieved again.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyResponse {
    pub api_key: ApiKeyResponse,
    #[schema(example = "agpt_x7Q2mV0aLr8TzKc1bW5nYs3hJ6dPqE9fGu4iXo7kR2N9dPqZ")]
    pub plain_text_key: String,
}

impl From<keyward_engine::CreatedKey> for CreateKeyResponse {
    fn from(created: keyward_engine::CreatedKey) -> Self {
        Self {
            api_key: created.key.into(),
            plain_text_key: created.plain_text.expose().to_owned(),
        }
    }
}

/// How long the old key keeps working after a rotation.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// 0 to 604,800 (a week); default 3,600. 0 ends the old key at once. Never
    /// beyond the old key's own expiry.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604_800, example = 3600)]
    pub grace_seconds: Option<u64>,
}

/// A rotated key: the new key with its plaintext (shown this once), and the old
/// key as it now is.
#[derive(Serialize, ToSchema)]
pub struct RotateKeyResponse {
    pub api_key: ApiKeyResponse,
    #[schema(example = "agpt_x7Q2mV0aLr8TzKc1bW5nYs3hJ6dPqE9fGu4iXo7kR2N9dPqZ")]
    pub plain_text_key: String,
    /// The old key: `rotated_to` names the new one, `expires_at` is the end of the
    /// grace period.
    pub previous_key: ApiKeyResponse,
}

/// The new permission list of a key (replaces the old one whole).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPermissionsRequest {
    #[schema(value_type = Vec<Permission>)]
    pub permissions: Vec<String>,
}

/// A key's new rate limit; null (or absent) removes it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRateLimitRequest {
    #[serde(default)]
    pub rate_limit: Option<RateLimitDto>,
}

/// A create body as the engine takes it. What does not read into its type is kept in
/// `unreadable`, and told with the other fields' problems when the engine validates.
/// The HTTP routes (a user's own, the platform's) and `keyward keys create` alike.
impl From<CreateKeyRequest> for NewKeyRequest {
    fn from(body: CreateKeyRequest) -> Self {
        let mut unreadable = Unreadable::default();
        let expires_at = unreadable.read("expires_at", body.expires_at, |text| {
            Timestamp::parse_rfc3339(&text)
        });
        let rate_limit = unreadable.read("rate_limit", body.rate_limit, RateLimitDto::parse);
        let metadata = unreadable.read("metadata", body.metadata, parse_metadata);
        let allowed_ips = unreadable.read("allowed_ips", body.allowed_ips, |list| {
            AllowedNetworks::parse(&list)
        });
        let refill = unreadable.read("refill", body.refill, RefillDto::parse);
        Self {
            name: body.name,
            description: body.description,
            permissions: body.permissions,
            expires_at,
            rate_limit,
            metadata,
            remaining: body.remaining,
            refill,
            allowed_ips,
            unreadable: unreadable.0,
        }
    }
}

/// A PATCH body as the engine takes it, as [`NewKeyRequest`]'s `From`. A name cannot
/// be cleared.
impl From<PatchKeyRequest> for KeyEdit {
    fn from(body: PatchKeyRequest) -> Self {
        let mut unreadable = Unreadable::default();
        let name = match body.name {
            Some(None) => {
                unreadable.0.push(FieldError {
                    field: "name",
                    message: "cannot be cleared".into(),
                });
                None
            }
            other => other.flatten(),
        };
        let expires_at = unreadable.read_change("expires_at", body.expires_at, |text| {
            Timestamp::parse_rfc3339(&text)
        });
        let metadata = unreadable.read_change("metadata", body.metadata, parse_metadata);
        let rate_limit = unreadable.read_change("rate_limit", body.rate_limit, RateLimitDto::parse);
        let allowed_ips = unreadable.read_change("allowed_ips", body.allowed_ips, |list| {
            AllowedNetworks::parse(&list)
        });
        let refill = unreadable.read_change("refill", body.refill, RefillDto::parse);
        Self {
            fields: EditFields {
                name,
                description: body.description,
                expires_at,
                metadata,
                remaining: body.remaining,
                refill,
                rate_limit,
                allowed_ips,
            },
            unreadable: unreadable.0,
        }
    }
}
