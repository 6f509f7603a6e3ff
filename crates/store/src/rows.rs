//! What both backends do alike with column values: checking what is read, shaping
//! what is written, and the audit record of a change.

use keyward_core::audit::{Actor, KeyEvent};
use keyward_core::credential::{CredentialStatus, ScopeSet, ServiceCredential};
use keyward_core::credits::{CreditGrant, Refill, UserLimits};
use keyward_core::legacy::LegacyHash;
use keyward_core::model::{ApiKey, KeyId, Metadata, UserId, expired};
use keyward_core::network::AllowedNetworks;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_core::webhook::{DeliveryState, EventType, Webhook, WebhookId};
use serde_json::{Map, Value, json};

use crate::db::{Columns, Param, params};
use crate::error::{StoreError, corrupt};
use crate::records::{
    Attempt, ClaimedDelivery, Consumed, DeliveryRecord, NewCredentialRecord, NewKeyRecord,
    OwnerRecord, PepperUsage, SecretSeed, SigningSeeds, UserLimitsRecord, VerifyRecord,
};

/// A rate limit from its two columns (both NULL: none).
pub(crate) fn rate_limit(
    requests: Option<i32>,
    per_seconds: Option<i32>,
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

/// The events of a rotation: the old key's (`rotate`: its new expiry and link) and
/// the new key's (`create`, with where it came from).
pub(crate) fn rotation_events<'a>(
    old: &'a ApiKey,
    ending: &'a ApiKey,
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
            key: Some(ending),
        },
        NewEvent {
            at: now,
            actor,
            action: "create",
            key_id: Some(new.id),
            user_id: &new.user_id,
            changes: key_changes(None, Some(new)),
            key: Some(new),
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

/// Whether a rotation may go ahead with `live` keys counted (the old one among them):
/// while the old key is in its grace period both count, so the new one must fit under
/// the cap; a rotation that ends the old key at once only replaces it.
pub(crate) fn rotation_fits(
    live: i64,
    ending: &ApiKey,
    now: Timestamp,
    max_live: u32,
) -> Result<(), StoreError> {
    // An ending key's expiry is the end of its grace period.
    let old_still_counts = !expired(ending.expires_at, now);
    if old_still_counts && live >= i64::from(max_live) {
        return Err(StoreError::LimitReached { limit: max_live });
    }
    Ok(())
}

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
pub(crate) fn rate_limit_columns(limit: Option<RateLimit>) -> (Option<i32>, Option<i32>) {
    let column = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    (
        limit.map(|l| column(l.requests())),
        limit.map(|l| column(l.per_seconds())),
    )
}

/// A row of `sql::PEPPER_USAGE`, checked.
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
    /// The key as the change left it: what a webhook event carries.
    pub key: Option<&'a ApiKey>,
}

fn time_value(at: Option<Timestamp>) -> Value {
    at.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// How many fields an event reports (the length of [`tracked_fields`]' answer).
const TRACKED_FIELDS: usize = 13;

/// The fields an event reports, as JSON values. Never the hash, never a secret; the
/// display prefix and postfix are on the key's own record already.
fn tracked_fields(key: &ApiKey) -> [(&'static str, Value); TRACKED_FIELDS] {
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
        (
            "allowed_ips",
            json!(key.allowed_ips.as_ref().map(AllowedNetworks::to_strings)),
        ),
        ("refill", key.refill.map_or(Value::Null, refill_value)),
    ]
}

/// A refill rule as the API shows it.
fn refill_value(refill: Refill) -> Value {
    let mut value = json!({"amount": refill.amount(), "interval": refill.interval().as_str()});
    if let Some(day) = refill.day_of_month() {
        value["day_of_month"] = json!(day);
    }
    value
}

/// The refill columns (`refill_amount`, `refill_interval`, `refill_day`).
pub(crate) fn refill_columns(refill: Option<Refill>) -> [Param<'static>; 3] {
    [
        Param::Int(refill.map(|r| remaining_column(Some(r.amount())).unwrap_or(i64::MAX))),
        Param::Text(refill.map(|r| r.interval().as_str())),
        Param::Small(refill.and_then(Refill::day_of_month).map(i32::from)),
    ]
}

/// The refill columns as read (their names after `prefix`).
fn refill_of(row: &impl Columns, prefix: &str) -> Result<Option<Refill>, StoreError> {
    let Some(amount) = remaining(row.maybe_int(&format!("{prefix}refill_amount"))?)? else {
        return Ok(None);
    };
    let interval = row
        .maybe_text(&format!("{prefix}refill_interval"))?
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| corrupt("refill_interval"))?;
    let day = row
        .maybe_small(&format!("{prefix}refill_day"))?
        .map(|day| u8::try_from(day).map_err(|_| corrupt("refill_day")))
        .transpose()?;
    Refill::new(amount, interval, day)
        .map(Some)
        .map_err(|_| corrupt("refill"))
}

