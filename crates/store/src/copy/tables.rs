//! What a copy carries: every table of keyward's schema but the migration log and
//! the deployment row, each column with how it is read and bound, in an order that
//! writes a row after the rows it refers to.
//!
//! A test compares this list with the schema the migrations make, on both
//! backends: a migration that adds a table or a column fails it until the copy
//! carries it too.

/// How a column's values are read and bound (the same Rust type on both backends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `UUID` on PostgreSQL, a 16-byte `BLOB` on SQLite.
    Id,
    Text,
    /// `BIGINT` on PostgreSQL.
    Int,
    /// `INTEGER` on PostgreSQL (32 bits).
    Small,
    Bytes,
    /// `TEXT[]` on PostgreSQL, a JSON array on SQLite.
    Permissions,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub name: &'static str,
    /// The primary key's columns first, then the others.
    pub columns: &'static [Column],
    /// How many of the first columns make the primary key.
    pub key: usize,
    /// Whether the table hands out its ids from a counter (`AUTOINCREMENT`, an
    /// identity or a serial), which the copy carries over.
    pub counter: bool,
}

impl Table {
    pub(crate) fn key_columns(&self) -> &'static [Column] {
        &self.columns[..self.key]
    }
}

macro_rules! columns {
    ($($name:ident: $kind:ident),* $(,)?) => {
        &[$(Column { name: stringify!($name), kind: Kind::$kind }),*]
    };
}

/// Parents before children: `legacy_credentials`, `key_usage_hourly` and
/// `webhook_markers` refer to `api_keys`, deliveries to webhooks and events,
/// attempts to deliveries.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "api_keys",
        columns: columns!(
            id: Id, user_id: Text, name: Text, description: Text, key_hash: Bytes,
            pepper_version: Small, prefix: Text, postfix: Text, status: Text,
            permissions: Permissions, created_at: Int, updated_at: Int, last_used_at: Int,
            revoked_at: Int, expires_at: Int, rate_limit_requests: Small,
            rate_limit_per_seconds: Small, metadata: Text, rotated_from: Id, rotated_to: Id,
            remaining: Int, credits_granted: Int, credits_set_at: Int, allowed_ips: Text,
            refill_amount: Int, refill_interval: Text, refill_day: Small,
        ),
        key: 1,
        counter: false,
    },
    Table {
        name: "legacy_credentials",
        columns: columns!(key_id: Id, kind: Text, digest: Bytes, salt: Bytes, head: Text),
        key: 1,
        counter: false,
    },
    Table {
        name: "key_usage_hourly",
        columns: columns!(key_id: Id, hour: Int, valid: Int, refused: Int),
        key: 2,
        counter: false,
    },
    Table {
        name: "webhook_markers",
        columns: columns!(key_id: Id, event_type: Text, marker: Int),
        key: 3,
        counter: false,
    },
    Table {
        name: "key_events",
        columns: columns!(
            id: Int, at: Int, actor_kind: Text, actor_id: Text, action: Text, key_id: Id,
            user_id: Text, changes: Text, actor_credential_id: Id,
        ),
        key: 1,
        counter: true,
    },
    Table {
        name: "service_credentials",
        columns: columns!(
            id: Id, name: Text, scopes: Text, hash: Bytes, pepper_version: Small,
            previous_hash: Bytes, previous_until: Int, created_at: Int, created_by: Text,
            last_used_at: Int, expires_at: Int, status: Text, revoked_at: Int,
        ),
        key: 1,
        counter: false,
    },
    Table {
        name: "user_limits",
        columns: columns!(
            user_id: Text, explicit: Small, rate_limit_requests: Small,
            rate_limit_per_seconds: Small, remaining: Int, credits_granted: Int,
            credits_set_at: Int, refill_amount: Int, refill_interval: Text, refill_day: Small,
            updated_at: Int,
        ),
        key: 1,
        counter: false,
    },
    Table {
        name: "webhooks",
        columns: columns!(
            id: Id, url: Text, description: Text, created_at: Int, created_by: Text,
            updated_at: Int, secret_nonce: Bytes, secret_pepper: Small, previous_nonce: Bytes,
            previous_pepper: Small, previous_until: Int, disabled_at: Int,
            disabled_reason: Text, last_success_at: Int,
        ),
        key: 1,
        counter: false,
    },
    Table {
        name: "webhook_subscriptions",
        columns: columns!(event_type: Text, webhook_id: Id),
        key: 2,
        counter: false,
    },
    Table {
        name: "webhook_events",
        columns: columns!(id: Text, type: Text, key_id: Id, at: Int, body: Text),
        key: 1,
        counter: false,
    },
    Table {
        name: "webhook_deliveries",
        columns: columns!(
            id: Int, webhook_id: Id, event_id: Text, key_id: Id, state: Text, attempts: Small,
            next_attempt_at: Int, leased_until: Int, created_at: Int, finished_at: Int,
        ),
        key: 1,
        counter: true,
    },
    Table {
        name: "webhook_attempts",
        columns: columns!(
            id: Int, delivery_id: Int, at: Int, status_code: Small, latency_ms: Small,
            error: Text,
        ),
        key: 1,
        counter: true,
    },
];
