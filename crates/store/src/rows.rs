//! What both backends do alike with key rows: the column list, decoding helpers, and
//! the lifecycle decision on a row read inside a transaction.

use keyward_core::audit::{Actor, DEFAULT_EVENT_PAGE, EventQuery, KeyEvent, MAX_EVENT_PAGE};
use keyward_core::legacy::LegacyHash;
use keyward_core::lifecycle::{self, KeyState, Mutation, Outcome};
use keyward_core::model::{ApiKey, KeyId, Metadata, UserId};
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use serde_json::{Map, Value, json};
use sqlx::{Encode, QueryBuilder, Type};

use crate::{Consumed, PepperUsage, Replacement, StoreError};

/// Columns of a full key row, in the order the backends' `key_from_row` reads them.
macro_rules! key_columns {
    () => {
        "id, user_id, name, description, prefix, postfix, status, permissions, \
         created_at, last_used_at, revoked_at, expires_at, rate_limit_requests, \
         rate_limit_per_seconds, metadata, rotated_from, rotated_to, remaining"
    };
}
pub(crate) use key_columns;

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn timestamp(
    millis: Option<i64>,
    column: &str,
) -> Result<Option<Timestamp>, StoreError> {
    millis
        .map(|ms| Timestamp::from_millis(ms).map_err(|_| corrupt(column)))
        .transpose()
}

/// A rate limit from its two columns (both NULL: none).
pub(crate) fn rate_limit(
    requests: Option<i64>,
    per_seconds: Option<i64>,
) -> Result<Option<RateLimit>, StoreError> {
    match (requests, per_seconds) {
        (None, None) => Ok(None),
        (Some(requests), Some(per_seconds)) => {
            let requests = u32::try_from(requests).map_err(|_| corrupt("rate_limit_requests"))?;
            let per_seconds =
                u32::try_from(per_seconds).map_err(|_| corrupt("rate_limit_per_seconds"))?;
            RateLimit::new(requests, per_seconds)
                .map(Some)
                .map_err(|_| corrupt("rate_limit"))
        }
        _ => Err(corrupt("rate_limit")),
    }
}

/// A rotation decided on the old key as stored: the old key as it becomes, and the
/// new key, which carries the old one's attributes (status included: rotating a
/// suspended key gives a suspended key; usage credits move over).
pub(crate) fn rotate(
    old: &ApiKey,
    replacement: &Replacement,
    grace_seconds: u64,
    now: Timestamp,
) -> Result<(ApiKey, ApiKey), StoreError> {
    let until = lifecycle::rotation(
        old.status,
        old.expires_at,
        old.rotated_to,
        grace_seconds,
        now,
    )?;
    let new = ApiKey {
        id: replacement.id,
        prefix: replacement.prefix.clone(),
        postfix: replacement.postfix.clone(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
        rotated_from: Some(old.id),
        rotated_to: None,
        ..old.clone()
    };
    let ending = ApiKey {
        expires_at: Some(until),
        rotated_to: Some(replacement.id),
        // Usage credits move to the new key rather than being copied: a rotation must
        // not double them. The old key is then spent at once.
        remaining: old.remaining.map(|_| 0),
        ..old.clone()
    };
    Ok((ending, new))
}

/// The events of a rotation: the old key's (`rotate`: its new expiry and link) and
/// the new key's (`create`, with where it came from).
pub(crate) fn rotation_events<'a>(
    old: &'a ApiKey,
    ending: &ApiKey,
    new: &'a ApiKey,
    now: Timestamp,
    actor: &'a Actor,
) -> [NewEvent<'a>; 2] {
    [
        NewEvent {
            at: now,
            actor,
            action: "rotate",
            key_id: Some(old.id),
            user_id: &old.user_id,
            changes: key_changes(Some(old), Some(ending)),
        },
        NewEvent {
            at: now,
            actor,
            action: "create",
            key_id: Some(new.id),
            user_id: &new.user_id,
            changes: key_changes(None, Some(new)),
        },
    ]
}

/// Usage credits from their column.
pub(crate) fn remaining(value: Option<i64>) -> Result<Option<u64>, StoreError> {
    value
        .map(|n| u64::try_from(n).map_err(|_| corrupt("remaining")))
        .transpose()
}