/// `{field: {"before": …, "after": …}}` for each field that differs; a created key
/// has no "before" (null) and a deleted one no "after".
pub(crate) fn key_changes(before: Option<&ApiKey>, after: Option<&ApiKey>) -> String {
    let before = before.map(tracked_fields);
    let after = after.map(tracked_fields);
    let mut changes = Map::new();
    for i in 0..TRACKED_FIELDS {
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

/// The changes a leak report records: where the key was seen, by whom.
pub(crate) fn sighting_changes(sighting: &keyward_core::leak::Sighting) -> String {
    json!({
        "url": {"before": null, "after": sighting.url},
        "source": {"before": null, "after": sighting.source},
    })
    .to_string()
}

/// The changes a user deletion records: which keys went.
pub(crate) fn deletion_changes(deleted: &[KeyId]) -> String {
    let ids: Vec<String> = deleted.iter().map(ToString::to_string).collect();
    json!({"keys": {"before": ids, "after": []}}).to_string()
}

// A key and an event as rows: the values a statement binds, and what a row reads as.

/// A key row's values, in `sql::INSERT_KEY` order.
pub(crate) fn key_row(new: &NewKeyRecord) -> Vec<Param<'_>> {
    let key = &new.key;
    let (requests, per_seconds) = rate_limit_columns(key.rate_limit);
    let mut values = params![
        key.id,
        key.user_id.as_str(),
        key.name.as_str(),
        key.description.as_deref(),
        &new.hash,
    ];
    values.push(Param::Small(Some(i32::from(new.pepper_version))));
    values.extend(params![
        key.prefix.as_str(),
        key.postfix.as_str(),
        key.status.as_str()
    ]);
    values.push(Param::Permissions(&key.permissions));
    values.extend(params![
        key.created_at,
        key.created_at,
        key.last_used_at,
        key.revoked_at,
        key.expires_at,
        requests,
        per_seconds,
        key.metadata.as_ref().map(Metadata::as_str),
        key.rotated_from,
        key.rotated_to,
        remaining_column(key.remaining),
        // The credits it is created with are its first grant (a rotation's new key
        // carries on the old one's, with their time: its refill comes when the old
        // key's would have).
        remaining_column(key.remaining),
        key.remaining
            .map(|_| key.credits_set_at.unwrap_or(key.created_at)),
    ]);
    values.push(allowed_ips_column(key.allowed_ips.as_ref()));
    values.extend(refill_columns(key.refill));
    values
}

/// The `allowed_ips` column: a JSON array of networks, or NULL for any address.
pub(crate) fn allowed_ips_column(allowed: Option<&AllowedNetworks>) -> Param<'static> {
    match allowed {
        Some(networks) => Param::OwnedText(json!(networks.to_strings()).to_string()),
        None => Param::Text(None),
    }
}

/// The `allowed_ips` column as read.
fn allowed_ips(text: Option<String>) -> Result<Option<AllowedNetworks>, StoreError> {
    text.map(|text| {
        serde_json::from_str::<Vec<String>>(&text)
            .ok()
            .and_then(|items| AllowedNetworks::parse(&items).ok())
            .ok_or_else(|| corrupt("allowed_ips"))
    })
    .transpose()
}

/// An event row's values, in `sql::INSERT_EVENT` order.
pub(crate) fn event_row<'a>(event: &'a NewEvent<'a>) -> Vec<Param<'a>> {
    params![
        event.at,
        event.actor.kind(),
        event.actor.id(),
        event.actor.credential_id(),
        event.action,
        event.key_id,
        event.user_id.as_str(),
        event.changes.as_str(),
    ]
}

