//! The engine on a real SQLite file: verification codes, cache behaviour,
//! usage write-behind and pepper rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::credential::{CredentialId, ServiceCredential};
use keyward_core::hash::{KeyHash, Peppers};
use keyward_core::input::NewKeyRequest;
use keyward_core::lifecycle::Mutation;
use keyward_core::model::{ApiKey, KeyId, Scope, UserId};
use keyward_core::permissions::PermissionSet;
use keyward_core::time::Timestamp;
use keyward_core::usage::{Granularity, HOUR_MS, HourlyUsage, UsageCounts, UsageRange};
use keyward_core::verify::VerifyCode;
use keyward_core::webhook::{ValidWebhookFields, Webhook, WebhookId};
use keyward_engine::{Engine, EngineConfig, EngineError, VerifyOptions};
use keyward_store::{
    AnyStore, Applied, CredentialChanged, CredentialRotation, CredentialStore, DatabaseUrl,
    EventStore, ExternalChange, FoundCredential, HourCounts, KeyStore, NewCredentialRecord,
    NewKeyRecord, Store, StoreError, UsageOf, UsageStore, UserStore, VerifyRecord,
};
use keyward_store::{
    AttemptRecord, ClaimedDelivery, ConditionRules, DeliveryRecord, NewWebhookRecord, SecretSeed,
    SigningSeeds, WebhookStore,
};

const PEPPER: &str = "engine-test-pepper-0123456789abcdefghij";
const T0: i64 = 1_800_000_000_000;

type Feed = Arc<
    tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Result<ExternalChange, StoreError>>>,
>;

/// A store that counts hash lookups, to see what the cache saves; its change feed
/// can be scripted, and it can be made unreachable (`down`).
#[derive(Clone)]
struct Counting {
    inner: AnyStore,
    lookups: Arc<AtomicUsize>,
    /// Milliseconds each hash lookup's answer is held back after the database read.
    slow: Arc<AtomicU64>,
    feed: Option<Feed>,
    down: Arc<AtomicBool>,
}

impl Counting {
    /// What every call answers while the database is "down": what sqlx reports when
    /// no connection can be had.
    fn reachable(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::from(sqlx::Error::PoolTimedOut))
        } else {
            Ok(())
        }
    }
}

impl Store for Counting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.ping().await
    }
    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            // Like a real poll: a moment passes before the failure is seen.
            tokio::time::sleep(Duration::from_millis(250)).await;
            self.reachable()?;
        }
        match &self.feed {
            Some(feed) => match feed.lock().await.recv().await {
                Some(next) => next,
                None => std::future::pending().await,
            },
            None => self.inner.next_external_change().await,
        }
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

impl KeyStore for Counting {
    async fn insert_key(
        &self,
        new: &NewKeyRecord,
        max: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.insert_key(new, max, actor).await
    }
    async fn insert_keys(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.insert_keys(new, actor).await
    }
    async fn import_keys(
        &self,
        keys: &[keyward_store::ImportedKey],
        actor: &Actor,
    ) -> Result<u64, StoreError> {
        self.reachable()?;
        self.inner.import_keys(keys, actor).await
    }
    async fn legacy_candidates(
        &self,
        sha256: &[u8; 32],
        head: &str,
    ) -> Result<Vec<keyward_store::LegacyCandidate>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.reachable()?;
        self.inner.legacy_candidates(sha256, head).await
    }
    async fn upgrade_legacy(&self, id: KeyId, hash: &KeyHash, v: u16) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.upgrade_legacy(id, hash, v).await
    }
    async fn list_keys(&self, scope: Scope<'_>) -> Result<Vec<ApiKey>, StoreError> {
        self.reachable()?;
        self.inner.list_keys(scope).await
    }
    async fn get_key(&self, scope: Scope<'_>, id: KeyId) -> Result<Option<ApiKey>, StoreError> {
        self.reachable()?;
        self.inner.get_key(scope, id).await
    }
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.reachable()?;
        // Slow after the read: what it found is what the database held when it began.
        let found = self.inner.find_by_hash(hash).await;
        let slow = self.slow.load(Ordering::SeqCst);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        found
    }
    async fn most_verified_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyHash, VerifyRecord)>, StoreError> {
        self.reachable()?;
        let found = self.inner.most_verified_since(since, limit).await;
        let slow = self.slow.load(Ordering::SeqCst);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        found
    }
    async fn apply(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        m: &Mutation,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        self.reachable()?;
        self.inner.apply(scope, id, m, now, actor).await
    }
    async fn rotate(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        replacement: &keyward_store::Replacement,
        terms: keyward_store::RotationTerms,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<keyward_store::Rotated, StoreError> {
        self.reachable()?;
        self.inner
            .rotate(scope, id, replacement, terms, now, actor)
            .await
    }
    async fn rehash(
        &self,
        id: KeyId,
        from: &KeyHash,
        hash: &KeyHash,
        v: u16,
    ) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.rehash(id, from, hash, v).await
    }
    async fn report_leak(
        &self,
        id: KeyId,
        change: Option<&Mutation>,
        sighting: &keyward_core::leak::Sighting,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Applied>, StoreError> {
        self.reachable()?;
        self.inner
            .report_leak(id, change, sighting, now, actor)
            .await
    }
}