/// Usage credits as their column (bounded by `MAX_REMAINING`, so they fit).
pub(crate) fn remaining_column(value: Option<u64>) -> Option<i64> {
    value.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Takes credits: the conditional decrement, and what to read when it took nothing.
/// The keys that count toward a user's cap at `$2`: every key that is not revoked
/// (an expired one too, until it is revoked), except a rotated key whose grace period
/// is over, since its replacement counts in its place.
pub(crate) const COUNT_LIVE: &str = "SELECT COUNT(*) FROM api_keys WHERE user_id = $1 \
     AND status <> 'REVOKED' AND (rotated_to IS NULL OR expires_at IS NULL OR expires_at > $2)";

/// Whether a rotation may go ahead with `live` keys counted (the old one among them):
/// while the old key is in its grace period both count, so the new one must fit under
/// the cap; a rotation that ends the old key at once only replaces it.
pub(crate) fn rotation_fits(
    live: i64,
    ending: &ApiKey,
    now: Timestamp,
    max_live: u32,
) -> Result<(), StoreError> {
    let old_still_counts = ending.expires_at.is_some_and(|end| end > now);
    if old_still_counts && live >= i64::from(max_live) {
        return Err(StoreError::LimitReached { limit: max_live });
    }
    Ok(())
}

pub(crate) const CONSUME: &str = "UPDATE api_keys SET remaining = remaining - $2 \
     WHERE id = $1 AND remaining IS NOT NULL AND remaining >= $2 RETURNING remaining";
pub(crate) const REMAINING: &str = "SELECT remaining FROM api_keys WHERE id = $1";

/// What a key's credits say when nothing was taken: `row` is its `remaining`
/// column, if the key exists.
pub(crate) fn not_consumed(row: Option<Option<i64>>, cost: u64) -> Result<Consumed, StoreError> {
    Ok(match row {
        None => Consumed::Missing,
        Some(None) => Consumed::Unlimited,
        Some(Some(left)) => match remaining(Some(left))? {
            Some(left) if cost == 0 && left > 0 => Consumed::Left(left),
            _ => Consumed::Exceeded,
        },
    })
}

/// The columns of a verification record, as `find_by_hash` and the legacy lookup
/// read them (prefixed with `k.` for the join).
pub(crate) const VERIFY_COLUMNS: &str = "k.id, k.user_id, k.status, k.permissions, k.expires_at, \
     k.last_used_at, k.pepper_version, k.rate_limit_requests, k.rate_limit_per_seconds, \
     k.metadata, k.remaining";

/// Imported keys that may match: the SHA-256 one, and the scrypt ones by head.
pub(crate) fn legacy_candidates_sql() -> String {
    format!(
        "SELECT {VERIFY_COLUMNS}, l.kind, l.digest, l.salt FROM legacy_credentials l \
         JOIN api_keys k ON k.id = l.key_id \
         WHERE (l.kind = 'sha256' AND l.digest = $1) OR (l.kind = 'scrypt' AND l.head = $2)"
    )
}

/// AutoGPT's hash from a legacy row's columns.
pub(crate) fn legacy_hash(
    kind: &str,
    digest: &[u8],
    salt: Option<Vec<u8>>,
) -> Result<LegacyHash, StoreError> {
    let digest: [u8; 32] = digest.try_into().map_err(|_| corrupt("legacy digest"))?;
    match (kind, salt) {
        ("sha256", _) => Ok(LegacyHash::Sha256(digest)),
        ("scrypt", Some(salt)) => Ok(LegacyHash::Scrypt { salt, digest }),
        _ => Err(corrupt("legacy kind")),
    }
}

/// A legacy hash as its columns: kind, digest, salt.
pub(crate) fn legacy_columns(hash: &LegacyHash) -> (&'static str, Vec<u8>, Option<Vec<u8>>) {
    match hash {
        LegacyHash::Sha256(digest) => ("sha256", digest.to_vec(), None),
        LegacyHash::Scrypt { salt, digest } => ("scrypt", digest.to_vec(), Some(salt.clone())),
    }
}

/// Metadata from its column.
pub(crate) fn metadata(text: Option<String>) -> Result<Option<Metadata>, StoreError> {
    text.map(|t| Metadata::from_json_object(t).map_err(|_| corrupt("metadata")))
        .transpose()
}

/// A rate limit as its two columns.
pub(crate) fn rate_limit_columns(limit: Option<RateLimit>) -> (Option<i64>, Option<i64>) {
    (
        limit.map(|l| i64::from(l.requests())),
        limit.map(|l| i64::from(l.per_seconds())),
    )
}

/// The state to write for `mutation` on the stored `key`, or `None` when the change is
/// already in effect (nothing to write).
pub(crate) fn decide(
    key: &ApiKey,
    mutation: &Mutation,
    now: Timestamp,
) -> Result<Option<KeyState>, StoreError> {
    let state = KeyState {
        status: key.status,
        revoked_at: key.revoked_at,
        permissions: key.permissions.clone(),
        rate_limit: key.rate_limit,
        name: key.name.clone(),
        description: key.description.clone(),
        expires_at: key.expires_at,
        metadata: key.metadata.clone(),
        remaining: key.remaining,
        rotated: key.rotated_to.is_some(),
    };
    Ok(match lifecycle::apply(&state, mutation, now)? {
        Outcome::Unchanged => None,
        Outcome::Changed(new) => Some(new),
    })
}

/// The key as it is once `state` is written.
pub(crate) fn with_state(mut key: ApiKey, state: KeyState) -> ApiKey {
    key.status = state.status;
    key.revoked_at = state.revoked_at;
    key.permissions = state.permissions;
    key.rate_limit = state.rate_limit;
    key.name = state.name;
    key.description = state.description;
    key.expires_at = state.expires_at;
    key.metadata = state.metadata;
    key.remaining = state.remaining;
    key
}

/// Keys per pepper version; the same SQL on both backends.
pub(crate) const PEPPER_USAGE: &str = "SELECT pepper_version, \
     COUNT(*) FILTER (WHERE status <> 'REVOKED') AS live, \
     COUNT(*) FILTER (WHERE status = 'REVOKED') AS revoked \
     FROM api_keys GROUP BY pepper_version ORDER BY pepper_version";

/// A row of [`PEPPER_USAGE`], checked.
pub(crate) fn pepper_usage(
    version: i64,
    live: i64,
    revoked: i64,
) -> Result<PepperUsage, StoreError> {
    Ok(PepperUsage {
        version: u16::try_from(version).map_err(|_| corrupt("pepper_version"))?,
        live: u64::try_from(live).unwrap_or(0),
        revoked: u64::try_from(revoked).unwrap_or(0),
    })
}

/// An audit event to write beside a change (see [`keyward_core::audit`]).
pub(crate) struct NewEvent<'a> {
    pub at: Timestamp,
    pub actor: &'a Actor,
    pub action: &'a str,
    pub key_id: Option<KeyId>,
    pub user_id: &'a UserId,
    pub changes: String,
}

