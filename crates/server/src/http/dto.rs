//! The JSON shapes of the API (the contract), converted from the core model.

use std::net::IpAddr;

use keyward_core::audit::{DEFAULT_EVENT_PAGE, KeyEvent, MAX_EVENT_PAGE};
use keyward_core::model::{ApiKey, KeyStatus, Metadata};
use keyward_core::rate::RateLimit;
use keyward_core::verify::VerifyCode;
use keyward_engine::Verification;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A permission name from the configured catalogue.
#[derive(ToSchema)]
#[schema(value_type = String, example = "READ_GRAPH")]
#[allow(dead_code)]
pub struct Permission(String);

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
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(key: ApiKey) -> Self {
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
        }
    }
}

/// Metadata as sent: any JSON object, at most 4 KiB serialised.
pub fn parse_metadata(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<Metadata, String> {
    Metadata::from_json_object(serde_json::Value::Object(object).to_string())
}

/// For `PATCH` fields: absent is `None` (unchanged), `null` is `Some(None)` (clear).
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
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
    /// Sets the verification rate limit; null removes it. The platform's to set
    /// (`PATCH /api/admin/api-keys/{id}`): with a user's JWT, 403.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimitDto>)]
    pub rate_limit: Option<Option<RateLimitDto>>,
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
}

/// A created key. `plain_text_key` is shown this once and cannot be retrieved again.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyResponse {
    pub api_key: ApiKeyResponse,
    #[schema(example = "agpt_x7Q2mV0aLr8TzKc1bW5nYs3hJ6dPqE9fGu4iXo7kR2N9dPqZ")]
    pub plain_text_key: String,
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

/// A key to verify, and the permissions it must hold (all of them).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The key as presented by the end client.
    #[schema(value_type = String, example = "agpt_x7Q2mV0aLr8TzKc1bW5nYs3hJ6dPqE9fGu4iXo7kR2N9dPqZ")]
    pub key: SecretString,
    /// Required permissions; unknown names are refused (422).
    #[serde(default)]
    #[schema(value_type = Vec<Permission>)]
    pub permissions: Vec<String>,
    /// The end client's IP address, as the calling service saw it. Failed
    /// verifications are counted per address (IPv6 per /64); past the limit
    /// (default 60 a minute) that client's verifications answer `RATE_LIMITED`
    /// before any key is looked at. Other clients are not affected.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "ip", example = "203.0.113.7")]
    pub client_ip: Option<IpAddr>,
    /// Usage credits a valid verification takes from a key that has credits
    /// (default 1; 0 only checks that some are left). Keys without credits ignore it.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_u64)]
    pub cost: Option<u64>,
}

/// Why a key passed or failed.
#[derive(Serialize, ToSchema, Debug, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCodeDto {
    Valid,
    Malformed,
    NotFound,
    Suspended,
    Revoked,
    Expired,
    InsufficientPermissions,
    RateLimited,
    UsageExceeded,
}

impl From<VerifyCode> for VerifyCodeDto {
    fn from(code: VerifyCode) -> Self {
        match code {
            VerifyCode::Valid => Self::Valid,
            VerifyCode::Malformed => Self::Malformed,
            VerifyCode::NotFound => Self::NotFound,
            VerifyCode::Suspended => Self::Suspended,
            VerifyCode::Revoked => Self::Revoked,
            VerifyCode::Expired => Self::Expired,
            VerifyCode::InsufficientPermissions => Self::InsufficientPermissions,
            VerifyCode::RateLimited => Self::RateLimited,
            VerifyCode::UsageExceeded => Self::UsageExceeded,
        }
    }
}

/// The verdict. An invalid key is still HTTP 200, with `valid: false`; the key's
/// fields are present whenever the key was found, whatever the code.
/// Borrows from the verification: this answer is built on every request to the
/// verify API, and copying the key's fields only to serialise them was measurable.
#[derive(Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    pub valid: bool,
    #[schema(value_type = VerifyCodeDto)]
    pub code: VerifyCodeDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Permission>>)]
    pub permissions: Option<&'a [String]>,
    /// Absent when the key does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The key's metadata (its owner's JSON object), when it has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<&'a serde_json::value::RawValue>,
    /// For a key with usage credits, after a `VALID` verification: how many are left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// With `RATE_LIMITED`: seconds until the same request would be let through.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1.5)]
    pub retry_after: Option<f64>,
    /// Present when a key was found: true when the key has a rate limit or usage
    /// credits, so that every use must reach keyward. A caller that reuses verdicts
    /// for a while (keyward-guard's remote mode) must not reuse this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metered: Option<bool>,
}

