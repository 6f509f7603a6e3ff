//! Every statement keyward runs, written once: the text is the same on SQLite and
//! PostgreSQL (numbered `$n` parameters, `CAST` rather than `::`, `RETURNING`,
//! `UPDATE … FROM`). What differs between the backends is not here but in
//! [`Dialect`](crate::dialect::Dialect): the locking read, the per-user lock, the
//! change notification.

/// Rows per bulk statement: 1,000 keys of 27 values stay under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound values (a usage flush's rows have 2 and 4).
pub(crate) const BULK_ROWS: usize = 1_000;

/// `SELECT` with the columns of a full key row, in the order the decoders read them,
/// then the rest of the statement.
macro_rules! select_key {
    ($($rest:expr),+ $(,)?) => {
        concat!(
            "SELECT id, user_id, name, description, prefix, postfix, status, permissions, \
             created_at, last_used_at, revoked_at, expires_at, rate_limit_requests, \
             rate_limit_per_seconds, metadata, rotated_from, rotated_to, remaining, \
             allowed_ips, refill_amount, refill_interval, refill_day, credits_set_at",
            $($rest),+
        )
    };
}

/// `SELECT` with the columns of a verification record (prefixed with `k.`, the key
/// table's alias, and `u.`, its owner's limits, joined by [`owner_join`]), then the
/// rest of the statement.
macro_rules! select_verify {
    ($($rest:expr),+ $(,)?) => {
        concat!(
            "SELECT k.id, k.user_id, k.status, k.permissions, k.expires_at, k.last_used_at, \
             k.pepper_version, k.rate_limit_requests, k.rate_limit_per_seconds, \
             k.metadata, k.remaining, k.allowed_ips, k.refill_amount, k.refill_interval, \
             k.refill_day, u.explicit AS owner_explicit, \
             u.rate_limit_requests AS owner_rate_limit_requests, \
             u.rate_limit_per_seconds AS owner_rate_limit_per_seconds, \
             u.remaining AS owner_remaining, u.refill_amount AS owner_refill_amount, \
             u.refill_interval AS owner_refill_interval, u.refill_day AS owner_refill_day",
            $($rest),+
        )
    };
}

/// The limits of a verified key's owner, beside the key (`k`): what all their keys
/// share (see `select_verify`).
macro_rules! owner_join {
    () => {
        " LEFT JOIN user_limits u ON u.user_id = k.user_id"
    };
}

/// The columns of a key row, in the order `rows::key_row` binds them.
macro_rules! insert_key_head {
    () => {
        "INSERT INTO api_keys (id, user_id, name, description, key_hash, pepper_version, \
         prefix, postfix, status, permissions, created_at, updated_at, last_used_at, \
         revoked_at, expires_at, rate_limit_requests, rate_limit_per_seconds, metadata, \
         rotated_from, rotated_to, remaining, credits_granted, credits_set_at, allowed_ips, \
         refill_amount, refill_interval, refill_day) VALUES "
    };
}
/// Values per key row.
pub(crate) const KEY_ROW_WIDTH: usize = 27;

macro_rules! insert_event_head {
    () => {
        "INSERT INTO key_events (at, actor_kind, actor_id, actor_credential_id, action, key_id, \
         user_id, changes) VALUES "
    };
}
/// Values per event row.
pub(crate) const EVENT_ROW_WIDTH: usize = 8;

/// One key row.
pub(crate) const INSERT_KEY: &str = concat!(
    insert_key_head!(),
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27)"
);

/// One audit event.
pub(crate) const INSERT_EVENT: &str =
    concat!(insert_event_head!(), "($1, $2, $3, $4, $5, $6, $7, $8)");

/// The version the migrations have brought the database to (0: none yet), as `n`.
pub(crate) const SCHEMA_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) AS n FROM _sqlx_migrations WHERE success";

/// How a statement built for many rows marks its values (each is bound once, in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binds {
    /// `$1, $2, …`.
    Numbered,
    /// `?, ?, …`. SQLite looks a numbered value's name up in a list when it parses the
    /// statement and again on every bind: quadratic in a bulk insert's 21,000 values
    /// (a million keys took 15 minutes instead of about one). Anonymous values are
    /// counted instead.
    Anonymous,
}

