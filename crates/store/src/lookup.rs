//! Verification's read of one key, handed to a backend's own reader (SQLite's lookup
//! threads, PostgreSQL's batches) and answered through a oneshot channel.

use keyward_core::hash::KeyHash;
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::records::VerifyRecord;

pub(crate) type Answer = Result<Option<VerifyRecord>, StoreError>;

/// One key to look up, and where its answer goes.
pub(crate) struct Lookup {
    pub(crate) hash: KeyHash,
    reply: oneshot::Sender<Answer>,
}

impl Lookup {
    /// Hands a lookup of `hash` to `queue` (false: the reader is gone) and waits for its
    /// answer; `stopped` is the error when the reader is gone or drops the lookup.
    pub(crate) async fn ask(
        hash: &KeyHash,
        queue: impl FnOnce(Lookup) -> bool,
        stopped: fn() -> StoreError,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        if !queue(Lookup { hash: *hash, reply }) {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Answers the lookup; its caller may have given up waiting (its request ended).
    pub(crate) fn answer(self, answer: Answer) {
        let _ = self.reply.send(answer);
    }
}
