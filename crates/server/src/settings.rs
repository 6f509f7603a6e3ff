//! From configuration to validated settings: every input parsed once, with errors
//! that say which setting is wrong and how to fix it.

use std::path::PathBuf;

use keyward_core::hash::Peppers;
use keyward_core::key::{KeyFormat, KeyPrefix};
use keyward_core::permissions::Catalogue;
use keyward_engine::EngineConfig;
use keyward_store::DatabaseUrl;

use crate::config::{Config, Secret};
use crate::secrets;

/// Shortest accepted HS256 secret (RFC 7518 §3.2: at least the hash size).
pub const MIN_JWT_SECRET_LEN: usize = 32;
/// Shortest accepted admin token.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// How user JWTs are checked.
#[derive(Clone, Debug, Default)]
pub struct JwtSettings {
    pub hs256_secret: Option<Secret>,
    pub public_key_pem: Option<Vec<u8>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Everything the service needs, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub engine: EngineConfig,
    pub jwt: JwtSettings,
    pub admin_token: Secret,
    /// Where local-trial secrets came from, and whether they were just generated.
    pub local_secrets: Option<(PathBuf, bool)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("KEYWARD_DATABASE_URL: {0}")]
    DatabaseUrl(#[from] keyward_store::DatabaseUrlError),
    #[error("KEYWARD_KEY_PREFIX: {0}")]
    KeyPrefix(#[from] keyward_core::key::InvalidPrefix),
    #[error("KEYWARD_PERMISSIONS: {0}")]
    Permissions(#[from] keyward_core::permissions::CatalogueError),
    #[error("KEYWARD_PEPPER / KEYWARD_PEPPER_FILE: {0}")]
    Pepper(#[from] keyward_core::hash::PepperError),
    #[error("KEYWARD_PEPPER and KEYWARD_PEPPER_FILE are both set; keep one")]
    PepperTwice,
    #[error("cannot read {what} file {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("KEYWARD_JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} bytes")]
    WeakJwtSecret,
    #[error("KEYWARD_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters")]
    WeakAdminToken,
    #[error("KEYWARD_MAX_KEYS_PER_USER must be at least 1")]
    ZeroKeyCap,
    #[error("KEYWARD_CACHE_CAPACITY must be at least 1")]
    ZeroCache,
    #[error("{0} is not set; a deployment on a shared database must configure it")]
    Missing(&'static str),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretsError),
}

impl Config {
    /// Validates the configuration; for a SQLite database, missing secrets come from
    /// (or are generated into) the local secrets file.
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
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

        // Secrets not configured come from the local trial file (SQLite only).
        let needs_local = pepper_setting.is_none()
            || self.admin_token.is_none()
            || (self.jwt_secret.is_none() && public_key_pem.is_none());
        let local = match database_url.sqlite_path() {
            Some(db) if needs_local => Some(secrets::load_or_create(db)?),
            _ => None,
        };
        let pick = |configured: &Option<Secret>, local: Option<&Secret>| {
            configured.clone().or_else(|| local.cloned())
        };
        let pepper = pick(&pepper_setting, local.as_ref().map(|l| &l.pepper)).ok_or(
            SettingsError::Missing("KEYWARD_PEPPER or KEYWARD_PEPPER_FILE"),
        )?;
        let admin_token = pick(&self.admin_token, local.as_ref().map(|l| &l.admin_token))
            .ok_or(SettingsError::Missing("KEYWARD_ADMIN_TOKEN"))?;
        let hs256_secret = match (&self.jwt_secret, &public_key_pem) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(local.as_ref().map(|l| l.jwt_secret.clone()).ok_or(
                SettingsError::Missing("KEYWARD_JWT_SECRET or KEYWARD_JWT_PUBLIC_KEY_FILE"),
            )?),
        };

        if hs256_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < MIN_JWT_SECRET_LEN)
        {
            return Err(SettingsError::WeakJwtSecret);
        }
        if admin_token.expose().chars().count() < MIN_ADMIN_TOKEN_LEN {
            return Err(SettingsError::WeakAdminToken);
        }

        let mut engine = EngineConfig::new(Peppers::parse(pepper.expose())?);
        engine.key_format = key_format;
        engine.catalogue = catalogue;
        engine.max_keys_per_user = self.max_keys_per_user;
        engine.cache_capacity = self.cache_capacity;

        Ok(Settings {
            database_url,
            engine,
            jwt: JwtSettings {
                hs256_secret,
                public_key_pem,
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
            },
            admin_token,
            local_secrets: local.map(|l| (l.path, l.created)),
        })
    }
}

fn read_file(what: &'static str, path: &PathBuf) -> Result<String, SettingsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| SettingsError::ReadFile {
            what,
            path: path.clone(),
            source,
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

    fn config(dir: &std::path::Path, extra: &[&str]) -> Config {
        let url = format!("sqlite://{}", dir.join("k.db").display());
        let mut args = vec!["keyward"];
        if !extra.contains(&"--database-url") {
            args.extend(["--database-url", &url]);
        }
        args.extend_from_slice(extra);
        args.push("migrate");
        Cli::try_parse_from(args).unwrap().config
    }

    #[test]
    fn configured_secrets_need_no_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let settings = config(
            dir.path(),
            &[
                "--pepper",
                PEPPER,
                "--jwt-secret",
                JWT,
                "--admin-token",
                ADMIN,
            ],
        )
        .resolve()
        .unwrap();
        assert!(settings.local_secrets.is_none());
        assert!(!dir.path().join("k.db.secrets").exists());
        assert_eq!(settings.admin_token.expose(), ADMIN);
    }

    #[test]
    fn missing_secrets_come_from_the_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let settings = config(dir.path(), &["--admin-token", ADMIN])
            .resolve()
            .unwrap();
        assert_eq!(
            settings.local_secrets.as_ref().unwrap().0,
            dir.path().join("k.db.secrets")
        );
        assert_eq!(
            settings.admin_token.expose(),
            ADMIN,
            "configured values win"
        );
        assert!(settings.jwt.hs256_secret.is_some());
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[&str], &str); 8] = [
            (&["--jwt-secret", "short"], "KEYWARD_JWT_SECRET"),
            (&["--admin-token", "short"], "KEYWARD_ADMIN_TOKEN"),
            (&["--pepper", "short"], "KEYWARD_PEPPER"),
            (&["--key-prefix", "Bad-Prefix"], "KEYWARD_KEY_PREFIX"),
            (&["--permission-catalogue", "read"], "KEYWARD_PERMISSIONS"),
            (&["--max-keys-per-user", "0"], "KEYWARD_MAX_KEYS_PER_USER"),
            (&["--database-url", "mysql://db/k"], "KEYWARD_DATABASE_URL"),
            (
                &["--pepper", PEPPER, "--pepper-file", "/nonexistent"],
                "keep one",
            ),
        ];
        for (args, expected) in cases {
            let err = config(dir.path(), args).resolve().unwrap_err().to_string();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_pepper_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pepper");
        std::fs::write(&file, format!("v1:{PEPPER}\nv2:{PEPPER}-rotated\n")).unwrap();
        let settings = config(
            dir.path(),
            &[
                "--pepper-file",
                file.to_str().unwrap(),
                "--jwt-secret",
                JWT,
                "--admin-token",
                ADMIN,
            ],
        )
        .resolve()
        .unwrap();
        assert_eq!(settings.engine.peppers.current().version(), 2);
        assert_eq!(settings.engine.peppers.retired().len(), 1);
    }
}
