//! `keyward backup --to PATH`: a consistent copy of a live SQLite database, and
//! `keyward copy --to URL`: a deployment's database into another (SQLite to
//! PostgreSQL, or back), resumable. docs/OPERATIONS.md has the procedures.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use keyward_core::time::Timestamp;
use keyward_store::{DatabaseUrl, Progress, SqliteStore, Store};

use super::output::{say, say_raw, table};
use crate::flags::Flags;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the backup: a new file (see --force), written under a temporary
    /// name beside it, checked, then renamed into place.
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
    /// Replace PATH if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The database to copy into: postgres://… or sqlite://PATH (created if missing);
    /// migrated first. It must be empty, or filled by an earlier copy from the same
    /// source (the copy then resumes and brings over what changed).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The database to copy from [default: the configured database, --database-url].
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `keyward backup`.
pub async fn backup(flags: &Flags, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let url = DatabaseUrl::parse(&flags.database_url)?;
    let path = match &url {
        DatabaseUrl::Postgres(_) => anyhow::bail!(
            "`keyward backup` copies SQLite databases; back PostgreSQL up with its own tools: \
             `pg_dump --format=custom --file=keyward.dump \"$KEYWARD_DATABASE_URL\"` \
             (docs/OPERATIONS.md)"
        ),
        DatabaseUrl::Sqlite(path) => path,
    };
    existing(path)?;
    let secrets = crate::secrets::path_for(path);
    let store = SqliteStore::open(path).await?;
    let started = Instant::now();
    // Never over the database being served, nor its pepper, --force or not.
    let backup = store.backup(&args.to, args.force, &[&secrets]).await;
    store.close().await;
    let backup = backup?;
    say!(
        "backed up {} key{} to {} ({}, schema version {}) in {:.1} s; integrity check ok",
        backup.keys,
        if backup.keys == 1 { "" } else { "s" },
        backup.path.display(),
        size(backup.bytes),
        backup.schema_version,
        started.elapsed().as_secs_f64()
    );
    if secrets.exists() {
        say!(
            "The secrets are not in the backup: they stay in {} (the pepper that keys are \
             hashed with). Keep a copy of that file apart from the backups: a backup is \
             useless without its pepper.",
            secrets.display()
        );
    } else {
        say!(
            "The pepper (KEYWARD_PEPPER or KEYWARD_PEPPER_FILE) is not in the backup: keep it \
             apart from the backups. A backup is useless without its pepper."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `keyward copy`.
pub async fn copy(flags: &Flags, args: &CopyArgs) -> anyhow::Result<ExitCode> {
    let from = DatabaseUrl::parse(args.from.as_deref().unwrap_or(&flags.database_url))
        .map_err(|err| anyhow::anyhow!("--from: {err}"))?;
    let to = DatabaseUrl::parse(&args.to).map_err(|err| anyhow::anyhow!("--to: {err}"))?;
    if let DatabaseUrl::Sqlite(path) = &from {
        existing(path)?;
    }
    if same_database(&from, &to) {
        anyhow::bail!("--to names the database being copied ({from})");
    }
    let connect = keyward_store::ConnectOptions {
        max_connections: flags.db_max_connections,
    };
    let source = keyward_store::connect_with(&from, &connect).await?;
    let target = match keyward_store::connect_with(&to, &connect).await {
        Ok(target) => target,
        Err(err) => {
            source.close().await;
            return Err(err.into());
        }
    };
    let started = Instant::now();
    let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc())?;
    let mut shown = Shown::new();
    let copied = keyward_store::copy(&source, &target, now, &mut |p| shown.progress(p)).await;
    shown.finish();
    source.close().await;
    target.close().await;
    let copied = copied?;
    let elapsed = started.elapsed();

    if args.json {
        say!("{}", serde_json::to_string_pretty(&json(&copied, elapsed))?);
    } else {
        let rows: Vec<Vec<String>> = copied
            .tables
            .iter()
            .map(|t| {
                vec![
                    t.table.to_owned(),
                    t.rows.to_string(),
                    t.written.to_string(),
                    t.deleted.to_string(),
                    t.source_digest[..16].to_owned(),
                    if t.matches() {
                        "equal".to_owned()
                    } else {
                        format!(
                            "DIFFERS ({} rows, {})",
                            t.target_rows,
                            &t.target_digest[..16]
                        )
                    },
                ]
            })
            .collect();
        say_raw!(
            "{}",
            table(
                &["TABLE", "ROWS", "WRITTEN", "DELETED", "DIGEST", "TARGET"],
                &rows
            )
        );
        let keys = copied.tables[0].rows;
        say!(
            "{} deployment {} from {from} to {to}: {keys} keys in {:.1} s ({:.0} keys/s)",
            if copied.resumed {
                "Brought up to date:"
            } else {
                "Copied"
            },
            copied.deployment,
            elapsed.as_secs_f64(),
            keys as f64 / elapsed.as_secs_f64().max(0.001),
        );
    }
    if !copied.matches() {
        eprintln!(
            "error: the target differs from the source's snapshot (see TARGET): was it written \
             to during the copy? Run the copy again; the target stays marked unfinished, and \
             `keyward serve` refuses it, until every table is equal"
        );
        return Ok(ExitCode::FAILURE);
    }
    if copied.source_changed {
        eprintln!(
            "note: the source changed while it was copied (it records changes after its \
             snapshot): before switching to the target, stop writes and run the copy again"
        );
    }
    if !args.json {
        say!(
            "Every table is equal on both sides. Keys verify on the target with the same \
             pepper: {}",
            pepper_hint(&from)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the pepper the keys are hashed with comes from, for the target's settings.
fn pepper_hint(from: &DatabaseUrl) -> String {
    let local = from
        .sqlite_path()
        .map(crate::secrets::path_for)
        .filter(|secrets| secrets.exists());
    match local {
        Some(secrets) => format!(
            "it is in {} (with the JWT secret and the admin token); give the target's \
             servers the same values (docs/OPERATIONS.md)",
            secrets.display()
        ),
        None => "configure the target's servers with the source's KEYWARD_PEPPER".to_owned(),
    }
}

fn existing(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!(
            "there is no database at {} (set KEYWARD_DATABASE_URL or --database-url to it)",
            path.display()
        );
    }
    Ok(())
}

fn same_database(a: &DatabaseUrl, b: &DatabaseUrl) -> bool {
    match (a, b) {
        (DatabaseUrl::Sqlite(a), DatabaseUrl::Sqlite(b)) => keyward_store::sqlite::same_file(a, b),
        (DatabaseUrl::Postgres(a), DatabaseUrl::Postgres(b)) => a == b,
        _ => false,
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

fn json(copied: &keyward_store::Copied, elapsed: Duration) -> serde_json::Value {
    serde_json::json!({
        "deployment": copied.deployment,
        "resumed": copied.resumed,
        "source_changed": copied.source_changed,
        "equal": copied.matches(),
        "seconds": elapsed.as_secs_f64(),
        "tables": copied.tables.iter().map(|t| serde_json::json!({
            "table": t.table,
            "rows": t.rows,
            "written": t.written,
            "deleted": t.deleted,
            "source_digest": t.source_digest,
            "target_rows": t.target_rows,
            "target_digest": t.target_digest,
            "equal": t.matches(),
        })).collect::<Vec<_>>(),
    })
}

/// The copy's progress on stderr: a line redrawn in place on a terminal; otherwise
/// a line when a table is done and every few seconds.
struct Shown {
    terminal: bool,
    last: Instant,
    drawn: bool,
}

impl Shown {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last: Instant::now(),
            drawn: false,
        }
    }

    fn progress(&mut self, p: Progress) {
        let line = format!(
            "copying {}: {} of {} rows ({}%)",
            p.table,
            p.done,
            p.total,
            (p.done * 100).checked_div(p.total).unwrap_or(100)
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let filled = usize::try_from((p.done * 30).checked_div(p.total).unwrap_or(30))
                .unwrap_or(30)
                .min(30);
            let bar = format!("[{}{}]", "#".repeat(filled), "-".repeat(30 - filled));
            let _ = write!(err, "\r\x1b[2K{bar} {line}");
            let _ = err.flush();
            self.drawn = true;
        } else if p.done == p.total || self.last.elapsed() >= Duration::from_secs(5) {
            let _ = writeln!(err, "{line}");
            self.last = Instant::now();
        }
    }

    fn finish(&self) {
        if self.drawn {
            eprintln!();
        }
    }
}
