-- A key's optional verification rate limit: `rate_limit_requests` per
-- `rate_limit_per_seconds`. Both set or both NULL.
ALTER TABLE api_keys
    ADD COLUMN rate_limit_requests INTEGER,
    ADD COLUMN rate_limit_per_seconds INTEGER,
    ADD CONSTRAINT api_keys_rate_limit_whole
        CHECK ((rate_limit_requests IS NULL) = (rate_limit_per_seconds IS NULL));
