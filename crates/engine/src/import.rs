//! Keys brought along from another system (AutoGPT) with the hashes it stored: added
//! in bulk, each id once, however many times an import runs.

use keyward_core::audit::Actor;
use keyward_core::model::Scope;
use keyward_store::{ImportedKey, Store};

use crate::engine::Engine;
use crate::error::EngineError;

/// Keys per transaction: a failure part way keeps what earlier chunks added.
const CHUNK: usize = 1_000;

/// What an import did (or, as a dry run, would do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Keys added.
    pub added: u64,
    /// Keys whose id was there already (an earlier import), left as they are.
    pub already_present: u64,
}

impl<S: Store> Engine<S> {
    /// Adds `keys`, skipping ids already stored; with `dry_run`, only counts. Each key
    /// gets an `import` event by the admin actor `by`.
    pub async fn import_keys(
        &self,
        keys: Vec<ImportedKey>,
        by: &str,
        dry_run: bool,
    ) -> Result<Imported, EngineError> {
        let store = &self.inner.store;
        let mut outcome = Imported::default();
        let mut new = Vec::new();
        for key in keys {
            if store
                .get_key(Scope::Admin, key.record.key.id)
                .await?
                .is_some()
            {
                outcome.already_present += 1;
            } else {
                new.push(key);
            }
        }
        if dry_run {
            outcome.added = new.len() as u64;
            return Ok(outcome);
        }
        let actor = Actor::Admin(by.to_owned());
        for chunk in new.chunks(CHUNK) {
            let added = store.import_keys(chunk, &actor).await?;
            outcome.added += added;
            // Ids that appeared between the check and the insert (another import).
            outcome.already_present += chunk.len() as u64 - added;
        }
        Ok(outcome)
    }
}
