//! Validation of what a user asks for when creating or changing a key.
//!
//! Every field is checked and every problem reported at once, so a client can fix
//! its request in one round trip. A value that passed is of a type that cannot be
//! invalid ([`KeyName`], [`Description`], [`ValidNewKey`]).

use std::fmt;

use crate::credits::Refill;
use crate::model::{MAX_REMAINING, Metadata, expired};
use crate::network::AllowedNetworks;
use crate::permissions::{Catalogue, PermissionSet};
use crate::rate::RateLimit;
use crate::text::{self, Lines};
use crate::time::Timestamp;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// One field's problem, phrased for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// All the problems found in one request.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn single(field: &'static str, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, message)])
    }

    pub(crate) fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub(crate) fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// A key's name: 1–100 characters after trimming, readable ([`text::problem`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err("must not be empty".into());
        }
        if chars > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if let Some(problem) = text::problem(name, Lines::One) {
            return Err(problem);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A key's description: at most 1000 characters; line breaks and tabs allowed, other
/// control characters not. Blank descriptions are stored as none.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let text = raw.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "must be at most {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        if let Some(problem) = text::problem(text, Lines::Many) {
            return Err(problem);
        }
        Ok(Some(Self(text.to_owned())))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A request to create a key, as received (names not yet checked).
#[derive(Clone, Debug, Default)]
pub struct NewKeyRequest {
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// Already a valid quota: transports check its bounds as they parse it.
    pub rate_limit: Option<RateLimit>,
    pub metadata: Option<Metadata>,
    /// Usage credits; `None`: unlimited (or, with `refill`, the refill's amount).
    pub remaining: Option<u64>,
    /// Credits set back to an amount at calendar boundaries. Already a valid rule.
    pub refill: Option<Refill>,
    /// The networks it may be used from; `None`: any. Already a valid list:
    /// transports read it with `AllowedNetworks::parse` (a problem goes into
    /// `unreadable`).
    pub allowed_ips: Option<AllowedNetworks>,
    /// Fields the transport could not read into their type (a time that is not RFC
    /// 3339, metadata that is not an object): told with the other fields' problems
    /// when the request is validated, so one answer lists them all.
    pub unreadable: Vec<FieldError>,
}

impl NewKeyRequest {
    /// The first field only the platform may set (usage credits, rate limit), if any.
    pub fn platform_field(&self) -> Option<&'static str> {
        platform_field([
            ("remaining", self.remaining.is_some()),
            ("refill", self.refill.is_some()),
            ("rate_limit", self.rate_limit.is_some()),
        ])
    }
}

