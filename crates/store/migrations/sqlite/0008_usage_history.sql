-- Verifications per key and UTC hour (`hour`: the hour's start, in milliseconds),
-- added to by each flush of the counts kept in memory. A user's deletion deletes
-- their keys and, with them, this history.
CREATE TABLE key_usage_hourly (
    key_id  BLOB    NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    hour    INTEGER NOT NULL,
    valid   INTEGER NOT NULL CHECK (valid >= 0),
    refused INTEGER NOT NULL CHECK (refused >= 0),
    PRIMARY KEY (key_id, hour)
);

-- The deployment's totals by hour, and pruning the oldest hours.
CREATE INDEX key_usage_hourly_hour ON key_usage_hourly (hour);
