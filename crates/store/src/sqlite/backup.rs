//! A consistent copy of a live database file (`keyward backup`).
//!
//! Copying the file with `cp` while a server writes can give a file that is not a
//! database (the WAL holds what the main file lacks, and both change during the
//! copy). `VACUUM INTO` reads one snapshot through SQLite itself, from a read-only
//! connection, so the server's writer goes on meanwhile. The copy is written under a
//! temporary name beside the destination, checked (`PRAGMA integrity_check`, the
//! schema version), synced, and only then renamed into place: a backup that exists
//! under its name is whole.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use super::SqliteStore;
use keyward_core::time::Timestamp;

use crate::error::StoreError;
use crate::sql;

/// A backup written and checked.
#[derive(Clone, Debug)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    pub schema_version: i64,
    /// Keys in the backup, of every status.
    pub keys: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists already: choose another name, or pass --force to replace it")]
    Exists(PathBuf),
    #[error("the directory {0} for the backup does not exist")]
    NoDirectory(PathBuf),
    #[error("{0} is a file of the database itself (or its secrets): choose another path")]
    Overwrites(PathBuf),
    #[error("cannot write the backup {path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("the backup failed its check ({0}); nothing was written under its name")]
    Check(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SqliteStore {
    /// Writes a consistent copy of the database to `to`; an existing file there is
    /// replaced only if `replace`, and never the database's own files or any of
    /// `keep` (its secrets). Safe while the database is being served.
    pub async fn backup(
        &self,
        to: &Path,
        replace: bool,
        keep: &[&Path],
    ) -> Result<Backup, BackupError> {
        if to.exists() {
            let with = |suffix: &str| {
                let mut name = self.path.as_os_str().to_owned();
                name.push(suffix);
                PathBuf::from(name)
            };
            let own = [self.path.to_path_buf(), with("-wal"), with("-shm")];
            if own
                .iter()
                .map(PathBuf::as_path)
                .chain(keep.iter().copied())
                .any(|p| same_file(to, p))
            {
                return Err(BackupError::Overwrites(to.to_owned()));
            }
            if !replace {
                return Err(BackupError::Exists(to.to_owned()));
            }
        }
        let dir = match to.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(BackupError::NoDirectory(dir.to_owned()));
        }
        let name = to.file_name().unwrap_or_default().to_string_lossy();
        // A name no other run uses (two containers may both be pid 1), created here:
        // only this run's own file is ever removed.
        let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc())
            .map_err(|err| BackupError::Check(err.to_string()))?;
        let random = keyward_core::model::KeyId::new(now);
        let partial = dir.join(format!(".{name}.partial-{}", random.as_uuid().simple()));
        // Created empty, owner-only (it holds key hashes and the audit trail):
        // SQLite writes into an empty file and keeps its mode.
        create_owner_only(&partial).map_err(|cause| BackupError::Io {
            path: partial.clone(),
            cause,
        })?;
        let result = self.write_checked(&partial, dir, to).await;
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    async fn write_checked(
        &self,
        partial: &Path,
        dir: &Path,
        to: &Path,
    ) -> Result<Backup, BackupError> {
        let io_error = |cause| BackupError::Io {
            path: partial.to_owned(),
            cause,
        };
        let target = partial.to_str().ok_or_else(|| BackupError::Io {
            path: partial.to_owned(),
            cause: io::Error::other("the path is not valid UTF-8"),
        })?;
        let mut source = read_only(&self.path).await?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&mut source)
            .await
            .map_err(StoreError::from)?;
        let source_version: i64 = sqlx::query_scalar(sql::SCHEMA_VERSION)
            .fetch_one(&mut source)
            .await
            .map_err(StoreError::from)?;
        source.close().await.map_err(StoreError::from)?;

        let (schema_version, keys) = check(partial).await?;
        if schema_version != source_version {
            return Err(BackupError::Check(format!(
                "schema version {schema_version}, the database's is {source_version}"
            )));
        }
        File::open(partial)
            .and_then(|file| file.sync_all())
            .map_err(io_error)?;
        fs::rename(partial, to).map_err(|cause| BackupError::Io {
            path: to.to_owned(),
            cause,
        })?;
        // The rename itself must survive a power loss too.
        let _ = File::open(dir).and_then(|d| d.sync_all());
        let bytes = fs::metadata(to).map(|m| m.len()).unwrap_or(0);
        Ok(Backup {
            path: to.to_owned(),
            bytes,
            schema_version,
            keys,
        })
    }
}

/// A read-only connection of its own. Reading a whole large database takes seconds:
/// not the "slow statement" warnings sqlx would log for a server's queries.
async fn read_only(path: &Path) -> Result<SqliteConnection, StoreError> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|err| StoreError::Database(err.into()))?
        .filename(path)
        .read_only(true)
        .disable_statement_logging();
    Ok(SqliteConnection::connect_with(&options).await?)
}

/// Opens the written copy read-only: its integrity, schema version and key count.
async fn check(path: &Path) -> Result<(i64, u64), BackupError> {
    let mut conn = read_only(path).await?;
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .map_err(StoreError::from)?;
    if integrity != ["ok"] {
        return Err(BackupError::Check(format!(
            "integrity_check: {}",
            integrity.join("; ")
        )));
    }
    let version: i64 = sqlx::query_scalar(sql::SCHEMA_VERSION)
        .fetch_one(&mut conn)
        .await
        .map_err(StoreError::from)?;
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(&mut conn)
        .await
        .map_err(StoreError::from)?;
    conn.close().await.map_err(StoreError::from)?;
    Ok((version, u64::try_from(keys).unwrap_or(0)))
}

/// Whether two paths name one file (through symbolic or hard links too).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (fs::metadata(a), fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
    }
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    canonical(a) == canonical(b)
}

#[cfg(unix)]
fn create_owner_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_owner_only(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}