/// Many key rows in one statement.
pub(crate) fn insert_keys(binds: Binds, rows: usize) -> String {
    format!(
        concat!(insert_key_head!(), "{}"),
        placeholders(binds, KEY_ROW_WIDTH, rows)
    )
}

/// Many events in one statement.
pub(crate) fn insert_events(binds: Binds, rows: usize) -> String {
    format!(
        concat!(insert_event_head!(), "{}"),
        placeholders(binds, EVENT_ROW_WIDTH, rows)
    )
}

/// `($1, $2), ($3, $4)` (or `(?, ?), (?, ?)`) for `rows` rows of `width` values.
pub(crate) fn placeholders(binds: Binds, width: usize, rows: usize) -> String {
    let row = |r: usize| {
        let values: Vec<String> = (1..=width)
            .map(|c| match binds {
                Binds::Numbered => format!("${}", r * width + c),
                Binds::Anonymous => "?".to_owned(),
            })
            .collect();
        format!("({})", values.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// The key `$1` if its owner is `$2` (any owner when `$2` is NULL).
macro_rules! key_of_owner {
    () => {
        " FROM api_keys WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)"
    };
}

/// One key of an owner, for reading.
pub(crate) const GET_KEY: &str = select_key!(key_of_owner!());
/// One key of an owner read to be changed, with its hash. The backend decides how it
/// is kept from concurrent changes (see `Dialect::READ_KEY_TO_CHANGE`).
pub(crate) const READ_KEY: &str = select_key!(", key_hash", key_of_owner!());
/// [`READ_KEY`], locking the row until the transaction ends.
pub(crate) const READ_KEY_FOR_UPDATE: &str =
    select_key!(", key_hash", key_of_owner!(), " FOR UPDATE");
/// A user's keys, newest first. Two statements rather than one with `$1 IS NULL OR …`,
/// which SQLite cannot answer from the (user_id, created_at) index.
pub(crate) const LIST_KEYS_OF: &str =
    select_key!(" FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC");
/// Everyone's keys, newest first.
pub(crate) const LIST_ALL_KEYS: &str =
    select_key!(" FROM api_keys ORDER BY created_at DESC, id DESC");
/// The verification view of the key with this hash.
pub(crate) const FIND_BY_HASH: &str =
    select_verify!(" FROM api_keys k", owner_join!(), " WHERE k.key_hash = $1");
/// Many keys by their hashes (`$1` an array), each row with its hash: PostgreSQL's
/// verification reads, gathered (`postgres::batches`).
pub(crate) const FIND_BY_HASHES: &str = select_verify!(
    ", k.key_hash FROM api_keys k",
    owner_join!(),
    " WHERE k.key_hash = ANY($1)"
);
/// The active keys most verified since an hour (usage history), with their hashes, for
/// the cache's warm-up: the hours' index, then one lookup per key.
pub(crate) const MOST_VERIFIED_SINCE: &str = select_verify!(
    ", k.key_hash FROM (SELECT key_id, SUM(valid) AS uses FROM key_usage_hourly \
     WHERE hour >= $1 AND valid > 0 GROUP BY key_id ORDER BY uses DESC LIMIT $2) h \
     JOIN api_keys k ON k.id = h.key_id",
    owner_join!(),
    " WHERE k.status = 'ACTIVE' ORDER BY h.uses DESC"
);
/// Imported keys that may match: the SHA-256 one, and the scrypt ones by head.
pub(crate) const LEGACY_CANDIDATES: &str = select_verify!(
    ", l.kind, l.digest, l.salt FROM legacy_credentials l \
     JOIN api_keys k ON k.id = l.key_id",
    owner_join!(),
    " WHERE (l.kind = 'sha256' AND l.digest = $1) OR (l.kind = 'scrypt' AND l.head = $2)"
);
pub(crate) const KEY_EXISTS: &str = "SELECT 1 AS present FROM api_keys WHERE id = $1";
pub(crate) const INSERT_LEGACY: &str = "INSERT INTO legacy_credentials \
     (key_id, kind, digest, salt, head) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const FORGET_LEGACY: &str = "DELETE FROM legacy_credentials WHERE key_id = $1";
/// A new hash for a key: re-hashed with the current pepper, or upgraded from AutoGPT's.
pub(crate) const SET_HASH: &str =
    "UPDATE api_keys SET key_hash = $2, pepper_version = $3 WHERE id = $1";

/// Writes a key's mutable state (see `keyward_core::lifecycle::KeyState`).
/// Credits set at a new time (`$17` differs from the row's: a new amount, or a refill
/// made with the change) are a new grant: the amount and time the credit events
/// measure from (the right-hand sides read the row as it was).
pub(crate) const WRITE_STATE: &str = "UPDATE api_keys SET status = $2, revoked_at = $3, \
     permissions = $4, updated_at = $5, rate_limit_requests = $6, rate_limit_per_seconds = $7, \
     name = $8, description = $9, expires_at = $10, metadata = $11, remaining = $12, \
     credits_granted = CASE WHEN credits_set_at IS DISTINCT FROM $17 THEN $12 \
     ELSE credits_granted END, credits_set_at = $17, \
     allowed_ips = $13, refill_amount = $14, refill_interval = $15, refill_day = $16 \
     WHERE id = $1";
/// Ends a rotated key: its grace period, its link forward, its credits (and their
/// refill) moved away.
pub(crate) const END_ROTATED: &str = "UPDATE api_keys SET expires_at = $2, rotated_to = $3, \
     updated_at = $4, remaining = $5, refill_amount = NULL, refill_interval = NULL, \
     refill_day = NULL WHERE id = $1";

/// The keys that count toward a user's cap at `$2`: every key that is not revoked
/// (an expired one too, until it is revoked), except a rotated key whose grace period
/// is over, since its replacement counts in its place.
pub(crate) const COUNT_LIVE: &str = "SELECT COUNT(*) AS live FROM api_keys WHERE user_id = $1 \
     AND status <> 'REVOKED' AND (rotated_to IS NULL OR expires_at IS NULL OR expires_at > $2)";

/// Whether a key's credits are due to be set back to its refill amount: they were set
/// before the latest boundary of its rule, `$since` (NULL: no refill decided). The
/// SQL form of `keyward_core::credits::Refill::due`: change both together.
macro_rules! refill_due {
    ($since:literal) => {
        concat!(
            "(refill_amount IS NOT NULL AND COALESCE(credits_set_at, 0) < ",
            $since,
            ")"
        )
    };
}

/// The credits a key has at the latest boundary `$since`: its refill amount when one
/// is due, what is left otherwise.
macro_rules! balance {
    ($since:literal) => {
        concat!(
            "CASE WHEN ",
            refill_due!($since),
            " THEN refill_amount ELSE remaining END"
        )
    };
}

/// Takes `$2` credits from the row `$1` of `$table`, first setting them back to the
/// refill amount when a boundary (`$3`) has passed since they were set: one
/// conditional write, so of all instances exactly one refills for a boundary (the
/// others' writes see the row it left). A refill is a new grant: the credit events
/// measure from it. Keys and users keep credits in the same columns.
macro_rules! consume {
    ($table:literal, $id:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET remaining = ",
            balance!("$3"),
            " - $2, credits_granted = CASE WHEN ",
            refill_due!("$3"),
            " THEN refill_amount ELSE credits_granted END, credits_set_at = CASE WHEN ",
            refill_due!("$3"),
            " THEN $3 ELSE credits_set_at END WHERE ",
            $id,
            " = $1 AND remaining IS NOT NULL AND ",
            balance!("$3"),
            " >= $2 RETURNING remaining"
        )
    };
}

/// What `consume!` would find, without taking any: for a cost of 0, and when it took
/// nothing.
macro_rules! remaining {
    ($table:literal, $id:literal) => {
        concat!(
            "SELECT ",
            balance!("$2"),
            " AS remaining FROM ",
            $table,
            " WHERE ",
            $id,
            " = $1"
        )
    };
}

/// A key's credits taken, and read.
pub(crate) const CONSUME: &str = consume!("api_keys", "id");
pub(crate) const REMAINING: &str = remaining!("api_keys", "id");
/// A user's credits (all their keys draw on them) taken, and read.
pub(crate) const CONSUME_USER: &str = consume!("user_limits", "user_id");
pub(crate) const REMAINING_USER: &str = remaining!("user_limits", "user_id");
/// The balance for a user's default credits, made at their first metered use
/// (another instance may have made it: then nothing).
pub(crate) const INSERT_DEFAULT_USER_CREDITS: &str = "INSERT INTO user_limits (user_id, \
     explicit, remaining, credits_granted, credits_set_at, refill_amount, refill_interval, \
     refill_day, updated_at) VALUES ($1, 0, $2, $2, $3, $4, $5, $6, $3) \
     ON CONFLICT (user_id) DO NOTHING";
/// A user's limits.
pub(crate) const GET_USER_LIMITS: &str = "SELECT user_id, explicit, rate_limit_requests, \
     rate_limit_per_seconds, remaining, credits_set_at, refill_amount, refill_interval, \
     refill_day FROM user_limits WHERE user_id = $1";
/// Sets a user's limits in place of the defaults. Credits set anew are a new grant.
pub(crate) const PUT_USER_LIMITS: &str = "INSERT INTO user_limits (user_id, explicit, \
     rate_limit_requests, rate_limit_per_seconds, remaining, credits_granted, credits_set_at, \
     refill_amount, refill_interval, refill_day, updated_at) \
     VALUES ($1, 1, $2, $3, $4, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (user_id) DO UPDATE SET explicit = 1, \
     rate_limit_requests = excluded.rate_limit_requests, \
     rate_limit_per_seconds = excluded.rate_limit_per_seconds, \
     remaining = excluded.remaining, credits_granted = excluded.credits_granted, \
     credits_set_at = excluded.credits_set_at, refill_amount = excluded.refill_amount, \
     refill_interval = excluded.refill_interval, refill_day = excluded.refill_day, \
     updated_at = excluded.updated_at";
pub(crate) const DELETE_USER_LIMITS: &str = "DELETE FROM user_limits WHERE user_id = $1";
/// The hashes of a user's keys: a change to what they share is announced for each.
pub(crate) const USER_KEY_HASHES: &str = "SELECT key_hash FROM api_keys WHERE user_id = $1";

/// Moves `last_used_at` forward, never back, for `rows` (id, time) pairs; returns a
/// row per key changed.
pub(crate) fn record_usage(binds: Binds, rows: usize) -> String {
    format!(
        "WITH usage (id, used_at) AS (VALUES {}) \
         UPDATE api_keys SET last_used_at = usage.used_at FROM usage \
         WHERE api_keys.id = usage.id \
         AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < usage.used_at) \
         RETURNING api_keys.id",
        placeholders(binds, 2, rows)
    )
}

/// Adds counts to keys' hours for `rows` (key, hour, valid, refused) values; a key
/// deleted since it was counted is skipped. The table is named on the right of `SET`
/// because PostgreSQL would find a bare `valid` ambiguous beside `excluded.valid`.
pub(crate) fn record_usage_history(binds: Binds, rows: usize) -> String {
    format!(
        "WITH usage (key_id, hour, valid, refused) AS (VALUES {}) \
         INSERT INTO key_usage_hourly (key_id, hour, valid, refused) \
         SELECT usage.key_id, usage.hour, usage.valid, usage.refused FROM usage \
         WHERE EXISTS (SELECT 1 FROM api_keys WHERE api_keys.id = usage.key_id) \
         ON CONFLICT (key_id, hour) DO UPDATE SET \
         valid = key_usage_hourly.valid + excluded.valid, \
         refused = key_usage_hourly.refused + excluded.refused",
        placeholders(binds, HISTORY_ROW_WIDTH, rows)
    )
}
/// Values per usage history row.
pub(crate) const HISTORY_ROW_WIDTH: usize = 4;

/// One key's hours in [`$2`, `$3`), oldest first.
pub(crate) const KEY_USAGE_HISTORY: &str = "SELECT hour, valid, refused FROM key_usage_hourly \
     WHERE key_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour";
/// A user's keys' hours in [`$2`, `$3`), summed, oldest first.
pub(crate) const USER_USAGE_HISTORY: &str = "SELECT h.hour, \
     CAST(SUM(h.valid) AS BIGINT) AS valid, CAST(SUM(h.refused) AS BIGINT) AS refused \
     FROM key_usage_hourly h JOIN api_keys k ON k.id = h.key_id \
     WHERE k.user_id = $1 AND h.hour >= $2 AND h.hour < $3 GROUP BY h.hour ORDER BY h.hour";
/// Every key's hours in [`$1`, `$2`), summed, oldest first.
pub(crate) const ALL_USAGE_HISTORY: &str = "SELECT hour, \
     CAST(SUM(valid) AS BIGINT) AS valid, CAST(SUM(refused) AS BIGINT) AS refused \
     FROM key_usage_hourly WHERE hour >= $1 AND hour < $2 GROUP BY hour ORDER BY hour";
/// Forgets the hours before `$1`.
pub(crate) const PRUNE_USAGE_HISTORY: &str = "DELETE FROM key_usage_hourly WHERE hour < $1";

pub(crate) const DELETE_USER_KEYS: &str =
    "DELETE FROM api_keys WHERE user_id = $1 RETURNING id, key_hash";

/// Keys, service credentials and webhook secrets per pepper version: all are made
/// with it, and a webhook's secret is derived from its pepper until it is rotated.
pub(crate) const PEPPER_USAGE: &str = "SELECT pepper_version, \
     COUNT(*) FILTER (WHERE status <> 'REVOKED') AS live, \
     COUNT(*) FILTER (WHERE status = 'REVOKED') AS revoked \
     FROM (SELECT pepper_version, status FROM api_keys \
     UNION ALL SELECT pepper_version, status FROM service_credentials \
     UNION ALL SELECT secret_pepper, 'ACTIVE' FROM webhooks) AS hashed \
     GROUP BY pepper_version ORDER BY pepper_version";

/// The start of an event query; filters follow as ` AND column op $n`.
pub(crate) const LIST_EVENTS: &str = "SELECT id, at, actor_kind, actor_id, actor_credential_id, action, \
     key_id, user_id, changes \
     FROM key_events WHERE 1 = 1";

/// `SELECT` with the columns of a service credential, then the rest of the statement.
macro_rules! select_credential {
    ($($rest:expr),+ $(,)?) => {
        concat!(
            "SELECT id, name, scopes, created_at, created_by, last_used_at, expires_at, \
             status, revoked_at, previous_until",
            $($rest),+
        )
    };
}

pub(crate) const INSERT_CREDENTIAL: &str = "INSERT INTO service_credentials (id, name, scopes, \
     hash, pepper_version, created_at, created_by, last_used_at, expires_at, status, \
     revoked_at, previous_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
pub(crate) const LIST_CREDENTIALS: &str =
    select_credential!(" FROM service_credentials ORDER BY created_at DESC, id DESC");
pub(crate) const GET_CREDENTIAL: &str =
    select_credential!(" FROM service_credentials WHERE id = $1");
/// Which of the two secrets matched comes back as `current_secret` (1 or 0).
pub(crate) const FIND_CREDENTIAL: &str = select_credential!(
    ", CAST(CASE WHEN hash = $1 THEN 1 ELSE 0 END AS INTEGER) AS current_secret \
     FROM service_credentials WHERE hash = $1 OR previous_hash = $1"
);
/// The locking read of a credential about to change: an update that changes nothing
/// locks the row on PostgreSQL (and is a write in SQLite's write transaction), and
/// returns the hashes the change retires.
pub(crate) const HOLD_CREDENTIAL: &str = "UPDATE service_credentials SET id = id WHERE id = $1 \
     RETURNING status, hash, previous_hash";
pub(crate) const REVOKE_CREDENTIAL: &str = "UPDATE service_credentials \
     SET status = 'REVOKED', revoked_at = $2 WHERE id = $1 AND status = 'ACTIVE'";
/// Ends the replaced secret `$2` at once (it was reported leaked); the current one
/// stays. No row: it is not this credential's replaced secret (any more).
pub(crate) const END_PREVIOUS_SECRET: &str = "UPDATE service_credentials \
     SET previous_hash = NULL, previous_until = NULL WHERE id = $1 AND previous_hash = $2 \
     RETURNING id";
/// `$4`: until when the replaced secret works, or NULL for not at all.
pub(crate) const ROTATE_CREDENTIAL: &str = "UPDATE service_credentials \
     SET previous_hash = CASE WHEN $4 IS NULL THEN NULL ELSE hash END, previous_until = $4, \
     hash = $2, pepper_version = $3 WHERE id = $1";
pub(crate) const REHASH_CREDENTIAL: &str = "UPDATE service_credentials \
     SET hash = $3, pepper_version = $4 WHERE id = $1 AND hash = $2";
pub(crate) const TOUCH_CREDENTIAL: &str = "UPDATE service_credentials SET last_used_at = $2 \
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";

// Webhooks: endpoints, subscriptions and the outbox.

/// `SELECT` with the columns of an endpoint, then the rest of the statement.
macro_rules! select_webhook {
    ($($rest:expr),+ $(,)?) => {
        concat!(
            "SELECT id, url, description, created_at, created_by, updated_at, disabled_at, \
             disabled_reason, last_success_at, previous_until FROM webhooks",
            $($rest),+
        )
    };
}

pub(crate) const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (id, url, description, \
     created_at, created_by, updated_at, secret_nonce, secret_pepper) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const LIST_WEBHOOKS: &str = select_webhook!(" ORDER BY id DESC");
pub(crate) const GET_WEBHOOK: &str = select_webhook!(" WHERE id = $1");
/// Locks an endpoint's row until the transaction ends (a no-op write, as for
/// credentials), and says whether it exists.
pub(crate) const HOLD_WEBHOOK: &str = "UPDATE webhooks SET id = id WHERE id = $1 RETURNING id";
pub(crate) const WRITE_WEBHOOK: &str = "UPDATE webhooks SET url = $2, description = $3, \
     updated_at = $4, disabled_at = $5, disabled_reason = $6 WHERE id = $1";
pub(crate) const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE id = $1 RETURNING id";
pub(crate) const SUBSCRIPTIONS: &str =
    "SELECT webhook_id, event_type FROM webhook_subscriptions ORDER BY webhook_id, event_type";
pub(crate) const SUBSCRIPTIONS_OF: &str = "SELECT webhook_id, event_type FROM webhook_subscriptions WHERE webhook_id = $1 \
     ORDER BY event_type";
pub(crate) const SUBSCRIBE: &str =
    "INSERT INTO webhook_subscriptions (event_type, webhook_id) VALUES ($1, $2)";
pub(crate) const UNSUBSCRIBE_ALL: &str = "DELETE FROM webhook_subscriptions WHERE webhook_id = $1";
pub(crate) const SIGNING_SEEDS: &str = "SELECT secret_nonce, secret_pepper, previous_nonce, \
     previous_pepper, previous_until FROM webhooks WHERE id = $1";
/// The current secret becomes the previous one (the right-hand sides read the row as
/// it was).
pub(crate) const ROTATE_WEBHOOK_SECRET: &str = "UPDATE webhooks SET \
     previous_nonce = secret_nonce, previous_pepper = secret_pepper, previous_until = $4, \
     secret_nonce = $2, secret_pepper = $3, updated_at = $5 WHERE id = $1";

/// Whether any endpoint subscribes to an event type: a change writes its event only
/// then. A disabled endpoint counts: its events wait for it to be enabled again.
pub(crate) const SUBSCRIBED: &str = "SELECT 1 AS subscribed FROM webhook_subscriptions \
     WHERE event_type = $1 LIMIT 1";
pub(crate) const INSERT_WEBHOOK_EVENT: &str =
    "INSERT INTO webhook_events (id, type, key_id, at, body) VALUES ($1, $2, $3, $4, $5)";
/// One delivery of event `$1` per endpoint subscribed to its type `$4` (a disabled
/// one's waits: claims pass it over until it is enabled).
pub(crate) const FAN_OUT: &str = "INSERT INTO webhook_deliveries \
     (webhook_id, event_id, key_id, state, attempts, next_attempt_at, created_at) \
     SELECT webhook_id, $1, $2, 'pending', 0, $3, $3 FROM webhook_subscriptions \
     WHERE event_type = $4";
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (webhook_id, event_id, key_id, state, attempts, next_attempt_at, created_at) \
     VALUES ($1, $2, NULL, 'pending', 0, $3, $3)";

/// Claims due deliveries (see `WebhookStore::claim_deliveries`); `$lock` is how the
/// backend keeps two instances from choosing the same rows.
macro_rules! claim_deliveries {
    ($lock:expr) => {
        concat!(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, leased_until = $2 \
             WHERE id IN (SELECT d.id FROM webhook_deliveries d \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.leased_until IS NULL OR d.leased_until <= $1) \
             AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id \
             AND w.disabled_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
             WHERE e.webhook_id = d.webhook_id AND e.key_id = d.key_id \
             AND e.state = 'pending' AND e.id < d.id) \
             ORDER BY d.id LIMIT $3",
            $lock,
            ") RETURNING id, attempts"
        )
    };
}
pub(crate) const CLAIM_DELIVERIES: &str = claim_deliveries!("");
pub(crate) const CLAIM_DELIVERIES_SKIP_LOCKED: &str =
    claim_deliveries!(" FOR UPDATE OF d SKIP LOCKED");
pub(crate) const CLAIMED_DELIVERY: &str = "SELECT d.id, d.attempts, d.webhook_id, w.url, \
     w.secret_nonce, w.secret_pepper, w.previous_nonce, w.previous_pepper, w.previous_until, \
     e.id AS event_id, e.type AS event_type, e.body \
     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
     JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1";
pub(crate) const DELIVERED: &str = "UPDATE webhook_deliveries SET state = 'delivered', \
     finished_at = $3, leased_until = NULL \
     WHERE id = $1 AND attempts = $2 AND state = 'pending' RETURNING webhook_id, created_at";
pub(crate) const RETRY_LATER: &str = "UPDATE webhook_deliveries SET next_attempt_at = $3, \
     leased_until = NULL WHERE id = $1 AND attempts = $2 AND state = 'pending' \
     RETURNING webhook_id, created_at";
pub(crate) const GIVE_UP: &str = "UPDATE webhook_deliveries SET state = 'failed', \
     finished_at = $3, leased_until = NULL \
     WHERE id = $1 AND attempts = $2 AND state = 'pending' RETURNING webhook_id, created_at";
pub(crate) const RECORD_SUCCESS: &str = "UPDATE webhooks SET last_success_at = $2 WHERE id = $1";
/// Disables an endpoint that acknowledged nothing since `$4` (a failed delivery's
/// creation): it has failed for the whole retry window.
pub(crate) const DISABLE_FAILING: &str = "UPDATE webhooks SET disabled_at = $2, \
     disabled_reason = $3 WHERE id = $1 AND disabled_at IS NULL \
     AND (last_success_at IS NULL OR last_success_at < $4) RETURNING id";
pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO webhook_attempts \
     (delivery_id, at, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const LIST_DELIVERIES: &str = "SELECT d.id, d.event_id, e.type AS event_type, \
     d.key_id, d.state, d.attempts, d.next_attempt_at, d.created_at, d.finished_at \
     FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
     WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2";
pub(crate) const ATTEMPTS_OF: &str = "SELECT a.delivery_id, a.at, a.status_code, \
     a.latency_ms, a.error FROM webhook_attempts a \
     JOIN webhook_deliveries d ON d.id = a.delivery_id \
     WHERE d.webhook_id = $1 AND d.id >= $2 ORDER BY a.id";
/// A delivery due again; one being attempted keeps its claim (it is not sent twice
/// at once), and its attempt decides what follows.
pub(crate) const RETRY_DELIVERY: &str = "UPDATE webhook_deliveries SET state = 'pending', \
     next_attempt_at = $3, finished_at = NULL \
     WHERE id = $1 AND webhook_id = $2 RETURNING id";
pub(crate) const PRUNE_DELIVERIES: &str =
    "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < $1 RETURNING id";
pub(crate) const PRUNE_WEBHOOK_EVENTS: &str = "DELETE FROM webhook_events WHERE at < $1 \
     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)";

/// Keys whose expiry falls in (`$1`, `$2`] and was not yet announced as `$3`: the
/// coming expiry (`api_key.expiring`) or the one just passed (`api_key.expired`).
/// Revoked keys and rotated ones (their end was announced with the rotation) are
/// left out.
pub(crate) const EXPIRY_TO_ANNOUNCE: &str = select_key!(
    ", expires_at AS marker FROM api_keys k \
     WHERE k.status <> 'REVOKED' AND k.rotated_to IS NULL \
     AND k.expires_at > $1 AND k.expires_at <= $2 \
     AND NOT EXISTS (SELECT 1 FROM webhook_markers m WHERE m.key_id = k.id \
     AND m.event_type = $3 AND m.marker = k.expires_at) \
     ORDER BY k.expires_at, k.id LIMIT $4"
);
/// Keys whose credits fell below `$1` percent of the amount last set, not yet
/// announced (`$2`) for that amount. Compared as floating point: credits reach 10^18,
/// and times 100 they would overflow PostgreSQL's BIGINT. Scans take keys in one
/// order, so two instances marking the same keys wait for each other, never deadlock.
pub(crate) const LOW_CREDITS_TO_ANNOUNCE: &str = select_key!(
    ", credits_set_at AS marker FROM api_keys k \
     WHERE k.remaining IS NOT NULL AND k.status <> 'REVOKED' AND k.rotated_to IS NULL \
     AND k.credits_granted > 0 AND k.credits_set_at IS NOT NULL \
     AND CAST(k.remaining AS DOUBLE PRECISION) * 100 \
     < CAST(k.credits_granted AS DOUBLE PRECISION) * $1 \
     AND NOT EXISTS (SELECT 1 FROM webhook_markers m WHERE m.key_id = k.id \
     AND m.event_type = $2 AND m.marker = k.credits_set_at) \
     ORDER BY k.id LIMIT $3"
);
/// Keys whose credits ran out, not yet announced (`$1`) for the amount last set.
pub(crate) const EXHAUSTED_CREDITS_TO_ANNOUNCE: &str = select_key!(
    ", credits_set_at AS marker FROM api_keys k \
     WHERE k.remaining = 0 AND k.status <> 'REVOKED' AND k.rotated_to IS NULL \
     AND k.credits_granted > 0 AND k.credits_set_at IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM webhook_markers m WHERE m.key_id = k.id \
     AND m.event_type = $1 AND m.marker = k.credits_set_at) \
     ORDER BY k.id LIMIT $2"
);
/// Claims the announcement of a condition; no row when another instance did.
pub(crate) const MARK_ANNOUNCED: &str = "INSERT INTO webhook_markers (key_id, event_type, marker) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING key_id";
/// Forgets markers of times older than the lookback (expiries, rate limit periods):
/// those are never candidates again.
pub(crate) const PRUNE_TIME_MARKERS: &str = "DELETE FROM webhook_markers \
     WHERE event_type IN ('api_key.expiring', 'api_key.expired', 'api_key.rate_limited') \
     AND marker < $1";
/// Forgets credit markers of grants the key has moved past (a top-up, a refill): only
/// the current grant's are candidates, and credits that renew every minute would
/// otherwise leave two rows a minute behind.
pub(crate) const PRUNE_CREDIT_MARKERS: &str = "DELETE FROM webhook_markers \
     WHERE event_type IN ('api_key.credits_low', 'api_key.credits_exhausted') \
     AND marker < (SELECT k.credits_set_at FROM api_keys k WHERE k.id = webhook_markers.key_id)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_single_row_statements_are_the_bulk_ones_for_one_row() {
        assert_eq!(insert_keys(Binds::Numbered, 1), INSERT_KEY);
        assert_eq!(insert_events(Binds::Numbered, 1), INSERT_EVENT);
    }

    #[test]
    fn placeholders_mark_every_value_once_in_order() {
        assert_eq!(placeholders(Binds::Numbered, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(Binds::Anonymous, 2, 2), "(?, ?), (?, ?)");
    }
}
