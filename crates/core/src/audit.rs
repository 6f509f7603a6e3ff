//! The audit trail's vocabulary: who made a change, and what an event records.
//!
//! Every change to a key is recorded with the change itself (same transaction), so
//! the trail cannot miss a committed change nor show one that did not happen. An
//! event names the fields that changed with their values before and after; a key's
//! secret or hash is never among them.

use std::fmt;

use crate::credential::CredentialId;
use crate::model::{KeyId, UserId};
use crate::time::Timestamp;

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The key's owner, through the management API (the JWT's `sub`).
    User(UserId),
    /// An administrator: a service with the static service token, or the CLI. The
    /// label says which (`service`, `cli`).
    Admin(String),
    /// A service with one of its own credentials: its name tells the operator which
    /// service (`gateway`, `billing`), its id which credential of that name.
    Credential { id: CredentialId, name: String },
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Admin(_) => "admin",
            Self::Credential { .. } => "credential",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::User(user) => user.as_str(),
            Self::Admin(label) => label,
            Self::Credential { name, .. } => name,
        }
    }

    /// The credential that acted, if one did.
    pub fn credential_id(&self) -> Option<CredentialId> {
        match self {
            Self::Credential { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// From the stored columns.
    pub fn from_parts(kind: &str, id: &str, credential_id: Option<CredentialId>) -> Option<Self> {
        match (kind, credential_id) {
            ("user", None) => UserId::from_stored(id).ok().map(Self::User),
            ("admin", None) => Some(Self::Admin(id.to_owned())),
            ("credential", Some(credential)) => Some(Self::Credential {
                id: credential,
                name: id.to_owned(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// Increasing: the order events were recorded in, and the pagination cursor.
    pub id: i64,
    pub at: Timestamp,
    pub actor: Actor,
    /// `create`, `suspend`, `reactivate`, `revoke`, `set_permissions`,
    /// `set_rate_limit`, `delete_user`.
    pub action: String,
    /// The key changed; `None` for `delete_user`, which names its keys in `changes`.
    pub key_id: Option<KeyId>,
    /// The owner of the key(s).
    pub user_id: UserId,
    /// A JSON object: `{field: {"before": …, "after": …}}` for each changed field.
    pub changes: String,
}

/// Which events to read, oldest first.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    pub key_id: Option<KeyId>,
    pub user_id: Option<UserId>,
    /// Events recorded at or after this time.
    pub since: Option<Timestamp>,
    /// Events after this one (the previous page's last id).
    pub after: Option<i64>,
    pub limit: u32,
}

impl EventQuery {
    /// The page to read: the default when none is asked (0), never above the maximum.
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => DEFAULT_EVENT_PAGE,
            n => n.min(MAX_EVENT_PAGE),
        }
    }
}

/// Page sizes for reading events.
pub const DEFAULT_EVENT_PAGE: u32 = 100;
pub const MAX_EVENT_PAGE: u32 = 1000;

/// Checks a page of events as a client asks for it: its size (by default
/// [`DEFAULT_EVENT_PAGE`], at most [`MAX_EVENT_PAGE`]) and its cursor.
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
