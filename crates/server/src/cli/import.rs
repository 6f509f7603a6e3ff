//! `keyward import autogpt`: the keys of an AutoGPT database, brought along.
//!
//! Reads AutoGPT's `"APIKey"` table in either of its shapes (2024: `prefix`,
//! `postfix`, `key` = unsalted SHA-256 hex; 2025 on: `head`, `tail`, `hash`, `salt`,
//! where a NULL salt means SHA-256 hex and otherwise hex scrypt) and stores each key
//! with AutoGPT's hash, its status, permissions, owner, times and description. The
//! keys keep working: verification recognises their shape, checks AutoGPT's hash, and
//! re-hashes them with the pepper on first use. Keys keep their AutoGPT ids, so a
//! second run adds nothing.

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::Subcommand;
use keyward_core::hash::KeyHash;
use keyward_core::input::{Description, KeyName};
use keyward_core::legacy::LegacyHash;
use keyward_core::model::{ApiKey, KeyId, KeyStatus, NewKey, UserId};
use keyward_core::time::Timestamp;
use keyward_store::{ImportedKey, NewKeyRecord};
use serde::Serialize;
use sqlx::{Connection, Row};

use super::keys::open_engine;
use super::output::say;
use crate::flags::Flags;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import the API keys of an AutoGPT PostgreSQL database (its "APIKey" table).
    Autogpt {
        /// The AutoGPT database, e.g. postgres://user:password@host:5432/autogpt.
        #[arg(long = "from", value_name = "POSTGRES_URL")]
        from: String,
        /// Report what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep permission names that are not in this deployment's catalogue on the
        /// imported keys (add them to KEYWARD_PERMISSIONS to use them). Without this
        /// flag such names stop the import, listed.
        #[arg(long)]
        add_permissions: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What an import did (or, in a dry run, would do).
#[derive(Serialize, Debug)]
pub struct Report {
    /// `2024` (prefix, postfix, key) or `2025` (head, tail, hash, salt).
    pub shape: &'static str,
    pub found: u64,
    pub imported: u64,
    pub already_present: u64,
    pub skipped: Vec<Skipped>,
    /// Permission names outside the catalogue, kept with --add-permissions.
    pub unknown_permissions: Vec<String>,
    pub dry_run: bool,
}

#[derive(Serialize, Debug)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

/// Declares [`SourceRow`] and its reading by column name from one list: a column is
/// named once, here and in the query's aliases.
macro_rules! source_row {
    ($($column:ident: $type:ty,)*) => {
        /// One row of AutoGPT's table, in the columns both shapes share after aliasing.
        struct SourceRow {
            $($column: $type,)*
        }

        impl SourceRow {
            fn read(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    $($column: row.try_get(stringify!($column))?,)*
                })
            }
        }
    };
}

source_row! {
    id: String,
    name: String,
    head: String,
    tail: String,
    hash: String,
    salt: Option<String>,
    status: String,
    permissions: Vec<String>,
    created_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    description: Option<String>,
    user_id: String,
}

const COLUMNS_2024: &str = r#"prefix AS head, postfix AS tail, "key" AS hash, NULL::text AS salt"#;
const COLUMNS_2025: &str = "head, tail, hash, salt";

