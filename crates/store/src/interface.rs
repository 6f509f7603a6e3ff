//! The store interface: what keyward needs from a database, and [`AnyStore`], the
//! store of whichever backend the database URL named, which forwards it.
//!
//! Each operation is declared once, in an `operations!` group below: the macro
//! writes the trait and its forwarding for `AnyStore`. Backends get every group
//! from `operations/`, written once over their `Dialect`.

use std::future::Future;

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::credential::{CredentialId, ServiceCredential};
use keyward_core::credits::UserLimits;
use keyward_core::hash::KeyHash;
use keyward_core::leak::Sighting;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, Scope, UserId};
use keyward_core::time::Timestamp;
use keyward_core::usage::HourlyUsage;
use keyward_core::webhook::{ValidWebhookFields, Webhook, WebhookId};

use crate::error::StoreError;
use crate::postgres::PostgresStore;
use crate::records::{
    Applied, Consumed, CredentialChanged, CredentialRotation, Draw, Drawn, ExternalChange,
    FoundCredential, HourCounts, ImportedKey, LegacyCandidate, NewCredentialRecord, NewKeyRecord,
    PepperUsage, Replacement, Rotated, RotationTerms, UsageOf, UserLimitsRecord, VerifyRecord,
};
use crate::records::{
    AttemptRecord, ClaimedDelivery, ConditionRules, DeliveryRecord, NewWebhookRecord, SecretSeed,
    SigningSeeds,
};
use crate::sqlite::SqliteStore;

/// A store of whichever backend the URL chose (see `connect`).
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls `$call` on the backend an [`AnyStore`] holds, as `$store`.
macro_rules! forward {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call,
            AnyStore::Postgres($store) => $call,
        }
    };
}

