//! Secrets: the [`Secret`] wrapper every secret setting is held in, and the secrets
//! of a local trial, generated once into a file beside the SQLite database.
//!
//! `keyward serve` with nothing configured must just work, so the pepper, the JWT
//! secret and the admin token are generated on first start into
//! `<database file>.secrets` (JSON, mode 0600) and reused afterwards; the CLI reads
//! the same file, so `keyward token` mints tokens the server accepts. Anything set
//! through the environment takes precedence. Deployments on a shared database must
//! configure their secrets explicitly (every instance needs the same ones).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A secret setting: redacted from `Debug`, zeroed on drop.
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Self::new(self.expose())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[derive(Serialize, Deserialize)]
struct SecretsFile {
    pepper: String,
    jwt_secret: String,
    admin_token: String,
}

/// The secrets of a local trial, and where they live.
pub struct LocalSecrets {
    pub path: PathBuf,
    pub created: bool,
    pub pepper: Secret,
    pub jwt_secret: Secret,
    pub admin_token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    // `cause`, not `source`: the message already carries its text (see SettingsError).
    #[error("cannot read the secrets file {path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },
    #[error("cannot write the secrets file {path}: {cause}")]
    Write { path: PathBuf, cause: io::Error },
    #[error(
        "no secrets configured and no local-trial secrets file at {path}; run `keyward serve` \
         once in this directory (it generates one), set KEYWARD_DATABASE_URL to the server's \
         database, or configure the secrets"
    )]
    Missing { path: PathBuf },
    #[error("the secrets file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The secrets file for a SQLite database file.
pub fn path_for(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".secrets");
    database.with_file_name(name)
}

/// 256 bits from the OS, as 43 base62 characters (the key alphabet: safe in any file).
fn random_secret() -> String {
    keyward_core::key::KeyFormat::default().generate().expose()[5..48].to_owned()
}

/// Reads the secrets beside `database`, generating the file on first use.
pub fn load_or_create(database: &Path) -> Result<LocalSecrets, SecretsError> {
    read(database, true)
}

/// Reads the secrets beside `database`; an error if there are none yet.
pub fn load(database: &Path) -> Result<LocalSecrets, SecretsError> {
    read(database, false)
}

fn read(database: &Path, create: bool) -> Result<LocalSecrets, SecretsError> {
    let path = path_for(database);
    match fs::read(&path) {
        Ok(bytes) => {
            warn_if_readable_by_others(&path);
            let file: SecretsFile =
                serde_json::from_slice(&bytes).map_err(|e| SecretsError::Invalid {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            Ok(LocalSecrets {
                path,
                created: false,
                pepper: Secret::new(file.pepper),
                jwt_secret: Secret::new(file.jwt_secret),
                admin_token: Secret::new(file.admin_token),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => create_file(database, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SecretsError::Missing { path }),
        Err(cause) => Err(SecretsError::Read { path, cause }),
    }
}

fn create_file(database: &Path, path: PathBuf) -> Result<LocalSecrets, SecretsError> {
    let file = SecretsFile {
        pepper: random_secret(),
        jwt_secret: random_secret(),
        admin_token: random_secret(),
    };
    let json = serde_json::to_vec_pretty(&file).expect("strings serialise");
    let mut options = OpenOptions::new();
    // `create_new`: if two processes start at once, one writes and the other reads.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut handle) => {
            handle
                .write_all(&json)
                .and_then(|()| handle.sync_all())
                .map_err(|cause| SecretsError::Write {
                    path: path.clone(),
                    cause,
                })?;
            Ok(LocalSecrets {
                path,
                created: true,
                pepper: Secret::new(file.pepper),
                jwt_secret: Secret::new(file.jwt_secret),
                admin_token: Secret::new(file.admin_token),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create(database),
        Err(cause) => Err(SecretsError::Write { path, cause }),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let exposed = fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
        if exposed {
            tracing::warn!(path = %path.display(), "the secrets file is readable by other users; run chmod 600 on it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keyward.db");
        let first = load_or_create(&db).unwrap();
        assert!(first.created);
        assert_eq!(first.path, dir.path().join("keyward.db.secrets"));
        let second = load_or_create(&db).unwrap();
        assert!(!second.created);
        assert_eq!(first.pepper.expose(), second.pepper.expose());
        assert_eq!(first.admin_token.expose(), second.admin_token.expose());
        assert_ne!(first.pepper.expose(), first.jwt_secret.expose());
        assert_eq!(first.pepper.expose().len(), 43);
    }

    #[cfg(unix)]
    #[test]
    fn the_secrets_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secrets = load_or_create(&dir.path().join("k.db")).unwrap();
        let mode = fs::metadata(&secrets.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_secrets_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("k.db");
        fs::write(path_for(&db), "{not json").unwrap();
        let err = load_or_create(&db).err().unwrap();
        assert!(matches!(err, SecretsError::Invalid { .. }), "{err}");
        assert_eq!(fs::read_to_string(path_for(&db)).unwrap(), "{not json");
    }
}
