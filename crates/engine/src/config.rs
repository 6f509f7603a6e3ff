//! The engine's settings, with defaults suited to one instance.

use std::sync::Arc;
use std::time::Duration;

use keyward_core::hash::Peppers;
use keyward_core::key::KeyFormat;
use keyward_core::permissions::Catalogue;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_core::webhook::RetrySchedule;

use crate::shared_limits::RateLimitStore;

/// The source of "now"; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        Timestamp::from_datetime(time::OffsetDateTime::now_utc())
            .expect("the system clock is between 1970 and 9999")
    })
}

#[derive(Clone)]
pub struct EngineConfig {
    pub key_format: KeyFormat,
    pub catalogue: Catalogue,
    pub peppers: Peppers,
    /// Keys a user may hold that are not revoked.
    pub max_keys_per_user: u32,
    /// Verification results kept in memory (entries).
    pub cache_capacity: u64,
    /// Upper bound on how long a cached result is trusted without being re-read.
    /// Changes made through this engine invalidate at once; this bounds only what the
    /// engine could not have heard of.
    pub cache_ttl: Duration,
    /// Keys loaded into the cache at start: the most verified over the last day (from
    /// the usage history), so a restarted instance does not send its first minutes of
    /// traffic to the database. 0: none. At most `cache_capacity`.
    pub cache_warmup: u32,
    /// Hashes known not to exist, kept briefly so a flood of forged keys does not
    /// become a flood of database reads. Separate from the positive cache so the
    /// flood cannot evict real keys.
    pub negative_cache_capacity: u64,
    pub negative_cache_ttl: Duration,
    /// How often recorded usage is written to the database.
    pub usage_flush_interval: Duration,
    /// How precise `last_used_at` is: a key's use is recorded only if its previous
    /// recorded use is at least this much older. A key verified all day long then
    /// costs one database row per period instead of one per flush; zero records
    /// every use (still at most one row per key per flush).
    pub usage_resolution: Duration,
    /// Days of usage history (verifications per key and hour) kept; 0 turns it off:
    /// nothing is counted or written, and usage reads answer zeros.
    pub usage_history_days: u32,
    /// Key-hours of usage history counted in memory between flushes, at most: past
    /// it, verifications of key-hours not yet counted are dropped until the next
    /// flush (`keyward_usage_history_dropped_total`).
    pub usage_history_capacity: usize,
    /// How long the cache is trusted after the store last confirmed it is watching for
    /// changes made elsewhere. Stores confirm at least every second, so only a broken
    /// watch (a silently dead connection) lets this lapse; then verifications read the
    /// database until the watch answers again.
    pub change_feed_lease: Duration,
    /// Failed verifications allowed per client address (given with the request):
    /// past it, that client's verifications are refused as `RATE_LIMITED` before
    /// any hashing or lookup. `None` turns the limit off.
    pub failed_verify_limit: Option<RateLimit>,
    /// Changes a user may make to their keys (create, suspend, reactivate, re-scope,
    /// revoke, rate limit), through the owner-scoped operations. `None`: no limit.
    pub user_write_limit: Option<RateLimit>,
    /// Where the three limits (keys', failed verifications', users' changes) are held
    /// across instances; `None`: each instance holds its own.
    pub rate_limit_store: Option<RateLimitStore>,
    /// Client addresses whose failures are tracked at once (least recently failed
    /// forgotten first).
    pub client_limiter_capacity: u64,
    /// The rate limit of keys users create themselves (the platform sets others').
    pub default_rate_limit: Option<RateLimit>,
    /// The usage credits of keys users create themselves, renewed when the grant has
    /// a refill; `None`: unlimited.
    pub default_credits: Option<keyward_core::credits::CreditGrant>,
    /// The rate limit every user's keys share, for users the platform set no limits
    /// for (`KEYWARD_DEFAULT_USER_RATE_LIMIT`).
    pub default_user_rate_limit: Option<RateLimit>,
    /// The credits every user's keys draw on, for users the platform set no limits
    /// for (`KEYWARD_DEFAULT_USER_CREDITS`).
    pub default_user_credits: Option<keyward_core::credits::CreditGrant>,
    /// How changes made without a user scope (admin operations) are signed in the
    /// audit trail: `service` for the server's admin API, `cli` for the CLI.
    pub admin_actor: String,
    /// How webhooks are delivered.
    pub webhooks: WebhookConfig,
    /// What a leak report does to a live key.
    pub leak_action: keyward_core::leak::LeakAction,
    pub clock: Clock,
}

impl EngineConfig {
    pub const DEFAULT_MAX_KEYS_PER_USER: u32 = 100;
    pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
    pub const DEFAULT_CACHE_WARMUP: u32 = 10_000;
    /// How long the warm-up at start may take before it gives up (what it loaded by
    /// then is kept; verification goes on meanwhile, from the database).
    pub const CACHE_WARMUP_DEADLINE: Duration = Duration::from_secs(10);
    pub const DEFAULT_USAGE_RESOLUTION: Duration = Duration::from_secs(60);
    pub const DEFAULT_USAGE_HISTORY_DAYS: u32 = 30;
    pub const DEFAULT_USAGE_HISTORY_CAPACITY: usize = 100_000;
    /// AutoGPT's limit on failed authentications per client: 60 a minute.
    pub const DEFAULT_FAILED_VERIFY_PER_MINUTE: u32 = 60;
    pub const DEFAULT_USER_WRITES_PER_MINUTE: u32 = 60;

