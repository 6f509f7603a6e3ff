//! Which changes a key's status allows, and what each change writes.
//!
//! ```text
//!   ACTIVE ──suspend──▶ SUSPENDED ──reactivate──▶ ACTIVE
//!     │                    │
//!     └──────revoke────────┴──────▶ REVOKED   (terminal)
//! ```
//!
//! Repeating a change that is already in effect (suspending a suspended key,
//! revoking a revoked one, setting the same permissions) succeeds and writes nothing,
//! so clients can retry safely; a revoked key keeps its first `revoked_at`.
//! Stores call [`apply`] inside the transaction that reads the row, so the rule is
//! decided on the row as it is, not as it was when the request arrived.

use crate::credits::Refill;
use crate::input::ValidEdit;
use crate::model::{ApiKey, KeyId, KeyStatus, Metadata, expired};
use crate::network::AllowedNetworks;
use crate::rate::RateLimit;
use crate::time::Timestamp;

/// A change a user (or admin) asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    Suspend,
    Reactivate,
    Revoke,
    /// Replace the permissions with these names (already validated, catalogue order).
    SetPermissions(Vec<String>),
    /// Set or remove the key's verification rate limit.
    SetRateLimit(Option<RateLimit>),
    /// Change the editable attributes (name, description, expiry, metadata).
    Edit(ValidEdit),
}

impl Mutation {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reactivate => "reactivate",
            Self::Revoke => "revoke",
            Self::SetPermissions(_) => "set_permissions",
            Self::SetRateLimit(_) => "set_rate_limit",
            Self::Edit(_) => "edit",
        }
    }
}

/// The part of a key that mutations change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    pub status: KeyStatus,
    pub revoked_at: Option<Timestamp>,
    pub permissions: Vec<String>,
    pub rate_limit: Option<RateLimit>,
    pub name: String,
    pub description: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub metadata: Option<Metadata>,
    pub remaining: Option<u64>,
    pub refill: Option<Refill>,
    /// When `remaining` was set: moved by a change that sets a new amount.
    pub credits_set_at: Option<Timestamp>,
    pub allowed_ips: Option<AllowedNetworks>,
    /// The key was replaced by a rotation: it ends with its grace period, which no
    /// change may move (that would bring it back beside its replacement).
    pub rotated: bool,
}

impl KeyState {
    /// The part of `key` that mutations change.
    pub fn of(key: &ApiKey) -> Self {
        Self {
            status: key.status,
            revoked_at: key.revoked_at,
            permissions: key.permissions.clone(),
            rate_limit: key.rate_limit,
            name: key.name.clone(),
            description: key.description.clone(),
            expires_at: key.expires_at,
            metadata: key.metadata.clone(),
            remaining: key.remaining,
            refill: key.refill,
            credits_set_at: key.credits_set_at,
            allowed_ips: key.allowed_ips.clone(),
            rotated: key.rotated_to.is_some(),
        }
    }

    /// `key` as it is once this state is written.
    pub fn applied_to(self, mut key: ApiKey) -> ApiKey {
        key.status = self.status;
        key.revoked_at = self.revoked_at;
        key.permissions = self.permissions;
        key.rate_limit = self.rate_limit;
        key.name = self.name;
        key.description = self.description;
        key.expires_at = self.expires_at;
        key.metadata = self.metadata;
        key.remaining = self.remaining;
        key.refill = self.refill;
        key.credits_set_at = self.credits_set_at;
        key.allowed_ips = self.allowed_ips;
        key
    }
}

/// What applying a mutation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Already in effect: nothing to write, nothing to invalidate.
    Unchanged,
    /// Write this state (boxed: it is most of a key).
    Changed(Box<KeyState>),
}

/// A mutation the key's status forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("the key is revoked; a revoked key cannot be changed")]
    Revoked,
    #[error("only a suspended key can be reactivated")]
    NotSuspended,
    #[error("the key has expired; an expired key cannot be rotated")]
    Expired,
    #[error("the key was already rotated; rotate its replacement instead")]
    AlreadyRotated,
    #[error("the key was rotated; it ends with its grace period, which cannot move")]
    RotatedExpiry,
}

