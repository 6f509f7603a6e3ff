//! The shapes that cross the store interface.

use keyward_core::credential::{Presented, ServiceCredential};
use keyward_core::credits::{CreditGrant, Refill, UserLimits};
use keyward_core::hash::KeyHash;
use keyward_core::legacy::LegacyHash;
use keyward_core::model::{ApiKey, KeyId, KeyStatus, Metadata, UserId};
use keyward_core::network::AllowedNetworks;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;

/// A key to insert: its public record and its hash (never the plaintext).
#[derive(Clone, Debug)]
pub struct NewKeyRecord {
    pub key: ApiKey,
    pub hash: KeyHash,
    pub pepper_version: u16,
}

/// What verification needs of a stored key: no name, no description, no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyRecord {
    pub id: KeyId,
    pub user_id: UserId,
    pub status: KeyStatus,
    pub permissions: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// As stored: lets the engine skip rewriting a time that is recent enough.
    pub last_used_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimit>,
    /// Returned with every verification (serialised JSON object).
    pub metadata: Option<Metadata>,
    /// Whether (and how many) usage credits the key had when read: a key with
    /// credits takes them from the database on every valid verification.
    pub remaining: Option<u64>,
    /// The networks it may be used from; `None`: any.
    pub allowed_ips: Option<AllowedNetworks>,
    /// The rule its credits renew by, if they do.
    pub refill: Option<Refill>,
    /// Its owner's limits, when the owner has a row of them.
    pub owner: Option<OwnerRecord>,
    pub pepper_version: u16,
}

/// What verification knows of a key's owner's stored limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerRecord {
    /// Set by the platform (in place of the deployment's defaults), or only a balance
    /// kept for the default credits.
    pub explicit: bool,
    pub rate_limit: Option<RateLimit>,
    /// Whether the owner has a credit balance.
    pub has_credits: bool,
    pub refill: Option<Refill>,
}

/// A user's limits as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserLimitsRecord {
    pub user_id: UserId,
    /// See [`OwnerRecord::explicit`].
    pub explicit: bool,
    /// The rate limit, and the credits with what is left of them (not brought to now).
    pub limits: UserLimits,
    /// When the credits were last set (by the platform or a refill).
    pub credits_set_at: Option<Timestamp>,
}

/// Credits to take from a key's owner, and from the key too when it has some: both
/// or neither (see [`UsageStore::draw`](crate::UsageStore::draw)).
#[derive(Clone, Debug)]
pub struct Draw<'a> {
    pub cost: u64,
    /// The key's id and its refill boundary, when the key has credits of its own.
    pub key: Option<(KeyId, Option<Timestamp>)>,
    pub user: &'a UserId,
    /// The latest boundary of the owner's refill, if it has one.
    pub user_refill_since: Option<Timestamp>,
    /// The balance to make for an owner without one (the default credits), at `now`.
    pub default: Option<CreditGrant>,
    pub now: Timestamp,
}

/// What a [`Draw`] found: the key's credits (when it has some) and, unless the key
/// refused first, the owner's. Taken only when neither refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drawn {
    pub key: Option<Consumed>,
    pub user: Option<Consumed>,
}

/// The result of a lifecycle change.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The key as it is after the change.
    pub key: ApiKey,
    /// Its hash, so caches keyed by hash can drop it.
    pub hash: KeyHash,
    /// False if the change was already in effect and nothing was written.
    pub changed: bool,
}

/// What [`Store::next_external_change`](crate::Store::next_external_change) saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalChange {
    /// These keys changed.
    Keys(Vec<KeyHash>),
    /// Something changed; which keys is unknown.
    Unknown,
    /// Nothing changed, and changes are still being watched: a heartbeat, sent at
    /// least every second, that lets the engine keep trusting its cache.
    Alive,
}

/// How many keys a pepper version hashed (see [`UserStore::pepper_usage`](crate::UserStore::pepper_usage)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PepperUsage {
    pub version: u16,
    /// Keys that are not revoked: they still verify, so their pepper must stay
    /// configured until each has been verified (and re-hashed) once.
    pub live: u64,
    /// Revoked keys: they never verify again, so they are never re-hashed.
    pub revoked: u64,
}

/// The new key of a rotation: what only the caller can make (a fresh secret's hash
/// and display parts). Everything else is copied from the old key inside the
/// rotation's transaction.
#[derive(Clone, Debug)]
pub struct Replacement {
    pub id: KeyId,
    pub hash: KeyHash,
    pub pepper_version: u16,
    pub prefix: String,
    pub postfix: String,
}

/// The bounds of a rotation: how long the old key keeps working, and the per-user
/// cap that both keys count toward meanwhile.
#[derive(Clone, Copy, Debug)]
pub struct RotationTerms {
    pub grace_seconds: u64,
    pub max_live_per_user: u32,
}

/// The result of a rotation.
#[derive(Clone, Debug)]
pub struct Rotated {
    /// The old key, now linked to the new one and ending with the grace period.
    pub old: ApiKey,
    pub old_hash: KeyHash,
    /// The new key.
    pub new: ApiKey,
}

/// What taking usage credits found (see [`UsageStore::consume`](crate::UsageStore::consume)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumed {
    /// Taken (or, for a cost of 0, available); this many are left.
    Left(u64),
    /// The key has no credit limit (any more).
    Unlimited,
    /// Fewer credits left than the cost (or none, for a cost of 0); nothing taken.
    Exceeded,
    /// No such key (any more).
    Missing,
}