    pub fn new(peppers: Peppers) -> Self {
        Self {
            key_format: KeyFormat::default(),
            catalogue: Catalogue::default(),
            peppers,
            max_keys_per_user: Self::DEFAULT_MAX_KEYS_PER_USER,
            cache_capacity: Self::DEFAULT_CACHE_CAPACITY,
            cache_ttl: Duration::from_secs(60),
            cache_warmup: Self::DEFAULT_CACHE_WARMUP,
            negative_cache_capacity: 10_000,
            negative_cache_ttl: Duration::from_secs(5),
            usage_flush_interval: Duration::from_secs(1),
            usage_resolution: Self::DEFAULT_USAGE_RESOLUTION,
            usage_history_days: Self::DEFAULT_USAGE_HISTORY_DAYS,
            usage_history_capacity: Self::DEFAULT_USAGE_HISTORY_CAPACITY,
            change_feed_lease: Duration::from_secs(3),
            failed_verify_limit: RateLimit::per_minute(Self::DEFAULT_FAILED_VERIFY_PER_MINUTE).ok(),
            user_write_limit: RateLimit::per_minute(Self::DEFAULT_USER_WRITES_PER_MINUTE).ok(),
            rate_limit_store: None,
            client_limiter_capacity: 100_000,
            default_rate_limit: None,
            default_credits: None,
            default_user_rate_limit: None,
            default_user_credits: None,
            admin_actor: "service".to_owned(),
            webhooks: WebhookConfig::default(),
            leak_action: keyward_core::leak::LeakAction::default(),
            clock: system_clock(),
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("key_format", &self.key_format)
            .field("catalogue", &self.catalogue)
            .field("peppers", &self.peppers)
            .field("max_keys_per_user", &self.max_keys_per_user)
            .field("cache_capacity", &self.cache_capacity)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_warmup", &self.cache_warmup)
            .field("negative_cache_capacity", &self.negative_cache_capacity)
            .field("negative_cache_ttl", &self.negative_cache_ttl)
            .field("usage_flush_interval", &self.usage_flush_interval)
            .field("default_rate_limit", &self.default_rate_limit)
            .field("default_credits", &self.default_credits)
            .field("default_user_rate_limit", &self.default_user_rate_limit)
            .field("default_user_credits", &self.default_user_credits)
            .field("usage_resolution", &self.usage_resolution)
            .field("usage_history_days", &self.usage_history_days)
            .field("usage_history_capacity", &self.usage_history_capacity)
            .field("change_feed_lease", &self.change_feed_lease)
            .field("failed_verify_limit", &self.failed_verify_limit)
            .field("user_write_limit", &self.user_write_limit)
            .field("rate_limit_store", &self.rate_limit_store)
            .field("client_limiter_capacity", &self.client_limiter_capacity)
            .field("admin_actor", &self.admin_actor)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

/// A day.
pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);

/// How webhooks are delivered (`KEYWARD_WEBHOOK_*`).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Endpoints may be `http://` and on loopback, private and link-local addresses
    /// (a deployment delivering inside its own network; tests).
    pub allow_private: bool,
    /// The longest an attempt may take, connection included.
    pub timeout: Duration,
    /// When failed deliveries are tried again, and when they are given up.
    pub retry: RetrySchedule,
    /// How long finished deliveries are kept for the delivery log; also how long
    /// after its expiry a key is still announced as expired.
    pub history_days: u32,
    /// Days before its expiry a key is announced as expiring; 0: never.
    pub expiry_notice_days: u32,
    /// Below this percentage of the credits last set, a key's credits are announced
    /// as low; 0: never.
    pub credits_low_percent: u8,
}

impl WebhookConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_HISTORY_DAYS: u32 = 7;
    pub const DEFAULT_EXPIRY_NOTICE_DAYS: u32 = 7;
    pub const DEFAULT_CREDITS_LOW_PERCENT: u8 = 10;
    /// Keys announced per condition in one scan.
    pub(crate) const SCAN_LIMIT: u32 = 500;
    /// How long the secret a rotation replaces keeps signing.
    pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
    /// The most deliveries a log shows.
    pub const LOG_LIMIT: u32 = 100;

    /// How long finished deliveries are kept.
    pub fn history(&self) -> Duration {
        DAY * self.history_days
    }

    /// How long a claimed delivery is left to its sender: an attempt's timeout and a
    /// margin for writing its outcome. A sender killed mid-attempt holds it no longer;
    /// one that outlives it only means another attempt (with the same `webhook-id`).
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(10)
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Self::DEFAULT_TIMEOUT,
            retry: RetrySchedule::default(),
            history_days: Self::DEFAULT_HISTORY_DAYS,
            expiry_notice_days: Self::DEFAULT_EXPIRY_NOTICE_DAYS,
            credits_low_percent: Self::DEFAULT_CREDITS_LOW_PERCENT,
        }
    }
}
