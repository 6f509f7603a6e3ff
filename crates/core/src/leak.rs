//! Leaked keys: what keyward does with a key found where it should not be, and what
//! it keeps of where it was seen.

use crate::lifecycle::Mutation;
use crate::model::{KeyStatus, expired};
use crate::text::{self, Lines};
use crate::time::Timestamp;

/// What a leak report does to a live key (`KEYWARD_LEAKED_KEY_ACTION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeakAction {
    /// It stops working for good (the default).
    #[default]
    Revoke,
    /// It stops working until its owner reactivates it.
    Suspend,
    /// It keeps working; the report is only recorded and announced.
    Report,
}

impl LeakAction {
    pub const ALL: [Self; 3] = [Self::Revoke, Self::Suspend, Self::Report];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::Suspend => "suspend",
            Self::Report => "report",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }

    /// The change it makes to a key, if any.
    pub fn mutation(self) -> Option<Mutation> {
        match self {
            Self::Revoke => Some(Mutation::Revoke),
            Self::Suspend => Some(Mutation::Suspend),
            Self::Report => None,
        }
    }
}

/// Whether a found key is one a leak report acts on: it still works, or would once
/// reactivated (not revoked, not expired).
pub fn is_live(status: KeyStatus, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    status != KeyStatus::Revoked && !expired(expires_at, now)
}

/// The longest URL, and the longest source name, a sighting keeps.
pub const MAX_URL_CHARS: usize = 2_000;
pub const MAX_SOURCE_CHARS: usize = 100;

/// Where a leaked key was seen, as the reporter says: kept in the audit trail and sent
/// with `api_key.leaked`. Text only (one line, no control characters), bounded;
/// anything else is dropped rather than refused, since the report itself must go on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sighting {
    /// Where it was found (`https://github.com/…/blob/…#L3`).
    pub url: Option<String>,
    /// Who found it (`github`, `report`, `scan`) and, for GitHub, where (`content`,
    /// `commit`, `issue`, …).
    pub source: Option<String>,
}

impl Sighting {
    pub fn new(url: Option<&str>, source: Option<&str>) -> Self {
        Self {
            url: url.and_then(|u| kept(u, MAX_URL_CHARS)),
            source: source.and_then(|s| kept(s, MAX_SOURCE_CHARS)),
        }
    }
}

fn kept(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text.chars().count() <= max && text::problem(text, Lines::One).is_none())
        .then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_names_are_the_settings_values() {
        for action in LeakAction::ALL {
            assert_eq!(LeakAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(LeakAction::parse("Revoke"), None);
        assert_eq!(LeakAction::default(), LeakAction::Revoke);
        assert_eq!(LeakAction::Report.mutation(), None);
        assert_eq!(LeakAction::Suspend.mutation(), Some(Mutation::Suspend));
    }

    #[test]
    fn a_sighting_keeps_only_plain_bounded_text() {
        let s = Sighting::new(
            Some(" https://github.com/a/b/blob/main/x#L3 "),
            Some("github:content"),
        );
        assert_eq!(
            s.url.as_deref(),
            Some("https://github.com/a/b/blob/main/x#L3")
        );
        assert_eq!(s.source.as_deref(), Some("github:content"));
        let long = "x".repeat(MAX_URL_CHARS + 1);
        let dropped = Sighting::new(Some(&long), Some("a\\nb\u{0}"));
        assert_eq!(dropped, Sighting::default());
        assert_eq!(Sighting::new(Some("  "), None), Sighting::default());
    }
}