/// Usage credits and rate limits are the platform's business (billing, plans): the
/// name of the first one a request sets, for the answer that refuses it to a key's
/// owner.
fn platform_field(fields: [(&'static str, bool); 3]) -> Option<&'static str> {
    fields
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(name, _)| name)
}

/// A create request that passed validation.
#[derive(Clone, Debug)]
pub struct ValidNewKey {
    pub name: KeyName,
    pub description: Option<Description>,
    pub permissions: PermissionSet,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimit>,
    pub metadata: Option<Metadata>,
    pub remaining: Option<u64>,
    pub refill: Option<Refill>,
    pub allowed_ips: Option<AllowedNetworks>,
}

impl NewKeyRequest {
    pub fn validate(
        &self,
        catalogue: &Catalogue,
        now: Timestamp,
    ) -> Result<ValidNewKey, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let name = KeyName::parse(&self.name)
            .map_err(|m| errors.push("name", m))
            .ok();
        let description = match self.description.as_deref().map(Description::parse) {
            None => None,
            Some(Ok(d)) => d,
            Some(Err(m)) => {
                errors.push("description", m);
                None
            }
        };
        let permissions = validate_permissions(catalogue, &self.permissions)
            .map_err(|m| errors.push("permissions", m))
            .unwrap_or_default();
        if expired(self.expires_at, now) {
            errors.push("expires_at", "must be in the future");
        }
        if self.remaining.is_some_and(|n| n > MAX_REMAINING) {
            errors.push("remaining", format!("must be at most {MAX_REMAINING}"));
        }
        errors.0.extend(self.unreadable.iter().cloned());
        errors.into_result(|| ValidNewKey {
            name: name.expect("no error means a name"),
            description,
            permissions,
            expires_at: self.expires_at,
            rate_limit: self.rate_limit,
            metadata: self.metadata.clone(),
            // Credits that renew start with their amount.
            remaining: self.remaining.or(self.refill.map(Refill::amount)),
            refill: self.refill,
            allowed_ips: self.allowed_ips.clone(),
        })
    }
}

/// The attributes a `PATCH` may change: `None` leaves a field as it is;
/// `Some(None)` clears one that may be empty.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EditFields {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub expires_at: Option<Option<Timestamp>>,
    pub metadata: Option<Option<Metadata>>,
    /// Sets the usage credits left (a top-up), or removes the limit (`Some(None)`).
    pub remaining: Option<Option<u64>>,
    /// Sets or removes (`Some(None)`) the rule the credits renew by; setting one on a
    /// key without credits gives it the refill's amount.
    pub refill: Option<Option<Refill>>,
    /// Sets or removes (`Some(None)`) the verification rate limit.
    pub rate_limit: Option<Option<RateLimit>>,
    /// Binds the key to networks, or lets it be used from anywhere (`Some(None)`).
    pub allowed_ips: Option<Option<AllowedNetworks>>,
}

/// A change to a key's editable attributes, as received.
#[derive(Clone, Debug, Default)]
pub struct KeyEdit {
    pub fields: EditFields,
    /// Fields the transport could not read (see [`NewKeyRequest::unreadable`]).
    pub unreadable: Vec<FieldError>,
}

impl From<EditFields> for KeyEdit {
    fn from(fields: EditFields) -> Self {
        Self {
            fields,
            unreadable: Vec::new(),
        }
    }
}

/// An edit that passed validation ([`KeyEdit::validate`] makes the only ones); what
/// [`crate::lifecycle::Mutation::Edit`] carries.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ValidEdit(EditFields);

impl ValidEdit {
    pub fn fields(&self) -> &EditFields {
        &self.0
    }
}

impl KeyEdit {
    /// Checks each given field as on create: an expiry may move or be cleared, never
    /// into the past.
    pub fn validate(&self, now: Timestamp) -> Result<ValidEdit, ValidationErrors> {
        let fields = &self.fields;
        let mut errors = ValidationErrors::default();
        let name = match fields.name.as_deref().map(KeyName::parse) {
            None => None,
            Some(Ok(name)) => Some(name.into_string()),
            Some(Err(m)) => {
                errors.push("name", m);
                None
            }
        };
        let description = match &fields.description {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => match Description::parse(text) {
                Ok(d) => Some(d.map(Description::into_string)),
                Err(m) => {
                    errors.push("description", m);
                    None
                }
            },
        };
        if expired(fields.expires_at.flatten(), now) {
            errors.push("expires_at", "must be in the future");
        }
        if matches!(fields.remaining, Some(Some(n)) if n > MAX_REMAINING) {
            errors.push("remaining", format!("must be at most {MAX_REMAINING}"));
        }
        if matches!(
            (fields.remaining, fields.refill),
            (Some(None), Some(Some(_)))
        ) {
            errors.push(
                "refill",
                "renews usage credits: it cannot be set while `remaining` is removed (null)",
            );
        }
        errors.0.extend(self.unreadable.iter().cloned());
        errors.into_result(|| {
            ValidEdit(EditFields {
                name,
                description,
                ..fields.clone()
            })
        })
    }

    /// The first field only the platform may set (usage credits, rate limit), if any.
    pub fn platform_field(&self) -> Option<&'static str> {
        platform_field([
            ("remaining", self.fields.remaining.is_some()),
            ("refill", self.fields.refill.is_some()),
            ("rate_limit", self.fields.rate_limit.is_some()),
        ])
    }
}

