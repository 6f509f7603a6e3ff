-- Usage credits that renew: set back to `refill_amount` at every boundary of
-- `refill_interval` ('minute', 'hour', 'day', 'week' or 'month'; UTC), a monthly
-- one on `refill_day` (NULL: the 1st). All NULL: credits do not renew. A refill is
-- decided in the write that takes a credit: due once `credits_set_at` is before
-- the latest boundary.
ALTER TABLE api_keys ADD COLUMN refill_amount INTEGER;
ALTER TABLE api_keys ADD COLUMN refill_interval TEXT;
ALTER TABLE api_keys ADD COLUMN refill_day INTEGER;
