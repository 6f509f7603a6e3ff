//! keyward's storage: one interface ([`Store`]) and its backends.
//!
//! The engine and the transports only ever see [`Store`]; a backend is chosen at
//! start-up from the database URL's scheme ([`connect`]). Every backend runs the same
//! contract test suite (`tests/contract`), so behaviour cannot drift between them.
//!
//! Conventions shared by all backends:
//! - times are integers, milliseconds since the Unix epoch (UTC);
//! - a key is found for verification by one indexed lookup of its hash;
//! - status changes are decided by [`keyward_core::lifecycle::apply`] inside the
//!   transaction that read the row, so concurrent changes cannot race past the rules;
//! - `last_used_at` only moves forward; usage history counts are only added to;
//! - every change writes its audit event in its own transaction.
//!
//! Backends: [`sqlite`] (the embedded default, one process) and [`postgres`] (several
//! instances on one database, with changes pushed to every instance).
//!
//! Layout: every operation is written once (`operations/`, by what it changes), over
//! statements written
//! once (`sql.rs`) and run through one binding and decoding layer (`db.rs`); a backend
//! file holds only what really differs (`dialect.rs`: how a write begins, how a row
//! and a user's key count are locked, how other instances hear of a change) with its
//! pools, change feed and migrations.
#![forbid(unsafe_code)]

mod connect;
mod copy;
mod db;
mod dialect;
mod error;
mod interface;
mod lookup;
mod migrations;
mod operations;
pub mod postgres;
mod records;
mod rows;
mod sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod url;
mod writes;

pub use connect::{connect, connect_with};
#[cfg(feature = "testing")]
pub use copy::testing as copy_testing;
pub use copy::{
    Copied, CopyError, Deployment, Progress, TableCopied, Use, begin_use, copy, deployment,
    schema_version,
};
pub use error::{StoreError, Unwritable};
pub use interface::{
    AnyStore, CredentialStore, EventStore, KeyStore, Store, UsageStore, UserStore, WebhookStore,
};
pub use postgres::PostgresStore;
pub use records::{
    AfterAttempt, Applied, Attempt, AttemptRecord, ClaimedDelivery, ConditionRules, ConnectOptions,
    Consumed, CredentialChanged, CredentialRotation, DeliveryRecord, Draw, Drawn, ExternalChange,
    FoundCredential, HourCounts, ImportedKey, LegacyCandidate, NewCredentialRecord, NewKeyRecord,
    NewWebhookRecord, OwnerRecord, PepperUsage, Replacement, Rotated, RotationTerms, SecretSeed,
    SigningSeeds, UsageOf, UserLimitsRecord, VerifyRecord,
};
pub use sqlite::SqliteStore;
pub use url::{DatabaseUrl, DatabaseUrlError};
