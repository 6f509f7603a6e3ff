//! Fills a database with keys through the store (not HTTP), fast: keys are hashed
//! as `keyward serve` would hash them (`KEYWARD_PEPPER`) and inserted in large
//! transactions. The plaintexts go to `--keys-out`, one per line, for the load
//! generator; they are benchmark keys, not secrets worth protecting.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use keyward_core::audit::Actor;
use keyward_core::hash::Peppers;
use keyward_core::key::KeyFormat;
use keyward_core::model::{ApiKey, NewKey, UserId};
use keyward_core::time::Timestamp;
use keyward_store::{DatabaseUrl, KeyStore, NewKeyRecord, Store};

#[derive(Parser)]
struct Args {
    /// Database to fill (migrated first), e.g. `sqlite://bench.db`.
    #[arg(long)]
    database_url: String,
    /// The pepper setting, exactly as given to `keyward serve`.
    #[arg(long, env = "KEYWARD_PEPPER", hide_env_values = true)]
    pepper: String,
    /// How many keys to add.
    #[arg(long)]
    keys: usize,
    /// Spread the keys over this many users (`bench-user-N`).
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Where to write the plaintext keys (one per line).
    #[arg(long)]
    keys_out: Option<PathBuf>,
    /// Keys per transaction.
    #[arg(long, default_value_t = 20_000)]
    batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = DatabaseUrl::parse(&args.database_url)?;
    let store = keyward_store::connect(&url).await?;
    store.migrate().await?;
    let peppers = Peppers::parse(&args.pepper)?;
    let pepper = peppers.current();
    let format = KeyFormat::default();
    let users: Vec<UserId> = (0..args.users.max(1))
        .map(|i| UserId::parse(&format!("bench-user-{i}")))
        .collect::<Result<_, _>>()?;
    let mut out = match &args.keys_out {
        Some(path) => Some(BufWriter::new(std::fs::File::create(path)?)),
        None => None,
    };
    let permissions = vec!["EXECUTE_GRAPH".to_owned(), "READ_GRAPH".to_owned()];
    let started = Instant::now();
    let mut written = 0;
    while written < args.keys {
        let n = args.batch.min(args.keys - written);
        let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc())?;
        let mut batch = Vec::with_capacity(n);
        for i in 0..n {
            let (plain, hash) = pepper.mint(&format);
            if let Some(out) = out.as_mut() {
                writeln!(out, "{}", plain.expose())?;
            }
            let owner = users[(written + i) % users.len()].clone();
            batch.push(NewKeyRecord {
                hash,
                pepper_version: pepper.version(),
                key: ApiKey {
                    permissions: permissions.clone(),
                    ..NewKey::new(owner, "bench", now).secret(&plain).build()
                },
            });
        }
        store
            .insert_keys(&batch, &Actor::Admin("bench-seed".into()))
            .await?;
        written += n;
    }
    if let Some(mut out) = out {
        out.flush()?;
    }
    store.close().await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {written} keys in {secs:.1} s ({:.0} keys/s)",
        written as f64 / secs
    );
    Ok(())
}
