//! keyward as a library: what the HTTP server runs, and what a Rust service can
//! embed to verify keys in-process with no network hop.
//!
//! - [`Engine`] runs the key operations (create, list, change, revoke) and verification
//!   on top of any [`Store`](keyward_store::Store).
//! - [`cache`]: verification results by key hash, bounded, invalidated by every change
//!   (and by other processes' changes), with a separate short-lived negative cache.
//! - [`credentials`]: the platform's services' scoped credentials, made, revoked and
//!   rotated, and checked from the same kind of cache as keys.
//! - [`usage`]: `last_used_at` recorded in memory (once per key per resolution
//!   period) and written in batches.
//! - [`history`]: verifications per key and hour (usage history), counted in memory
//!   and written with the usage flush; [`history_reads`] reads them back.
//! - [`background`]: the usage flush and the watch for other processes' changes.
//! - [`webhooks`]: endpoints managed, and deliveries claimed, signed and recorded for
//!   the sender (the events are queued by the store with the changes).
//! - [`user_limits`]: limits all of a user's keys share, set by the platform.
//! - [`limits`]: rate limiters (per key, per user's keys, per failing client, per user's changes), held
//!   per instance, or across instances in Redis/Valkey ([`RateLimitStore`]).
//!
//! Every mutation writes the database first, then invalidates the cache.
#![forbid(unsafe_code)]

mod background;
mod cache;
mod config;
mod credentials;
mod engine;
mod error;
mod flights;
mod history;
mod history_reads;
mod import;
mod inner;
mod leaks;
pub mod limits;
mod metrics;
mod notices;
mod quota;
mod shared_limits;
mod shared_values;
#[cfg(feature = "testing")]
pub mod testing;
mod usage;
mod user_limits;
mod verdict;
mod verifier;
mod webhooks;

pub use config::{Clock, EngineConfig, WebhookConfig, system_clock};
pub use credentials::CreatedCredential;
pub use engine::{CreatedKey, Engine, RotatedKey};
pub use error::EngineError;
pub use import::Imported;
pub use leaks::LiveSecret;
pub use limits::{ClientAddr, Limiter};
pub use shared_limits::RateLimitStore;
pub use usage::UsageMark;
pub use user_limits::{CreditsView, LimitsSource, UserLimitsView};
pub use verdict::{
    AuthenticatedCredential, KeyRules, OwnerCredits, OwnerLimits, Verification, VerifiedKey,
    VerifyOptions,
};
pub use webhooks::{AttemptOutcome, CreatedWebhook, Outgoing};
