//! From the raw flags ([`Flags`]) to validated settings: every input parsed once, with
//! errors that say which setting is wrong and how to fix it.

use std::path::PathBuf;

use crate::http::client_address::TrustedProxies;
use crate::http::connections::ConnectionLimits;
use crate::http::jwks::{JwksSettings, JwksUrl};
use keyward_core::hash::Peppers;
use keyward_core::key::{KeyFormat, KeyPrefix};
use keyward_core::permissions::Catalogue;
use keyward_engine::{EngineConfig, RateLimitStore};
use keyward_store::{ConnectOptions, DatabaseUrl};

use crate::flags::Flags;
use crate::secrets::{self, Secret};

/// Shortest accepted HS256 secret (RFC 7518 §3.2: at least the hash size).
pub const MIN_JWT_SECRET_LEN: usize = 32;
/// Shortest accepted admin token.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// `KEYWARD_ADMIN_TOKEN`'s value that turns the static service token off.
pub const ADMIN_TOKEN_DISABLED: &str = "disabled";

/// How user JWTs are checked.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub hs256_secret: Option<Secret>,
    pub public_key_pem: Option<Vec<u8>>,
    /// The identity provider's published keys.
    pub jwks: Option<JwksSettings>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Seconds of clock difference allowed for `exp`, `nbf` and `iat`.
    pub leeway_seconds: u64,
    /// When set, tokens must carry `iat` and live at most this long (`exp - iat`).
    pub max_ttl_seconds: Option<u64>,
}

impl JwtSettings {
    pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            public_key_pem: None,
            jwks: None,
            issuer: None,
            audience: None,
            leeway_seconds: Self::DEFAULT_LEEWAY_SECONDS,
            max_ttl_seconds: None,
        }
    }
}

/// Everything the service needs, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub http: HttpSettings,
    pub connect: ConnectOptions,
    pub engine: EngineConfig,
    pub jwt: JwtSettings,
    /// The static service token, which holds every scope; `None` when disabled
    /// (`KEYWARD_ADMIN_TOKEN=disabled`): only service credentials are let in.
    pub admin_token: Option<Secret>,
    /// Where local-trial secrets came from, and whether they were just generated.
    pub local_secrets: Option<(PathBuf, bool)>,
}

/// A setting that cannot be used. Each message names the setting and says what is wrong
/// with it, the cause's text included; so no variant also returns its cause as
/// `source()` (a report walking the chain would print it twice).
/// How the HTTP service treats connections and proxies.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub connections: ConnectionLimits,
    pub trusted_proxies: TrustedProxies,
    /// The bearer token `/metrics` asks for, if any.
    pub metrics_token: Option<Secret>,
    /// Where GitHub's secret scanning keys are, when the partner endpoint is on.
    pub github_secret_scanning: Option<JwksUrl>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connections: ConnectionLimits::default(),
            trusted_proxies: TrustedProxies::parse(TrustedProxies::DEFAULT)
                .expect("the default list parses"),
            metrics_token: None,
            github_secret_scanning: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("KEYWARD_DATABASE_URL: {0}")]
    DatabaseUrl(keyward_store::DatabaseUrlError),
    #[error("KEYWARD_KEY_PREFIX: {0}")]
    KeyPrefix(keyward_core::key::InvalidPrefix),
    #[error("KEYWARD_PERMISSIONS: {0}")]
    Permissions(keyward_core::permissions::CatalogueError),
    #[error("KEYWARD_PEPPER / KEYWARD_PEPPER_FILE: {0}")]
    Pepper(keyward_core::hash::PepperError),
    #[error("KEYWARD_PEPPER and KEYWARD_PEPPER_FILE are both set; keep one")]
    PepperTwice,
    #[error("cannot read {what} file {path}: {cause}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("KEYWARD_JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} bytes")]
    WeakJwtSecret,
    #[error("KEYWARD_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters")]
    WeakAdminToken,
    #[error(
        "KEYWARD_METRICS_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters \
         (or unset, for a /metrics that answers anyone who reaches the port)"
    )]
    WeakMetricsToken,
    #[error("KEYWARD_MAX_KEYS_PER_USER must be at least 1")]
    ZeroKeyCap,
    #[error("KEYWARD_CACHE_CAPACITY must be at least 1")]
    ZeroCache,
    #[error("KEYWARD_DB_MAX_CONNECTIONS must be between 1 and 1000")]
    PoolSize,
    #[error("KEYWARD_JWT_JWKS_URL: {0}")]
    JwksUrl(String),
    #[error("KEYWARD_GITHUB_SECRET_SCANNING_KEYS_URL: {0}")]
    GithubKeysUrl(String),
    #[error("KEYWARD_RATE_LIMIT_STORE: {0}")]
    RateLimitStore(String),
    #[error("KEYWARD_TRUSTED_PROXIES: {0}")]
    TrustedProxies(String),
    #[error("{0}: not set; a deployment on a shared database must configure its secrets")]
    Missing(String),
    #[error(
        "{0}: not set; configure every secret (KEYWARD_PEPPER, KEYWARD_JWT_SECRET, \
         KEYWARD_ADMIN_TOKEN), or none of them to use the generated local-trial secrets file"
    )]
    Partial(String),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretsError),
}