impl UsageStore for Counting {
    async fn consume(
        &self,
        id: KeyId,
        cost: u64,
        refill_since: Option<Timestamp>,
    ) -> Result<keyward_store::Consumed, StoreError> {
        self.reachable()?;
        self.inner.consume(id, cost, refill_since).await
    }
    async fn draw(
        &self,
        draw: &keyward_store::Draw<'_>,
    ) -> Result<keyward_store::Drawn, StoreError> {
        self.reachable()?;
        self.inner.draw(draw).await
    }
    async fn record_usage(&self, usage: &[(KeyId, Timestamp)]) -> Result<u64, StoreError> {
        self.reachable()?;
        self.inner.record_usage(usage).await
    }
    async fn record_usage_history(&self, counts: &[HourCounts]) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.record_usage_history(counts).await
    }
    async fn usage_history(
        &self,
        of: UsageOf<'_>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        self.reachable()?;
        self.inner.usage_history(of, from, to).await
    }
    async fn prune_usage_history(&self, before: Timestamp) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.prune_usage_history(before).await
    }
}

impl EventStore for Counting {
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        self.reachable()?;
        self.inner.list_events(query).await
    }
}

impl UserStore for Counting {
    async fn delete_user(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        self.reachable()?;
        self.inner.delete_user(user, now, actor).await
    }
    async fn pepper_usage(&self) -> Result<Vec<keyward_store::PepperUsage>, StoreError> {
        self.reachable()?;
        self.inner.pepper_usage().await
    }
    async fn user_limits(
        &self,
        user: &UserId,
    ) -> Result<Option<keyward_store::UserLimitsRecord>, StoreError> {
        self.reachable()?;
        self.inner.user_limits(user).await
    }
    async fn set_user_limits(
        &self,
        user: &UserId,
        limits: &keyward_core::credits::UserLimits,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        self.reachable()?;
        self.inner.set_user_limits(user, limits, now, actor).await
    }
    async fn delete_user_limits(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Vec<KeyHash>>, StoreError> {
        self.reachable()?;
        self.inner.delete_user_limits(user, now, actor).await
    }
}

impl CredentialStore for Counting {
    async fn insert_credential(&self, new: &NewCredentialRecord) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.insert_credential(new).await
    }
    async fn list_credentials(&self) -> Result<Vec<ServiceCredential>, StoreError> {
        self.reachable()?;
        self.inner.list_credentials().await
    }
    async fn get_credential(
        &self,
        id: CredentialId,
    ) -> Result<Option<ServiceCredential>, StoreError> {
        self.reachable()?;
        self.inner.get_credential(id).await
    }
    async fn find_credential(&self, hash: &KeyHash) -> Result<Option<FoundCredential>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.reachable()?;
        self.inner.find_credential(hash).await
    }
    async fn revoke_credential(
        &self,
        id: CredentialId,
        now: Timestamp,
    ) -> Result<Option<CredentialChanged>, StoreError> {
        self.reachable()?;
        self.inner.revoke_credential(id, now).await
    }
    async fn end_previous_secret(
        &self,
        id: CredentialId,
        hash: &KeyHash,
    ) -> Result<Option<CredentialChanged>, StoreError> {
        self.reachable()?;
        self.inner.end_previous_secret(id, hash).await
    }
    async fn rotate_credential(
        &self,
        id: CredentialId,
        rotation: &CredentialRotation,
    ) -> Result<Option<CredentialChanged>, StoreError> {
        self.reachable()?;
        self.inner.rotate_credential(id, rotation).await
    }
    async fn rehash_credential(
        &self,
        id: CredentialId,
        from: &KeyHash,
        to: &KeyHash,
        pepper_version: u16,
    ) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner
            .rehash_credential(id, from, to, pepper_version)
            .await
    }
    async fn record_credential_use(
        &self,
        uses: &[(CredentialId, Timestamp)],
    ) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.record_credential_use(uses).await
    }
}

