-- The audit trail: one row per change, written in the change's own transaction.
-- No foreign key to api_keys: events outlive the keys a user deletion removes.
CREATE TABLE key_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the pagination cursor
    at         BIGINT NOT NULL,                                   -- ms since the Unix epoch
    actor_kind TEXT   NOT NULL CHECK (actor_kind IN ('user', 'admin')),
    actor_id   TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    key_id     UUID,
    user_id    TEXT   NOT NULL,                                   -- the key's owner
    changes    TEXT   NOT NULL                                    -- JSON: {field: {before, after}}
);

CREATE INDEX key_events_key ON key_events (key_id, id) WHERE key_id IS NOT NULL;
CREATE INDEX key_events_user ON key_events (user_id, id);
CREATE INDEX key_events_at ON key_events (at, id);