/// A key imported from AutoGPT: its record (with a random placeholder for the hash)
/// and AutoGPT's hash of it, kept until its first successful verification.
#[derive(Clone, Debug)]
pub struct ImportedKey {
    pub record: NewKeyRecord,
    pub legacy: LegacyHash,
    /// The key's first 8 characters (AutoGPT's `head` / `prefix`).
    pub head: String,
}

/// An imported key that may be the one presented (see
/// [`KeyStore::legacy_candidates`](crate::KeyStore::legacy_candidates)).
#[derive(Clone, Debug)]
pub struct LegacyCandidate {
    pub record: VerifyRecord,
    pub legacy: LegacyHash,
}

/// Settings for opening a store.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Connections in the pool (PostgreSQL; SQLite uses one writer and a few readers).
    pub max_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
        }
    }
}

/// Whose usage history to read (see [`UsageStore::usage_history`](crate::UsageStore::usage_history)).
#[derive(Clone, Copy, Debug)]
pub enum UsageOf<'a> {
    /// One key.
    Key(KeyId),
    /// Every key of a user, summed.
    User(&'a UserId),
    /// Every key of the deployment, summed.
    All,
}

/// Counts to add to one key's hour (see
/// [`UsageStore::record_usage_history`](crate::UsageStore::record_usage_history)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourCounts {
    pub key_id: KeyId,
    /// The start of the UTC hour.
    pub hour: Timestamp,
    pub counts: keyward_core::usage::UsageCounts,
}

/// A service credential to insert: its record and its secret's hash.
#[derive(Clone, Debug)]
pub struct NewCredentialRecord {
    pub credential: ServiceCredential,
    pub hash: KeyHash,
    pub pepper_version: u16,
}

/// A credential found by the hash of one of its secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCredential {
    pub credential: ServiceCredential,
    /// Which secret the hash is of: the current one, or the one its last rotation
    /// replaced (valid until `credential.previous_secret_until`).
    pub presented: Presented,
}

/// A credential's new secret.
#[derive(Clone, Copy, Debug)]
pub struct CredentialRotation {
    pub hash: KeyHash,
    pub pepper_version: u16,
    /// Until when the replaced secret still authenticates; `None`: it ends now.
    pub previous_until: Option<Timestamp>,
}

/// A credential after a revocation or rotation.
#[derive(Clone, Debug)]
pub struct CredentialChanged {
    pub credential: ServiceCredential,
    /// The hashes of the secrets it had before the change, for caches to drop.
    pub hashes: Vec<KeyHash>,
    /// False if the change was already in effect (a second revocation).
    pub changed: bool,
}

/// An endpoint to insert: its record and what its signing secret is derived from.
#[derive(Clone, Debug)]
pub struct NewWebhookRecord {
    pub webhook: keyward_core::webhook::Webhook,
    pub secret: SecretSeed,
}

/// What an endpoint's signing secret is derived from: a random nonce and the
/// version of the pepper that derives it (see `WebhookSecret::derive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretSeed {
    pub nonce: [u8; 16],
    pub pepper_version: u16,
}

/// The seeds of the secrets that sign an endpoint's deliveries: the current one,
/// and during a rotation's overlap the one it replaced, until when it signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningSeeds {
    pub current: SecretSeed,
    pub previous: Option<(SecretSeed, Timestamp)>,
}

/// A delivery claimed for one attempt (see
/// [`WebhookStore::claim_deliveries`](crate::WebhookStore::claim_deliveries)).
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub id: i64,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    pub webhook_id: keyward_core::webhook::WebhookId,
    pub url: String,
    pub seeds: SigningSeeds,
    /// The `webhook-id` header: the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    /// The body, exactly as first written (and signed).
    pub body: String,
}

/// What an attempt found, and what follows it.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    /// The attempt's number, as claimed: a delivery claimed again since (the lease
    /// ran out) is not changed by the older attempt.
    pub attempt: u32,
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<String>,
    pub next: AfterAttempt,
}

/// What an attempt leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Tried again from this time.
    RetryAt(Timestamp),
    /// That was the last attempt: the delivery has failed. If the endpoint has not
    /// acknowledged anything since the delivery was made, it is disabled.
    GiveUp,
}

/// A delivery as its log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub key_id: Option<KeyId>,
    pub state: keyward_core::webhook::DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Each attempt, oldest first.
    pub attempt_log: Vec<Attempt>,
}

/// One attempt of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<String>,
}

/// Which conditions of keys are announced (see
/// [`WebhookStore::announce_conditions`](crate::WebhookStore::announce_conditions)).
#[derive(Clone, Copy, Debug)]
pub struct ConditionRules {
    /// How long before its expiry a key is announced as expiring; `None`: never.
    pub expiry_notice: Option<std::time::Duration>,
    /// How long after its expiry a key is still announced as expired (an expiry
    /// older than this, from before keyward watched, is not announced).
    pub expired_lookback: std::time::Duration,
    /// Below this percentage of the credits last set, a key's credits are low;
    /// 0: never announced.
    pub credits_low_percent: u8,
    /// The most keys announced per condition in one call.
    pub limit: u32,
}
