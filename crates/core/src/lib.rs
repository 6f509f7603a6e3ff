//! keyward's pure core: everything about API keys that can be decided without I/O.
//!
//! - [`audit`]: who changed what, as recorded in the audit trail.
//! - [`credits`]: usage credits that renew: refill rules and their calendar boundaries.
//! - [`credential`]: service credentials, their scopes and when one authenticates.
//! - [`key`]: the key format (generation, parsing with typed errors, checksum).
//! - [`hash`]: peppered HMAC-SHA256 of a parsed key, the only form that is stored.
//! - [`model`]: the API key as the service knows it (ids, status, timestamps).
//! - [`network`]: IP networks (CIDR): reading them, and whether an address is in one.
//! - [`permissions`]: the permission catalogue and permission sets.
//! - [`input`]: validation of what a user asks for (name, description, expiry).
//! - [`text`]: the one rule for text people read (names, descriptions, user ids).
//! - [`leak`]: what a leak report does to a key, and where it was seen.
//! - [`legacy`]: keys imported from AutoGPT (their shape and their hashes).
//! - [`lifecycle`]: which status changes are allowed, and what they change.
//! - [`rate`]: rate limit quotas and the GCRA decision over them.
//! - [`scan`]: finding real keys (checksum-checked) in files and other bytes.
//! - [`usage`]: verifications counted per hour (usage history) and the ranges read.
//! - [`verify`]: the verification decision for a stored key at a given time.
//! - [`webhook`]: event types, endpoints, Standard Webhooks signing, retry schedule.
//!
//! Nothing here reads a clock, a file or a socket: callers pass `now` in, which keeps
//! every rule testable and deterministic.
#![forbid(unsafe_code)]

pub mod audit;
pub mod credential;
pub mod credits;
pub mod hash;
pub mod input;
pub mod key;
pub mod leak;
pub mod legacy;
pub mod lifecycle;
pub mod model;
pub mod network;
pub mod permissions;
pub mod rate;
pub mod scan;
pub mod text;
pub mod time;
pub mod usage;
pub mod verify;
pub mod webhook;
