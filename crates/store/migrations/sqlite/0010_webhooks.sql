-- Webhooks: endpoints, what each subscribes to, and the outbox. An event is written
-- in the transaction of the change that causes it, with one delivery per endpoint
-- subscribed then; a sender claims due deliveries for a while (leased_until), so one
-- instance at a time attempts each, and one killed mid-way leaves it to the next.
-- The signing secret is not stored: it is derived from the pepper of secret_pepper
-- and the random secret_nonce (and, during a rotation, from the previous pair).
CREATE TABLE webhooks (
    id              BLOB    PRIMARY KEY CHECK (length(id) = 16),
    url             TEXT    NOT NULL,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL,
    secret_nonce    BLOB    NOT NULL CHECK (length(secret_nonce) = 16),
    secret_pepper   INTEGER NOT NULL,
    previous_nonce  BLOB    CHECK (previous_nonce IS NULL OR length(previous_nonce) = 16),
    previous_pepper INTEGER,
    previous_until  INTEGER,
    disabled_at     INTEGER,
    disabled_reason TEXT,
    last_success_at INTEGER
);

CREATE TABLE webhook_subscriptions (
    event_type TEXT NOT NULL,
    webhook_id BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    PRIMARY KEY (event_type, webhook_id)
);
CREATE INDEX webhook_subscriptions_of ON webhook_subscriptions (webhook_id);

-- id is the webhook-id header (stable across attempts); body is sent as stored.
CREATE TABLE webhook_events (
    id      TEXT    PRIMARY KEY,
    type    TEXT    NOT NULL,
    key_id  BLOB    CHECK (key_id IS NULL OR length(key_id) = 16),
    at      INTEGER NOT NULL,
    body    TEXT    NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      BLOB    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    -- A key's deliveries to an endpoint go one at a time, in order.
    key_id          BLOB,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_key ON webhook_deliveries (webhook_id, key_id, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE state <> 'pending';

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX webhook_attempts_of ON webhook_attempts (delivery_id, id);

-- Conditions announced once: a key's expiry coming or passed (marker: its
-- expires_at, so a new expiry is announced anew), its credits low or exhausted
-- (marker: when its credits were last set). Inserted with the event, in one
-- transaction, so two instances scanning at once announce each once.
CREATE TABLE webhook_markers (
    key_id     BLOB NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    event_type TEXT    NOT NULL,
    marker     INTEGER  NOT NULL,
    PRIMARY KEY (key_id, event_type, marker)
);

-- The last amount of credits set, and when: credits_low is measured from it.
ALTER TABLE api_keys ADD COLUMN credits_granted INTEGER;
ALTER TABLE api_keys ADD COLUMN credits_set_at INTEGER;
UPDATE api_keys SET credits_granted = remaining, credits_set_at = updated_at
    WHERE remaining IS NOT NULL;
CREATE INDEX api_keys_expiry ON api_keys (expires_at) WHERE expires_at IS NOT NULL;
-- Keys with credits, for the credit scans. Not on remaining itself: every verification
-- of such a key changes it, and an index on it would cost each of those writes.
CREATE INDEX api_keys_credits ON api_keys (credits_set_at) WHERE credits_set_at IS NOT NULL;
