-- Rotation links: the key a key replaced, and the key that replaced it.
ALTER TABLE api_keys ADD COLUMN rotated_from UUID, ADD COLUMN rotated_to UUID;
