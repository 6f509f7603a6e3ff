//! Service credentials: the secrets the platform's services hold, each limited to the
//! scopes it needs (a gateway verifies keys and can do nothing else), instead of one
//! token that can do everything.
//!
//! A credential's secret has the keys' format under its own prefix (`kwsvc_`, base62
//! body, CRC32 checksum), so a leaked one is recognisable and a typo is refused before
//! any lookup; it is stored only as a peppered hash, like a key's.

use std::fmt;
use std::sync::LazyLock;

use crate::input::{FieldError, KeyName, ValidationErrors};
use crate::key::{KeyFormat, KeyPrefix};
use crate::model::expired;
use crate::time::Timestamp;

pub use crate::key::CREDENTIAL_PREFIX;

/// The longest grace period of a rotation: a week, as for keys.
pub const MAX_CREDENTIAL_GRACE_SECONDS: u64 = crate::lifecycle::MAX_ROTATION_GRACE_SECONDS;

/// The format of credentials' secrets (`kwsvc_` + 43 + 6 characters).
pub fn credential_format() -> &'static KeyFormat {
    static FORMAT: LazyLock<KeyFormat> = LazyLock::new(|| KeyFormat::new(KeyPrefix::credentials()));
    &FORMAT
}

/// What a credential may do. The names are contract (`keys.verify`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceScope {
    /// The verify API and forward authentication.
    KeysVerify,
    /// Read any user's keys and their audit trail.
    KeysRead,
    /// Create, change, suspend, rotate and revoke any user's keys; credits and rate
    /// limits; delete a user's keys.
    KeysWrite,
    /// Usage history of any key, user or the deployment.
    UsageRead,
    /// The audit feed across keys.
    AuditRead,
    /// Service credentials themselves.
    CredentialsManage,
    /// Webhook endpoints (reserved for the events API).
    WebhooksManage,
}

impl ServiceScope {
    /// Every scope, in the order they are listed.
    pub const ALL: [Self; 7] = [
        Self::KeysVerify,
        Self::KeysRead,
        Self::KeysWrite,
        Self::UsageRead,
        Self::AuditRead,
        Self::CredentialsManage,
        Self::WebhooksManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeysVerify => "keys.verify",
            Self::KeysRead => "keys.read",
            Self::KeysWrite => "keys.write",
            Self::UsageRead => "usage.read",
            Self::AuditRead => "audit.read",
            Self::CredentialsManage => "credentials.manage",
            Self::WebhooksManage => "webhooks.manage",
        }
    }

    /// What it lets a service do, for documents and help texts.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::KeysVerify => "the verify API and forward authentication",
            Self::KeysRead => "read any user's keys and their audit trail",
            Self::KeysWrite => {
                "create, change, suspend, reactivate and revoke any user's keys, with their \
                 credits and rate limits; delete a user's keys"
            }
            Self::UsageRead => "usage history of any key, user or the deployment",
            Self::AuditRead => "the audit trail across keys",
            Self::CredentialsManage => "service credentials themselves",
            Self::WebhooksManage => "webhook endpoints (reserved)",
        }
    }

    /// The scope of a contract name, exactly as written.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for ServiceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// Every scope: what the static service token holds.
    pub const ALL: Self = {
        let mut bits = 0;
        let mut i = 0;
        while i < ServiceScope::ALL.len() {
            bits |= ServiceScope::ALL[i].bit();
            i += 1;
        }
        Self(bits)
    };

    /// The scopes named, each at most once; every unknown name is reported, with the
    /// names there are.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut set = Self::default();
        let mut unknown = Vec::new();
        for name in names {
            match ServiceScope::parse(name.as_ref()) {
                Some(scope) => set.0 |= scope.bit(),
                None => unknown.push(name.as_ref()),
            }
        }
        if unknown.is_empty() {
            Ok(set)
        } else {
            Err(format!(
                "unknown scope(s): {}; allowed: {}",
                unknown.join(", "),
                Self::ALL.names().join(", ")
            ))
        }
    }

    pub fn contains(self, scope: ServiceScope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The first scope of this set that `held` lacks, if any: a service may give or
    /// manage only what it holds itself.
    pub fn first_outside(self, held: ScopeSet) -> Option<ServiceScope> {
        self.iter().find(|scope| !held.contains(*scope))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = ServiceScope> {
        ServiceScope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }

    /// The contract names, in [`ServiceScope::ALL`]'s order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(ServiceScope::as_str).collect()
    }
}

