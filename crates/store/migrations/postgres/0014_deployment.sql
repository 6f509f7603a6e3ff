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
    id              TEXT   NOT NULL PRIMARY KEY,
    created_at      BIGINT NOT NULL,
    copy_started_at BIGINT,
    copy_nonce      TEXT,
    uses            BIGINT NOT NULL DEFAULT 0,
    uses_at_copy    BIGINT
);
INSERT INTO deployment (id, created_at)
    VALUES (replace(gen_random_uuid()::text, '-', ''),
            (extract(epoch FROM clock_timestamp()) * 1000)::bigint);

-- Text primary keys in byte order, the order a copy walks them in (as on SQLite): in
-- the default collation, a copy's `COLLATE "C"` comparisons could not use their
-- indexes. Lookups by equality are unchanged.
ALTER TABLE user_limits ALTER COLUMN user_id TYPE TEXT COLLATE "C";
ALTER TABLE webhook_events ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE webhook_deliveries ALTER COLUMN event_id TYPE TEXT COLLATE "C";
ALTER TABLE webhook_subscriptions ALTER COLUMN event_type TYPE TEXT COLLATE "C";
ALTER TABLE webhook_markers ALTER COLUMN event_type TYPE TEXT COLLATE "C";