pub(crate) fn key_from_row(row: &impl Columns) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.id("id")?,
        user_id: owner(row)?,
        name: row.text("name")?,
        description: row.maybe_text("description")?,
        prefix: row.text("prefix")?,
        postfix: row.text("postfix")?,
        status: row.text("status")?.parse().map_err(|_| corrupt("status"))?,
        permissions: row.permissions("permissions")?,
        created_at: row.time("created_at")?,
        last_used_at: row.maybe_time("last_used_at")?,
        revoked_at: row.maybe_time("revoked_at")?,
        expires_at: row.maybe_time("expires_at")?,
        rate_limit: rate_limit_of(row, "")?,
        metadata: metadata(row.maybe_text("metadata")?)?,
        rotated_from: row.maybe_id("rotated_from")?,
        rotated_to: row.maybe_id("rotated_to")?,
        remaining: remaining(row.maybe_int("remaining")?)?,
        allowed_ips: allowed_ips(row.maybe_text("allowed_ips")?)?,
        refill: refill_of(row, "")?,
        credits_set_at: row.maybe_time("credits_set_at")?,
    })
}

/// The `user_id` column, as stored (ids from before today's rule stay readable).
fn owner(row: &impl Columns) -> Result<UserId, StoreError> {
    UserId::from_stored(&row.text("user_id")?).map_err(|_| corrupt("user_id"))
}

fn rate_limit_of(row: &impl Columns, prefix: &str) -> Result<Option<RateLimit>, StoreError> {
    rate_limit(
        row.maybe_small(&format!("{prefix}rate_limit_requests"))?,
        row.maybe_small(&format!("{prefix}rate_limit_per_seconds"))?,
    )
}

/// The owner's limits joined to a verification record, if the owner has a row.
fn owner_of(row: &impl Columns) -> Result<Option<OwnerRecord>, StoreError> {
    let Some(explicit) = row.maybe_small("owner_explicit")? else {
        return Ok(None);
    };
    Ok(Some(OwnerRecord {
        explicit: explicit != 0,
        rate_limit: rate_limit_of(row, "owner_")?,
        has_credits: row.maybe_int("owner_remaining")?.is_some(),
        refill: refill_of(row, "owner_")?,
    }))
}

/// A user's limits row.
pub(crate) fn user_limits_from_row(row: &impl Columns) -> Result<UserLimitsRecord, StoreError> {
    let refill = refill_of(row, "")?;
    let credits =
        remaining(row.maybe_int("remaining")?)?.map(|remaining| CreditGrant { remaining, refill });
    Ok(UserLimitsRecord {
        user_id: owner(row)?,
        explicit: row.small("explicit")? != 0,
        limits: UserLimits {
            rate_limit: rate_limit_of(row, "")?,
            credits,
        },
        credits_set_at: row.maybe_time("credits_set_at")?,
    })
}

/// A user's limits as the audit trail records them.
fn user_limits_value(limits: &UserLimits) -> [(&'static str, Value); 2] {
    [
        (
            "rate_limit",
            limits.rate_limit.map_or(
                Value::Null,
                |l| json!({"requests": l.requests(), "per_seconds": l.per_seconds()}),
            ),
        ),
        (
            "credits",
            limits.credits.map_or(
                Value::Null,
                |c| json!({"remaining": c.remaining, "refill": c.refill.map(refill_value)}),
            ),
        ),
    ]
}

/// `{field: {"before": …, "after": …}}` for a user's limits set or removed.
pub(crate) fn user_limits_changes(
    before: Option<&UserLimits>,
    after: Option<&UserLimits>,
) -> String {
    let none = UserLimits::default();
    let before = user_limits_value(before.unwrap_or(&none));
    let after = user_limits_value(after.unwrap_or(&none));
    let mut changes = Map::new();
    for ((field, old), (_, new)) in before.into_iter().zip(after) {
        if old != new {
            changes.insert(field.to_owned(), json!({"before": old, "after": new}));
        }
    }
    Value::Object(changes).to_string()
}

/// A user's limits as the `user_limits` columns: rate limit (2), credits (4: remaining,
/// set at, refill), for `PUT_USER_LIMITS`.
pub(crate) fn user_limits_row<'a>(
    user: &'a UserId,
    limits: &UserLimits,
    now: Timestamp,
) -> Vec<Param<'a>> {
    let (requests, per_seconds) = rate_limit_columns(limits.rate_limit);
    let mut values = params![user.as_str(), requests, per_seconds];
    values.push(Param::Int(remaining_column(
        limits.credits.map(|c| c.remaining),
    )));
    values.push(limits.credits.map(|_| now).into());
    values.extend(refill_columns(limits.credits.and_then(|c| c.refill)));
    values.push(now.into());
    values
}