/// Declares a group of operations as a trait of `async fn`s (each returning a `Send`
/// future, as a server's tasks need), and implements it for [`AnyStore`] by
/// forwarding every call to the backend it holds.
macro_rules! operations {
    (
        $(#[$meta:meta])*
        pub trait $group:ident {
            $(
                $(#[$op_meta:meta])*
                async fn $op:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $out:ty;
            )*
        }
    ) => {
        $(#[$meta])*
        pub trait $group {
            $(
                $(#[$op_meta])*
                fn $op(&self $(, $arg: $ty)*) -> impl Future<Output = $out> + Send;
            )*
        }

        impl $group for AnyStore {
            $(
                async fn $op(&self $(, $arg: $ty)*) -> $out {
                    forward!(self, store => store.$op($($arg),*).await)
                }
            )*
        }
    };
}

/// What keyward needs from a database.
///
/// A [`Scope`] limits an operation to one user's keys (`Scope::User`, the management
/// API: another user's key is then simply not found) or lets it act on any key
/// (`Scope::Admin`, the platform's admin tools).
///
/// The operations come in groups, by what they change; a backend gets them all by
/// implementing `Dialect` (`operations/`), and callers holding a concrete store
/// bring the groups they use into scope.
pub trait Store:
    KeyStore
    + UsageStore
    + EventStore
    + UserStore
    + CredentialStore
    + WebhookStore
    + Clone
    + Send
    + Sync
    + 'static
{
    /// A short backend name for logs and metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Applies the embedded migrations that have not run yet.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Succeeds if the database answers a trivial query (for reads and for writes).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Waits for the next change made to the database by another process (another
    /// server, the CLI), so caches can drop what may be stale.
    ///
    /// The first call returns [`ExternalChange::Unknown`] as soon as changes are being
    /// watched; caches may be trusted from then on. While watching, a call returns at
    /// least every second ([`ExternalChange::Alive`] when nothing changed): a caller
    /// that hears nothing for longer must assume the watch is broken. An error means
    /// changes can no longer be seen: callers must stop trusting cached data. The
    /// first `Ok` after an error is again `Unknown`, sent once the store watches again.
    fn next_external_change(
        &self,
    ) -> impl Future<Output = Result<ExternalChange, StoreError>> + Send;

    /// Closes connections; pending writes are finished first.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

impl Store for AnyStore {
    fn backend(&self) -> &'static str {
        forward!(self, store => store.backend())
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        forward!(self, store => store.migrate().await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        forward!(self, store => store.ping().await)
    }
    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        forward!(self, store => store.next_external_change().await)
    }
    async fn close(&self) {
        forward!(self, store => store.close().await)
    }
}

operations! {
    /// Keys: created, imported, listed, read, changed, rotated and re-hashed
    /// (`operations/keys.rs`).
    pub trait KeyStore {
        /// Stores a new key, unless its owner already has `max_live_per_user` keys that
        /// are not revoked, counting a rotated key only until its grace period ends
        /// ([`StoreError::LimitReached`]). The check, the insert and the
        /// `create` event by `actor` are atomic.
        async fn insert_key(
            &self,
            new: &NewKeyRecord,
            max_live_per_user: u32,
            actor: &Actor,
        ) -> Result<(), StoreError>;

        /// Stores many keys in one transaction, without the per-user cap: for bulk loads
        /// (imports, benchmark seeding), not for users' requests. All or nothing, with a
        /// `create` event per key.
        async fn insert_keys(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError>;

        /// Stores keys imported from AutoGPT with their AutoGPT hashes, in one
        /// transaction, skipping ids already present (a second import adds nothing).
        /// Returns how many were added; each gets an `import` event by `actor`.
        async fn import_keys(&self, keys: &[ImportedKey], actor: &Actor) -> Result<u64, StoreError>;

        /// Imported keys not yet re-hashed that may be the presented legacy key: the one
        /// whose SHA-256 is `sha256`, and the scrypt ones whose head is `head`.
        async fn legacy_candidates(
            &self,
            sha256: &[u8; 32],
            head: &str,
        ) -> Result<Vec<LegacyCandidate>, StoreError>;

        /// Moves an imported key to the pepper's hash and forgets its AutoGPT hash.
        async fn upgrade_legacy(
            &self,
            id: KeyId,
            hash: &KeyHash,
            pepper_version: u16,
        ) -> Result<(), StoreError>;

        /// Keys in `scope`, newest first, all statuses.
        async fn list_keys(&self, scope: Scope<'_>) -> Result<Vec<ApiKey>, StoreError>;

        /// One key, if it exists and is in `scope`.
        async fn get_key(&self, scope: Scope<'_>, id: KeyId) -> Result<Option<ApiKey>, StoreError>;

        /// The verification view of the key with this hash.
        async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError>;

        /// Up to `limit` active keys most verified (VALID) in the usage history's hours
        /// from `since` on, most verified first, with their hashes: what a cache warms up
        /// with.
        async fn most_verified_since(
            &self,
            since: Timestamp,
            limit: u32,
        ) -> Result<Vec<(KeyHash, VerifyRecord)>, StoreError>;

        /// Applies a lifecycle change to a key in `scope`, deciding it on the stored row,
        /// and records it as made by `actor` (nothing is recorded when nothing changed).
        async fn apply(
            &self,
            scope: Scope<'_>,
            id: KeyId,
            mutation: &Mutation,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Applied, StoreError>;

        /// Replaces a key in `scope` with a new one carrying its attributes, linked both
        /// ways; the old key then works until the end of the grace period (never beyond
        /// its own expiry). Refused for revoked, expired or already-rotated keys. While
        /// the old key is in its grace period both count toward the per-user cap, so at
        /// the cap a rotation with a grace period is refused ([`StoreError::LimitReached`]);
        /// one that ends the old key at once replaces it and is allowed. Both keys'
        /// events are recorded as made by `actor`.
        async fn rotate(
            &self,
            scope: Scope<'_>,
            id: KeyId,
            replacement: &Replacement,
            terms: RotationTerms,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Rotated, StoreError>;

        /// Records that key `id` was found leaked, if it is live at `now` (see
        /// `keyward_core::leak::is_live`): `change` (the leak action's) is applied and
        /// recorded as any change is, then the audit action `leaked` with the
        /// `sighting`, both announcing their webhook events, in one transaction.
        /// `None`: no such key, or not live (nothing is recorded).
        async fn report_leak(
            &self,
            id: KeyId,
            change: Option<&Mutation>,
            sighting: &Sighting,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Option<Applied>, StoreError>;

        /// Replaces a key's hash `from` (under a retired pepper) with `hash`, after a
        /// verification with the retired pepper. Both are announced: an instance may
        /// hold the key under the old one, which later changes no longer name.
        async fn rehash(
            &self,
            id: KeyId,
            from: &KeyHash,
            hash: &KeyHash,
            pepper_version: u16,
        ) -> Result<(), StoreError>;
    }
}

operations! {
    /// Usage: `last_used_at`, usage credits and the usage history (`operations/usage.rs`).
    pub trait UsageStore {
        /// Takes `cost` usage credits from a key, atomically: never below zero, whatever
        /// the concurrency, across instances. A cost of 0 only checks that credits are
        /// left. The one write on the verification path, for keys with credits only.
        /// `refill_since`: the latest boundary of the key's refill rule (see
        /// `keyward_core::credits`), when it has one: credits set before it are set
        /// back to the refill amount first, in the same write, once across instances.
        async fn consume(
            &self,
            id: KeyId,
            cost: u64,
            refill_since: Option<Timestamp>,
        ) -> Result<Consumed, StoreError>;

        /// Takes `draw.cost` credits from a key's owner, and from the key as well when
        /// it has credits: in one transaction, both or neither (the key first: its own
        /// limits come before its owner's). An owner without a balance gets one made
        /// from `draw.default` when given; without either, it has no limit
        /// ([`Consumed::Unlimited`]). A cost of 0 only checks.
        async fn draw(&self, draw: &Draw<'_>) -> Result<Drawn, StoreError>;

        /// Moves `last_used_at` forward (never back) for each key; returns rows changed.
        async fn record_usage(&self, usage: &[(KeyId, Timestamp)]) -> Result<u64, StoreError>;

        /// Adds verification counts to keys' hours (one row per key and hour, created or
        /// added to; never replaced). Counts of a key deleted since are dropped.
        async fn record_usage_history(&self, counts: &[HourCounts]) -> Result<(), StoreError>;

        /// The hours in [`from`, `to`) with counts, of one key, a user's keys or every
        /// key (summed per hour), oldest first. Hours without counts are absent.
        async fn usage_history(
            &self,
            of: UsageOf<'_>,
            from: Timestamp,
            to: Timestamp,
        ) -> Result<Vec<HourlyUsage>, StoreError>;

        /// Forgets the usage history of the hours before `before`.
        async fn prune_usage_history(&self, before: Timestamp) -> Result<(), StoreError>;
    }
}

operations! {
    /// The audit trail (`operations/events.rs`); each change writes its own event.
    pub trait EventStore {
        /// Audit events matching `query`, oldest first, at most one page.
        async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError>;
    }
}

operations! {
    /// Users as a whole, and the peppers their keys use (`operations/users.rs`).
    pub trait UserStore {
        /// Deletes every key of a user (the user is gone) and records it; returns the
        /// deleted keys' hashes.
        async fn delete_user(
            &self,
            user: &UserId,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Vec<KeyHash>, StoreError>;

        /// Keys per pepper version, lowest version first: what is left before a retired
        /// pepper can be dropped.
        async fn pepper_usage(&self) -> Result<Vec<PepperUsage>, StoreError>;

        /// A user's stored limits, if any.
        async fn user_limits(&self, user: &UserId) -> Result<Option<UserLimitsRecord>, StoreError>;

        /// Sets a user's limits in place of the defaults (credits given are a new
        /// grant) and records it; returns the hashes of the user's keys, announced so
        /// every instance reads the new limits with its next verification of them.
        async fn set_user_limits(
            &self,
            user: &UserId,
            limits: &UserLimits,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Vec<KeyHash>, StoreError>;

        /// Removes a user's limits (the defaults apply again), as
        /// [`UserStore::set_user_limits`]; `None` when the user had none.
        async fn delete_user_limits(
            &self,
            user: &UserId,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Option<Vec<KeyHash>>, StoreError>;
    }
}

operations! {
    /// Service credentials (see `keyward_core::credential`). Changes announce the
    /// hashes they retire, as key changes do, so every instance drops them.
    pub trait CredentialStore {
        async fn insert_credential(&self, new: &NewCredentialRecord) -> Result<(), StoreError>;

        /// Every credential, newest first, revoked ones too.
        async fn list_credentials(&self) -> Result<Vec<ServiceCredential>, StoreError>;

        async fn get_credential(
            &self,
            id: CredentialId,
        ) -> Result<Option<ServiceCredential>, StoreError>;

        /// The credential one of whose secrets has this hash, whatever its state:
        /// whether it authenticates is the caller's decision.
        async fn find_credential(&self, hash: &KeyHash) -> Result<Option<FoundCredential>, StoreError>;

        /// Revokes a credential for good; revoking again changes nothing. `None`: no
        /// such credential.
        async fn revoke_credential(
            &self,
            id: CredentialId,
            now: Timestamp,
        ) -> Result<Option<CredentialChanged>, StoreError>;

        /// Ends a credential's replaced secret (the one a rotation left working for
        /// its grace period) at once, if `hash` is it; the current secret stays.
        /// `changed` says whether it was. `None`: no such credential.
        async fn end_previous_secret(
            &self,
            id: CredentialId,
            hash: &KeyHash,
        ) -> Result<Option<CredentialChanged>, StoreError>;

        /// Gives a credential a new secret; the replaced one works until
        /// `previous_until`, and an older replaced one not at all. Refused for a
        /// revoked credential. `None`: no such credential.
        async fn rotate_credential(
            &self,
            id: CredentialId,
            rotation: &CredentialRotation,
        ) -> Result<Option<CredentialChanged>, StoreError>;

        /// Moves a credential's current secret from hash `from` to `to` (under pepper
        /// `pepper_version`), after it authenticated under a retired pepper; nothing
        /// if its secret changed meanwhile (a rotation).
        async fn rehash_credential(
            &self,
            id: CredentialId,
            from: &KeyHash,
            to: &KeyHash,
            pepper_version: u16,
        ) -> Result<(), StoreError>;

        /// Moves each credential's `last_used_at` forward to the time given.
        async fn record_credential_use(
            &self,
            uses: &[(CredentialId, Timestamp)],
        ) -> Result<(), StoreError>;
    }
}

operations! {
    /// Webhook endpoints and their outbox (`operations/webhooks.rs`). Events are
    /// written by the changes that cause them (key changes fan out to every endpoint
    /// subscribed, in the change's own transaction); these operations manage the
    /// endpoints and hand deliveries to a sender.
    pub trait WebhookStore {
        /// Stores an endpoint and what it subscribes to. Endpoint changes are in the
        /// audit trail, by `actor`, under `UserId::system()` (no URL path or query:
        /// those may carry a token).
        async fn insert_webhook(&self, new: &NewWebhookRecord, actor: &Actor) -> Result<(), StoreError>;

        /// Every endpoint, newest first.
        async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError>;

        async fn get_webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError>;

        /// Changes the fields given; `None`: no such endpoint. Switching an endpoint
        /// off records who did; back on clears it.
        async fn update_webhook(
            &self,
            id: WebhookId,
            fields: &ValidWebhookFields,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Option<Webhook>, StoreError>;

        /// Deletes an endpoint with its deliveries; false: no such endpoint.
        async fn delete_webhook(
            &self,
            id: WebhookId,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<bool, StoreError>;

        /// What an endpoint's signing secrets are derived from.
        async fn signing_seeds(&self, id: WebhookId) -> Result<Option<SigningSeeds>, StoreError>;

        /// Gives an endpoint a new secret; the current one keeps signing until
        /// `previous_until`. `None`: no such endpoint.
        async fn rotate_webhook_secret(
            &self,
            id: WebhookId,
            seed: SecretSeed,
            previous_until: Timestamp,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Option<Webhook>, StoreError>;

        /// Queues a `webhook.test` event for one endpoint, asked for by `actor`,
        /// whatever it subscribes to (a disabled endpoint gets it once enabled). Its
        /// event id, or `None`: no such endpoint.
        async fn send_test(
            &self,
            id: WebhookId,
            now: Timestamp,
            actor: &Actor,
        ) -> Result<Option<String>, StoreError>;

        /// Claims up to `limit` due deliveries until `lease_until`: none claimed by
        /// another instance whose lease runs, none to a disabled endpoint, and for
        /// each endpoint and key only the oldest pending one (a key's events arrive
        /// in order). Each claim counts as an attempt.
        async fn claim_deliveries(
            &self,
            now: Timestamp,
            lease_until: Timestamp,
            limit: u32,
        ) -> Result<Vec<ClaimedDelivery>, StoreError>;

        /// Records an attempt and what follows it; nothing if the delivery was
        /// claimed again since, or is gone.
        async fn finish_attempt(&self, attempt: &AttemptRecord) -> Result<(), StoreError>;

        /// An endpoint's deliveries, newest first, at most `limit`, each with its
        /// attempts. `None`: no such endpoint.
        async fn list_deliveries(
            &self,
            id: WebhookId,
            limit: u32,
        ) -> Result<Option<Vec<DeliveryRecord>>, StoreError>;

        /// Makes a delivery of this endpoint due now, whatever its state (one more
        /// attempt for a failed one). False: no such delivery of this endpoint.
        async fn retry_delivery(
            &self,
            id: WebhookId,
            delivery_id: i64,
            now: Timestamp,
        ) -> Result<bool, StoreError>;

        /// Forgets finished deliveries (and events none waits for) older than
        /// `before`, and expiry markers older than `markers_before`; returns how many
        /// deliveries went.
        async fn prune_deliveries(
            &self,
            before: Timestamp,
            markers_before: Timestamp,
        ) -> Result<u64, StoreError>;

        /// Announces the conditions keys are in at `now` and that were not announced
        /// yet, to the endpoints subscribed: an expiry coming or passed, credits low or
        /// exhausted. Each is announced once per key (per expiry, per amount of credits
        /// set), whichever instance finds it first. Returns how many events were queued.
        /// Announces (at `now`) that these keys were refused for their rate limit in
        /// the periods starting at the times given: once per key and period, whichever
        /// instance records it first. Returns how many events were queued.
        async fn record_rate_limited(
            &self,
            hits: &[(KeyId, Timestamp)],
            now: Timestamp,
        ) -> Result<u32, StoreError>;

        async fn announce_conditions(
            &self,
            now: Timestamp,
            rules: &ConditionRules,
        ) -> Result<u32, StoreError>;
    }
}
