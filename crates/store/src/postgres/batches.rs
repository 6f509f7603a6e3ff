//! Verification's reads on PostgreSQL, gathered into batches.
//!
//! Every cold verification used to be one statement and one round trip, and with the
//! database on the same machine the CPU went to PostgreSQL's per-statement work and
//! to the wake-ups on both sides. Here a lookup joins a queue; one task takes what has
//! queued and reads it in one statement (`sql::FIND_BY_HASHES`, `key_hash = ANY($1)`).
//! At most [`IN_FLIGHT`] batches are read at once: the lookups that arrive meanwhile
//! wait in the queue and go together in the next one. With no load a batch holds one
//! lookup and costs what a single read did; under load a read serves many.

use std::collections::HashMap;
use std::sync::Arc;

use keyward_core::hash::KeyHash;
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use tokio::sync::{Semaphore, mpsc};

use crate::db::Columns;
use crate::error::StoreError;
use crate::lookup::{Answer, Lookup};
use crate::rows::verify_record;
use crate::sql;

/// Batches read at once, each on a pooled connection: the rest of the pool stays for
/// changes, usage writes and listings.
const IN_FLIGHT: usize = 2;
/// The most lookups in one statement.
const MAX_BATCH: usize = 256;

/// The queue; its task ends when the last clone of the store is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Batches {
    queue: mpsc::UnboundedSender<Lookup>,
}

impl Batches {
    /// Starts the gathering task (on the current Tokio runtime).
    pub(crate) fn start(pool: PgPool) -> Self {
        let (queue, lookups) = mpsc::unbounded_channel();
        tokio::spawn(gather(pool, lookups));
        Self { queue }
    }

    /// The key stored under `hash`, if any.
    pub(crate) async fn find(&self, hash: &KeyHash) -> Answer {
        Lookup::ask(hash, |lookup| self.queue.send(lookup).is_ok(), stopped).await
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the PostgreSQL lookups have stopped".into())
}

async fn gather(pool: PgPool, mut lookups: mpsc::UnboundedReceiver<Lookup>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = lookups.recv().await {
        // Waiting for a free slot before taking the rest is what makes batches: what
        // queues while every slot is busy goes in the next statement.
        let Ok(slot) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match lookups.try_recv() {
                Ok(lookup) => batch.push(lookup),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(slot);
        });
    }
}

/// Reads a batch and answers each of its lookups.
async fn answer(pool: &PgPool, batch: Vec<Lookup>) {
    let rows = match read(pool, &batch).await {
        Ok(rows) => rows,
        Err(err) => {
            for lookup in batch {
                lookup.answer(Err(shared(&err)));
            }
            return;
        }
    };
    let mut found: HashMap<KeyHash, Answer> = HashMap::with_capacity(rows.len());
    for row in &rows {
        // The statement matched the row on this column: it decodes.
        if let Ok(hash) = row.hash("key_hash") {
            found.insert(hash, verify_record(row).map(Some));
        }
    }
    for lookup in batch {
        let answer = match found.get(&lookup.hash) {
            None => Ok(None),
            Some(Ok(record)) => Ok(record.clone()),
            Some(Err(err)) => Err(shared(err)),
        };
        lookup.answer(answer);
    }
}

async fn read(pool: &PgPool, batch: &[Lookup]) -> Result<Vec<PgRow>, StoreError> {
    let hashes: Vec<&[u8]> = batch.iter().map(|l| l.hash.as_bytes().as_slice()).collect();
    let mut conn = pool.acquire().await?;
    let rows = sqlx::query(sql::FIND_BY_HASHES)
        .bind(hashes)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows)
}

/// The same failure for each lookup of a batch (errors are not `Clone`: their
/// causes are not).
fn shared(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable(cause) => StoreError::Unavailable(cause.to_string().into()),
        StoreError::Database(cause) => StoreError::Database(cause.to_string().into()),
        StoreError::Corrupt(column) => StoreError::Corrupt(column.clone()),
        other => StoreError::Database(other.to_string().into()),
    }
}
