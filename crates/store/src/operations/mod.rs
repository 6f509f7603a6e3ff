//! Every [`Store`] operation, written once for every backend over its [`Dialect`], by
//! what it changes: [`keys`] ([`KeyStore`]), [`usage`] ([`UsageStore`]), [`events`]
//! (the audit trail, [`EventStore`]), [`users`] ([`UserStore`]) and [`credentials`]
//! (service credentials, [`CredentialStore`]) and [`webhooks`] (endpoints and their
//! deliveries, [`WebhookStore`]); [`outbox`] writes a webhook event for any of them.
//! Each file
//! implements its group for every `Dialect`; this one the store's own life.
//!
//! A change has one shape: begin a write transaction, read the row (as the backend
//! keeps it from concurrent changes), decide with `keyward_core::lifecycle`, write,
//! record the event, announce the change to other instances, commit. Only what the
//! [`Dialect`] says differs. Every write goes through [`Writes::track`], which learns
//! from its outcome whether the database stores changes.
//!
//! [`Writes::track`]: crate::writes::Writes::track
//! [`KeyStore`]: crate::interface::KeyStore
//! [`UsageStore`]: crate::interface::UsageStore
//! [`EventStore`]: crate::interface::EventStore
//! [`UserStore`]: crate::interface::UserStore
//! [`CredentialStore`]: crate::interface::CredentialStore
//! [`WebhookStore`]: crate::interface::WebhookStore

mod credentials;
mod events;
mod keys;
mod outbox;
mod usage;
mod users;
mod webhooks;

use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::interface::Store;
use crate::records::ExternalChange;

impl<D: Dialect> Store for D {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        Dialect::migrate(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Dialect::ping(self).await?;
        self.writes().check(|| self.probe_write()).await
    }

    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        Dialect::next_external_change(self).await
    }

    async fn close(&self) {
        Dialect::close(self).await;
    }
}