pub(crate) fn verify_record(row: &impl Columns) -> Result<VerifyRecord, StoreError> {
    Ok(VerifyRecord {
        id: row.id("id")?,
        user_id: owner(row)?,
        status: row.text("status")?.parse().map_err(|_| corrupt("status"))?,
        permissions: row.permissions("permissions")?,
        expires_at: row.maybe_time("expires_at")?,
        last_used_at: row.maybe_time("last_used_at")?,
        rate_limit: rate_limit_of(row, "")?,
        metadata: metadata(row.maybe_text("metadata")?)?,
        remaining: remaining(row.maybe_int("remaining")?)?,
        allowed_ips: allowed_ips(row.maybe_text("allowed_ips")?)?,
        refill: refill_of(row, "")?,
        owner: owner_of(row)?,
        pepper_version: u16::try_from(row.small("pepper_version")?)
            .map_err(|_| corrupt("pepper_version"))?,
    })
}

pub(crate) fn event_from_row(row: &impl Columns) -> Result<KeyEvent, StoreError> {
    let (kind, id) = (row.text("actor_kind")?, row.text("actor_id")?);
    let credential = row.maybe_credential_id("actor_credential_id")?;
    Ok(KeyEvent {
        id: row.int("id")?,
        at: row.time("at")?,
        actor: Actor::from_parts(&kind, &id, credential).ok_or_else(|| corrupt("actor"))?,
        action: row.text("action")?,
        key_id: row.maybe_id("key_id")?,
        user_id: owner(row)?,
        changes: row.text("changes")?,
    })
}

/// A credential row's values, in `sql::INSERT_CREDENTIAL` order.
pub(crate) fn credential_row(new: &NewCredentialRecord) -> Vec<Param<'_>> {
    let credential = &new.credential;
    let mut values = params![
        credential.id,
        credential.name.as_str(),
        stored_scopes(credential.scopes),
        &new.hash,
    ];
    values.push(Param::Small(Some(i32::from(new.pepper_version))));
    values.extend(params![
        credential.created_at,
        credential.created_by.as_str(),
        credential.last_used_at,
        credential.expires_at,
        credential.status.as_str(),
        credential.revoked_at,
        credential.previous_secret_until,
    ]);
    values
}

/// Scopes as stored: their contract names, space-separated.
fn stored_scopes(scopes: ScopeSet) -> String {
    scopes.names().join(" ")
}

pub(crate) fn credential_from_row(row: &impl Columns) -> Result<ServiceCredential, StoreError> {
    let scopes = row.text("scopes")?;
    let scopes: Vec<&str> = scopes.split_whitespace().collect();
    Ok(ServiceCredential {
        id: row.credential_id("id")?,
        name: row.text("name")?,
        scopes: ScopeSet::parse(&scopes).map_err(|_| corrupt("scopes"))?,
        created_at: row.time("created_at")?,
        created_by: row.text("created_by")?,
        last_used_at: row.maybe_time("last_used_at")?,
        expires_at: row.maybe_time("expires_at")?,
        status: CredentialStatus::parse(&row.text("status")?).ok_or_else(|| corrupt("status"))?,
        revoked_at: row.maybe_time("revoked_at")?,
        previous_secret_until: row.maybe_time("previous_until")?,
    })
}

// Webhooks: the payload of an event, and endpoints and deliveries as rows.

/// A key's public record as an event carries it: the fields of the API's key object
/// (never the hash or a secret).
pub(crate) fn public_record(key: &ApiKey) -> Value {
    let mut record = Map::new();
    record.insert("id".into(), json!(key.id.to_string()));
    record.insert("user_id".into(), json!(key.user_id.as_str()));
    record.insert("prefix".into(), json!(key.prefix));
    record.insert("postfix".into(), json!(key.postfix));
    record.insert("created_at".into(), json!(key.created_at.to_rfc3339()));
    record.insert("last_used_at".into(), time_value(key.last_used_at));
    for (name, value) in tracked_fields(key) {
        record.insert(name.into(), value);
    }
    record.insert("next_refill_at".into(), time_value(key.next_refill_at()));
    Value::Object(record)
}

/// Who made a change, as an event says.
pub(crate) fn actor_value(actor: &Actor) -> Value {
    let mut value = json!({"type": actor.kind(), "id": actor.id()});
    if let Some(credential) = actor.credential_id() {
        value["credential_id"] = json!(credential.to_string());
    }
    value
}

/// An event's body as the Standard Webhooks specification shapes it.
pub(crate) fn event_body(event: EventType, at: Timestamp, data: Value) -> String {
    json!({"type": event.as_str(), "timestamp": at.to_rfc3339(), "data": data}).to_string()
}