fn time_value(at: Option<Timestamp>) -> Value {
    at.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// The fields an event reports, as JSON values. Never the hash, never a secret; the
/// display prefix and postfix are on the key's own record already.
fn tracked_fields(key: &ApiKey) -> [(&'static str, Value); 11] {
    [
        ("name", json!(key.name)),
        ("description", json!(key.description)),
        ("status", json!(key.status.as_str())),
        ("permissions", json!(key.permissions)),
        ("expires_at", time_value(key.expires_at)),
        ("revoked_at", time_value(key.revoked_at)),
        (
            "rate_limit",
            key.rate_limit.map_or(
                Value::Null,
                |l| json!({"requests": l.requests(), "per_seconds": l.per_seconds()}),
            ),
        ),
        (
            "metadata",
            key.metadata
                .as_ref()
                .and_then(|m| serde_json::from_str(m.as_str()).ok())
                .unwrap_or(Value::Null),
        ),
        (
            "rotated_from",
            json!(key.rotated_from.map(|id| id.to_string())),
        ),
        ("rotated_to", json!(key.rotated_to.map(|id| id.to_string()))),
        ("remaining", json!(key.remaining)),
    ]
}

/// `{field: {"before": …, "after": …}}` for each field that differs; a created key
/// has no "before" (null) and a deleted one no "after".
pub(crate) fn key_changes(before: Option<&ApiKey>, after: Option<&ApiKey>) -> String {
    let before = before.map(tracked_fields);
    let after = after.map(tracked_fields);
    let mut changes = Map::new();
    for i in 0..11 {
        let old = before.as_ref().map(|f| &f[i]);
        let new = after.as_ref().map(|f| &f[i]);
        let Some(field) = old.or(new).map(|(name, _)| *name) else {
            continue;
        };
        let old = old.map_or(&Value::Null, |(_, v)| v);
        let new = new.map_or(&Value::Null, |(_, v)| v);
        if old != new {
            changes.insert(field.to_owned(), json!({"before": old, "after": new}));
        }
    }
    Value::Object(changes).to_string()
}

/// The changes a user deletion records: which keys went.
pub(crate) fn deletion_changes(deleted: &[KeyId]) -> String {
    let ids: Vec<String> = deleted.iter().map(ToString::to_string).collect();
    json!({"keys": {"before": ids, "after": []}}).to_string()
}

/// An event as read back, checked.
pub(crate) fn event(
    id: i64,
    at: i64,
    actor: (&str, &str),
    action: String,
    key_id: Option<KeyId>,
    user_id: &str,
    changes: String,
) -> Result<KeyEvent, StoreError> {
    Ok(KeyEvent {
        id,
        at: timestamp(Some(at), "at")?.expect("Some in, Some out"),
        actor: Actor::from_parts(actor.0, actor.1).ok_or_else(|| corrupt("actor"))?,
        action,
        key_id,
        user_id: UserId::from_stored(user_id).map_err(|_| corrupt("user_id"))?,
        changes,
    })
}

/// An event query's SQL, for either backend: `key` is the key id as that backend
/// binds it (bytes on SQLite, a UUID on PostgreSQL).
pub(crate) fn event_query<DB, K>(query: &EventQuery, key: Option<K>) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    for<'e> K: Encode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Type<DB>,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(
        "SELECT id, at, actor_kind, actor_id, action, key_id, user_id, changes \
         FROM key_events WHERE 1 = 1",
    );
    if let Some(key) = key {
        sql.push(" AND key_id = ").push_bind(key);
    }
    if let Some(user) = &query.user_id {
        sql.push(" AND user_id = ")
            .push_bind(user.as_str().to_owned());
    }
    if let Some(since) = query.since {
        sql.push(" AND at >= ").push_bind(since.as_millis());
    }
    if let Some(after) = query.after {
        sql.push(" AND id > ").push_bind(after);
    }
    sql.push(" ORDER BY id LIMIT ").push_bind(page_size(query));
    sql
}

