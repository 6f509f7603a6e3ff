//! The verify API's shapes: the key to check, and the verdict.

use std::net::IpAddr;

use keyward_core::verify::{LimitScope, VerifyCode};
use keyward_engine::Verification;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::permissions::Permission;

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

/// Why a key passed or failed: one of `keyward_core::verify::VerifyCode`'s names (the
/// schema's values are filled in from it, see `http::openapi`).
#[derive(ToSchema)]
#[schema(value_type = String, example = "VALID")]
#[allow(dead_code)]
pub struct VerifyCodeName(String);

/// Whose limit refused: the key's own, or its owner's (all their keys share it).
#[derive(Serialize, ToSchema, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Key,
    User,
}

impl From<LimitScope> for Limit {
    fn from(scope: LimitScope) -> Self {
        match scope {
            LimitScope::Key => Self::Key,
            LimitScope::User => Self::User,
        }
    }
}

/// A code as its name on the wire.
fn code_name<S: serde::Serializer>(code: &VerifyCode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(code.as_str())
}

/// The verdict. An invalid key is still HTTP 200, with `valid: false`; the key's
/// fields are present whenever the key was found, whatever the code.
/// Borrows from the verification: this answer is built on every request to the
/// verify API, and copying the key's fields only to serialise them was measurable.
#[derive(Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    pub valid: bool,
    #[serde(serialize_with = "code_name")]
    #[schema(value_type = VerifyCodeName)]
    pub code: VerifyCode,
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
    /// For a key whose credits renew: when they are next set back to the refill's
    /// amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_refill_at: Option<String>,
    /// With `RATE_LIMITED`: seconds until the same request would be let through.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1.5)]
    pub retry_after: Option<f64>,
    /// With `RATE_LIMITED` or `USAGE_EXCEEDED`: whose limit refused, `key` (the key's
    /// own) or `user` (its owner's, which all the owner's keys share). Absent when a
    /// failing client was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// Present when a key was found: true when the key (or its owner) has a rate
    /// limit or usage credits, or the key has networks (`allowed_ips`), so that every
    /// use must reach keyward. A caller that reuses verdicts
    /// for a while (keyward-guard's remote mode) must not reuse this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metered: Option<bool>,
}

impl<'a> From<&'a Verification> for VerifyResponse<'a> {
    fn from(verification: &'a Verification) -> Self {
        let key = verification.key.as_deref();
        Self {
            valid: verification.is_valid(),
            code: verification.code,
            key_id: key.map(|k| *k.id.as_uuid()),
            user_id: key.map(|k| k.user_id.as_str()),
            permissions: key.map(|k| &*k.permissions),
            expires_at: key.and_then(|k| k.expires_at()).map(|t| t.to_rfc3339()),
            // Stored as JSON object text: passed through as it is, not re-parsed
            // into values on every verification.
            metadata: key
                .and_then(|k| k.metadata())
                .and_then(|m| serde_json::from_str(m.as_str()).ok()),
            remaining: verification.remaining,
            next_refill_at: verification.next_refill_at.map(|t| t.to_rfc3339()),
            retry_after: verification
                .retry_after
                .map(|wait| wait.as_micros().div_ceil(1_000) as f64 / 1_000.0),
            metered: key.map(keyward_engine::VerifiedKey::metered),
            limit: verification.limit.map(Into::into),
        }
    }
}
