-- Limits a user's keys share: one rate limit pool and one credit balance (with its
-- refill, as on keys). `explicit` = 1: set by the platform, in place of the
-- deployment's defaults; 0: a balance kept for the default credits
-- (KEYWARD_DEFAULT_USER_CREDITS), made at the user's first metered verification.
CREATE TABLE user_limits (
    user_id TEXT PRIMARY KEY,
    explicit INTEGER NOT NULL,
    rate_limit_requests INTEGER,
    rate_limit_per_seconds INTEGER,
    remaining INTEGER,
    credits_granted INTEGER,
    credits_set_at INTEGER,
    refill_amount INTEGER,
    refill_interval TEXT,
    refill_day INTEGER,
    updated_at INTEGER NOT NULL,
    CHECK ((rate_limit_requests IS NULL) = (rate_limit_per_seconds IS NULL)),
    CHECK ((refill_amount IS NULL) = (refill_interval IS NULL))
);
