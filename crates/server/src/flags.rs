//! The raw command line: one struct of flags with `KEYWARD_*` environment fallbacks,
//! as clap parses them. Each flag is checked alone for its type and range here;
//! [`crate::settings`] validates them together into the settings the service runs on.
//!
//! Secrets (`KEYWARD_JWT_SECRET`, `KEYWARD_ADMIN_TOKEN`, `KEYWARD_PEPPER`) are best
//! given through the environment or files: a flag shows in the process list. Their
//! values are never printed, not even by `--help`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use keyward_core::rate::RateLimit;

use crate::http::listener::Bind;
use crate::secrets::Secret;

fn secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?}: expected on or off")),
    }
}

fn leak_action(value: &str) -> Result<keyward_core::leak::LeakAction, String> {
    keyward_core::leak::LeakAction::parse(value)
        .ok_or_else(|| format!("{value:?}: expected revoke, suspend or report"))
}

/// `5,300,1800`: seconds before each retry, 1 to 86,400 each, at most 50 of them.
fn retry_schedule(value: &str) -> Result<keyward_core::webhook::RetrySchedule, String> {
    let waits = value
        .split(',')
        .map(|part| match part.trim().parse::<u64>() {
            Ok(seconds @ 1..=86_400) => Ok(std::time::Duration::from_secs(seconds)),
            _ => Err(format!(
                "{:?} is not a number of seconds from 1 to 86400",
                part.trim()
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > 50 {
        return Err("at most 50 retries".into());
    }
    Ok(keyward_core::webhook::RetrySchedule::new(waits))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings' headings in `--help`: each command shows those it reads (see
/// `cli::command`).
pub const SERVER: &str = "Server settings";
pub const DATABASE: &str = "Database";
pub const SECRETS: &str = "Secrets";
pub const USER_TOKENS: &str = "User tokens (JWT)";
pub const KEYS: &str = "Keys";
pub const LOGGING: &str = "Logging";
pub const WEBHOOKS: &str = "Webhooks";

/// Every setting, shared by `serve` and the admin commands. Each is a flag or a
/// `KEYWARD_*` environment variable, taken by every command; `--help` shows each
/// command the headings it reads.
#[derive(Clone, Debug, Args)]
pub struct Flags {
    /// Address to listen on: host:port, or unix:/path/keyward.sock (a Unix socket,
    /// mode 0660, for a gateway on this host; removed when the server stops).
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: Bind,

    /// Seconds a client has to send a request's headers (from the connection's start,
    /// or from the first byte of a request on a kept-alive connection).
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_HEADER_TIMEOUT",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600),
        global = true
    )]
    pub header_timeout: u64,

    /// Seconds a kept-alive connection may stay idle (or a client may stop reading an
    /// answer) before it is closed.
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_IDLE_TIMEOUT",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        global = true
    )]
    pub idle_timeout: u64,

    /// Open connections at most; past it, new connections wait until one closes.
    /// Default: three quarters of the open-file limit (64 to 10,000).
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_MAX_OPEN_CONNECTIONS",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000),
        global = true
    )]
    pub max_open_connections: Option<usize>,

    /// Proxies whose X-Forwarded-For names the end client of forward authentication:
    /// comma-separated addresses and CIDR networks; empty: none.
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_TRUSTED_PROXIES",
        default_value = "127.0.0.0/8,::1/128",
        global = true
    )]
    pub trusted_proxies: String,

    /// Database: sqlite://<path> (created if missing) or postgres://user:password@host/db.
    #[arg(
        help_heading = DATABASE,
        long,
        env = "KEYWARD_DATABASE_URL",
        default_value = "sqlite://keyward.db",
        global = true
    )]
    pub database_url: String,

    /// Connections to PostgreSQL per instance (SQLite uses one writer and four readers).
    #[arg(
        help_heading = DATABASE,
        long,
        env = "KEYWARD_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub db_max_connections: u32,

    /// HS256 secret for user JWTs (at least 32 bytes).
    #[arg(help_heading = SECRETS, long, env = "KEYWARD_JWT_SECRET", hide_env_values = true, value_parser = secret, global = true)]
    pub jwt_secret: Option<Secret>,

    /// PEM public key (RSA, EC P-256/P-384 or Ed25519) for user JWTs signed with RS*/PS*/ES*/EdDSA.
    #[arg(help_heading = USER_TOKENS, long, env = "KEYWARD_JWT_PUBLIC_KEY_FILE", global = true)]
    pub jwt_public_key_file: Option<PathBuf>,

    /// The identity provider's JWKS URL (https://, or http:// to a loopback address):
    /// user JWTs signed with its keys are accepted, each key found by the token's kid.
    #[arg(help_heading = USER_TOKENS, long, env = "KEYWARD_JWT_JWKS_URL", global = true)]
    pub jwt_jwks_url: Option<String>,

    /// Seconds: tokens with a kid the JWKS lacks make keyward fetch it again at most
    /// this often; also the shortest time a fetched JWKS is kept.
    #[arg(
        help_heading = USER_TOKENS,
        long,
        env = "KEYWARD_JWT_JWKS_MIN_REFRESH",
        default_value_t = crate::http::jwks::JwksSettings::DEFAULT_MIN_REFRESH_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..=3600),
        global = true
    )]
    pub jwt_jwks_min_refresh: u64,

    /// Required `iss` claim of user JWTs.
    #[arg(help_heading = USER_TOKENS, long, env = "KEYWARD_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim of user JWTs.
    #[arg(help_heading = USER_TOKENS, long, env = "KEYWARD_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// Seconds of clock difference allowed when checking a user JWT's exp, nbf and iat.
    #[arg(
        help_heading = USER_TOKENS,
        long,
        env = "KEYWARD_JWT_LEEWAY",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=300),
        global = true
    )]
    pub jwt_leeway: u64,

    /// Longest lifetime of a user JWT in seconds (exp - iat); when set, tokens must
    /// carry iat. Default: no limit.
    #[arg(
        help_heading = USER_TOKENS,
        long,
        env = "KEYWARD_JWT_MAX_TTL",
        value_parser = clap::value_parser!(u64).range(1..=31_536_000),
        global = true
    )]
    pub jwt_max_ttl: Option<u64>,

    /// The static service token, holding every scope (at least 16 characters); `disabled` turns it off, leaving service credentials (`keyward credentials`).
    #[arg(help_heading = SECRETS, long, env = "KEYWARD_ADMIN_TOKEN", hide_env_values = true, value_parser = secret, global = true)]
    pub admin_token: Option<Secret>,

    /// Bearer token `/metrics` asks for (at least 16 characters); without one, `/metrics` answers anyone who reaches the port.
    #[arg(help_heading = SERVER, long, env = "KEYWARD_METRICS_TOKEN", hide_env_values = true, value_parser = secret, global = true)]
    pub metrics_token: Option<Secret>,

    /// Pepper for key hashes: one secret, or `v<N>:<secret>` entries (newline or comma separated; the highest version hashes new keys).
    #[arg(help_heading = SECRETS, long, env = "KEYWARD_PEPPER", hide_env_values = true, value_parser = secret, global = true)]
    pub pepper: Option<Secret>,

    /// Which pepper version hashes new keys (default: the highest); set it to stage a rotation across instances.
    #[arg(help_heading = SECRETS, long, env = "KEYWARD_PEPPER_CURRENT_VERSION", global = true)]
    pub pepper_current_version: Option<u16>,

    /// File holding the pepper setting (same format as KEYWARD_PEPPER).
    #[arg(help_heading = SECRETS, long, env = "KEYWARD_PEPPER_FILE", global = true)]
    pub pepper_file: Option<PathBuf>,

    /// Prefix of new keys (`<prefix>_…`).
    #[arg(
        help_heading = KEYS,
        long,
        env = "KEYWARD_KEY_PREFIX",
        default_value = "agpt",
        global = true
    )]
    pub key_prefix: String,

    /// Comma-separated permission catalogue replacing the default (AutoGPT's).
    #[arg(
        help_heading = KEYS,
        long = "permission-catalogue",
        env = "KEYWARD_PERMISSIONS",
        global = true
    )]
    pub permission_catalogue: Option<String>,

    /// What a report of a leaked key (POST /api/api-keys/report-leak, GitHub secret
    /// scanning) does to a live key: revoke, suspend, or report (only record and
    /// announce it).
    #[arg(
        help_heading = KEYS,
        long,
        env = "KEYWARD_LEAKED_KEY_ACTION",
        default_value = "revoke",
        value_parser = leak_action,
        global = true
    )]
    pub leaked_key_action: keyward_core::leak::LeakAction,

    /// GitHub's secret scanning partner endpoint (POST /api/secret-scanning/github):
    /// `on` to accept GitHub's signed reports of keys found in public.
    #[arg(
        help_heading = KEYS,
        long,
        env = "KEYWARD_GITHUB_SECRET_SCANNING",
        default_value = "off",
        value_parser = on_off,
        global = true
    )]
    pub github_secret_scanning: bool,

    /// Where GitHub's secret scanning public keys are (https://, or http:// to a
    /// loopback address).
    #[arg(
        help_heading = KEYS,
        long,
        env = "KEYWARD_GITHUB_SECRET_SCANNING_KEYS_URL",
        default_value = crate::secret_scanning::DEFAULT_KEYS_URL,
        global = true
    )]
    pub github_secret_scanning_keys_url: String,

    /// Keys a user may hold that are not revoked.
    #[arg(
        help_heading = KEYS,
        long,
        env = "KEYWARD_MAX_KEYS_PER_USER",
        default_value_t = 100,
        global = true
    )]
    pub max_keys_per_user: u32,

    /// Verification results kept in memory.
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_CACHE_CAPACITY",
        default_value_t = 100_000,
        global = true
    )]
    pub cache_capacity: u64,

    /// Keys loaded into the cache when `serve` starts: the most verified over the last
    /// day (usage history), so a restart does not send its first minutes of traffic to
    /// the database; /readyz waits for it (10 s at most). 0: none.
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_CACHE_WARMUP",
        default_value_t = keyward_engine::EngineConfig::DEFAULT_CACHE_WARMUP,
        value_parser = clap::value_parser!(u32).range(0..=10_000_000),
        global = true
    )]
    pub cache_warmup: u32,

    /// Seconds: a key's use updates `last_used_at` only if the recorded one is at
    /// least this old (0 records every use, written at most once a second).
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_USAGE_RESOLUTION",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(0..=86_400),
        global = true
    )]
    pub usage_resolution: u64,

    /// Days of usage history (verifications per key and hour) kept; 0 turns it off.
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_USAGE_HISTORY_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(0..=3_650),
        global = true
    )]
    pub usage_history_days: u32,

    /// Failed verifications per minute from one end client (the verify request's
    /// `client_ip`; IPv6 per /64) before its attempts answer RATE_LIMITED; 0: no limit.
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_FAILED_VERIFY_LIMIT",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000),
        global = true
    )]
    pub failed_verify_limit: u32,

    /// Changes per minute a user may make to their keys through the management API
    /// (create, suspend, reactivate, re-scope, rate limit, revoke); past it, 429
    /// with Retry-After; 0: no limit.
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_USER_WRITE_LIMIT",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000),
        global = true
    )]
    pub user_write_limit: u32,

    /// Lets webhook endpoints be http:// and on loopback, private and link-local
    /// addresses (cloud metadata included): for a deployment that delivers inside
    /// its own network, and for a local trial. Off, only https:// to public addresses.
    #[arg(
        help_heading = WEBHOOKS,
        long,
        env = "KEYWARD_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        global = true
    )]
    pub webhook_allow_private: bool,

    /// Seconds a webhook attempt may take, connecting included; past it, it has failed
    /// and is tried again later.
    #[arg(
        help_heading = WEBHOOKS,
        long,
        env = "KEYWARD_WEBHOOK_TIMEOUT",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=60),
        global = true
    )]
    pub webhook_timeout: u64,

    /// Days finished webhook deliveries are kept for the delivery log.
    #[arg(
        help_heading = WEBHOOKS,
        long,
        env = "KEYWARD_WEBHOOK_HISTORY_DAYS",
        default_value_t = 7,
        value_parser = clap::value_parser!(u32).range(1..=365),
        global = true
    )]
    pub webhook_history_days: u32,

    /// Days before a key's expiry that it is announced (`api_key.expiring`, once); 0:
    /// never.
    #[arg(
        help_heading = WEBHOOKS,
        long,
        env = "KEYWARD_EXPIRY_NOTICE_DAYS",
        default_value_t = 7,
        value_parser = clap::value_parser!(u32).range(0..=365),
        global = true
    )]
    pub expiry_notice_days: u32,

    /// Percent of the credits last set below which a key's credits are announced as
    /// low (`api_key.credits_low`, once per amount set); 0: never.
    #[arg(
        help_heading = WEBHOOKS,
        long,
        env = "KEYWARD_CREDITS_LOW_PERCENT",
        default_value_t = 10,
        value_parser = clap::value_parser!(u8).range(0..=99),
        global = true
    )]
    pub credits_low_percent: u8,

    /// Seconds to wait before each retry of a failed webhook delivery, comma-separated;
    /// after the last, the delivery has failed (and an endpoint that acknowledged
    /// nothing meanwhile is disabled). Default: the Standard Webhooks schedule (5 s,
    /// 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) and four more 10 h, about three days.
    #[arg(
        help_heading = WEBHOOKS,
        long,
        env = "KEYWARD_WEBHOOK_RETRY_SCHEDULE",
        value_parser = retry_schedule,
        global = true
    )]
    pub webhook_retry_schedule: Option<keyward_core::webhook::RetrySchedule>,

    /// Where the rate limits (keys', failed verifications', users' changes) are held
    /// across instances: redis://[:password@]host:port/db or rediss://… (TLS), Redis or
    /// Valkey. Unset: each instance holds its own. If the store fails, each instance
    /// limits alone until it is back.
    #[arg(help_heading = SERVER, long, env = "KEYWARD_RATE_LIMIT_STORE", hide_env_values = true, value_parser = secret, global = true)]
    pub rate_limit_store: Option<Secret>,

    /// PEM file of the authority that signed the rate limit store's TLS certificate
    /// (rediss:// only; default: the Mozilla root authorities).
    #[arg(help_heading = SERVER, long, env = "KEYWARD_RATE_LIMIT_STORE_CA_FILE", global = true)]
    pub rate_limit_store_ca_file: Option<PathBuf>,

    /// Milliseconds a limit decision waits for the rate limit store before the instance
    /// decides alone (and takes the store as down until it answers again).
    #[arg(
        help_heading = SERVER,
        long,
        env = "KEYWARD_RATE_LIMIT_STORE_TIMEOUT_MS",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(1..=10_000),
        global = true
    )]
    pub rate_limit_store_timeout_ms: u64,

    /// Rate limit of the keys users create themselves, REQUESTS/SECONDS (e.g. 100/60);
    /// the platform sets other keys' through the admin API. Default: none.
    #[arg(help_heading = KEYS, long, env = "KEYWARD_DEFAULT_RATE_LIMIT", global = true)]
    pub default_rate_limit: Option<RateLimit>,

    /// Usage credits of the keys users create themselves (1 to 10^15), renewed when
    /// an interval is given: AMOUNT, AMOUNT/INTERVAL (minute, hour, day, week, month;
    /// UTC) or AMOUNT/month@DAY, e.g. 1000/month. The platform sets other keys'
    /// through the admin API. Default: unlimited.
    #[arg(help_heading = KEYS, long, env = "KEYWARD_DEFAULT_CREDITS", global = true)]
    pub default_credits: Option<keyward_core::credits::CreditGrant>,

    /// Rate limit all of a user's keys share, REQUESTS/SECONDS, for users the platform
    /// set no limits for (PUT /api/admin/users/{user_id}/limits). Default: none.
    #[arg(help_heading = KEYS, long, env = "KEYWARD_DEFAULT_USER_RATE_LIMIT", global = true)]
    pub default_user_rate_limit: Option<RateLimit>,

    /// Usage credits all of a user's keys draw on, for users the platform set no
    /// limits for: AMOUNT, AMOUNT/INTERVAL or AMOUNT/month@DAY (as
    /// KEYWARD_DEFAULT_CREDITS). Default: none.
    #[arg(help_heading = KEYS, long, env = "KEYWARD_DEFAULT_USER_CREDITS", global = true)]
    pub default_user_credits: Option<keyward_core::credits::CreditGrant>,

    /// Log filter, e.g. `info` or `keyward=debug,sqlx=warn` (default: info for serve, warn otherwise).
    #[arg(help_heading = LOGGING, long, env = "KEYWARD_LOG", global = true)]
    pub log: Option<String>,

    /// Log format.
    #[arg(
        help_heading = LOGGING,
        long,
        env = "KEYWARD_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}