macro_rules! settings_error_from {
    ($($source:ty => $variant:ident),* $(,)?) => {
        $(impl From<$source> for SettingsError {
            fn from(err: $source) -> Self {
                Self::$variant(err)
            }
        })*
    };
}

settings_error_from! {
    keyward_store::DatabaseUrlError => DatabaseUrl,
    keyward_core::key::InvalidPrefix => KeyPrefix,
    keyward_core::permissions::CatalogueError => Permissions,
    keyward_core::hash::PepperError => Pepper,
}

/// Whether a missing local-trial secrets file may be generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalTrial {
    /// `serve` and `migrate`: generate it on first use.
    Create,
    /// Admin commands: use it only if it exists, so running one in the wrong
    /// directory does not mint secrets the server does not know.
    Existing,
}

impl Flags {
    /// Validates the flags; with no secrets configured and a SQLite
    /// database, the secrets come from the local-trial file beside it.
    pub fn resolve(&self, local_trial: LocalTrial) -> Result<Settings, SettingsError> {
        let database_url = DatabaseUrl::parse(&self.database_url)?;
        let key_format = KeyFormat::new(KeyPrefix::parse(&self.key_prefix)?);
        let catalogue = match &self.permission_catalogue {
            Some(list) => Catalogue::parse_list(list)?,
            None => Catalogue::default(),
        };
        if self.max_keys_per_user == 0 {
            return Err(SettingsError::ZeroKeyCap);
        }
        if self.cache_capacity == 0 {
            return Err(SettingsError::ZeroCache);
        }
        if !(1..=1000).contains(&self.db_max_connections) {
            return Err(SettingsError::PoolSize);
        }

        let pepper_setting = match (&self.pepper, &self.pepper_file) {
            (Some(_), Some(_)) => return Err(SettingsError::PepperTwice),
            (Some(p), None) => Some(p.clone()),
            (None, Some(path)) => Some(Secret::new(read_file("pepper", path)?)),
            (None, None) => None,
        };
        let public_key_pem = self
            .jwt_public_key_file
            .as_ref()
            .map(|path| read_file("JWT public key", path).map(String::into_bytes))
            .transpose()?;
        let jwks = self
            .jwt_jwks_url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .map(|url| {
                JwksUrl::parse(url.trim()).map(|url| JwksSettings {
                    url,
                    min_refresh: std::time::Duration::from_secs(self.jwt_jwks_min_refresh),
                })
            })
            .transpose()
            .map_err(SettingsError::JwksUrl)?;

        // Either every secret is configured, or none is and a SQLite local trial
        // keeps generated ones beside its database. A partial configuration is an
        // error: silently generating the missing pepper would put it beside the
        // database, in its backups, which is what the pepper must not be.
        let has_jwt = self.jwt_secret.is_some() || public_key_pem.is_some() || jwks.is_some();
        let configured = [
            (
                pepper_setting.is_some(),
                "KEYWARD_PEPPER (or KEYWARD_PEPPER_FILE)",
            ),
            (
                has_jwt,
                "KEYWARD_JWT_SECRET (or KEYWARD_JWT_JWKS_URL, KEYWARD_JWT_PUBLIC_KEY_FILE)",
            ),
            (self.admin_token.is_some(), "KEYWARD_ADMIN_TOKEN"),
        ];
        let missing: Vec<&str> = configured
            .iter()
            .filter(|(set, _)| !set)
            .map(|(_, name)| *name)
            .collect();
        let local = match (missing.len(), database_url.sqlite_path()) {
            (0, _) => None,
            (3, Some(db)) => Some(match local_trial {
                LocalTrial::Create => secrets::load_or_create(db)?,
                LocalTrial::Existing => secrets::load(db)?,
            }),
            (3, None) => return Err(SettingsError::Missing(missing.join(", "))),
            _ => return Err(SettingsError::Partial(missing.join(", "))),
        };
        let pepper = pepper_setting
            .or_else(|| local.as_ref().map(|l| l.pepper.clone()))
            .expect("configured or local");
        let admin_token = self
            .admin_token
            .clone()
            .or_else(|| local.as_ref().map(|l| l.admin_token.clone()))
            .expect("configured or local");
        let admin_token = (admin_token.expose() != ADMIN_TOKEN_DISABLED).then_some(admin_token);
        let hs256_secret = self
            .jwt_secret
            .clone()
            .or_else(|| local.as_ref().map(|l| l.jwt_secret.clone()));

        if hs256_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < MIN_JWT_SECRET_LEN)
        {
            return Err(SettingsError::WeakJwtSecret);
        }
        if admin_token
            .as_ref()
            .is_some_and(|token| token.expose().chars().count() < MIN_ADMIN_TOKEN_LEN)
        {
            return Err(SettingsError::WeakAdminToken);
        }

