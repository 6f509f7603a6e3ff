-- A key's metadata: a JSON object (at most 4 KiB serialised) returned by verification.
ALTER TABLE api_keys ADD COLUMN metadata TEXT;