/// Webhooks are not what these tests count: every call goes through.
impl WebhookStore for Counting {
    async fn insert_webhook(
        &self,
        new: &NewWebhookRecord,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.insert_webhook(new, actor).await
    }
    async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        self.reachable()?;
        self.inner.list_webhooks().await
    }
    async fn get_webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        self.reachable()?;
        self.inner.get_webhook(id).await
    }
    async fn update_webhook(
        &self,
        id: WebhookId,
        fields: &ValidWebhookFields,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Webhook>, StoreError> {
        self.reachable()?;
        self.inner.update_webhook(id, fields, now, actor).await
    }
    async fn delete_webhook(
        &self,
        id: WebhookId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        self.reachable()?;
        self.inner.delete_webhook(id, now, actor).await
    }
    async fn signing_seeds(&self, id: WebhookId) -> Result<Option<SigningSeeds>, StoreError> {
        self.reachable()?;
        self.inner.signing_seeds(id).await
    }
    async fn rotate_webhook_secret(
        &self,
        id: WebhookId,
        seed: SecretSeed,
        previous_until: Timestamp,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Webhook>, StoreError> {
        self.reachable()?;
        self.inner
            .rotate_webhook_secret(id, seed, previous_until, now, actor)
            .await
    }
    async fn send_test(
        &self,
        id: WebhookId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<String>, StoreError> {
        self.reachable()?;
        self.inner.send_test(id, now, actor).await
    }
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.reachable()?;
        self.inner.claim_deliveries(now, lease_until, limit).await
    }
    async fn finish_attempt(&self, attempt: &AttemptRecord) -> Result<(), StoreError> {
        self.reachable()?;
        self.inner.finish_attempt(attempt).await
    }
    async fn list_deliveries(
        &self,
        id: WebhookId,
        limit: u32,
    ) -> Result<Option<Vec<DeliveryRecord>>, StoreError> {
        self.reachable()?;
        self.inner.list_deliveries(id, limit).await
    }
    async fn retry_delivery(
        &self,
        id: WebhookId,
        delivery_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.reachable()?;
        self.inner.retry_delivery(id, delivery_id, now).await
    }
    async fn prune_deliveries(
        &self,
        before: Timestamp,
        markers_before: Timestamp,
    ) -> Result<u64, StoreError> {
        self.reachable()?;
        self.inner.prune_deliveries(before, markers_before).await
    }
    async fn record_rate_limited(
        &self,
        hits: &[(KeyId, Timestamp)],
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        self.reachable()?;
        self.inner.record_rate_limited(hits, now).await
    }
    async fn announce_conditions(
        &self,
        now: Timestamp,
        rules: &ConditionRules,
    ) -> Result<u32, StoreError> {
        self.reachable()?;
        self.inner.announce_conditions(now, rules).await
    }
}

struct Harness {
    engine: Engine<Counting>,
    lookups: Arc<AtomicUsize>,
    slow: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    clock: Arc<AtomicI64>,
    url: DatabaseUrl,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("keyward.db"));
        Self::on(url, dir, Peppers::parse(PEPPER).unwrap()).await
    }

    async fn on(url: DatabaseUrl, dir: tempfile::TempDir, peppers: Peppers) -> Self {
        let harness = Self::with_feed(url, dir, peppers, None).await;
        harness.wait_for_cache().await;
        harness
    }

    async fn wait_for_cache(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.engine.cache_active() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cache never turned on"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn with_config(configure: impl FnOnce(&mut EngineConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("keyward.db"));
        let peppers = Peppers::parse(PEPPER).unwrap();
        let harness = Self::build(url, dir, peppers, None, configure).await;
        harness.wait_for_cache().await;
        harness
    }

    async fn with_feed(
        url: DatabaseUrl,
        dir: tempfile::TempDir,
        peppers: Peppers,
        feed: Option<Feed>,
    ) -> Self {
        Self::build(url, dir, peppers, feed, |_| {}).await
    }

    async fn build(
        url: DatabaseUrl,
        dir: tempfile::TempDir,
        peppers: Peppers,
        feed: Option<Feed>,
        configure: impl FnOnce(&mut EngineConfig),
    ) -> Self {
        let store = keyward_store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let lookups = Arc::new(AtomicUsize::new(0));
        let slow = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let clock = Arc::new(AtomicI64::new(T0));
        let mut config = EngineConfig::new(peppers);
        let c = Arc::clone(&clock);
        config.clock = Arc::new(move || Timestamp::from_millis(c.load(Ordering::SeqCst)).unwrap());
        // Counted lookups are these tests' measure: no warm-up unless a test asks.
        config.cache_warmup = 0;
        configure(&mut config);
        let counting = Counting {
            inner: store,
            lookups: Arc::clone(&lookups),
            slow: Arc::clone(&slow),
            feed,
            down: Arc::clone(&down),
        };
        Self {
            engine: Engine::start(counting, config),
            lookups,
            slow,
            down,
            clock,
            url,
            _dir: dir,
        }
    }

    fn advance(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    async fn create(&self, owner: &str, permissions: &[&str]) -> (ApiKey, String) {
        let request = NewKeyRequest {
            name: "test key".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        let created = self
            .engine
            .create_key(&UserId::parse(owner).unwrap(), &request)
            .await
            .unwrap();
        (created.key, created.plain_text.expose().to_owned())
    }

    async fn code(&self, key: &str, required: &[&str]) -> VerifyCode {
        self.engine.verify(key, required).await.unwrap().code
    }
}

/// Every request moves the futures of a verification and of a service's
/// authentication whole (into the handler's box, on each poll), whatever state they are
/// in: a database call inlined there made every verification copy 175 KB and cost a
/// third of the warm path. Calls that are large stay boxed where they are made.
#[tokio::test]
async fn the_futures_every_verification_moves_stay_small() {
    let h = Harness::new().await;
    let none = PermissionSet::default();
    let sizes = [
        (
            "verify_with",
            std::mem::size_of_val(&h.engine.verify_with(
                "x",
                none,
                VerifyOptions::for_client(None),
            )),
        ),
        (
            "verify",
            std::mem::size_of_val(&h.engine.verify("x", &[] as &[&str])),
        ),
        (
            "authenticate_credential_from",
            std::mem::size_of_val(&h.engine.authenticate_credential_from("x", None)),
        ),
        (
            "authenticate_credential",
            std::mem::size_of_val(&h.engine.authenticate_credential("x")),
        ),
    ];
    for (name, size) in sizes {
        assert!(size <= 8 * 1024, "{name}'s future takes {size} bytes");
    }
}

#[tokio::test]
async fn a_fresh_key_verifies_with_the_permissions_it_holds() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &["READ_GRAPH", "EXECUTE_GRAPH"]).await;
    let v = h.engine.verify(&plain, &["READ_GRAPH"]).await.unwrap();
    assert_eq!(v.code, VerifyCode::Valid);
    let found = v.key.unwrap();
    assert_eq!(found.id, key.id);
    assert_eq!(found.user_id.as_str(), "alice");
    assert_eq!(*found.permissions, ["EXECUTE_GRAPH", "READ_GRAPH"]);
    assert_eq!(
        h.code(&plain, &["READ_GRAPH", "EXECUTE_GRAPH"]).await,
        VerifyCode::Valid
    );
    assert_eq!(
        h.code(&plain, &["READ_GRAPH", "WRITE_GRAPH"]).await,
        VerifyCode::InsufficientPermissions
    );
}