impl<'a> From<&'a Verification> for VerifyResponse<'a> {
    fn from(verification: &'a Verification) -> Self {
        let key = verification.key.as_deref();
        Self {
            valid: verification.is_valid(),
            code: verification.code.into(),
            key_id: key.map(|k| *k.id.as_uuid()),
            user_id: key.map(|k| k.user_id.as_str()),
            permissions: key.map(|k| k.permissions.as_slice()),
            expires_at: key.and_then(|k| k.expires_at).map(|t| t.to_rfc3339()),
            // Stored as JSON object text: passed through as it is, not re-parsed
            // into values on every verification.
            metadata: key
                .and_then(|k| k.metadata.as_ref())
                .and_then(|m| serde_json::from_str(m.as_str()).ok()),
            remaining: verification.remaining,
            retry_after: verification
                .retry_after
                .map(|wait| wait.as_micros().div_ceil(1_000) as f64 / 1_000.0),
            metered: key.map(|k| k.rate_limit.is_some() || k.has_credits),
        }
    }
}

/// The permission names a deployment accepts.
#[derive(Serialize, ToSchema)]
pub struct PermissionCatalogue {
    #[schema(value_type = Vec<Permission>)]
    pub permissions: Vec<String>,
}

/// A deleted user.
#[derive(Serialize, ToSchema)]
pub struct DeletedUserResponse {
    pub user_id: String,
    /// How many keys were removed.
    pub deleted_keys: u64,
}

/// Liveness/readiness answer.
#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Who made a change.
#[derive(Serialize, ToSchema)]
pub struct ActorDto {
    /// `user`: the key's owner, through this API; `admin`: a service with the
    /// service token, or the CLI.
    #[serde(rename = "type")]
    #[schema(example = "user")]
    pub kind: &'static str,
    /// The user id, or `service` / `cli` for administrators.
    pub id: String,
}

/// One recorded change to a key (or, for `delete_user`, to a user's keys).
#[derive(Serialize, ToSchema)]
pub struct KeyEventResponse {
    /// Increasing in the order events were recorded; pass the last one seen as
    /// `after` to read on.
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    pub actor: ActorDto,
    /// `create`, `suspend`, `reactivate`, `revoke`, `set_permissions`,
    /// `set_rate_limit`, `edit` (PATCH), `rotate`, `import` (AutoGPT import) or
    /// `delete_user`.
    #[schema(example = "suspend")]
    pub action: String,
    /// Absent for `delete_user`, which lists the removed keys in `changes.keys`.
    pub key_id: Option<Uuid>,
    /// The owner of the key(s).
    pub user_id: String,
    /// For each field that changed: `{"before": …, "after": …}`. Never a secret.
    #[schema(value_type = Object, example = json!({"status": {"before": "ACTIVE", "after": "SUSPENDED"}}))]
    pub changes: serde_json::Value,
}

impl From<KeyEvent> for KeyEventResponse {
    fn from(event: KeyEvent) -> Self {
        Self {
            id: event.id,
            at: event.at.to_rfc3339(),
            actor: ActorDto {
                kind: event.actor.kind(),
                id: event.actor.id().to_owned(),
            },
            action: event.action,
            key_id: event.key_id.map(|id| *id.as_uuid()),
            user_id: event.user_id.as_str().to_owned(),
            // Written by the store as a JSON object; anything else is a bug, shown
            // as null rather than failing the whole page.
            changes: serde_json::from_str(&event.changes).unwrap_or_default(),
        }
    }
}

/// A page of events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<KeyEventResponse>,
    /// When the page is full: the `after` value for the next page. Null when there
    /// is nothing more (for now).
    pub next_after: Option<i64>,
}

impl EventPage {
    pub fn new(events: Vec<KeyEvent>, limit: u32) -> Self {
        let next_after = (events.len() as u64 >= u64::from(limit))
            .then(|| events.last().map(|e| e.id))
            .flatten();
        Self {
            events: events.into_iter().map(Into::into).collect(),
            next_after,
        }
    }
}

/// Paging through a key's events.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyEventsQuery {
    /// Events after this one (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Selecting and paging through events across keys.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminEventsQuery {
    /// Only this user's keys.
    pub user_id: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Events after this one (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Checks a page size and a cursor.
pub fn page(after: Option<i64>, limit: Option<u32>) -> Result<(Option<i64>, u32), String> {
    let limit = limit.unwrap_or(DEFAULT_EVENT_PAGE);
    if !(1..=MAX_EVENT_PAGE).contains(&limit) {
        return Err(format!("limit: must be between 1 and {MAX_EVENT_PAGE}"));
    }
    if after.is_some_and(|a| a < 0) {
        return Err("after: must not be negative".into());
    }
    Ok((after, limit))
}