/// Checks a replacement permission list (`PUT …/permissions`).
pub fn validate_permissions<S: AsRef<str>>(
    catalogue: &Catalogue,
    names: &[S],
) -> Result<PermissionSet, String> {
    catalogue.set_of(names).map_err(|unknown| {
        format!(
            "unknown permission(s): {}; allowed: {}",
            unknown.0.join(", "),
            catalogue.names().collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000).unwrap()
    }

    fn request(name: &str) -> NewKeyRequest {
        NewKeyRequest {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(KeyName::parse("  ci  ").unwrap().as_str(), "ci");
        assert!(KeyName::parse("   ").is_err());
        assert!(
            KeyName::parse(&"é".repeat(100)).is_ok(),
            "characters, not bytes"
        );
        assert!(KeyName::parse(&"x".repeat(101)).is_err());
        assert!(KeyName::parse("a\u{0}b").is_err());
        assert!(KeyName::parse("a\u{1b}[31mb").is_err());
        assert!(
            KeyName::parse("invoice\u{202E}fdp.exe").is_err(),
            "bidi override"
        );
        assert!(KeyName::parse("zero\u{200B}width").is_err());
        assert!(Description::parse("tag\u{E0041}").is_err());
        assert!(KeyName::parse("naïve café 鍵").is_ok());
    }

    #[test]
    fn descriptions_allow_line_breaks_but_not_other_controls() {
        assert_eq!(Description::parse("  ").unwrap(), None);
        assert!(
            Description::parse("line one\nline two\ttab")
                .unwrap()
                .is_some()
        );
        assert!(Description::parse("bell\u{7}").is_err());
        assert!(Description::parse(&"d".repeat(1000)).is_ok());
        assert!(Description::parse(&"d".repeat(1001)).is_err());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let req = NewKeyRequest {
            name: "".into(),
            description: Some("\u{7}".into()),
            permissions: vec!["NOPE".into()],
            expires_at: Some(now()),
            rate_limit: None,
            metadata: None,
            remaining: None,
            refill: None,
            allowed_ips: None,
            unreadable: vec![FieldError {
                field: "metadata",
                message: "not an object".into(),
            }],
        };
        let errors = req.validate(&Catalogue::default(), now()).unwrap_err();
        let fields: Vec<_> = errors.0.iter().map(|e| e.field).collect();
        // The fields a transport could not read come after the others.
        assert_eq!(
            fields,
            [
                "name",
                "description",
                "permissions",
                "expires_at",
                "metadata"
            ]
        );
    }

    #[test]
    fn an_empty_permission_list_makes_an_identity_only_key() {
        let valid = request("id-only")
            .validate(&Catalogue::default(), now())
            .unwrap();
        assert!(valid.permissions.is_empty());
    }

    #[test]
    fn expiry_must_be_in_the_future() {
        let mut req = request("k");
        req.expires_at = Some(now().plus_millis(1));
        assert!(req.validate(&Catalogue::default(), now()).is_ok());
        req.expires_at = Some(now());
        assert!(req.validate(&Catalogue::default(), now()).is_err());
    }

    #[test]
    fn an_edit_checks_only_the_fields_it_gives() {
        let nothing = KeyEdit::default().validate(now()).unwrap();
        assert_eq!(nothing, ValidEdit::default());
        let edit = KeyEdit::from(EditFields {
            name: Some("  renamed ".into()),
            description: Some(Some("  ".into())),
            expires_at: Some(None),
            ..EditFields::default()
        });
        let valid = edit.validate(now()).unwrap();
        assert_eq!(valid.fields().name.as_deref(), Some("renamed"));
        assert_eq!(valid.fields().description, Some(None), "blank clears");
        assert_eq!(valid.fields().expires_at, Some(None));
        let bad = KeyEdit::from(EditFields {
            name: Some("".into()),
            expires_at: Some(Some(now())),
            ..EditFields::default()
        });
        let fields: Vec<_> = bad
            .validate(now())
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["name", "expires_at"]);
    }
}
