//! What the engine's handles and its background tasks share: the store, the cache, the
//! usage tracker, the limiters, and the clock. Its own module, so that the background
//! tasks and the verifier depend on it rather than on each other or on the engine.

use std::sync::{Arc, Mutex};

use keyward_core::model::{KeyId, UserId};
use keyward_core::time::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::VerifyCache;
use crate::config::EngineConfig;
use crate::history::HistoryTracker;
use crate::limits::ClientAddr;
use crate::metrics::VerifyMetrics;
use crate::quota::{LegacyHead, Quota};
use crate::shared_limits::SharedLimits;
use crate::usage::UsageTracker;

/// Signals the background tasks to stop when the last [`Engine`] handle goes.
pub(crate) struct Lifetime(pub(crate) Arc<watch::Sender<bool>>);

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// What the engine's handles and its background tasks share.
pub(crate) struct Inner<S> {
    pub(crate) store: S,
    pub(crate) config: EngineConfig,
    pub(crate) cache: VerifyCache,
    pub(crate) usage: UsageTracker,
    /// Verifications per key and hour not written yet.
    pub(crate) history: HistoryTracker,
    pub(crate) metrics: VerifyMetrics,
    /// Keys' own verification limits.
    pub(crate) key_limits: Quota<KeyId>,
    /// Failed verifications per client address.
    pub(crate) client_failures: Quota<ClientAddr>,
    /// Changes per user.
    pub(crate) user_writes: Quota<UserId>,
    /// Failed legacy (AutoGPT) verifications per key head, before any scrypt work.
    pub(crate) head_failures: Quota<LegacyHead>,
    /// The store that holds the limits across instances, when one is configured.
    pub(crate) shared_limits: Option<Arc<SharedLimits>>,
    pub(crate) stop: Arc<watch::Sender<bool>>,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Held for the whole of a shutdown, so a second caller waits for the first.
    pub(crate) shutdown_done: tokio::sync::Mutex<bool>,
}

impl<S> Inner<S> {
    pub(crate) fn now(&self) -> Timestamp {
        (self.config.clock)()
    }
}
