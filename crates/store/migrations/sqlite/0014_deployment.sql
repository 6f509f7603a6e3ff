-- Which deployment this database holds: one row, its id made when the schema is
-- made. `keyward copy` gives a target the source's id, so a second run knows the
-- target for its own (and resumes) and refuses another deployment's data.
-- copy_started_at: set while `keyward copy` fills this database, cleared when the
-- copy ends with every table's digest equal on both sides; the server refuses to
-- start on a database whose copy has not finished. copy_nonce: a copy's own mark,
-- which tells it that its source is this very database under another URL.
-- uses: counts the starts of `keyward serve` on this database; uses_at_copy: its
-- value when the last copy into it ended. A copy into a database used since would
-- undo what was done there, and is refused.
CREATE TABLE deployment (
    id              TEXT    NOT NULL PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    copy_started_at INTEGER,
    copy_nonce      TEXT,
    uses            INTEGER NOT NULL DEFAULT 0,
    uses_at_copy    INTEGER
);
INSERT INTO deployment (id, created_at)
    VALUES (lower(hex(randomblob(16))), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