pub async fn run(flags: &Flags, command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Autogpt {
        from,
        dry_run,
        add_permissions,
        json,
    } = command;
    // The URL may hold a password: errors name the database, never the URL.
    let mut source = sqlx::PgConnection::connect(&from)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the AutoGPT database: {e}"))?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_name = 'APIKey' AND table_schema = current_schema()",
    )
    .fetch_all(&mut source)
    .await?;
    let (shape, hash_columns) = if columns.iter().any(|c| c == "hash") {
        ("2025", COLUMNS_2025)
    } else if columns.iter().any(|c| c == "key") {
        ("2024", COLUMNS_2024)
    } else {
        anyhow::bail!("no AutoGPT \"APIKey\" table (with key or hash columns) in that database");
    };
    let millis = |column: &str| format!(r#"(EXTRACT(EPOCH FROM "{column}") * 1000)::bigint"#);
    let sql = format!(
        r#"SELECT id::text AS id, name, {hash_columns}, status::text AS status,
           permissions::text[] AS permissions, {} AS created_at, {} AS last_used_at,
           {} AS revoked_at, description, "userId" AS user_id
           FROM "APIKey" ORDER BY "createdAt", id"#,
        millis("createdAt"),
        millis("lastUsedAt"),
        millis("revokedAt"),
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut source)
        .await?
        .iter()
        .map(SourceRow::read)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    source.close().await.ok();

    let engine = open_engine(flags).await?;
    let result = import(&engine, rows, shape, dry_run, add_permissions).await;
    engine.shutdown().await;
    let report = match result {
        Ok(report) => report,
        Err(ImportError::UnknownPermissions(names)) => {
            anyhow::bail!(
                "AutoGPT keys hold permissions this deployment does not know: {}. \
                 Add them to KEYWARD_PERMISSIONS, or import with --add-permissions; \
                 nothing was imported",
                names.join(", ")
            )
        }
        Err(ImportError::Other(err)) => return Err(err),
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let verb = if report.dry_run {
            "would import"
        } else {
            "imported"
        };
        say!(
            "AutoGPT keys ({} shape): {} found, {verb} {}, {} already present, {} skipped",
            report.shape,
            report.found,
            report.imported,
            report.already_present,
            report.skipped.len()
        );
        for skipped in &report.skipped {
            say!("  skipped {}: {}", skipped.id, skipped.reason);
        }
        if !report.unknown_permissions.is_empty() {
            say!(
                "kept permissions outside the catalogue: {} (add them to KEYWARD_PERMISSIONS)",
                report.unknown_permissions.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

enum ImportError {
    UnknownPermissions(Vec<String>),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for ImportError {
    fn from(err: E) -> Self {
        Self::Other(err.into())
    }
}

async fn import(
    engine: &keyward_engine::Engine<keyward_store::AnyStore>,
    rows: Vec<SourceRow>,
    shape: &'static str,
    dry_run: bool,
    add_permissions: bool,
) -> Result<Report, ImportError> {
    let config = engine.config();
    let unknown: BTreeSet<String> = rows
        .iter()
        .flat_map(|row| row.permissions.iter())
        .filter(|name| config.catalogue.set_of(&[name.as_str()]).is_err())
        .cloned()
        .collect();
    if !unknown.is_empty() && !add_permissions {
        return Err(ImportError::UnknownPermissions(
            unknown.into_iter().collect(),
        ));
    }
    let pepper_version = config.peppers.current().version();
    let mut report = Report {
        shape,
        found: rows.len() as u64,
        imported: 0,
        already_present: 0,
        skipped: Vec::new(),
        unknown_permissions: unknown.into_iter().collect(),
        dry_run,
    };
    let mut keys = Vec::new();
    for row in rows {
        let id = row.id.clone();
        match imported_key(row, pepper_version) {
            Ok(key) => keys.push(key),
            Err(reason) => report.skipped.push(Skipped { id, reason }),
        }
    }
    let outcome = engine.import_keys(keys, "cli", dry_run).await?;
    report.imported = outcome.added;
    report.already_present = outcome.already_present;
    Ok(report)
}

/// An AutoGPT row as a keyward key, or why it cannot be one.
fn imported_key(row: SourceRow, pepper_version: u16) -> Result<ImportedKey, String> {
    let user_id = UserId::parse(&row.user_id).map_err(|e| format!("userId: {e}"))?;
    let name = KeyName::parse(&row.name).map_err(|e| format!("name: {e}"))?;
    let description = match row.description.as_deref().map(Description::parse) {
        None => None,
        Some(Ok(d)) => d.map(Description::into_string),
        Some(Err(e)) => return Err(format!("description: {e}")),
    };
    let status: KeyStatus = row
        .status
        .parse()
        .map_err(|_| format!("status: unknown status {:?}", row.status))?;
    let legacy =
        LegacyHash::from_hex(&row.hash, row.salt.as_deref()).map_err(|e| format!("hash: {e}"))?;
    if row.head.len() != keyward_core::legacy::HEAD_LEN || !row.head.starts_with("agpt_") {
        return Err("head: not the first 8 characters of an agpt_ key".into());
    }
    let time = |ms: Option<i64>, field: &str| {
        ms.map(|ms| Timestamp::from_millis(ms).map_err(|_| format!("{field}: out of range")))
            .transpose()
    };
    let created_at = time(row.created_at, "createdAt")?.ok_or("createdAt: missing")?;
    let mut permissions = row.permissions;
    permissions.sort();
    permissions.dedup();
    let revoked_at = match status {
        KeyStatus::Revoked => Some(time(row.revoked_at, "revokedAt")?.unwrap_or(created_at)),
        _ => None,
    };
    let key = ApiKey {
        description,
        status,
        permissions,
        last_used_at: time(row.last_used_at, "lastUsedAt")?,
        revoked_at,
        ..NewKey::new(user_id, name.into_string(), created_at)
            .id(key_id(&row.id))
            .display(&row.head, &row.tail)
            .build()
    };
    Ok(ImportedKey {
        record: NewKeyRecord {
            key,
            hash: placeholder_hash(),
            pepper_version,
        },
        legacy,
        head: row.head,
    })
}

/// AutoGPT ids are UUIDs (Prisma's `uuid()`); anything else gets a stable UUID of
/// its own, derived from the id, so a second import finds it again.
fn key_id(id: &str) -> KeyId {
    if let Ok(uuid) = id.parse::<uuid::Uuid>() {
        return KeyId::from_uuid(uuid);
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("keyward-import:{id}").as_bytes());
    let mut bytes: [u8; 16] = digest[..16].try_into().expect("16 of 32 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8: custom
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    KeyId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

/// Random bytes in the hash column until the first verification re-hashes the key:
/// no presented key can have them as its HMAC.
fn placeholder_hash() -> KeyHash {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    KeyHash::from_bytes(bytes)
}
