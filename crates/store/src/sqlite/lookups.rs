//! Verification's one read on SQLite (`sql::FIND_BY_HASH`), on threads of its own.
//!
//! sqlx runs each SQLite connection on a worker thread and hands it every statement
//! and every row through channels: a cold verification cost two or more thread
//! wake-ups, and with 64 concurrent misses the scheduler took most of the CPU. Here a
//! few threads each keep one read-only connection with the statement prepared once,
//! and take lookups from one queue: under load a thread finds the next lookup waiting
//! and answers it without sleeping, so a wake-up is paid per idle moment rather than
//! per read. The async side never blocks: it queues the hash and awaits the answer.
//!
//! The file is read with `pread`, not memory-mapped: measured side by side on a
//! 1M-key database, mapping it (`mmap_size` 1 GiB) made cold verification slower
//! (34,000 against 42,500 a second: a page fault per first touch of a page costs more
//! than a copy) and counted the mapped pages in the process's resident memory, once
//! per connection (a peak of 670 MiB against 150 MiB).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use keyward_core::hash::KeyHash;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::db::{Columns, StoredPermissions};
use crate::error::StoreError;
use crate::error::corrupt;
use crate::lookup::{Answer, Lookup};
use crate::rows::verify_record;
use crate::sql;

/// Threads answering lookups. Two keep both cores of a small machine busy while one
/// waits for a page from disk; more would only add context switches.
const THREADS: usize = 2;
/// How long a lookup waits for a lock (as the other connections do).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The queue the lookup threads take from; the threads end, closing their
/// connections, when the last clone of the store (and so of this sender) is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Lookups {
    queue: flume::Sender<Lookup>,
    /// Set by [`Lookups::close`]: the store was closed, lookups are refused as the
    /// pools refuse their statements.
    closed: Arc<AtomicBool>,
}

impl Lookups {
    /// Opens the threads' connections; an error opening any of them is returned.
    pub(crate) fn start(path: &Path) -> Result<Self, StoreError> {
        let (queue, lookups) = flume::unbounded::<Lookup>();
        for n in 0..THREADS {
            let connection = open(path)?;
            let lookups = lookups.clone();
            thread::Builder::new()
                .name(format!("keyward-sqlite-lookup-{n}"))
                .spawn(move || serve(&connection, &lookups))
                .map_err(|err| StoreError::Open(format!("cannot start a lookup thread: {err}")))?;
        }
        Ok(Self {
            queue,
            closed: Arc::default(),
        })
    }

    /// Refuses every lookup from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The key stored under `hash`, if any.
    pub(crate) async fn find(&self, hash: &KeyHash) -> Answer {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        Lookup::ask(hash, |lookup| self.queue.send(lookup).is_ok(), gone).await
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable("the SQLite lookup threads have stopped".into())
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    Ok(connection)
}

fn serve(connection: &Connection, lookups: &flume::Receiver<Lookup>) {
    let mut prepared = None;
    while let Ok(lookup) = lookups.recv() {
        let answer = match prepared {
            Some(ref mut statement) => find(statement, &lookup.hash),
            // Prepared on first use, and again after a failure to prepare.
            None => match connection.prepare(sql::FIND_BY_HASH) {
                Ok(mut statement) => {
                    let answer = find(&mut statement, &lookup.hash);
                    prepared = Some(statement);
                    answer
                }
                Err(err) => Err(err.into()),
            },
        };
        lookup.answer(answer);
    }
}

fn find(statement: &mut rusqlite::Statement<'_>, hash: &KeyHash) -> Answer {
    statement
        .query_row([hash.as_bytes().as_slice()], |row| {
            Ok(verify_record(&LookupRow(row)))
        })
        .optional()?
        .transpose()
}

/// A row of the lookup as [`Columns`], decoded as sqlx stores each type on SQLite.
struct LookupRow<'a>(&'a rusqlite::Row<'a>);

impl LookupRow<'_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T, StoreError> {
        self.0.get(column).map_err(|_| corrupt(column))
    }
}

impl Columns for LookupRow<'_> {
    fn id(&self, column: &str) -> Result<keyward_core::model::KeyId, StoreError> {
        self.maybe_id(column)?.ok_or_else(|| corrupt(column))
    }
    fn maybe_id(&self, column: &str) -> Result<Option<keyward_core::model::KeyId>, StoreError> {
        self.maybe_bytes(column)?
            .map(|bytes| {
                uuid::Uuid::from_slice(&bytes)
                    .map(keyward_core::model::KeyId::from_uuid)
                    .map_err(|_| corrupt(column))
            })
            .transpose()
    }
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.get(column)
    }
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.get(column)
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.get(column)
    }
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column)
    }
    fn small(&self, column: &str) -> Result<i32, StoreError> {
        self.get(column)
    }
    fn maybe_small(&self, column: &str) -> Result<Option<i32>, StoreError> {
        self.get(column)
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.get(column)
    }
    fn maybe_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(column)
    }
    fn permissions(&self, column: &str) -> Result<Vec<String>, StoreError> {
        StoredPermissions::Json(self.get(column)?).into_names(column)
    }
}