        let peppers = Peppers::parse_with_current(pepper.expose(), self.pepper_current_version)?;
        let mut engine = EngineConfig::new(peppers);
        engine.key_format = key_format;
        engine.catalogue = catalogue;
        engine.max_keys_per_user = self.max_keys_per_user;
        engine.cache_capacity = self.cache_capacity;
        engine.cache_warmup = self.cache_warmup;
        engine.usage_resolution = std::time::Duration::from_secs(self.usage_resolution);
        engine.usage_history_days = self.usage_history_days;
        // 0 turns a limit off; any other value is within the quota's bounds.
        let per_minute = |n: u32| keyward_core::rate::RateLimit::per_minute(n).ok();
        engine.failed_verify_limit = per_minute(self.failed_verify_limit);
        engine.user_write_limit = per_minute(self.user_write_limit);
        engine.default_rate_limit = self.default_rate_limit;
        engine.default_credits = self.default_credits;
        engine.default_user_rate_limit = self.default_user_rate_limit;
        engine.default_user_credits = self.default_user_credits;
        engine.rate_limit_store = self.rate_limit_store()?;
        engine.leak_action = self.leaked_key_action;
        engine.webhooks = keyward_engine::WebhookConfig {
            allow_private: self.webhook_allow_private,
            timeout: std::time::Duration::from_secs(self.webhook_timeout),
            retry: self.webhook_retry_schedule.clone().unwrap_or_default(),
            history_days: self.webhook_history_days,
            expiry_notice_days: self.expiry_notice_days,
            credits_low_percent: self.credits_low_percent,
        };

        let http = HttpSettings {
            connections: ConnectionLimits {
                header_timeout: std::time::Duration::from_secs(self.header_timeout),
                idle_timeout: std::time::Duration::from_secs(self.idle_timeout),
                max_open: self
                    .max_open_connections
                    .unwrap_or_else(ConnectionLimits::default_max_open),
            },
            trusted_proxies: TrustedProxies::parse(&self.trusted_proxies)
                .map_err(SettingsError::TrustedProxies)?,
            metrics_token: self.metrics_token()?,
            github_secret_scanning: self.github_secret_scanning()?,
        };

        Ok(Settings {
            database_url,
            http,
            connect: ConnectOptions {
                max_connections: self.db_max_connections,
            },
            engine,
            jwt: JwtSettings {
                hs256_secret,
                public_key_pem,
                jwks,
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
                leeway_seconds: self.jwt_leeway,
                max_ttl_seconds: self.jwt_max_ttl,
            },
            admin_token,
            local_secrets: local.map(|l| (l.path, l.created)),
        })
    }
}

