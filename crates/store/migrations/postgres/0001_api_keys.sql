-- API keys. Times are integers: milliseconds since the Unix epoch, UTC (as on SQLite).
CREATE TABLE api_keys (
    id             UUID     NOT NULL PRIMARY KEY,                         -- UUID v7
    user_id        TEXT     NOT NULL,
    name           TEXT     NOT NULL,
    description    TEXT,
    key_hash       BYTEA    NOT NULL CHECK (octet_length(key_hash) = 32), -- HMAC-SHA256(pepper, key)
    pepper_version INTEGER  NOT NULL,
    prefix         TEXT     NOT NULL,                                     -- display only
    postfix        TEXT     NOT NULL,                                     -- display only
    status         TEXT     NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'REVOKED')),
    permissions    TEXT[]   NOT NULL,
    created_at     BIGINT   NOT NULL,
    updated_at     BIGINT   NOT NULL,
    last_used_at   BIGINT,
    revoked_at     BIGINT,
    expires_at     BIGINT
);

-- Verification finds a key by one indexed lookup of its hash.
CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
-- A user's keys, newest first.
CREATE INDEX api_keys_user_created ON api_keys (user_id, created_at DESC, id DESC);
-- The per-user cap counts keys that are not revoked.
CREATE INDEX api_keys_user_live ON api_keys (user_id) WHERE status <> 'REVOKED';
