-- Usage credits: NULL is unlimited; each valid verification takes its cost.
ALTER TABLE api_keys ADD COLUMN remaining BIGINT CHECK (remaining IS NULL OR remaining >= 0);