impl Flags {
    /// The token `/metrics` asks for: unset or empty for none, else long enough (a
    /// token of blanks is a mistake, not "none").
    /// GitHub's key list URL, when the secret scanning partner endpoint is on.
    fn github_secret_scanning(&self) -> Result<Option<JwksUrl>, SettingsError> {
        if !self.github_secret_scanning {
            return Ok(None);
        }
        JwksUrl::parse(self.github_secret_scanning_keys_url.trim())
            .map(Some)
            .map_err(SettingsError::GithubKeysUrl)
    }

    fn metrics_token(&self) -> Result<Option<Secret>, SettingsError> {
        match &self.metrics_token {
            Some(token) if !token.expose().is_empty() => {
                if token.expose().trim().chars().count() < MIN_ADMIN_TOKEN_LEN {
                    return Err(SettingsError::WeakMetricsToken);
                }
                Ok(Some(token.clone()))
            }
            _ => Ok(None),
        }
    }

    /// The shared rate limit store, if one is set: its URL checked, its authority
    /// read. Nothing is connected here; an unreachable store is not an error.
    fn rate_limit_store(&self) -> Result<Option<RateLimitStore>, SettingsError> {
        let url = self
            .rate_limit_store
            .as_ref()
            .map(|url| url.expose().trim())
            .filter(|url| !url.is_empty());
        let Some(url) = url else {
            if self.rate_limit_store_ca_file.is_some() {
                return Err(SettingsError::RateLimitStore(
                    "not set, but KEYWARD_RATE_LIMIT_STORE_CA_FILE is".to_owned(),
                ));
            }
            return Ok(None);
        };
        let ca = self
            .rate_limit_store_ca_file
            .as_ref()
            .map(|path| read_file("rate limit store CA", path).map(String::into_bytes))
            .transpose()?;
        let store = RateLimitStore::new(url, ca).map_err(SettingsError::RateLimitStore)?;
        let timeout = std::time::Duration::from_millis(self.rate_limit_store_timeout_ms);
        Ok(Some(store.with_timeout(timeout)))
    }
}