#[tokio::test]
async fn malformed_and_unknown_keys_are_told_apart() {
    let h = Harness::new().await;
    let (_, plain) = h.create("alice", &[]).await;
    assert_eq!(h.code("not-a-key", &[]).await, VerifyCode::Malformed);
    let mut typo = plain.clone();
    typo.replace_range(10..11, if &plain[10..11] == "a" { "b" } else { "a" });
    assert_eq!(h.code(&typo, &[]).await, VerifyCode::Malformed);
    assert_eq!(h.lookups(), 0, "malformed keys never reach the database");
    let forged = keyward_core::key::KeyFormat::default().generate();
    assert_eq!(h.code(forged.expose(), &[]).await, VerifyCode::NotFound);
}

#[tokio::test]
async fn unknown_required_permissions_are_an_error_not_a_denial() {
    let h = Harness::new().await;
    let (_, plain) = h.create("alice", &[]).await;
    let err = h.engine.verify(&plain, &["ADMIN"]).await.unwrap_err();
    assert!(matches!(err, EngineError::UnknownPermissions(_)), "{err:?}");
}

#[tokio::test]
async fn a_cached_key_is_verified_without_a_database_read() {
    let h = Harness::new().await;
    let (_, plain) = h.create("alice", &[]).await;
    for _ in 0..100 {
        assert_eq!(h.code(&plain, &[]).await, VerifyCode::Valid);
    }
    assert_eq!(h.lookups(), 1);
}

#[tokio::test]
async fn concurrent_misses_for_one_key_make_one_database_read() {
    let h = Harness::new().await;
    let (_, plain) = h.create("alice", &[]).await;
    let forged = keyward_core::key::KeyFormat::default().generate();
    let forged = forged.expose().to_owned();
    h.slow.store(100, Ordering::SeqCst);
    let before = h.lookups();
    let verifications: Vec<_> = (0..50)
        .map(|i| {
            let engine = h.engine.clone();
            let key = if i % 2 == 0 {
                plain.clone()
            } else {
                forged.clone()
            };
            tokio::spawn(async move { engine.verify(&key, &[] as &[&str]).await.unwrap().code })
        })
        .collect();
    let mut codes = Vec::new();
    for verification in verifications {
        codes.push(verification.await.unwrap());
    }
    let valid = codes.iter().filter(|c| **c == VerifyCode::Valid).count();
    let missing = codes.iter().filter(|c| **c == VerifyCode::NotFound).count();
    assert_eq!((valid, missing), (25, 25));
    assert_eq!(h.lookups() - before, 2, "one read per key");
}

#[tokio::test]
async fn a_miss_after_a_change_does_not_share_a_read_begun_before_it() {
    let h = Harness::new().await;
    let alice = UserId::parse("alice").unwrap();
    let (key, plain) = h.create("alice", &[]).await;
    h.slow.store(200, Ordering::SeqCst);
    let engine = h.engine.clone();
    let key_text = plain.clone();
    let before_the_change =
        tokio::spawn(async move { engine.verify(&key_text, &[] as &[&str]).await.unwrap().code });
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.engine.revoke(Scope::User(&alice), key.id).await.unwrap();
    // Looked up after the revocation: its own read, not the one in flight.
    assert_eq!(h.code(&plain, &[]).await, VerifyCode::Revoked);
    assert_eq!(before_the_change.await.unwrap(), VerifyCode::Valid);
    h.slow.store(0, Ordering::SeqCst);
    assert_eq!(h.code(&plain, &[]).await, VerifyCode::Revoked);
}

#[tokio::test]
async fn repeated_unknown_keys_reach_the_database_once_each() {
    let h = Harness::new().await;
    let forged = keyward_core::key::KeyFormat::default().generate();
    for _ in 0..50 {
        assert_eq!(h.code(forged.expose(), &[]).await, VerifyCode::NotFound);
    }
    assert_eq!(h.lookups(), 1);
}

#[tokio::test]
async fn changes_are_seen_by_the_next_verification() {
    let h = Harness::new().await;
    let alice = UserId::parse("alice").unwrap();
    let (key, plain) = h.create("alice", &["READ_GRAPH"]).await;
    assert_eq!(h.code(&plain, &["READ_GRAPH"]).await, VerifyCode::Valid);

    h.engine.suspend(Scope::User(&alice), key.id).await.unwrap();
    assert_eq!(h.code(&plain, &["READ_GRAPH"]).await, VerifyCode::Suspended);
    h.engine
        .reactivate(Scope::User(&alice), key.id)
        .await
        .unwrap();
    assert_eq!(h.code(&plain, &["READ_GRAPH"]).await, VerifyCode::Valid);
    h.engine
        .set_permissions(Scope::User(&alice), key.id, &["IDENTITY"])
        .await
        .unwrap();
    assert_eq!(
        h.code(&plain, &["READ_GRAPH"]).await,
        VerifyCode::InsufficientPermissions
    );
    assert_eq!(h.code(&plain, &["IDENTITY"]).await, VerifyCode::Valid);
    h.engine.revoke(Scope::User(&alice), key.id).await.unwrap();
    assert_eq!(h.code(&plain, &["IDENTITY"]).await, VerifyCode::Revoked);
}