/// The longest grace period of a rotation: a week.
pub const MAX_ROTATION_GRACE_SECONDS: u64 = 7 * 24 * 3600;
/// The grace period when none is asked: an hour.
pub const DEFAULT_ROTATION_GRACE_SECONDS: u64 = 3600;

/// Whether a key may be rotated at `now`, and until when the old key then works:
/// the end of the grace period, never beyond its own expiry.
pub fn rotation(
    status: KeyStatus,
    expires_at: Option<Timestamp>,
    rotated_to: Option<crate::model::KeyId>,
    grace_seconds: u64,
    now: Timestamp,
) -> Result<Timestamp, LifecycleError> {
    if status == KeyStatus::Revoked {
        return Err(LifecycleError::Revoked);
    }
    if expired(expires_at, now) {
        return Err(LifecycleError::Expired);
    }
    if rotated_to.is_some() {
        return Err(LifecycleError::AlreadyRotated);
    }
    let grace = i64::try_from(grace_seconds.min(MAX_ROTATION_GRACE_SECONDS)).unwrap_or(0) * 1000;
    let end = now.plus_millis(grace);
    Ok(expires_at.map_or(end, |at| at.min(end)))
}

/// The state to write for `mutation` on the stored `key`, or `None` when the change
/// is already in effect (nothing to write).
pub fn decide(
    key: &ApiKey,
    mutation: &Mutation,
    now: Timestamp,
) -> Result<Option<KeyState>, LifecycleError> {
    Ok(match apply(&KeyState::of(key), mutation, now)? {
        Outcome::Unchanged => None,
        Outcome::Changed(new) => Some(*new),
    })
}

/// The new key of a rotation: what only the caller makes (a fresh secret's id and
/// display parts). Everything else comes from the old key as stored.
#[derive(Clone, Copy, Debug)]
pub struct Successor<'a> {
    pub id: KeyId,
    pub prefix: &'a str,
    pub postfix: &'a str,
}

/// A rotation decided on the old key as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The old key as it becomes: ending with the grace period, linked forward.
    pub ending: ApiKey,
    /// The new key, which carries the old one's attributes (status included: rotating
    /// a suspended key gives a suspended key; usage credits move over).
    pub new: ApiKey,
}