fn read_file(what: &'static str, path: &PathBuf) -> Result<String, SettingsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|cause| SettingsError::ReadFile {
            what,
            path: path.clone(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    const PEPPER: &str = "a-pepper-of-sufficient-length-0123456789";
    const JWT: &str = "a-jwt-secret-of-sufficient-length-012345";
    const ADMIN: &str = "an-admin-token-0123";
    /// The secrets besides the pepper.
    const OTHER_SECRETS: [&str; 4] = ["--jwt-secret", JWT, "--admin-token", ADMIN];

    fn flags(dir: &std::path::Path, extra: &[&str]) -> Flags {
        let url = format!("sqlite://{}", dir.join("k.db").display());
        let mut args = vec!["keyward"];
        if !extra.contains(&"--database-url") {
            args.extend(["--database-url", &url]);
        }
        args.extend_from_slice(extra);
        args.push("migrate");
        Cli::try_parse_from(args).unwrap().flags
    }

    #[test]
    fn configured_secrets_need_no_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let settings = flags(
            dir.path(),
            &[&["--pepper", PEPPER][..], &OTHER_SECRETS].concat(),
        )
        .resolve(LocalTrial::Create)
        .unwrap();
        assert!(settings.local_secrets.is_none());
        assert!(!dir.path().join("k.db.secrets").exists());
        assert_eq!(settings.admin_token.unwrap().expose(), ADMIN);
    }

    #[test]
    fn with_no_secrets_configured_the_local_file_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let err = flags(dir.path(), &[])
            .resolve(LocalTrial::Existing)
            .unwrap_err();
        assert!(err.to_string().contains("keyward serve"), "{err}");
        let created = flags(dir.path(), &[]).resolve(LocalTrial::Create).unwrap();
        assert_eq!(
            created.local_secrets.as_ref().unwrap(),
            &(dir.path().join("k.db.secrets"), true)
        );
        let reused = flags(dir.path(), &[])
            .resolve(LocalTrial::Existing)
            .unwrap();
        assert_eq!(
            reused.admin_token.unwrap().expose(),
            created.admin_token.unwrap().expose()
        );
        assert!(reused.jwt.hs256_secret.is_some());
    }

    #[test]
    fn a_partial_secret_configuration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = flags(dir.path(), &["--admin-token", ADMIN, "--jwt-secret", JWT])
            .resolve(LocalTrial::Create)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("KEYWARD_PEPPER (or KEYWARD_PEPPER_FILE): not set"),
            "{err}"
        );
        assert!(
            !dir.path().join("k.db.secrets").exists(),
            "nothing generated"
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = |pepper, jwt, admin| {
            vec![
                "--pepper",
                pepper,
                "--jwt-secret",
                jwt,
                "--admin-token",
                admin,
            ]
        };
        let weak_jwt = secrets(PEPPER, "short", ADMIN);
        let weak_admin = secrets(PEPPER, JWT, "short");
        let weak_pepper = secrets("short", JWT, ADMIN);
        let cases: [(&[&str], &str); 14] = [
            (&weak_jwt, "KEYWARD_JWT_SECRET"),
            (&weak_admin, "KEYWARD_ADMIN_TOKEN"),
            (&weak_pepper, "KEYWARD_PEPPER"),
            (&["--key-prefix", "Bad-Prefix"], "KEYWARD_KEY_PREFIX"),
            (&["--permission-catalogue", "read"], "KEYWARD_PERMISSIONS"),
            (&["--max-keys-per-user", "0"], "KEYWARD_MAX_KEYS_PER_USER"),
            (&["--database-url", "mysql://db/k"], "KEYWARD_DATABASE_URL"),
            (
                &["--jwt-jwks-url", "http://id.example/jwks.json"],
                "KEYWARD_JWT_JWKS_URL: plain http:// is only for loopback",
            ),
            (
                &["--pepper", PEPPER, "--pepper-file", "/nonexistent"],
                "keep one",
            ),
            (
                &["--rate-limit-store", "127.0.0.1:6379"],
                "KEYWARD_RATE_LIMIT_STORE: expected redis://",
            ),
            (
                &[
                    "--rate-limit-store",
                    "redis://127.0.0.1:6379/0",
                    "--rate-limit-store-ca-file",
                    "/nonexistent",
                ],
                "rate limit store CA file /nonexistent",
            ),
            (
                &["--rate-limit-store-ca-file", "/etc/hostname"],
                "KEYWARD_RATE_LIMIT_STORE: not set",
            ),
            (
                &["--metrics-token", "short"],
                "KEYWARD_METRICS_TOKEN must be at least 16 characters",
            ),
            (
                &["--metrics-token", "                    "],
                "KEYWARD_METRICS_TOKEN must be at least 16 characters",
            ),
        ];
        for (args, expected) in cases {
            let err = flags(dir.path(), args)
                .resolve(LocalTrial::Create)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn a_jwks_url_is_enough_to_check_user_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let url = "https://ref.supabase.co/auth/v1/.well-known/jwks.json";
        let settings = flags(
            dir.path(),
            &[
                "--pepper",
                PEPPER,
                "--admin-token",
                ADMIN,
                "--jwt-jwks-url",
                url,
                "--jwt-jwks-min-refresh",
                "60",
            ],
        )
        .resolve(LocalTrial::Create)
        .unwrap();
        assert!(settings.local_secrets.is_none());
        assert!(settings.jwt.hs256_secret.is_none());
        let jwks = settings.jwt.jwks.unwrap();
        assert_eq!(jwks.url.to_string(), url);
        assert_eq!(jwks.min_refresh, std::time::Duration::from_secs(60));
    }

    #[test]
    fn limits_come_from_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        let settings = flags(
            dir.path(),
            &[
                "--max-keys-per-user",
                "5",
                "--cache-capacity",
                "77",
                "--key-prefix",
                "acme",
            ],
        )
        .resolve(LocalTrial::Create)
        .unwrap();
        assert_eq!(settings.engine.max_keys_per_user, 5);
        assert_eq!(settings.engine.cache_capacity, 77);
        assert_eq!(settings.engine.key_format.prefix().as_str(), "acme");
    }

    #[test]
    fn the_pepper_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pepper");
        std::fs::write(&file, format!("v1:{PEPPER}\nv2:{PEPPER}-rotated\n")).unwrap();
        let pepper_file = ["--pepper-file", file.to_str().unwrap()];
        let settings = flags(dir.path(), &[&pepper_file[..], &OTHER_SECRETS].concat())
            .resolve(LocalTrial::Create)
            .unwrap();
        assert_eq!(settings.engine.peppers.current().version(), 2);
        assert_eq!(settings.engine.peppers.retired().len(), 1);
    }
}