impl FromIterator<ServiceScope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = ServiceScope>>(scopes: I) -> Self {
        Self(scopes.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

crate::model::uuid_id!(
    /// A credential's id: a UUID v7 in the keys' canonical spelling.
    CredentialId
);

/// `ACTIVE` or `REVOKED`: a credential is not suspended, it is revoked and replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialStatus {
    Active,
    Revoked,
}

impl CredentialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Revoked => "REVOKED",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Active, Self::Revoked]
            .into_iter()
            .find(|status| status.as_str() == stored)
    }
}

/// A service credential: everything but its secret (and the secret's hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCredential {
    pub id: CredentialId,
    pub name: String,
    pub scopes: ScopeSet,
    pub created_at: Timestamp,
    /// Who created it, as the audit trail names actors (`admin:cli`, `credential:ops`).
    pub created_by: String,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub status: CredentialStatus,
    pub revoked_at: Option<Timestamp>,
    /// After a rotation with a grace period: until then, the secret it replaced still
    /// authenticates as this credential.
    pub previous_secret_until: Option<Timestamp>,
}

/// Which of a credential's secrets was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    Current,
    /// The one a rotation replaced.
    Previous,
}

impl ServiceCredential {
    /// Whether the secret presented authenticates at `now`: the credential is active
    /// and not expired, and a replaced secret is within its grace period. Every
    /// refusal is the same answer to the caller (no oracle).
    pub fn authenticates(&self, presented: Presented, now: Timestamp) -> bool {
        let secret_valid = match presented {
            Presented::Current => true,
            Presented::Previous => self.previous_secret_until.is_some_and(|until| now < until),
        };
        self.status == CredentialStatus::Active && !expired(self.expires_at, now) && secret_valid
    }
}

/// A request to create a credential, as received.
#[derive(Clone, Debug, Default)]
pub struct NewCredentialRequest {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// Fields the transport could not read (see [`crate::input::NewKeyRequest`]).
    pub unreadable: Vec<FieldError>,
}

/// A create request that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidNewCredential {
    pub name: String,
    pub scopes: ScopeSet,
    pub expires_at: Option<Timestamp>,
}

