-- Which deployment this database holds: one row, its id made when the schema is
-- made. `keyward copy` gives a target the source's id, so a second run knows the
-- target for its own (and resumes) and refuses another deployment's data.
-- copy_started_at: set while `keyward copy` fills this database, cleared when the
-- copy ends with every table's digest equal on both sides; the server refuses to
-- start on a database whose copy has not finished.
CREATE TABLE deployment (
    id              TEXT   NOT NULL PRIMARY KEY,
    created_at      BIGINT NOT NULL,
    copy_started_at BIGINT
);
INSERT INTO deployment (id, created_at)
    VALUES (replace(gen_random_uuid()::text, '-', ''),
            (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
