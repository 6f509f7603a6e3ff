//! The API key as the service knows it. Field names follow the JSON contract.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::credits::Refill;
use crate::network::AllowedNetworks;
use crate::rate::RateLimit;
use crate::time::Timestamp;

/// Declares an id type like [`KeyId`] for another record (a service credential, a
/// webhook endpoint): a UUID v7 in the same canonical spelling, made, parsed and shown
/// as a key id is, and kept apart from it by its type.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn new(now: $crate::time::Timestamp) -> Self {
                Self(*$crate::model::KeyId::new(now).as_uuid())
            }

            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> &uuid::Uuid {
                &self.0
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::model::InvalidKeyId;

            /// Only the canonical spelling, as for key ids.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse::<$crate::model::KeyId>().map(|id| Self(*id.as_uuid()))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}
pub(crate) use uuid_id;

/// A key's id: a UUID v7, so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(Uuid);

impl KeyId {
    /// A new v7 id for a key created at `now`.
    pub fn new(now: Timestamp) -> Self {
        let millis = u64::try_from(now.as_millis()).unwrap_or(0);
        let mut random = [0u8; 10];
        getrandom::fill(&mut random).expect("the OS random source failed");
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl FromStr for KeyId {
    type Err = InvalidKeyId;

    /// Only the canonical spelling, the one keyward writes: 36 characters, lowercase,
    /// hyphenated. A UUID parser also takes uppercase, no hyphens, `{braces}` and
    /// `urn:uuid:`; if those named the same key, a proxy rule written against one
    /// spelling could be slipped past with another.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if !canonical {
            return Err(InvalidKeyId);
        }
        Uuid::try_parse(s).map(Self).map_err(|_| InvalidKeyId)
    }
}

/// Text that is not a key id in its canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid key id (expected a lowercase, hyphenated UUID)")]
pub struct InvalidKeyId;

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The owner of keys: the identity provider's subject (`sub`), opaque to keyward.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

/// The subject of keyward's own audit records (see [`UserId::system`]).
pub const SYSTEM_SUBJECT: &str = "keyward:system";

/// The longest user id accepted, in characters.
pub const MAX_USER_ID_LEN: usize = 255;

/// A user id that is empty, too long, padded with spaces or not plain readable text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user id must be 1-{MAX_USER_ID_LEN} characters without leading or trailing spaces: {0}")]
pub struct InvalidUserId(String);

impl UserId {
    /// A user id from outside (a JWT's `sub`, a path, the command line): the rules of
    /// key names, and no leading or trailing whitespace, because `" alice"` would be
    /// another user than `alice` that looks the same.
    pub fn parse(id: &str) -> Result<Self, InvalidUserId> {
        let chars = id.chars().count();
        if chars == 0 || chars > MAX_USER_ID_LEN {
            return Err(InvalidUserId(format!("it has {chars}")));
        }
        if id.starts_with(char::is_whitespace) || id.ends_with(char::is_whitespace) {
            return Err(InvalidUserId("it starts or ends with whitespace".into()));
        }
        if let Some(problem) = crate::text::problem(id, crate::text::Lines::One) {
            return Err(InvalidUserId(format!("it {problem}")));
        }
        if id == SYSTEM_SUBJECT {
            return Err(InvalidUserId(format!(
                "{SYSTEM_SUBJECT} is reserved for keyward's own audit records"
            )));
        }
        Ok(Self(id.to_owned()))
    }

    /// What the audit trail files keyward's own records under, which concern no
    /// user's key (an endpoint disabled for failing). No user can have this id.
    pub fn system() -> Self {
        Self(SYSTEM_SUBJECT.to_owned())
    }

    /// A user id read back from the database: ids stored before the rules above
    /// (only "no control characters") must stay readable, so their keys can still be
    /// listed, verified and deleted.
    pub fn from_stored(id: &str) -> Result<Self, InvalidUserId> {
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err(InvalidUserId(
                "it is empty or holds control characters".into(),
            ));
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose keys an operation may see and change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// One user's keys: another user's key is simply not found, and changes are
    /// recorded as made by this user.
    User(&'a UserId),
    /// Any key: the platform's admin tools; changes are recorded as the admin's.
    Admin,
}

impl<'a> Scope<'a> {
    /// The user the operation is limited to, if any.
    pub fn user(self) -> Option<&'a UserId> {
        match self {
            Self::User(user) => Some(user),
            Self::Admin => None,
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

/// The stored status. `EXPIRED` is not a status: it is derived from `expires_at`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum KeyStatus {
    Active,
    Suspended,
    Revoked,
}

impl KeyStatus {
    pub const ALL: [KeyStatus; 3] = [Self::Active, Self::Suspended, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::Revoked => "REVOKED",
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status string that is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for KeyStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A key's metadata: a JSON object chosen by the key's owner, returned with every
/// successful verification so the calling service gets its context without another
/// lookup. Held as its serialised text; transports check that it is an object.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Metadata(String);

pub use crate::credits::MAX_REMAINING;

/// The largest metadata, serialised.
pub const MAX_METADATA_BYTES: usize = 4096;

impl Metadata {
    /// Takes the serialised text of a JSON object (the caller parsed it as one).
    pub fn from_json_object(text: String) -> Result<Self, String> {
        if text.len() > MAX_METADATA_BYTES {
            return Err(format!(
                "must be at most {MAX_METADATA_BYTES} bytes serialised (got {})",
                text.len()
            ));
        }
        if !(text.starts_with('{') && text.ends_with('}')) {
            return Err("must be a JSON object".into());
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API key's public record: everything but the secret (and its hash).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApiKey {
    pub id: KeyId,
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    /// First characters of the key, for display only; not unique.
    pub prefix: String,
    /// Last characters of the key, for display only; not unique.
    pub postfix: String,
    pub status: KeyStatus,
    /// Permission names, de-duplicated, in catalogue order at the time they were set.
    pub permissions: Vec<String>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// Verifications allowed per period (per instance; see docs/RELIABILITY.md).
    pub rate_limit: Option<RateLimit>,
    pub metadata: Option<Metadata>,
    /// Usage credits left: each valid verification consumes its cost; at zero the
    /// key verifies as `USAGE_EXCEEDED`. `None`: no credits, no limit.
    pub remaining: Option<u64>,
    /// Credits set back to an amount at calendar boundaries; only with `remaining`.
    pub refill: Option<Refill>,
    /// When `remaining` was last set, by the platform or by a refill (the boundary it
    /// refilled for): a refill is due once a boundary has passed since.
    pub credits_set_at: Option<Timestamp>,
    /// The key this one replaced (rotation).
    pub rotated_from: Option<KeyId>,
    /// The key that replaced this one; this one then works until the end of the
    /// rotation's grace period.
    pub rotated_to: Option<KeyId>,
    /// The networks it may be used from (the end client's address); `None`: any.
    pub allowed_ips: Option<AllowedNetworks>,
}

/// A new key's record: a fresh id (or an imported key's, [`NewKey::id`]), its owner,
/// name and creation time, and display parts from the key itself ([`NewKey::secret`])
/// or, for an imported key, from where it was made ([`NewKey::display`]); everything
/// else starts empty (active, no permissions, no description, expiry, limits,
/// metadata or credits, never used, not rotated). Set more with struct update syntax:
/// `ApiKey { permissions, ..NewKey::new(owner, name, now).secret(&plain).build() }`.
#[derive(Clone, Debug)]
#[must_use = "a new key does nothing until it is built and stored"]
pub struct NewKey(ApiKey);

impl NewKey {
    /// A key of `owner` named `name`, created at `created_at`, with a fresh id.
    pub fn new(owner: UserId, name: impl Into<String>, created_at: Timestamp) -> Self {
        Self(ApiKey {
            id: KeyId::new(created_at),
            user_id: owner,
            name: name.into(),
            description: None,
            prefix: String::new(),
            postfix: String::new(),
            status: KeyStatus::Active,
            permissions: Vec::new(),
            created_at,
            last_used_at: None,
            revoked_at: None,
            expires_at: None,
            rate_limit: None,
            metadata: None,
            rotated_from: None,
            rotated_to: None,
            allowed_ips: None,
            remaining: None,
            refill: None,
            credits_set_at: None,
        })
    }

    /// Shows the key as `plain` starts and ends.
    pub fn secret(self, plain: &crate::key::PlainKey) -> Self {
        let (prefix, postfix) = (plain.display_prefix(), plain.display_postfix());
        self.display(prefix, postfix)
    }

    /// Shows the key with these parts (an imported key's, kept from where it was made).
    pub fn display(mut self, prefix: &str, postfix: &str) -> Self {
        prefix.clone_into(&mut self.0.prefix);
        postfix.clone_into(&mut self.0.postfix);
        self
    }

    /// Keeps an id given elsewhere (an imported key's).
    pub fn id(mut self, id: KeyId) -> Self {
        self.0.id = id;
        self
    }

    pub fn build(self) -> ApiKey {
        self.0
    }
}

impl ApiKey {
    /// Brings the credits to `now`: due to be refilled (by a verification that has
    /// not happened yet), they are shown refilled, as the next use will find them.
    pub fn credits_as_of(&mut self, now: Timestamp) {
        if let Some(refill) = self.refill.filter(|r| r.due(self.credits_set_at, now)) {
            self.remaining = Some(refill.amount());
            self.credits_set_at = Some(refill.period_start(now));
        }
    }

    /// When its credits are next set back (see [`ApiKey::credits_as_of`] for a key
    /// read some time ago).
    pub fn next_refill_at(&self) -> Option<Timestamp> {
        let since = self.credits_set_at.unwrap_or(self.created_at);
        self.refill.map(|refill| refill.next_after(since))
    }
}

/// The expiry rule, the one place it is written: a key with an expiry is expired from
/// that instant on (not after it); a key without one never is.
pub fn expired(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_user_can_take_keywards_own_subject() {
        assert!(UserId::parse(SYSTEM_SUBJECT).is_err());
        assert_eq!(UserId::system().as_str(), SYSTEM_SUBJECT);
        assert!(
            UserId::from_stored(SYSTEM_SUBJECT).is_ok(),
            "its records read back"
        );
    }

    #[test]
    fn key_ids_are_v7_and_sort_by_creation_time() {
        let early = KeyId::new(Timestamp::from_millis(1_700_000_000_000).unwrap());
        let late = KeyId::new(Timestamp::from_millis(1_700_000_000_001).unwrap());
        assert_eq!(early.as_uuid().get_version_num(), 7);
        assert!(early < late);
        assert_eq!(early.to_string().parse::<KeyId>().unwrap(), early);
        assert!("not-a-uuid".parse::<KeyId>().is_err());
    }

    #[test]
    fn user_ids_refuse_empty_long_and_control_characters() {
        assert!(UserId::parse("user-1").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"x".repeat(256)).is_err());
        assert!(UserId::parse("a\nb").is_err());
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in KeyStatus::ALL {
            assert_eq!(status.as_str().parse::<KeyStatus>().unwrap(), status);
        }
        assert!("EXPIRED".parse::<KeyStatus>().is_err());
    }
}