impl NewCredentialRequest {
    /// The name follows the keys' rule; at least one scope, each a contract name; an
    /// expiry in the future.
    pub fn validate(&self, now: Timestamp) -> Result<ValidNewCredential, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let name = match KeyName::parse(&self.name) {
            Ok(name) => Some(name),
            Err(message) => {
                errors.push("name", message);
                None
            }
        };
        let scopes = ScopeSet::parse(&self.scopes).unwrap_or_else(|message| {
            errors.push("scopes", message);
            ScopeSet::default()
        });
        if scopes.is_empty() && errors.0.iter().all(|e| e.field != "scopes") {
            let names = ScopeSet::ALL.names().join(", ");
            errors.push("scopes", format!("must name at least one of: {names}"));
        }
        if expired(self.expires_at, now) {
            errors.push("expires_at", "must be in the future");
        }
        errors.0.extend(self.unreadable.iter().cloned());
        errors.into_result(|| ValidNewCredential {
            name: name.expect("no error means a name").into_string(),
            scopes,
            expires_at: self.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn credential() -> ServiceCredential {
        ServiceCredential {
            id: CredentialId::new(at(1)),
            name: "gateway".into(),
            scopes: ScopeSet::parse(&["keys.verify"]).unwrap(),
            created_at: at(1),
            created_by: "admin:cli".into(),
            last_used_at: None,
            expires_at: None,
            status: CredentialStatus::Active,
            revoked_at: None,
            previous_secret_until: None,
        }
    }

    #[test]
    fn every_scope_has_its_contract_name_and_parses_back() {
        let names: Vec<_> = ServiceScope::ALL.map(ServiceScope::as_str).into();
        assert_eq!(
            names,
            [
                "keys.verify",
                "keys.read",
                "keys.write",
                "usage.read",
                "audit.read",
                "credentials.manage",
                "webhooks.manage"
            ]
        );
        for scope in ServiceScope::ALL {
            assert_eq!(ServiceScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(ScopeSet::ALL.names(), names);
        assert_eq!(ServiceScope::parse("KEYS.VERIFY"), None, "exact names only");
    }

    #[test]
    fn a_scope_set_holds_what_it_was_given_and_reports_every_unknown_name() {
        let set = ScopeSet::parse(&["usage.read", "keys.verify", "usage.read"]).unwrap();
        assert_eq!(set.names(), ["keys.verify", "usage.read"]);
        assert!(set.contains(ServiceScope::KeysVerify));
        assert!(!set.contains(ServiceScope::KeysWrite));
        let err = ScopeSet::parse(&["keys.verify", "admin", "*"]).unwrap_err();
        assert!(
            err.starts_with("unknown scope(s): admin, *; allowed: keys.verify"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_has_the_key_format_under_its_own_prefix() {
        let format = credential_format();
        let secret = format.generate();
        assert!(secret.expose().starts_with("kwsvc_"));
        assert_eq!(secret.expose().len(), 6 + 43 + 6);
        assert!(format.parse(secret.expose()).is_ok());
        let mut typo = secret.expose().to_owned();
        typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
        assert!(format.parse(&typo).is_err(), "the checksum catches a typo");
        let key = KeyFormat::default().generate();
        assert!(
            format.parse(key.expose()).is_err(),
            "a user key is not a credential"
        );
    }

    #[test]
    fn only_an_active_unexpired_credential_authenticates_and_a_replaced_secret_only_in_its_grace() {
        let active = credential();
        assert!(active.authenticates(Presented::Current, at(5)));
        assert!(
            !active.authenticates(Presented::Previous, at(5)),
            "no rotation"
        );
        let expiring = ServiceCredential {
            expires_at: Some(at(10)),
            ..credential()
        };
        assert!(expiring.authenticates(Presented::Current, at(9)));
        assert!(!expiring.authenticates(Presented::Current, at(10)));
        let revoked = ServiceCredential {
            status: CredentialStatus::Revoked,
            revoked_at: Some(at(3)),
            ..credential()
        };
        assert!(!revoked.authenticates(Presented::Current, at(5)));
        let rotated = ServiceCredential {
            previous_secret_until: Some(at(20)),
            ..credential()
        };
        assert!(rotated.authenticates(Presented::Previous, at(19)));
        assert!(!rotated.authenticates(Presented::Previous, at(20)));
        assert!(rotated.authenticates(Presented::Current, at(20)));
    }

    #[test]
    fn a_new_credential_needs_a_name_a_known_scope_and_a_future_expiry() {
        let request = NewCredentialRequest {
            name: "  gateway ".into(),
            scopes: vec!["keys.verify".into()],
            expires_at: Some(at(100)),
            unreadable: Vec::new(),
        };
        let valid = request.validate(at(1)).unwrap();
        assert_eq!(valid.name, "gateway");
        assert_eq!(valid.scopes.names(), ["keys.verify"]);
        let bad = NewCredentialRequest {
            name: "".into(),
            scopes: vec![],
            expires_at: Some(at(1)),
            unreadable: Vec::new(),
        };
        let fields: Vec<_> = bad
            .validate(at(1))
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["name", "scopes", "expires_at"]);
        let unknown = NewCredentialRequest {
            scopes: vec!["root".into()],
            ..request
        };
        let errors = unknown.validate(at(1)).unwrap_err();
        assert!(errors.0[0].message.contains("unknown scope(s): root"));
    }

    #[test]
    fn ids_take_only_the_canonical_spelling() {
        let id = CredentialId::new(at(1));
        assert_eq!(id.to_string().parse::<CredentialId>(), Ok(id));
        assert!(
            id.to_string()
                .to_uppercase()
                .parse::<CredentialId>()
                .is_err()
        );
    }
}
