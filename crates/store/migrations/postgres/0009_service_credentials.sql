-- Service credentials: the platform's services' own secrets, each limited to its
-- scopes. Only the secret's peppered hash is stored; after a rotation with a grace
-- period, the replaced secret's hash stays in previous_hash until previous_until.
CREATE TABLE service_credentials (
    id             UUID    PRIMARY KEY,
    name           TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,  -- contract names, space-separated
    hash           BYTEA   NOT NULL UNIQUE CHECK (length(hash) = 32),
    pepper_version INTEGER NOT NULL,
    previous_hash  BYTEA   UNIQUE CHECK (previous_hash IS NULL OR length(previous_hash) = 32),
    previous_until BIGINT,
    created_at     BIGINT  NOT NULL,
    created_by     TEXT    NOT NULL,
    last_used_at   BIGINT,
    expires_at     BIGINT,
    status         TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'REVOKED')),
    revoked_at     BIGINT
);

-- A credential may be the actor of a key's change: the audit trail keeps its name
-- (actor_id) and its id.
ALTER TABLE key_events DROP CONSTRAINT key_events_actor_kind_check;
ALTER TABLE key_events
    ADD CONSTRAINT key_events_actor_kind_check
        CHECK (actor_kind IN ('user', 'admin', 'credential')),
    ADD COLUMN actor_credential_id UUID,
    ADD CONSTRAINT key_events_credential_actor
        CHECK ((actor_kind = 'credential') = (actor_credential_id IS NOT NULL));
