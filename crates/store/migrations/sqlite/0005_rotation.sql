-- Rotation links: the key a key replaced, and the key that replaced it.
ALTER TABLE api_keys ADD COLUMN rotated_from BLOB CHECK (rotated_from IS NULL OR length(rotated_from) = 16);
ALTER TABLE api_keys ADD COLUMN rotated_to BLOB CHECK (rotated_to IS NULL OR length(rotated_to) = 16);
