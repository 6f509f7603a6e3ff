//! Whether the database stores changes: learnt from every write's outcome, told to
//! readiness, and logged once when it changes rather than once per request.
//!
//! A full disk or a read-only file fails every write until an operator acts, and the
//! service answers each one with a 503 naming the cause. The log says so when it
//! starts (a warning, at most once a minute: on a nearly full disk small writes may
//! pass between large ones that fail) and when it ends (once per warning). Nothing
//! here refuses a write: each is tried, so the first one after space is freed
//! succeeds.
//!
//! Readiness asks [`Writes::check`]: while writes fail, it probes the database with
//! a write of its own (at most once a second), so a deployment that writes nothing
//! still sees its database come back.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{StoreError, Unwritable};

/// How often readiness may probe a database that refused writes.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest time between two log lines about writability.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

const WRITABLE: u8 = 0;

#[derive(Debug, Default)]
pub struct Writes {
    /// `WRITABLE`, or an [`Unwritable`] as `1 + its index`.
    state: AtomicU8,
    /// Writes refused so far.
    refusals: AtomicU64,
    /// When "cannot store changes" was last logged as a warning.
    warned: Mutex<Option<Instant>>,
    /// Whether that warning still waits for its "stores changes again".
    announced: std::sync::atomic::AtomicBool,
    /// When readiness last probed, and what it found.
    probed: tokio::sync::Mutex<Option<(Instant, Option<Unwritable>)>>,
}

impl Writes {
    /// Why writes fail now, if they do.
    pub fn unwritable(&self) -> Option<Unwritable> {
        decode(self.state.load(Ordering::Relaxed))
    }

    /// Runs a write and learns from its outcome: a success shows the database
    /// writable, a [`StoreError::NotWritable`] shows it not; other errors (a missing
    /// key, a busy database) say nothing about it.
    pub async fn track<T>(
        &self,
        write: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.track_if(write, |_| true).await
    }

    /// [`Self::track`] for an operation that may end without writing: only a success
    /// for which `wrote` is true shows the database writable.
    pub async fn track_if<T>(
        &self,
        write: impl Future<Output = Result<T, StoreError>>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        let result = write.await;
        match &result {
            Ok(done) => {
                if wrote(done) {
                    self.writable();
                }
            }
            Err(err) => {
                if let Some(why) = err.unwritable() {
                    self.refused(why, err);
                }
            }
        }
        result
    }

    /// `Err` while the database refuses writes: probes it first (at most once per
    /// [`PROBE_INTERVAL`]) with `probe`, a write that changes nothing.
    pub async fn check<F>(&self, probe: impl FnOnce() -> F) -> Result<(), StoreError>
    where
        F: Future<Output = Result<(), StoreError>>,
    {
        let Some(why) = self.unwritable() else {
            return Ok(());
        };
        let mut probed = self.probed.lock().await;
        let found = match *probed {
            Some((at, found)) if at.elapsed() < PROBE_INTERVAL => found,
            _ => {
                let found = match self.track(probe()).await {
                    Ok(()) => None,
                    Err(err) => Some(err.unwritable().unwrap_or(why)),
                };
                *probed = Some((Instant::now(), found));
                found
            }
        };
        match found.or_else(|| self.unwritable()) {
            None => Ok(()),
            Some(why) => Err(StoreError::NotWritable(
                why,
                "changes cannot be stored (the last write or probe failed)".into(),
            )),
        }
    }

    fn writable(&self) {
        if self.state.swap(WRITABLE, Ordering::Relaxed) != WRITABLE {
            metrics::gauge!("keyward_database_writable").set(1.0);
            if self.announced.swap(false, Ordering::Relaxed) {
                tracing::info!("the database stores changes again");
            } else {
                tracing::debug!("the database stores changes again");
            }
        }
    }

    /// How many writes were refused so far.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    fn refused(&self, why: Unwritable, err: &StoreError) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        if self.state.swap(encode(why), Ordering::Relaxed) == WRITABLE {
            metrics::gauge!("keyward_database_writable").set(0.0);
            metrics::counter!("keyward_database_unwritable_total").increment(1);
            if self.may_warn() {
                self.announced.store(true, Ordering::Relaxed);
                tracing::warn!(
                    error = %err,
                    "the database cannot store changes: {why}. Changes answer 503 until it can; \
                     verifications go on, and usage is kept in memory and written when it can"
                );
            } else {
                tracing::debug!(error = %err, "the database cannot store changes again: {why}");
            }
        }
    }

    /// True (and noted) if the last warning is old enough for another.
    fn may_warn(&self) -> bool {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.is_some_and(|at| at.elapsed() < LOG_INTERVAL) {
            return false;
        }
        *warned = Some(Instant::now());
        true
    }
}

fn encode(why: Unwritable) -> u8 {
    match why {
        Unwritable::DiskFull => 1,
        Unwritable::ReadOnly => 2,
        Unwritable::WriteRefused => 3,
    }
}

fn decode(state: u8) -> Option<Unwritable> {
    match state {
        1 => Some(Unwritable::DiskFull),
        2 => Some(Unwritable::ReadOnly),
        3 => Some(Unwritable::WriteRefused),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> StoreError {
        StoreError::NotWritable(Unwritable::DiskFull, "disk full".into())
    }

    #[tokio::test]
    async fn a_refused_write_makes_the_database_unwritable_until_a_write_succeeds() {
        let writes = Writes::default();
        assert_eq!(writes.unwritable(), None);
        let _ = writes.track(async { Err::<(), _>(full()) }).await;
        assert_eq!(writes.unwritable(), Some(Unwritable::DiskFull));
        // Errors that say nothing of writability change nothing.
        let _ = writes
            .track(async { Err::<(), _>(StoreError::NotFound) })
            .await;
        assert_eq!(writes.unwritable(), Some(Unwritable::DiskFull));
        writes.track(async { Ok(()) }).await.unwrap();
        assert_eq!(writes.unwritable(), None);
    }

    #[tokio::test]
    async fn readiness_probes_at_most_once_a_second_while_writes_fail() {
        let writes = Writes::default();
        writes
            .check(|| async { panic!("no probe while writable") })
            .await
            .unwrap();
        let _ = writes.track(async { Err::<(), _>(full()) }).await;
        let probes = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..3 {
            let err = writes
                .check(|| async {
                    probes.fetch_add(1, Ordering::Relaxed);
                    Err(full())
                })
                .await
                .unwrap_err();
            assert_eq!(err.unwritable(), Some(Unwritable::DiskFull));
        }
        assert_eq!(probes.load(Ordering::Relaxed), 1);
        // Space freed: the next probe (a second later) finds it writable.
        *writes.probed.lock().await = None;
        writes.check(|| async { Ok(()) }).await.unwrap();
        assert_eq!(writes.unwritable(), None);
    }
}
