//! Background work: writing recorded usage, and dropping cache entries that another
//! process may have made stale.

use std::sync::Arc;
use std::time::Duration;

use keyward_core::time::Timestamp;
use keyward_core::usage::{DAY_MS, hour_of};
use keyward_store::{ExternalChange, Store};
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::inner::Inner;

pub(crate) fn spawn<S: Store>(inner: &Arc<Inner<S>>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(flush_usage_periodically(Arc::clone(inner))),
        tokio::spawn(watch_external_changes(Arc::clone(inner))),
    ];
    if inner.shared_limits.is_some() {
        tasks.push(tokio::spawn(probe_rate_limit_store(Arc::clone(inner))));
    }
    if inner.config.cache_warmup > 0 {
        tasks.push(tokio::spawn(warm_up_cache(Arc::clone(inner))));
    }
    tasks
}

/// How far back the warm-up looks for verified keys.
const WARMUP_HISTORY: i64 = 24 * 60 * 60 * 1_000;

/// Fills the cache at start with the keys most verified over the last day, within
/// [`EngineConfig::CACHE_WARMUP_DEADLINE`](crate::EngineConfig::CACHE_WARMUP_DEADLINE).
async fn warm_up_cache<S: Store>(inner: Arc<Inner<S>>) {
    /// Readiness waits for `warming` to clear: cleared however the task ends.
    struct Done<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let _done = Done(&inner.warming);
    let started = std::time::Instant::now();
    let deadline = crate::EngineConfig::CACHE_WARMUP_DEADLINE;
    let mut stop = inner.stop.subscribe();
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(deadline, inner.warm_up()) => outcome,
        _ = stop.wait_for(|stop| *stop) => Ok(Ok(0)),
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(Ok(keys)) => {
            metrics::gauge!("keyward_cache_warmed_keys").set(keys as f64);
            tracing::info!(
                keys,
                elapsed_ms,
                "cache warmed up with the most verified keys"
            );
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, elapsed_ms, "cache warm-up failed; keys are read from the database as they come");
        }
        Err(_) => {
            tracing::warn!(
                elapsed_ms,
                "cache warm-up gave up at its deadline; keys are read from the database as they come"
            );
        }
    }
}

impl<S: Store> Inner<S> {
    /// Loads the keys most verified over the last day into the cache. It waits for
    /// the change feed first (the cache is trusted only while other instances' changes
    /// are seen), and fills only if nothing was invalidated while it read, so it never
    /// caches a row a change made stale meanwhile; then it reads again (three times
    /// at most).
    async fn warm_up(&self) -> Result<usize, EngineError> {
        let capacity = u32::try_from(self.config.cache_capacity).unwrap_or(u32::MAX);
        let limit = self.config.cache_warmup.min(capacity);
        let mut filled = 0;
        for attempt in 0..3 {
            if attempt > 0 {
                // Changes are arriving: let them pass before reading again.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            while !self.cache.is_active() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // What was filled before an invalidation stays (the invalidation removed
            // what it named); the next read fills the rest.
            let epoch = self.cache.epoch();
            let since = self.now().plus_millis(-WARMUP_HISTORY);
            let rows = self.store.most_verified_since(since, limit).await?;
            let mut complete = true;
            filled = 0;
            for (hash, record) in rows {
                if !self
                    .cache
                    .fill(hash, Some(self.verified_key(record)), epoch)
                {
                    complete = false;
                    break;
                }
                filled += 1;
            }
            if complete {
                break;
            }
        }
        Ok(filled)
    }
}

/// Reaches the shared rate limit store at start, and again once a second while it is
/// down, so shared limits resume by themselves after an outage.
async fn probe_rate_limit_store<S: Store>(inner: Arc<Inner<S>>) {
    let Some(shared) = inner.shared_limits.as_deref() else {
        return;
    };
    let mut stop = inner.stop.subscribe();
    let mut tick = tokio::time::interval(crate::shared_limits::SharedLimits::PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        shared.probe(first).await;
        first = false;
    }
}

impl<S: Store> Inner<S> {
    /// Writes recorded usage (`last_used_at`, then the usage history) now; a failed
    /// batch is kept for the next attempt. Both are tried whatever the other does.
    pub(crate) async fn flush_usage(&self) -> Result<usize, EngineError> {
        let last_used = self.flush_last_used().await;
        let history = self.flush_history().await;
        let notices = self.flush_rate_limit_notices().await;
        let written = last_used?;
        history?;
        notices?;
        Ok(written)
    }

    /// Records the keys refused for their rate limit since the last flush (events
    /// for the endpoints subscribed); a batch that could not be written is kept.
    async fn flush_rate_limit_notices(&self) -> Result<(), EngineError> {
        let batch = self.rate_limit_notices.drain();
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.store.record_rate_limited(&batch, self.now()).await {
            self.rate_limit_notices.restore(batch);
            return Err(err.into());
        }
        Ok(())
    }