/// The page size to read: the default when none is asked, never above the maximum.
fn page_size(query: &EventQuery) -> i64 {
    let limit = match query.limit {
        0 => DEFAULT_EVENT_PAGE,
        n => n.min(MAX_EVENT_PAGE),
    };
    i64::from(limit)
}

#[cfg(test)]
mod tests {
    use keyward_core::model::KeyStatus;

    use super::*;

    fn key() -> ApiKey {
        let at = Timestamp::from_millis(1_800_000_000_000).unwrap();
        ApiKey {
            id: KeyId::new(at),
            user_id: UserId::parse("alice").unwrap(),
            name: "ci".into(),
            description: None,
            prefix: "agpt_abc".into(),
            postfix: "xyz12345".into(),
            status: KeyStatus::Active,
            permissions: vec!["READ_GRAPH".into()],
            created_at: at,
            last_used_at: None,
            revoked_at: None,
            expires_at: None,
            rate_limit: None,
            metadata: None,
            rotated_from: None,
            rotated_to: None,
            remaining: None,
        }
    }

    #[test]
    fn only_changed_fields_are_recorded_with_both_values() {
        let before = key();
        let mut after = key();
        after.status = KeyStatus::Suspended;
        let changes: Value =
            serde_json::from_str(&key_changes(Some(&before), Some(&after))).unwrap();
        assert_eq!(
            changes,
            json!({"status": {"before": "ACTIVE", "after": "SUSPENDED"}})
        );
    }

    #[test]
    fn a_created_key_records_its_set_fields_and_nothing_secret() {
        let changes = key_changes(None, Some(&key()));
        let value: Value = serde_json::from_str(&changes).unwrap();
        assert_eq!(value["name"], json!({"before": null, "after": "ci"}));
        assert_eq!(value["status"]["after"], "ACTIVE");
        assert!(
            value.get("description").is_none(),
            "null to null is no change"
        );
        assert!(!changes.contains("agpt_") && !changes.contains("hash"));
    }
}
