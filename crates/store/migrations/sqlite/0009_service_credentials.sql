-- Service credentials: the platform's services' own secrets, each limited to its
-- scopes. Only the secret's peppered hash is stored; after a rotation with a grace
-- period, the replaced secret's hash stays in previous_hash until previous_until.
CREATE TABLE service_credentials (
    id             BLOB    PRIMARY KEY CHECK (length(id) = 16),
    name           TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,  -- contract names, space-separated
    hash           BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
    pepper_version INTEGER NOT NULL,
    previous_hash  BLOB    UNIQUE CHECK (previous_hash IS NULL OR length(previous_hash) = 32),
    previous_until INTEGER,
    created_at     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL,
    last_used_at   INTEGER,
    expires_at     INTEGER,
    status         TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'REVOKED')),
    revoked_at     INTEGER
);

-- A credential may be the actor of a key's change: the audit trail keeps its name
-- (actor_id) and its id. SQLite changes a CHECK only by rebuilding the table; the
-- rebuilt table keeps every id and the counter of ids handed out.
CREATE TABLE key_events_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    at                  INTEGER NOT NULL,
    actor_kind          TEXT    NOT NULL CHECK (actor_kind IN ('user', 'admin', 'credential')),
    actor_id            TEXT    NOT NULL,
    action              TEXT    NOT NULL,
    key_id              BLOB    CHECK (key_id IS NULL OR length(key_id) = 16),
    user_id             TEXT    NOT NULL,
    changes             TEXT    NOT NULL,
    actor_credential_id BLOB    CHECK (actor_credential_id IS NULL OR length(actor_credential_id) = 16),
    CHECK ((actor_kind = 'credential') = (actor_credential_id IS NOT NULL))
);
INSERT INTO key_events_new (id, at, actor_kind, actor_id, action, key_id, user_id, changes)
    SELECT id, at, actor_kind, actor_id, action, key_id, user_id, changes FROM key_events;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'key_events_new', seq FROM sqlite_sequence
    WHERE name = 'key_events' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'key_events_new');
UPDATE sqlite_sequence
    SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'key_events')
    WHERE name = 'key_events_new' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'key_events');
DROP TABLE key_events;
ALTER TABLE key_events_new RENAME TO key_events;
CREATE INDEX key_events_key ON key_events (key_id, id) WHERE key_id IS NOT NULL;
CREATE INDEX key_events_user ON key_events (user_id, id);
CREATE INDEX key_events_at ON key_events (at, id);