    /// Writes the counted usage history, then forgets hours past the retention (at
    /// most once an hour). Counts that could not be written are kept for the next try.
    async fn flush_history(&self) -> Result<(), EngineError> {
        if !self.history_enabled() {
            return Ok(());
        }
        let batch = self.history.drain();
        if !batch.is_empty() {
            let rows = batch.len();
            if let Err(err) = self.store.record_usage_history(&batch).await {
                self.history.restore(batch);
                metrics::counter!("keyward_usage_history_flush_failures_total").increment(1);
                return Err(err.into());
            }
            metrics::counter!("keyward_usage_history_rows_flushed_total").increment(rows as u64);
        }
        let now = self.now();
        if self.history.claim_prune(now) {
            let days = i64::from(self.config.usage_history_days);
            let cutoff = hour_of(now).as_millis().saturating_sub(days * DAY_MS);
            let before = Timestamp::from_millis(cutoff.max(0)).expect("within the range");
            if let Err(err) = self.store.prune_usage_history(before).await {
                // Try again at the next flush.
                self.history.retry_prune();
                return Err(err.into());
            }
        }
        Ok(())
    }

    async fn flush_last_used(&self) -> Result<usize, EngineError> {
        let credentials = self.flush_credential_use().await;
        let keys = self.flush_key_use().await;
        credentials?;
        keys
    }

    /// Writes credentials' `last_used_at`; a failed batch is kept for the next try.
    async fn flush_credential_use(&self) -> Result<(), EngineError> {
        let batch = self.credential_usage.drain();
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.store.record_credential_use(&batch).await {
            self.credential_usage.restore(batch);
            metrics::counter!("keyward_usage_flush_failures_total").increment(1);
            return Err(err.into());
        }
        Ok(())
    }

    async fn flush_key_use(&self) -> Result<usize, EngineError> {
        let batch = self.usage.drain();
        if batch.is_empty() {
            return Ok(0);
        }
        let count = batch.len();
        match self.store.record_usage(&batch).await {
            Ok(_) => {
                metrics::counter!("keyward_usage_flushes_total").increment(1);
                metrics::counter!("keyward_usage_keys_flushed_total").increment(count as u64);
                Ok(count)
            }
            Err(err) => {
                self.usage.restore(batch);
                metrics::counter!("keyward_usage_flush_failures_total").increment(1);
                Err(err.into())
            }
        }
    }
}

async fn flush_usage_periodically<S: Store>(inner: Arc<Inner<S>>) {
    let mut stop = inner.stop.subscribe();
    let mut tick = tokio::time::interval(inner.config.usage_flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        match inner.flush_usage().await {
            Ok(_) => {}
            // Said once by the store when writes start failing, not every second.
            Err(err) if err.unwritable().is_some() => {
                tracing::debug!(error = %err, "writing usage failed; will retry");
            }
            Err(err) => {
                tracing::warn!(error = %err, "writing usage (last_used_at, usage history) failed; will retry");
            }
        }
    }
    // The final flush: nothing recorded is lost on a graceful stop.
    match inner.flush_usage().await {
        Ok(n) => tracing::debug!(keys = n, "final usage flush"),
        Err(err) => {
            tracing::error!(error = %err, "final usage flush failed; usage not written is lost")
        }
    }
}

async fn watch_external_changes<S: Store>(inner: Arc<Inner<S>>) {
    let mut stop = inner.stop.subscribe();
    let mut watching = false;
    metrics::gauge!("keyward_change_feed_up").set(0.0);
    loop {
        let change = tokio::select! {
            change = inner.store.next_external_change() => change,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match change {
            Ok(change) => {
                for cache in inner.watched() {
                    cache.renew(inner.config.change_feed_lease);
                }
                if !watching {
                    // Subscribed (again): trust the cache from empty.
                    watching = true;
                    for cache in inner.watched() {
                        cache.resume();
                    }
                    metrics::gauge!("keyward_change_feed_up").set(1.0);
                    tracing::info!("watching the database for changes; verification cache on");
                }
                match change {
                    ExternalChange::Keys(hashes) => inner.invalidate(&hashes),
                    ExternalChange::Unknown => {
                        for cache in inner.watched() {
                            cache.clear();
                        }
                    }
                    ExternalChange::Alive => {}
                }
            }
            Err(err) => {
                if watching {
                    watching = false;
                    // Unable to see other instances' changes: serve nothing from
                    // memory that one of them may have made stale.
                    for cache in inner.watched() {
                        cache.suspend();
                    }
                    metrics::gauge!("keyward_change_feed_up").set(0.0);
                    metrics::counter!("keyward_change_feed_failures_total").increment(1);
                    tracing::warn!(error = %err, "lost the database change feed; verification cache off, reading through to the database until it is back");
                } else {
                    tracing::debug!(error = %err, "change feed still down");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        }
    }
}