#[tokio::test]
async fn a_key_expires_at_its_expiry_time_even_when_cached() {
    let h = Harness::new().await;
    let request = NewKeyRequest {
        name: "short-lived".into(),
        expires_at: Some(Timestamp::from_millis(T0 + 60_000).unwrap()),
        ..Default::default()
    };
    let created = h
        .engine
        .create_key(&UserId::parse("alice").unwrap(), &request)
        .await
        .unwrap();
    let plain = created.plain_text.expose();
    assert_eq!(h.code(plain, &[]).await, VerifyCode::Valid);
    h.advance(60_000);
    assert_eq!(h.code(plain, &[]).await, VerifyCode::Expired);
    assert_eq!(h.lookups(), 1);
}

#[tokio::test]
async fn usage_is_written_in_batches_one_row_per_key() {
    let h = Harness::new().await;
    let mut keys = Vec::new();
    for _ in 0..20 {
        keys.push(h.create("alice", &[]).await);
    }
    let verify_all = |rounds: i64| {
        let (h, keys) = (&h, &keys);
        async move {
            for round in 0..rounds {
                h.advance(1);
                for (_, plain) in keys {
                    assert_eq!(h.code(plain, &[]).await, VerifyCode::Valid, "round {round}");
                }
            }
        }
    };
    // 1,000 verifications of 20 keys within the resolution: the first use of each
    // is recorded, and one flush writes 20 rows.
    verify_all(50).await;
    assert_eq!(h.engine.flush_usage().await.unwrap(), 20);
    assert_eq!(h.engine.flush_usage().await.unwrap(), 0);
    let first_use = Some(Timestamp::from_millis(T0 + 1).unwrap());
    let stored = h.engine.store().list_keys(Scope::Admin).await.unwrap();
    assert!(stored.iter().all(|k| k.last_used_at == first_use));

    // Once the resolution has passed, the next use is recorded again.
    verify_all(50).await;
    assert_eq!(h.engine.flush_usage().await.unwrap(), 0, "still within it");
    h.advance(EngineConfig::DEFAULT_USAGE_RESOLUTION.as_millis() as i64);
    verify_all(1).await;
    assert_eq!(h.engine.flush_usage().await.unwrap(), 20);
    let stored = h.engine.store().list_keys(Scope::Admin).await.unwrap();
    assert!(stored.iter().all(|k| k.last_used_at > first_use));
}

#[tokio::test]
async fn a_usage_resolution_of_zero_records_the_latest_use_per_flush() {
    let h = Harness::with_config(|c| c.usage_resolution = Duration::ZERO).await;
    let (key, plain) = h.create("alice", &[]).await;
    for _ in 0..10 {
        h.advance(1);
        assert_eq!(h.code(&plain, &[]).await, VerifyCode::Valid);
    }
    assert_eq!(h.engine.flush_usage().await.unwrap(), 1);
    let stored = h
        .engine
        .store()
        .get_key(Scope::Admin, key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(Timestamp::from_millis(T0 + 10).unwrap())
    );
}

#[tokio::test]
async fn pending_usage_shows_before_the_flush() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &[]).await;
    h.advance(5);
    h.code(&plain, &[]).await;
    let shown = h.engine.get_key(Scope::Admin, key.id).await.unwrap();
    assert_eq!(
        shown.last_used_at,
        Some(Timestamp::from_millis(T0 + 5).unwrap())
    );
}

#[tokio::test]
async fn shutdown_writes_pending_usage() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &[]).await;
    h.code(&plain, &[]).await;
    h.engine.shutdown().await;
    let store = keyward_store::connect(&h.url).await.unwrap();
    let stored = store.get_key(Scope::Admin, key.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(Timestamp::from_millis(T0).unwrap())
    );
}

#[tokio::test]
async fn the_background_flush_runs_within_its_interval() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &[]).await;
    h.code(&plain, &[]).await;
    let store = keyward_store::connect(&h.url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stored = store.get_key(Scope::Admin, key.id).await.unwrap().unwrap();
        if stored.last_used_at.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never flushed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_hashed_with_a_retired_pepper_verify_and_are_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("keyward.db"));
    let old = Harness::on(
        url.clone(),
        tempfile::tempdir().unwrap(),
        Peppers::parse(PEPPER).unwrap(),
    )
    .await;
    let (key, plain) = old.create("alice", &[]).await;
    old.engine.shutdown().await;

    let rotated = format!("v1:{PEPPER}\nv2:rotated-pepper-0123456789abcdefghijkl");
    let new = Harness::on(url, dir, Peppers::parse(&rotated).unwrap()).await;
    assert_eq!(new.code(&plain, &[]).await, VerifyCode::Valid);
    assert_eq!(
        new.lookups(),
        2,
        "current pepper first, then the retired one"
    );

    let current = new.engine.config().peppers.current();
    let parsed = new.engine.config().key_format.parse(&plain).unwrap();
    let row = new
        .engine
        .store()
        .find_by_hash(&current.hash(parsed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.id, row.pepper_version), (key.id, 2));
}

