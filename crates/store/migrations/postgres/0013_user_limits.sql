-- Limits a user's keys share: one rate limit pool and one credit balance (with its
-- refill, as on keys). `explicit` = 1: set by the platform, in place of the
-- deployment's defaults; 0: a balance kept for the default credits
-- (KEYWARD_DEFAULT_USER_CREDITS), made at the user's first metered verification.
CREATE TABLE user_limits (
    user_id TEXT PRIMARY KEY,
    explicit INTEGER NOT NULL,
    rate_limit_requests INTEGER,
    rate_limit_per_seconds INTEGER,
    remaining BIGINT,
    credits_granted BIGINT,
    credits_set_at BIGINT,
    refill_amount BIGINT,
    refill_interval TEXT,
    refill_day INTEGER,
    updated_at BIGINT NOT NULL,
    CONSTRAINT user_limits_rate_limit_whole
        CHECK ((rate_limit_requests IS NULL) = (rate_limit_per_seconds IS NULL)),
    CONSTRAINT user_limits_refill_whole
        CHECK ((refill_amount IS NULL) = (refill_interval IS NULL))
);
