-- Keys imported from AutoGPT keep AutoGPT's hash here until their first successful
-- verification re-hashes them with the pepper (then the row is deleted). Their
-- api_keys.key_hash holds random bytes until then, which no presented key can match.
CREATE TABLE legacy_credentials (
    key_id BLOB NOT NULL PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    kind   TEXT NOT NULL CHECK (kind IN ('sha256', 'scrypt')),
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    salt   BLOB,                                   -- scrypt only
    head   TEXT NOT NULL                           -- the key's first 8 characters
);

-- SHA-256 rows: found by one indexed lookup of the digest.
CREATE UNIQUE INDEX legacy_credentials_sha256 ON legacy_credentials (digest) WHERE kind = 'sha256';
-- scrypt rows: candidates by head, each then checked with one scrypt.
CREATE INDEX legacy_credentials_head ON legacy_credentials (head) WHERE kind = 'scrypt';