#[tokio::test]
async fn a_change_by_another_process_reaches_a_warm_cache() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &[]).await;
    assert_eq!(h.code(&plain, &[]).await, VerifyCode::Valid);

    // Another process (the CLI) revokes the key directly in the database.
    let other = keyward_store::connect(&h.url).await.unwrap();
    other
        .apply(
            Scope::Admin,
            key.id,
            &Mutation::Revoke,
            Timestamp::from_millis(T0).unwrap(),
            &Actor::Admin("cli".into()),
        )
        .await
        .unwrap();
    other.close().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while h.code(&plain, &[]).await != VerifyCode::Revoked {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache kept a stale positive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_live_key_cap_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("keyward.db"));
    let store = keyward_store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let mut config = EngineConfig::new(Peppers::parse(PEPPER).unwrap());
    config.max_keys_per_user = 2;
    let engine = Engine::start(store, config);
    let alice = UserId::parse("alice").unwrap();
    let request = NewKeyRequest {
        name: "k".into(),
        ..Default::default()
    };
    engine.create_key(&alice, &request).await.unwrap();
    engine.create_key(&alice, &request).await.unwrap();
    let err = engine.create_key(&alice, &request).await.unwrap_err();
    assert!(
        matches!(err, EngineError::LimitReached { limit: 2 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_engine_and_writes_usage() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &[]).await;
    h.code(&plain, &[]).await;
    let Harness {
        engine, url, _dir, ..
    } = h;
    drop(engine);
    let store = keyward_store::connect(&url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stored = store.get_key(Scope::Admin, key.id).await.unwrap().unwrap();
        if stored.last_used_at == Some(Timestamp::from_millis(T0).unwrap()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage was not flushed after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn concurrent_shutdowns_both_wait_for_the_final_flush() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &[]).await;
    h.code(&plain, &[]).await;
    let (a, b) = (h.engine.clone(), h.engine.clone());
    tokio::join!(a.shutdown(), b.shutdown());
    let store = keyward_store::connect(&h.url).await.unwrap();
    let stored = store.get_key(Scope::Admin, key.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(Timestamp::from_millis(T0).unwrap())
    );
}

#[tokio::test]
async fn deleting_a_user_fails_their_cached_keys_at_once() {
    let h = Harness::new().await;
    let (_, alice) = h.create("alice", &[]).await;
    let (_, bob) = h.create("bob", &[]).await;
    assert_eq!(h.code(&alice, &[]).await, VerifyCode::Valid);
    let deleted = h
        .engine
        .delete_user(&UserId::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(h.code(&alice, &[]).await, VerifyCode::NotFound);
    assert_eq!(h.code(&bob, &[]).await, VerifyCode::Valid);
}

#[tokio::test]
async fn without_a_change_feed_the_cache_is_off_and_verification_reads_through() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("keyward.db"));
    let (feed, script) = tokio::sync::mpsc::unbounded_channel();
    let script = Arc::new(tokio::sync::Mutex::new(script));
    let h = Harness::with_feed(url, dir, Peppers::parse(PEPPER).unwrap(), Some(script)).await;
    let (_, plain) = h.create("alice", &[]).await;

    // Not watching yet: every verification reads the database.
    assert!(!h.engine.cache_active());
    h.code(&plain, &[]).await;
    h.code(&plain, &[]).await;
    assert_eq!(h.lookups(), 2);

    feed.send(Ok(ExternalChange::Unknown)).unwrap();
    h.wait_for_cache().await;
    h.code(&plain, &[]).await;
    h.code(&plain, &[]).await;
    assert_eq!(h.lookups(), 3, "cached after the first read");

    // The feed breaks: the cache is dropped and bypassed until it is back.
    feed.send(Err(StoreError::Open("connection lost".into())))
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.engine.cache_active() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache stayed on"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.code(&plain, &[]).await;
    h.code(&plain, &[]).await;
    assert_eq!(h.lookups(), 5);

    feed.send(Ok(ExternalChange::Unknown)).unwrap();
    h.wait_for_cache().await;
    h.code(&plain, &[]).await;
    h.code(&plain, &[]).await;
    assert_eq!(h.lookups(), 6);
}

/// Fail closed: while the database cannot be reached, a key that is not cached gets
/// an error, never a verdict; a cached key is served only until the change feed's
/// failure is noticed (bounded by the feed lease); everything comes back by itself.
#[tokio::test]
async fn a_database_outage_fails_closed_and_recovers_by_itself() {
    let h = Harness::new().await;
    let (cached_key, cached) = h.create("alice", &[]).await;
    let (_, uncached) = h.create("alice", &[]).await;
    assert_eq!(h.code(&cached, &[]).await, VerifyCode::Valid);

    h.down.store(true, Ordering::SeqCst);
    let outage = std::time::Instant::now();
    let err = h.engine.verify::<&str>(&uncached, &[]).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    assert!(h.engine.ping().await.is_err());
    // The usage recorded before the outage cannot be written, and is kept.
    assert!(h.engine.flush_usage().await.is_err());

    // The cached key is served from memory only until the watch's failure is seen.
    loop {
        match h.engine.verify::<&str>(&cached, &[]).await {
            Ok(v) => assert_eq!(v.code, VerifyCode::Valid),
            Err(EngineError::Unavailable(_)) => {
                eprintln!(
                    "cached key served for {:?} into the outage",
                    outage.elapsed()
                );
                break;
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
        assert!(
            outage.elapsed() <= h.engine.config().change_feed_lease + Duration::from_secs(1),
            "a cached key outlived the feed lease during an outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!h.engine.cache_active());
    // Malformed keys still get their answer: no database needed.
    assert_eq!(h.code("agpt_nope", &[]).await, VerifyCode::Malformed);

    h.down.store(false, Ordering::SeqCst);
    h.wait_for_cache().await;
    assert!(h.engine.ping().await.is_ok());
    assert_eq!(h.code(&cached, &[]).await, VerifyCode::Valid);
    assert_eq!(h.code(&uncached, &[]).await, VerifyCode::Valid);
    // The use recorded before the outage reaches the database after it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stored = h
            .engine
            .store()
            .get_key(Scope::Admin, cached_key.id)
            .await
            .unwrap();
        if stored.unwrap().last_used_at == Some(Timestamp::from_millis(T0).unwrap()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the use was lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_over_its_failure_limit_is_refused_without_a_lookup() {
    let h = Harness::with_config(|c| {
        c.failed_verify_limit = keyward_core::rate::RateLimit::per_minute(2).ok();
    })
    .await;
    let (_, valid) = h.create("alice", &[]).await;
    let client: std::net::IpAddr = "198.51.100.4".parse().unwrap();
    let none = keyward_core::permissions::PermissionSet::default();
    let verify = |key: String| {
        let engine = h.engine.clone();
        async move {
            let options = VerifyOptions::for_client(Some(client));
            engine.verify_with(&key, none, options).await.unwrap()
        }
    };
    let forged = keyward_core::key::KeyFormat::default().generate();
    assert_eq!(
        verify(forged.expose().to_owned()).await.code,
        VerifyCode::NotFound
    );
    assert_eq!(verify("agpt_x".into()).await.code, VerifyCode::Malformed);
    let lookups = h.lookups();
    let refused = verify(valid.clone()).await;
    assert_eq!(refused.code, VerifyCode::RateLimited);
    assert!(refused.key.is_none());
    assert!(refused.retry_after.unwrap() > Duration::from_secs(29));
    let other = keyward_core::key::KeyFormat::default().generate();
    assert_eq!(
        verify(other.expose().to_owned()).await.code,
        VerifyCode::RateLimited
    );
    assert_eq!(h.lookups(), lookups, "refused before any lookup");
    assert_eq!(
        h.code(&valid, &[]).await,
        VerifyCode::Valid,
        "no client named"
    );
}

/// The range of hours around `T0` the usage history tests read.
fn hours_around_t0() -> UsageRange {
    let t0 = Timestamp::from_millis(T0).unwrap();
    UsageRange::new(
        Some(t0),
        Some(t0.plus_millis(2 * HOUR_MS)),
        Granularity::Hour,
        t0,
    )
    .unwrap()
}

fn totals(buckets: &[HourlyUsage]) -> UsageCounts {
    let mut sum = UsageCounts::default();
    for bucket in buckets {
        sum.add(bucket.counts);
    }
    sum
}

#[tokio::test]
async fn verifications_of_found_keys_are_counted_valid_or_refused() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &["READ_GRAPH"]).await;
    assert_eq!(h.code(&plain, &[]).await, VerifyCode::Valid);
    assert_eq!(h.code(&plain, &[]).await, VerifyCode::Valid);
    assert_eq!(
        h.code(&plain, &["EXECUTE_GRAPH"]).await,
        VerifyCode::InsufficientPermissions
    );
    let alice = UserId::parse("alice").unwrap();
    h.engine.suspend(Scope::User(&alice), key.id).await.unwrap();
    assert_eq!(h.code(&plain, &[]).await, VerifyCode::Suspended);
    let unknown = plain.replace(&plain[plain.len() - 12..plain.len() - 8], "zzzz");
    h.code(&unknown, &[]).await;
    h.code("not a key", &[]).await;

    let range = hours_around_t0();
    let pending = h
        .engine
        .key_usage(Scope::Admin, key.id, &range)
        .await
        .unwrap();
    let counted = UsageCounts {
        valid: 2,
        refused: 2,
    };
    assert_eq!(totals(&pending), counted, "shown before the flush");
    h.engine.flush_usage().await.unwrap();
    let stored = h
        .engine
        .store()
        .usage_history(UsageOf::Key(key.id), range.from(), range.to())
        .await
        .unwrap();
    assert_eq!(totals(&stored), counted, "written by the flush");
    let shown = h
        .engine
        .key_usage(Scope::Admin, key.id, &range)
        .await
        .unwrap();
    assert_eq!(totals(&shown), counted, "not counted twice after the flush");
    let everyone = h.engine.usage(None, &range).await.unwrap();
    assert_eq!(
        totals(&everyone),
        counted,
        "unknown and malformed keys are not counted"
    );
}

#[tokio::test]
async fn usage_history_counts_survive_a_failed_flush() {
    let h = Harness::new().await;
    let (key, plain) = h.create("alice", &[]).await;
    h.code(&plain, &[]).await;
    h.down.store(true, Ordering::SeqCst);
    assert!(h.engine.flush_usage().await.is_err());
    h.down.store(false, Ordering::SeqCst);
    h.code(&plain, &[]).await;
    h.engine.flush_usage().await.unwrap();
    let range = hours_around_t0();
    let stored = h
        .engine
        .store()
        .usage_history(UsageOf::Key(key.id), range.from(), range.to())
        .await
        .unwrap();
    assert_eq!(totals(&stored).valid, 2);
}

#[tokio::test]
async fn without_usage_history_nothing_is_counted_or_written() {
    let h = Harness::with_config(|c| c.usage_history_days = 0).await;
    let (key, plain) = h.create("alice", &[]).await;
    h.code(&plain, &[]).await;
    h.engine.flush_usage().await.unwrap();
    let range = hours_around_t0();
    let stored = h
        .engine
        .store()
        .usage_history(UsageOf::All, range.from(), range.to())
        .await
        .unwrap();
    assert!(stored.is_empty());
    let shown = h
        .engine
        .key_usage(Scope::Admin, key.id, &range)
        .await
        .unwrap();
    assert_eq!(shown.len(), 2, "every bucket, zero");
    assert_eq!(totals(&shown), UsageCounts::default());
}

#[tokio::test]
async fn hours_past_the_retention_are_pruned_by_the_flush() {
    let h = Harness::with_config(|c| c.usage_history_days = 1).await;
    let (key, plain) = h.create("alice", &[]).await;
    h.code(&plain, &[]).await;
    h.engine.flush_usage().await.unwrap();
    h.advance(2 * 24 * HOUR_MS);
    h.engine.flush_usage().await.unwrap();
    let range = hours_around_t0();
    let stored = h
        .engine
        .store()
        .usage_history(UsageOf::Key(key.id), range.from(), range.to())
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}

/// Waits (up to 15 s) until `harness`'s engine has finished its warm-up.
async fn until_warmed_up(harness: &Harness) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while harness.engine.warming_up() {
        assert!(tokio::time::Instant::now() < deadline, "never warmed up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_restarted_engine_serves_the_keys_verified_before_from_its_warmed_cache() {
    let before = Harness::new().await;
    let mut keys = Vec::new();
    for owner in ["alice", "bob", "carol"] {
        let (_, plain) = before.create(owner, &[]).await;
        assert_eq!(before.code(&plain, &[]).await, VerifyCode::Valid);
        keys.push(plain);
    }
    let (_, never_verified) = before.create("dave", &[]).await;
    before.engine.flush_usage().await.unwrap(); // the usage history the warm-up reads
    before.engine.shutdown().await;

    let after = Harness::build(
        before.url.clone(),
        tempfile::tempdir().unwrap(),
        Peppers::parse(PEPPER).unwrap(),
        None,
        |c| c.cache_warmup = EngineConfig::DEFAULT_CACHE_WARMUP,
    )
    .await;
    assert!(after.engine.warming_up(), "readiness can wait for it");
    until_warmed_up(&after).await;
    let lookups = after.lookups();
    for plain in &keys {
        assert_eq!(after.code(plain, &[]).await, VerifyCode::Valid);
    }
    assert_eq!(after.lookups(), lookups, "all three from the warmed cache");
    assert_eq!(after.code(&never_verified, &[]).await, VerifyCode::Valid);
    assert_eq!(after.lookups(), lookups + 1, "a key never verified is read");

    let off = Harness::build(
        before.url.clone(),
        tempfile::tempdir().unwrap(),
        Peppers::parse(PEPPER).unwrap(),
        None,
        |_| {},
    )
    .await;
    assert!(!off.engine.warming_up());
    off.wait_for_cache().await;
    assert_eq!(off.code(&keys[0], &[]).await, VerifyCode::Valid);
    assert_eq!(off.lookups(), 1, "no warm-up: read on first use");
}

#[tokio::test]
async fn a_change_made_while_the_cache_warms_up_is_not_undone_by_the_warm_up() {
    let before = Harness::new().await;
    let (key, plain) = before.create("alice", &[]).await;
    assert_eq!(before.code(&plain, &[]).await, VerifyCode::Valid);
    before.engine.flush_usage().await.unwrap();
    before.engine.shutdown().await;

    // The warm-up's read answers 300 ms after it has read: the key is revoked in
    // between, so the row it holds is stale by the time it would fill the cache.
    let store = keyward_store::connect(&before.url).await.unwrap();
    let slow = Arc::new(AtomicU64::new(300));
    let counting = Counting {
        inner: store,
        lookups: Arc::new(AtomicUsize::new(0)),
        slow: Arc::clone(&slow),
        feed: None,
        down: Arc::new(AtomicBool::new(false)),
    };
    let mut config = EngineConfig::new(Peppers::parse(PEPPER).unwrap());
    config.cache_warmup = EngineConfig::DEFAULT_CACHE_WARMUP;
    let engine = Engine::start(counting, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !engine.cache_active() {
        assert!(tokio::time::Instant::now() < deadline, "no cache");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(engine.warming_up(), "still reading");
    let alice = UserId::parse("alice").unwrap();
    engine.revoke(Scope::User(&alice), key.id).await.unwrap();
    slow.store(0, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while engine.warming_up() {
        assert!(tokio::time::Instant::now() < deadline, "never warmed up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let code = engine.verify(&plain, &[] as &[&str]).await.unwrap().code;
    assert_eq!(code, VerifyCode::Revoked);
}

#[path = "engine/credentials.rs"]
mod credentials;