/// Rotates `old` at `now` into `successor` (see [`rotation`] for when it may).
pub fn rotate(
    old: &ApiKey,
    successor: Successor<'_>,
    grace_seconds: u64,
    now: Timestamp,
) -> Result<Rotation, LifecycleError> {
    let until = rotation(
        old.status,
        old.expires_at,
        old.rotated_to,
        grace_seconds,
        now,
    )?;
    let new = ApiKey {
        id: successor.id,
        prefix: successor.prefix.to_owned(),
        postfix: successor.postfix.to_owned(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
        rotated_from: Some(old.id),
        rotated_to: None,
        ..old.clone()
    };
    let ending = ApiKey {
        expires_at: Some(until),
        rotated_to: Some(successor.id),
        // Usage credits move to the new key rather than being copied: a rotation must
        // not double them. The old key is then spent at once, and never refilled.
        remaining: old.remaining.map(|_| 0),
        refill: None,
        ..old.clone()
    };
    Ok(Rotation { ending, new })
}

/// Decides the effect of `mutation` on a key in `state`.
pub fn apply(
    state: &KeyState,
    mutation: &Mutation,
    now: Timestamp,
) -> Result<Outcome, LifecycleError> {
    use KeyStatus::*;
    let with_status = |status, revoked_at| {
        Outcome::Changed(Box::new(KeyState {
            status,
            revoked_at,
            ..state.clone()
        }))
    };
    match (state.status, mutation) {
        (Revoked, Mutation::Revoke) => Ok(Outcome::Unchanged),
        (Revoked, _) => Err(LifecycleError::Revoked),
        (_, Mutation::Revoke) => Ok(with_status(Revoked, Some(now))),
        (Suspended, Mutation::Suspend) => Ok(Outcome::Unchanged),
        (Active, Mutation::Suspend) => Ok(with_status(Suspended, None)),
        (Suspended, Mutation::Reactivate) => Ok(with_status(Active, None)),
        (Active, Mutation::Reactivate) => Err(LifecycleError::NotSuspended),
        (_, Mutation::SetPermissions(names)) if *names == state.permissions => {
            Ok(Outcome::Unchanged)
        }
        (_, Mutation::SetPermissions(names)) => Ok(Outcome::Changed(Box::new(KeyState {
            permissions: names.clone(),
            ..state.clone()
        }))),
        (_, Mutation::SetRateLimit(limit)) if *limit == state.rate_limit => Ok(Outcome::Unchanged),
        (_, Mutation::SetRateLimit(limit)) => Ok(Outcome::Changed(Box::new(KeyState {
            rate_limit: *limit,
            ..state.clone()
        }))),
        (_, Mutation::Edit(edit)) => {
            let edit = edit.fields();
            let mut new = state.clone();
            if let Some(name) = &edit.name {
                new.name.clone_from(name);
            }
            if let Some(description) = &edit.description {
                new.description.clone_from(description);
            }
            if let Some(expires_at) = edit.expires_at {
                if state.rotated && expires_at != state.expires_at {
                    return Err(LifecycleError::RotatedExpiry);
                }
                new.expires_at = expires_at;
            }
            if let Some(metadata) = &edit.metadata {
                new.metadata.clone_from(metadata);
            }
            if let Some(remaining) = edit.remaining {
                new.remaining = remaining;
                if remaining.is_none() {
                    // No credits, nothing to renew.
                    new.refill = None;
                }
            }
            if let Some(refill) = edit.refill {
                new.refill = refill;
                if let Some(refill) = refill.filter(|_| new.remaining.is_none()) {
                    // Credits that renew start with their amount.
                    new.remaining = Some(refill.amount());
                }
            }
            if let Some(rate_limit) = edit.rate_limit {
                new.rate_limit = rate_limit;
            }
            if let Some(allowed_ips) = &edit.allowed_ips {
                new.allowed_ips.clone_from(allowed_ips);
            }
            if new.remaining != state.remaining {
                // A new amount is a new grant: refills count from it.
                new.credits_set_at = new.remaining.map(|_| now);
            }
            Ok(if new == *state {
                Outcome::Unchanged
            } else {
                Outcome::Changed(Box::new(new))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{EditFields, KeyEdit};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    /// An edit as the engine passes it on: validated, at the start of time.
    fn edit_of(fields: EditFields) -> Mutation {
        Mutation::Edit(KeyEdit::from(fields).validate(at(0)).unwrap())
    }

    fn state(status: KeyStatus) -> KeyState {
        KeyState {
            status,
            revoked_at: (status == KeyStatus::Revoked).then(|| at(1)),
            permissions: vec!["READ_GRAPH".into()],
            rate_limit: None,
            name: "k".into(),
            description: None,
            expires_at: None,
            metadata: None,
            remaining: None,
            refill: None,
            credits_set_at: None,
            allowed_ips: None,
            rotated: false,
        }
    }

    fn stored_key() -> ApiKey {
        let alice = crate::model::UserId::parse("alice").unwrap();
        ApiKey {
            status: KeyStatus::Suspended,
            permissions: vec!["READ_GRAPH".into()],
            last_used_at: Some(at(2_000)),
            remaining: Some(7),
            ..crate::model::NewKey::new(alice, "ci", at(1_000))
                .display("agpt_old", "oldpost1")
                .build()
        }
    }

    #[test]
    fn a_rotation_moves_credits_and_attributes_to_a_linked_new_key() {
        let old = stored_key();
        let now = at(1_000_000);
        let successor = Successor {
            id: KeyId::new(now),
            prefix: "agpt_new",
            postfix: "newpost1",
        };
        let Rotation { ending, new } = rotate(&old, successor, 60, now).unwrap();
        assert_eq!(ending.expires_at, Some(at(1_060_000)));
        assert_eq!(ending.rotated_to, Some(successor.id));
        assert_eq!(ending.remaining, Some(0), "credits move, never double");
        assert_eq!(new.rotated_from, Some(old.id));
        assert_eq!(new.remaining, Some(7));
        assert_eq!(new.status, KeyStatus::Suspended, "a suspended key stays so");
        assert_eq!((new.prefix.as_str(), new.last_used_at), ("agpt_new", None));
        assert_eq!(
            rotate(&ending, successor, 60, now),
            Err(LifecycleError::AlreadyRotated)
        );
    }

    #[test]
    fn a_decided_change_applied_to_the_key_is_the_key_after_the_change() {
        let key = stored_key();
        let now = at(5_000);
        let state = decide(&key, &Mutation::Revoke, now).unwrap().unwrap();
        let after = state.clone().applied_to(key.clone());
        assert_eq!(
            (after.status, after.revoked_at),
            (KeyStatus::Revoked, Some(now))
        );
        assert_eq!(KeyState::of(&after), state, "read back as decided");
        assert_eq!((after.id, &after.prefix), (key.id, &key.prefix));
        assert_eq!(
            decide(&after, &Mutation::Revoke, now),
            Ok(None),
            "already in effect"
        );
    }

    #[test]
    fn a_rotated_key_keeps_the_end_of_its_grace_period() {
        let rotated = KeyState {
            expires_at: Some(at(100)),
            rotated: true,
            ..state(KeyStatus::Active)
        };
        for expires_at in [None, Some(at(5_000))] {
            let edit = edit_of(EditFields {
                expires_at: Some(expires_at),
                ..EditFields::default()
            });
            assert_eq!(
                apply(&rotated, &edit, at(2)),
                Err(LifecycleError::RotatedExpiry)
            );
        }
        let rename = edit_of(EditFields {
            name: Some("renamed".into()),
            expires_at: Some(Some(at(100))),
            ..EditFields::default()
        });
        assert!(
            apply(&rotated, &rename, at(2)).is_ok(),
            "other fields may change"
        );
    }

    fn status_after(from: KeyStatus, m: Mutation) -> Result<Option<KeyStatus>, LifecycleError> {
        apply(&state(from), &m, at(2)).map(|o| match o {
            Outcome::Unchanged => None,
            Outcome::Changed(s) => Some(s.status),
        })
    }

    #[test]
    fn suspend_and_reactivate_are_reversible() {
        use KeyStatus::*;
        assert_eq!(status_after(Active, Mutation::Suspend), Ok(Some(Suspended)));
        assert_eq!(
            status_after(Suspended, Mutation::Reactivate),
            Ok(Some(Active))
        );
    }

    #[test]
    fn repeating_a_change_in_effect_writes_nothing() {
        use KeyStatus::*;
        assert_eq!(status_after(Suspended, Mutation::Suspend), Ok(None));
        assert_eq!(status_after(Revoked, Mutation::Revoke), Ok(None));
        let same = Mutation::SetPermissions(vec!["READ_GRAPH".into()]);
        assert_eq!(status_after(Active, same), Ok(None));
    }

    #[test]
    fn revoked_is_terminal() {
        use KeyStatus::*;
        for m in [
            Mutation::Suspend,
            Mutation::Reactivate,
            Mutation::SetPermissions(vec![]),
            Mutation::SetRateLimit(None),
            Mutation::Edit(ValidEdit::default()),
        ] {
            assert_eq!(status_after(Revoked, m), Err(LifecycleError::Revoked));
        }
    }

    #[test]
    fn reactivating_an_active_key_is_refused() {
        assert_eq!(
            status_after(KeyStatus::Active, Mutation::Reactivate),
            Err(LifecycleError::NotSuspended)
        );
    }

    #[test]
    fn a_refill_gives_credits_to_a_key_without_and_goes_with_them() {
        use crate::credits::{Interval, Refill};
        let daily = Refill::new(50, Interval::Day, None).unwrap();
        let refill = |r| {
            edit_of(EditFields {
                refill: Some(r),
                ..EditFields::default()
            })
        };
        let Ok(Outcome::Changed(renewing)) =
            apply(&state(KeyStatus::Active), &refill(Some(daily)), at(7))
        else {
            panic!("a refill must be written")
        };
        assert_eq!(
            (renewing.remaining, renewing.refill, renewing.credits_set_at),
            (Some(50), Some(daily), Some(at(7))),
            "no credits before: the refill's amount, granted now"
        );
        let top_up = edit_of(EditFields {
            remaining: Some(Some(3)),
            ..EditFields::default()
        });
        let Ok(Outcome::Changed(topped)) = apply(&renewing, &top_up, at(9)) else {
            panic!("a new amount must be written")
        };
        assert_eq!(
            (topped.remaining, topped.refill, topped.credits_set_at),
            (Some(3), Some(daily), Some(at(9))),
            "a top-up keeps the rule and lasts until the next boundary"
        );
        let unlimited = edit_of(EditFields {
            remaining: Some(None),
            ..EditFields::default()
        });
        let Ok(Outcome::Changed(free)) = apply(&topped, &unlimited, at(10)) else {
            panic!("removing credits must be written")
        };
        assert_eq!(
            (free.remaining, free.refill, free.credits_set_at),
            (None, None, None)
        );
        let both = EditFields {
            remaining: Some(None),
            refill: Some(Some(daily)),
            ..EditFields::default()
        };
        assert!(
            KeyEdit::from(both).validate(at(0)).is_err(),
            "no credits yet renewing"
        );
    }

    #[test]
    fn revoking_records_the_time_once() {
        let first = apply(&state(KeyStatus::Suspended), &Mutation::Revoke, at(5)).unwrap();
        assert_eq!(
            first,
            Outcome::Changed(Box::new(KeyState {
                revoked_at: Some(at(5)),
                ..state(KeyStatus::Revoked)
            }))
        );
    }

    #[test]
    fn permissions_can_change_while_suspended_and_keep_the_status() {
        let m = Mutation::SetPermissions(vec![]);
        match apply(&state(KeyStatus::Suspended), &m, at(2)).unwrap() {
            Outcome::Changed(s) => {
                assert_eq!(s.status, KeyStatus::Suspended);
                assert!(s.permissions.is_empty());
            }
            Outcome::Unchanged => panic!("a different set must be written"),
        }
    }

    #[test]
    fn a_rate_limit_is_set_changed_and_removed_keeping_the_rest() {
        let limit = RateLimit::new(10, 60).ok();
        let set = apply(
            &state(KeyStatus::Suspended),
            &Mutation::SetRateLimit(limit),
            at(2),
        );
        let Ok(Outcome::Changed(with_limit)) = set else {
            panic!("a new limit must be written: {set:?}")
        };
        assert_eq!(with_limit.rate_limit, limit);
        assert_eq!(with_limit.status, KeyStatus::Suspended);
        assert_eq!(
            apply(&with_limit, &Mutation::SetRateLimit(limit), at(3)),
            Ok(Outcome::Unchanged)
        );
        let removed = apply(&with_limit, &Mutation::SetRateLimit(None), at(3)).unwrap();
        assert!(matches!(removed, Outcome::Changed(s) if s.rate_limit.is_none()));
    }

    #[test]
    fn rotation_ends_the_old_key_at_the_grace_period_or_its_own_expiry() {
        use KeyStatus::*;
        let now = at(1_000_000);
        assert_eq!(rotation(Active, None, None, 60, now), Ok(at(1_060_000)));
        assert_eq!(rotation(Suspended, None, None, 0, now), Ok(now));
        assert_eq!(
            rotation(Active, Some(at(1_010_000)), None, 60, now),
            Ok(at(1_010_000)),
            "never beyond its own expiry"
        );
        assert_eq!(
            rotation(Revoked, None, None, 60, now),
            Err(LifecycleError::Revoked)
        );
        assert_eq!(
            rotation(Active, Some(now), None, 60, now),
            Err(LifecycleError::Expired)
        );
        let next = crate::model::KeyId::new(now);
        assert_eq!(
            rotation(Active, None, Some(next), 60, now),
            Err(LifecycleError::AlreadyRotated)
        );
    }
}