pub(crate) fn webhook_from_row(
    row: &impl Columns,
    events: Vec<EventType>,
) -> Result<Webhook, StoreError> {
    Ok(Webhook {
        id: WebhookId::from_uuid(*row.id("id")?.as_uuid()),
        url: row.text("url")?,
        description: row.maybe_text("description")?,
        events,
        created_at: row.time("created_at")?,
        created_by: row.text("created_by")?,
        updated_at: row.time("updated_at")?,
        disabled_at: row.maybe_time("disabled_at")?,
        disabled_reason: row.maybe_text("disabled_reason")?,
        last_success_at: row.maybe_time("last_success_at")?,
        previous_secret_until: row.maybe_time("previous_until")?,
    })
}

/// A subscription row: its endpoint and event type.
pub(crate) fn subscription(row: &impl Columns) -> Result<(WebhookId, EventType), StoreError> {
    let event = EventType::parse(&row.text("event_type")?).ok_or_else(|| corrupt("event_type"))?;
    Ok((
        WebhookId::from_uuid(*row.id("webhook_id")?.as_uuid()),
        event,
    ))
}

fn seed(nonce: &[u8], version: i32) -> Result<SecretSeed, StoreError> {
    Ok(SecretSeed {
        nonce: nonce.try_into().map_err(|_| corrupt("secret_nonce"))?,
        pepper_version: u16::try_from(version).map_err(|_| corrupt("secret_pepper"))?,
    })
}

pub(crate) fn signing_seeds(row: &impl Columns) -> Result<SigningSeeds, StoreError> {
    let current = seed(&row.bytes("secret_nonce")?, row.small("secret_pepper")?)?;
    let previous = match (
        row.maybe_bytes("previous_nonce")?,
        row.maybe_small("previous_pepper")?,
        row.maybe_time("previous_until")?,
    ) {
        (Some(nonce), Some(version), Some(until)) => Some((seed(&nonce, version)?, until)),
        _ => None,
    };
    Ok(SigningSeeds { current, previous })
}

pub(crate) fn count(row: &impl Columns, column: &str) -> Result<u32, StoreError> {
    u32::try_from(row.small(column)?).map_err(|_| corrupt(column))
}

pub(crate) fn claimed_delivery(row: &impl Columns) -> Result<ClaimedDelivery, StoreError> {
    Ok(ClaimedDelivery {
        id: row.int("id")?,
        attempt: count(row, "attempts")?,
        webhook_id: WebhookId::from_uuid(*row.id("webhook_id")?.as_uuid()),
        url: row.text("url")?,
        seeds: signing_seeds(row)?,
        event_id: row.text("event_id")?,
        event_type: row.text("event_type")?,
        body: row.text("body")?,
    })
}

pub(crate) fn delivery_from_row(row: &impl Columns) -> Result<DeliveryRecord, StoreError> {
    let state = DeliveryState::parse(&row.text("state")?).ok_or_else(|| corrupt("state"))?;
    Ok(DeliveryRecord {
        id: row.int("id")?,
        event_id: row.text("event_id")?,
        event_type: row.text("event_type")?,
        key_id: row.maybe_id("key_id")?,
        state,
        attempts: count(row, "attempts")?,
        next_attempt_at: if state == DeliveryState::Pending {
            Some(row.time("next_attempt_at")?)
        } else {
            None
        },
        created_at: row.time("created_at")?,
        finished_at: row.maybe_time("finished_at")?,
        attempt_log: Vec::new(),
    })
}

pub(crate) fn attempt_from_row(row: &impl Columns) -> Result<(i64, Attempt), StoreError> {
    let status_code = row
        .maybe_small("status_code")?
        .map(|code| u16::try_from(code).map_err(|_| corrupt("status_code")))
        .transpose()?;
    Ok((
        row.int("delivery_id")?,
        Attempt {
            at: row.time("at")?,
            status_code,
            latency_ms: count(row, "latency_ms")?,
            error: row.maybe_text("error")?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use keyward_core::model::{KeyStatus, NewKey};

    use super::*;

    fn key() -> ApiKey {
        let at = Timestamp::from_millis(1_800_000_000_000).unwrap();
        ApiKey {
            permissions: vec!["READ_GRAPH".into()],
            ..NewKey::new(UserId::parse("alice").unwrap(), "ci", at)
                .display("agpt_abc", "xyz12345")
                .build()
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
