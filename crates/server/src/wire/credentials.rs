//! A service credential's shapes: the credential as shown (never its secret after
//! creation), the requests that create and rotate it, and the answer that carries a
//! new secret.

use keyward_core::credential::{CredentialStatus, NewCredentialRequest, ServiceCredential};
use keyward_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validate::Unreadable;

/// A scope's contract name; the document lists them with their meanings (from
/// `keyward_core::credential::ServiceScope`, their one declaration).
#[derive(ToSchema)]
#[schema(value_type = String, example = "keys.verify")]
#[allow(dead_code)]
pub struct ScopeName(String);

/// A credential's stored status. `EXPIRED` is not a status: compare `expires_at`
/// with now.
#[derive(Serialize, ToSchema, Debug, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CredentialStatusDto {
    Active,
    Revoked,
}

impl From<CredentialStatus> for CredentialStatusDto {
    fn from(status: CredentialStatus) -> Self {
        match status {
            CredentialStatus::Active => Self::Active,
            CredentialStatus::Revoked => Self::Revoked,
        }
    }
}

/// A service credential: everything but its secret.
#[derive(Serialize, ToSchema)]
pub struct CredentialResponse {
    pub id: Uuid,
    #[schema(example = "gateway")]
    pub name: String,
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<&'static str>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Who made it, as the audit trail names actors: `admin:service` (the static
    /// token), `admin:cli`, or `credential:<name>`.
    #[schema(example = "admin:cli")]
    pub created_by: String,
    /// When it was last presented, to the usage resolution (default 60 s).
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// From this time on it is refused.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    pub status: CredentialStatusDto,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// After a rotation with a grace period: until then, the secret it replaced is
    /// still accepted.
    #[schema(format = DateTime)]
    pub previous_secret_until: Option<String>,
}

impl From<ServiceCredential> for CredentialResponse {
    fn from(credential: ServiceCredential) -> Self {
        let time = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
        Self {
            id: *credential.id.as_uuid(),
            name: credential.name,
            scopes: credential.scopes.names(),
            created_at: credential.created_at.to_rfc3339(),
            created_by: credential.created_by,
            last_used_at: time(credential.last_used_at),
            expires_at: time(credential.expires_at),
            status: credential.status.into(),
            revoked_at: time(credential.revoked_at),
            previous_secret_until: time(credential.previous_secret_until),
        }
    }
}

/// A new credential.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredentialRequest {
    /// Which service holds it: 1–100 characters after trimming; no control
    /// characters. The audit trail names its changes `credential:<name>`.
    #[schema(example = "gateway")]
    pub name: String,
    /// At least one; each a contract name.
    #[schema(value_type = Vec<ScopeName>, example = json!(["keys.verify"]))]
    pub scopes: Vec<String>,
    /// RFC 3339; must be in the future. Absent: it does not expire.
    #[serde(default)]
    #[schema(format = DateTime, example = "2027-01-01T00:00:00Z")]
    pub expires_at: Option<String>,
}

/// A create body as the engine takes it (the HTTP route and `keyward credentials
/// create` alike); what does not read is told with the other fields' problems.
impl From<CreateCredentialRequest> for NewCredentialRequest {
    fn from(body: CreateCredentialRequest) -> Self {
        let mut unreadable = Unreadable::default();
        let expires_at = unreadable.read("expires_at", body.expires_at, |text| {
            Timestamp::parse_rfc3339(&text)
        });
        Self {
            name: body.name,
            scopes: body.scopes,
            expires_at,
            unreadable: unreadable.0,
        }
    }
}

/// How long the replaced secret keeps working after a rotation.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateCredentialRequest {
    /// 0 to 604,800 (a week); default 3,600. 0 ends the replaced secret at once.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604_800, example = 3600)]
    pub grace_seconds: Option<u64>,
}

/// A credential with its secret: shown this once, only its hash is kept.
#[derive(Serialize, ToSchema)]
pub struct CreatedCredentialResponse {
    pub credential: CredentialResponse,
    #[schema(example = "kwsvc_x7Q2mV0aLr8TzKc1bW5nYs3hJ6dPqE9fGu4iXo7kR2N9dPqZ")]
    pub secret: String,
}

impl From<keyward_engine::CreatedCredential> for CreatedCredentialResponse {
    fn from(created: keyward_engine::CreatedCredential) -> Self {
        Self {
            credential: created.credential.into(),
            secret: created.secret.expose().to_owned(),
        }
    }
}

/// Who a service secret is, and what it may do.
#[derive(Serialize, ToSchema)]
pub struct WhoAmIResponse {
    /// `admin`: the static service token; `credential`: a service credential.
    #[serde(rename = "type")]
    #[schema(example = "credential")]
    pub kind: &'static str,
    /// `service` for the static token; the credential's name.
    #[schema(example = "gateway")]
    pub id: String,
    /// The credential's id, for `credential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<Uuid>,
    /// The scopes it holds (every one, for the static token).
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<&'static str>,
}
