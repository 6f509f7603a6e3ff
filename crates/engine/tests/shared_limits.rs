//! Limits held across engines through a real Redis (`KEYWARD_RATE_LIMIT_STORE`): two
//! engines on one database stand for two instances behind a load balancer.
//! Needs `KEYWARD_TEST_REDIS` (a `redis-server` binary; `.ci/run` installs Debian's).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use keyward_core::hash::Peppers;
use keyward_core::input::NewKeyRequest;
use keyward_core::key::KeyFormat;
use keyward_core::model::{KeyId, Scope, UserId};
use keyward_core::permissions::PermissionSet;
use keyward_core::rate::RateLimit;
use keyward_core::verify::VerifyCode;
use keyward_engine::testing::RedisServer;
use keyward_engine::{Engine, EngineConfig, EngineError, RateLimitStore, VerifyOptions};
use keyward_store::{AnyStore, DatabaseUrl, Store};

const PEPPER: &str = "shared-limits-test-pepper-0123456789abc";

/// The store, with a wait long enough that a loaded test machine is not taken for
/// an outage (a stopped server is refused at once, whatever the wait).
fn shared_store(redis: &RedisServer) -> RateLimitStore {
    RateLimitStore::new(&redis.url(), None)
        .unwrap()
        .with_timeout(Duration::from_secs(2))
}

struct Instances {
    engines: Vec<Engine<AnyStore>>,
    _dir: tempfile::TempDir,
}

impl Instances {
    /// `count` engines on one SQLite file, sharing limits through `redis` if given.
    async fn start(
        count: usize,
        redis: Option<&RedisServer>,
        edit: impl Fn(&mut EngineConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("keyward.db"));
        let mut engines = Vec::new();
        for _ in 0..count {
            let store = keyward_store::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            let mut config = EngineConfig::new(Peppers::single(PEPPER.as_bytes()).unwrap());
            config.rate_limit_store = redis.map(shared_store);
            edit(&mut config);
            engines.push(Engine::start(store, config));
        }
        let instances = Self { engines, _dir: dir };
        if redis.is_some() {
            instances.until_shared().await;
        }
        instances
    }

    /// Waits until every engine uses the shared store (its first probe, or the one
    /// after an outage): a key limited to one request gets exactly one through all.
    async fn until_shared(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (id, plain) = self.create_limited(RateLimit::new(1, 3_600).unwrap()).await;
            let mut valid = 0;
            for engine in &self.engines {
                if engine.verify(&plain, &[] as &[&str]).await.unwrap().code == VerifyCode::Valid {
                    valid += 1;
                }
            }
            self.engines[0].revoke(Scope::Admin, id).await.unwrap();
            if valid == 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the engines never shared their limits"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_limited(&self, limit: RateLimit) -> (KeyId, String) {
        self.create(Some(limit)).await
    }

    /// A key with this rate limit (or none), created through the first engine.
    async fn create(&self, rate_limit: Option<RateLimit>) -> (KeyId, String) {
        let owner = UserId::parse("platform").unwrap();
        let request = NewKeyRequest {
            name: "limited".into(),
            rate_limit,
            ..Default::default()
        };
        let created = self.engines[0]
            .create_key_as_admin(&owner, &request)
            .await
            .unwrap();
        (created.key.id, created.plain_text.expose().to_owned())
    }

    /// One verification of `key` through engine `i`, for `client`: its code.
    async fn code(&self, i: usize, key: &str, client: IpAddr) -> VerifyCode {
        let options = VerifyOptions::for_client(Some(client));
        let verification = self.engines[i].verify_with(key, PermissionSet::default(), options);
        verification.await.unwrap().code
    }

    /// Verifies `plain` `rounds` times, round-robin over the engines; counts by code.
    async fn round_robin(&self, plain: &str, rounds: usize, client: Option<IpAddr>) -> Counts {
        let mut counts = Counts::default();
        for i in 0..rounds {
            let engine = &self.engines[i % self.engines.len()];
            let options = VerifyOptions::for_client(client);
            let verification = engine
                .verify_with(plain, PermissionSet::default(), options)
                .await
                .unwrap();
            match verification.code {
                VerifyCode::Valid => counts.valid += 1,
                VerifyCode::RateLimited => {
                    assert!(verification.retry_after.is_some_and(|w| w > Duration::ZERO));
                    counts.limited += 1;
                }
                _ => counts.other += 1,
            }
        }
        counts
    }
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    valid: usize,
    limited: usize,
    other: usize,
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_key_limit_is_held_across_engines_with_a_shared_store_and_per_engine_without() {
    let redis = RedisServer::start();
    let limit = RateLimit::new(10, 3_600).unwrap();

    let shared = Instances::start(3, Some(&redis), |_| {}).await;
    let (_, plain) = shared.create_limited(limit).await;
    let counts = shared.round_robin(&plain, 60, None).await;
    assert_eq!((counts.valid, counts.limited), (10, 50), "{counts:?}");

    let apart = Instances::start(3, None, |_| {}).await;
    let (_, plain) = apart.create_limited(limit).await;
    let counts = apart.round_robin(&plain, 60, None).await;
    assert_eq!((counts.valid, counts.limited), (30, 30), "{counts:?}");
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn failures_of_one_client_over_several_engines_are_limited_as_one_client() {
    let redis = RedisServer::start();
    let five = |c: &mut EngineConfig| c.failed_verify_limit = RateLimit::new(5, 3_600).ok();
    let client: IpAddr = "203.0.113.9".parse().unwrap();

    let shared = Instances::start(3, Some(&redis), five).await;
    let forged = KeyFormat::default().generate();
    let counts = shared.round_robin(forged.expose(), 30, Some(client)).await;
    assert_eq!((counts.other, counts.limited), (5, 25), "{counts:?}");
    // Another client still has its own allowance.
    let other: IpAddr = "203.0.113.10".parse().unwrap();
    let counts = shared.round_robin(forged.expose(), 3, Some(other)).await;
    assert_eq!(counts.other, 3, "{counts:?}");

    let apart = Instances::start(3, None, five).await;
    let counts = apart.round_robin(forged.expose(), 30, Some(client)).await;
    assert_eq!((counts.other, counts.limited), (15, 15), "{counts:?}");
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_users_changes_are_limited_across_engines() {
    let redis = RedisServer::start();
    let shared = Instances::start(2, Some(&redis), |c| {
        c.user_write_limit = RateLimit::new(4, 3_600).ok();
    })
    .await;
    let alice = UserId::parse("alice").unwrap();
    let request = NewKeyRequest {
        name: "mine".into(),
        ..Default::default()
    };
    let mut created = 0;
    let mut refused = 0;
    for i in 0..8 {
        match shared.engines[i % 2].create_key(&alice, &request).await {
            Ok(_) => created += 1,
            Err(EngineError::RateLimited { .. }) => refused += 1,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!((created, refused), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn concurrent_decisions_share_round_trips_and_each_limit_stays_exact() {
    let redis = RedisServer::start();
    let shared = Instances::start(3, Some(&redis), |_| {}).await;
    // Three limits, asked for together, many times over the same names in one call.
    let limits = [5, 40, 1_000];
    let mut keys = Vec::new();
    for requests in limits {
        let (_, plain) = shared
            .create_limited(RateLimit::new(requests, 3_600).unwrap())
            .await;
        keys.push(plain);
    }
    let before = redis.command_stat("evalsha", "calls") + redis.command_stat("eval", "calls");
    let per_key = 150;
    let mut verifications = tokio::task::JoinSet::new();
    for round in 0..per_key {
        for (k, plain) in keys.iter().enumerate() {
            let engine = shared.engines[(round + k) % shared.engines.len()].clone();
            let plain = plain.clone();
            verifications.spawn(async move {
                let verdict = engine.verify(&plain, &[] as &[&str]).await.unwrap();
                (k, verdict.code)
            });
        }
    }
    let mut valid = [0_u32; 3];
    let mut limited = [0_u32; 3];
    while let Some(done) = verifications.join_next().await {
        match done.unwrap() {
            (k, VerifyCode::Valid) => valid[k] += 1,
            (k, VerifyCode::RateLimited) => limited[k] += 1,
            (k, other) => panic!("key {k}: {other:?}"),
        }
    }
    assert_eq!(
        valid,
        [5, 40, 150],
        "exactly each limit passes, across the engines"
    );
    assert_eq!(limited, [145, 110, 0]);
    let calls =
        redis.command_stat("evalsha", "calls") + redis.command_stat("eval", "calls") - before;
    let decisions = 3 * per_key;
    assert!(
        calls > 0 && calls * 4 <= decisions as u64,
        "{calls} calls to the store for {decisions} concurrent decisions: not gathered"
    );
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_refused_key_costs_the_store_no_further_round_trips_until_its_wait_is_over() {
    let redis = RedisServer::start();
    let shared = Instances::start(1, Some(&redis), |_| {}).await;
    let (_, plain) = shared
        .create_limited(RateLimit::new(2, 3_600).unwrap())
        .await;
    let before = redis.command_stat("evalsha", "calls");
    let counts = shared.round_robin(&plain, 500, None).await;
    assert_eq!((counts.valid, counts.limited), (2, 498));
    let calls = redis.command_stat("evalsha", "calls") - before;
    assert_eq!(calls, 3, "two takes and the refusal, then none");
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn the_store_refills_at_the_limits_rate_and_forgets_what_has_refilled() {
    let redis = RedisServer::start();
    let shared = Instances::start(2, Some(&redis), |_| {}).await;
    // Only this test's key in the store (not the start-up check's).
    assert_eq!(redis.command(&["FLUSHALL"]).unwrap(), "OK");
    // 4 a second: one every 250 ms, in bursts of up to 4.
    let (_, plain) = shared.create_limited(RateLimit::new(4, 1).unwrap()).await;
    let counts = shared.round_robin(&plain, 6, None).await;
    assert_eq!((counts.valid, counts.limited), (4, 2));
    let refused = shared.engines[0]
        .verify(&plain, &[] as &[&str])
        .await
        .unwrap();
    let wait = refused.retry_after.unwrap();
    assert!(wait <= Duration::from_millis(250), "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    let counts = shared.round_robin(&plain, 2, None).await;
    assert_eq!(
        (counts.valid, counts.limited),
        (1, 1),
        "one request refilled"
    );

    // Every state the store holds is a fixed-length name with an expiry.
    let names = redis.command(&["KEYS", "keyward:limit:*"]).unwrap();
    assert!(!names.is_empty());
    for name in names.lines() {
        assert_eq!(name.len(), "keyward:limit:key:".len() + 32, "{name}");
        let ttl: i64 = redis.command(&["PTTL", name]).unwrap().parse().unwrap();
        assert!(ttl > 0 && ttl <= 1_100, "{name}: {ttl} ms");
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        redis.command(&["DBSIZE"]).unwrap(),
        "0",
        "all refilled, all gone"
    );
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn when_the_store_stops_each_engine_limits_alone_and_sharing_resumes_when_it_is_back() {
    let mut redis = RedisServer::start();
    let shared = Instances::start(2, Some(&redis), |_| {}).await;
    let limit = RateLimit::new(5, 3_600).unwrap();
    let (_, plain) = shared.create_limited(limit).await;
    let counts = shared.round_robin(&plain, 10, None).await;
    assert_eq!(counts.valid, 5);

    redis.stop();
    let started = Instant::now();
    // What the store refused stays refused for its wait.
    let counts = shared.round_robin(&plain, 4, None).await;
    assert_eq!(counts.limited, 4, "{counts:?}");
    // Never unlimited: each engine holds the limit on its own.
    let (_, fresh) = shared.create_limited(limit).await;
    let counts = shared.round_robin(&fresh, 30, None).await;
    assert_eq!(
        (counts.valid, counts.limited, counts.other),
        (10, 20, 0),
        "{counts:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fallback must not wait on the store: {:?}",
        started.elapsed()
    );

    redis.resume();
    shared.until_shared().await;
    let (_, plain) = shared.create_limited(limit).await;
    let counts = shared.round_robin(&plain, 10, None).await;
    assert_eq!(
        counts.valid, 5,
        "shared again, without a restart: {counts:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_store_unreachable_at_start_leaves_limits_per_engine_until_it_answers() {
    let mut redis = RedisServer::start();
    redis.stop();
    let instances = Instances::start(2, None, |c| {
        c.rate_limit_store = Some(shared_store(&redis));
    })
    .await;
    let (_, plain) = instances
        .create_limited(RateLimit::new(3, 3_600).unwrap())
        .await;
    let counts = instances.round_robin(&plain, 10, None).await;
    assert_eq!((counts.valid, counts.limited), (6, 4), "{counts:?}");
    redis.resume();
    instances.until_shared().await;
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_rotated_key_keeps_its_used_quota_and_a_new_limit_starts_afresh_on_every_engine() {
    let redis = RedisServer::start();
    let shared = Instances::start(2, Some(&redis), |_| {}).await;
    let limit = RateLimit::new(3, 3_600).unwrap();
    let (id, plain) = shared.create_limited(limit).await;
    let counts = shared.round_robin(&plain, 3, None).await;
    assert_eq!(counts.valid, 3);

    // Rotated through one engine, verified through the other: no refill.
    let rotated = shared.engines[0].rotate(Scope::Admin, id, 0).await.unwrap();
    let new_id = rotated.new.key.id;
    let new_plain = rotated.new.plain_text.expose().to_owned();
    let verification = shared.engines[1]
        .verify(&new_plain, &[] as &[&str])
        .await
        .unwrap();
    assert_eq!(verification.code, VerifyCode::RateLimited);

    // A new quota, set through one engine: a fresh count on both.
    shared.engines[0]
        .set_rate_limit(Scope::Admin, new_id, RateLimit::new(2, 3_600).ok())
        .await
        .unwrap();
    // Once the other engine has heard of the change (the change feed), it asks the
    // store afresh, where the count starts again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let code = shared.engines[1]
            .verify(&new_plain, &[] as &[&str])
            .await
            .unwrap()
            .code;
        if code == VerifyCode::Valid {
            break;
        }
        assert_eq!(code, VerifyCode::RateLimited);
        assert!(
            Instant::now() < deadline,
            "the new quota never reached the other engine"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = shared.round_robin(&new_plain, 4, None).await;
    assert_eq!((counts.valid, counts.limited), (1, 3), "{counts:?}");
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn over_tls_the_store_is_used_only_when_its_certificate_is_vouched_for() {
    let redis = RedisServer::start_tls(&fixture("redis_server.pem"), &fixture("redis_server.key"));
    let url = redis.tls_url().unwrap();
    let ca = std::fs::read(fixture("redis_ca.pem")).unwrap();
    let limit = RateLimit::new(2, 3_600).unwrap();

    let trusted = Instances::start(2, None, |c| {
        let store = RateLimitStore::new(&url, Some(ca.clone())).unwrap();
        c.rate_limit_store = Some(store.with_timeout(Duration::from_secs(2)));
    })
    .await;
    trusted.until_shared().await;
    let (_, plain) = trusted.create_limited(limit).await;
    let counts = trusted.round_robin(&plain, 6, None).await;
    assert_eq!((counts.valid, counts.limited), (2, 4), "{counts:?}");

    // Without the authority (Mozilla's roots only), the handshake fails: each engine
    // limits alone, and nothing reached the store.
    let states = || redis.command(&["KEYS", "keyward:limit:key:*"]).unwrap();
    let states_before = states();
    let untrusted = Instances::start(2, None, |c| {
        let store = RateLimitStore::new(&url, None).unwrap();
        c.rate_limit_store = Some(store.with_timeout(Duration::from_secs(2)));
    })
    .await;
    let (_, plain) = untrusted.create_limited(limit).await;
    let counts = untrusted.round_robin(&plain, 6, None).await;
    assert_eq!((counts.valid, counts.limited), (4, 2), "{counts:?}");
    assert_eq!(states(), states_before);
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_client_over_its_failure_limit_is_refused_on_every_engine_even_with_a_real_key() {
    let redis = RedisServer::start();
    let five = |c: &mut EngineConfig| c.failed_verify_limit = RateLimit::new(5, 3_600).ok();
    let shared = Instances::start(3, Some(&redis), five).await;
    let (_, real) = shared.create(None).await;
    let client: IpAddr = "198.51.100.77".parse().unwrap();
    let forged = KeyFormat::default().generate();
    let instances = &shared;
    let verify = |i: usize, key: String| async move { instances.code(i, &key, client).await };
    // The first attempt on each engine is made before the store is asked (a client
    // that never fails costs no round trip); engine 0 then sees the client fail on
    // and counts its attempts in the store before making them.
    for _ in 0..5 {
        assert_eq!(
            verify(0, forged.expose().to_owned()).await,
            VerifyCode::NotFound
        );
    }
    assert_eq!(verify(0, real.clone()).await, VerifyCode::RateLimited);
    // Engine 1 has not seen this client fail: its first attempt is made, and, being
    // over the limit in the store, answered as refused; from then on it is refused
    // before any attempt, a real key included.
    assert_eq!(
        verify(1, forged.expose().to_owned()).await,
        VerifyCode::RateLimited
    );
    assert_eq!(verify(1, real.clone()).await, VerifyCode::RateLimited);
    // Engine 2 has not seen it fail either, and a real key is not a failure: it
    // passes, once, and is counted nowhere. That is the stated bound: at most one
    // attempt per engine and period beyond the limit.
    assert_eq!(verify(2, real.clone()).await, VerifyCode::Valid);
    assert_eq!(
        verify(2, forged.expose().to_owned()).await,
        VerifyCode::RateLimited
    );
    assert_eq!(verify(2, real.clone()).await, VerifyCode::RateLimited);
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_client_that_failed_once_gives_back_what_its_successes_took_in_the_store() {
    let redis = RedisServer::start();
    let three = |c: &mut EngineConfig| c.failed_verify_limit = RateLimit::new(3, 3_600).ok();
    let shared = Instances::start(2, Some(&redis), three).await;
    let (_, real) = shared.create(None).await;
    let client: IpAddr = "198.51.100.78".parse().unwrap();
    let forged = KeyFormat::default().generate();
    let instances = &shared;
    let verify = |i: usize, key: String| async move { instances.code(i, &key, client).await };
    assert_eq!(
        verify(0, forged.expose().to_owned()).await,
        VerifyCode::NotFound
    );
    // Watched now on engine 0: each of these takes a place in the store first and
    // gives it back when the key is valid.
    for _ in 0..20 {
        assert_eq!(verify(0, real.clone()).await, VerifyCode::Valid);
    }
    assert_eq!(
        verify(1, forged.expose().to_owned()).await,
        VerifyCode::NotFound
    );
    assert_eq!(
        verify(0, forged.expose().to_owned()).await,
        VerifyCode::NotFound
    );
    assert_eq!(
        verify(1, forged.expose().to_owned()).await,
        VerifyCode::RateLimited
    );
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn whatever_is_written_in_a_limits_place_neither_lifts_nor_stretches_it() {
    let redis = RedisServer::start();
    let shared = Instances::start(2, Some(&redis), |_| {}).await;
    let limit = RateLimit::new(2, 3_600).unwrap();
    for garbage in ["nan", "inf", "-inf", "1e300", "4611686018427387904", "x"] {
        assert_eq!(redis.command(&["FLUSHALL"]).unwrap(), "OK");
        let (_, plain) = shared.create_limited(limit).await;
        let counts = shared.round_robin(&plain, 1, None).await;
        assert_eq!(counts.valid, 1);
        let names = redis.command(&["KEYS", "keyward:limit:key:*"]).unwrap();
        assert_eq!(names.lines().count(), 1, "{names}");
        assert_eq!(redis.command(&["SET", &names, garbage]).unwrap(), "OK");
        let verification = shared.engines[1]
            .verify(&plain, &[] as &[&str])
            .await
            .unwrap();
        assert_eq!(verification.code, VerifyCode::RateLimited, "{garbage}");
        let wait = verification.retry_after.unwrap();
        assert!(wait <= Duration::from_secs(1_800), "{garbage}: {wait:?}");
    }
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn an_acl_user_with_the_documented_commands_is_enough() {
    let redis = RedisServer::start();
    let acl = [
        "ACL",
        "SETUSER",
        "keyward",
        "on",
        ">a-password-for-keyward",
        "resetkeys",
        "~keyward:limit:*",
        "-@all",
        "+evalsha",
        "+script|load",
        "+get",
        "+set",
        "+time",
        "+copy",
    ];
    assert_eq!(redis.command(&acl).unwrap(), "OK");
    let url = format!(
        "redis://keyward:a-password-for-keyward@127.0.0.1:{}/0",
        redis.port()
    );
    let shared = Instances::start(2, None, |c| {
        let store = RateLimitStore::new(&url, None).unwrap();
        c.rate_limit_store = Some(store.with_timeout(Duration::from_secs(2)));
    })
    .await;
    shared.until_shared().await;
    let (id, plain) = shared
        .create_limited(RateLimit::new(2, 3_600).unwrap())
        .await;
    let counts = shared.round_robin(&plain, 4, None).await;
    assert_eq!((counts.valid, counts.limited), (2, 2));
    // Rotation copies the count (COPY).
    let rotated = shared.engines[0].rotate(Scope::Admin, id, 0).await.unwrap();
    let new_plain = rotated.new.plain_text.expose().to_owned();
    let counts = shared.round_robin(&new_plain, 2, None).await;
    assert_eq!(counts.limited, 2, "{counts:?}");
}

/// A TCP proxy to `port` that holds every answer back by `delay`: a store that
/// answers, only too slowly.
async fn slow_proxy(port: u16, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                return;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65_536];
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    local
}

#[tokio::test]
#[cfg_attr(
    not(keyward_redis_tests),
    ignore = "set KEYWARD_TEST_REDIS to a redis-server binary"
)]
async fn a_store_that_answers_too_slowly_stays_down_instead_of_costing_every_request_its_wait() {
    let redis = RedisServer::start();
    let port = slow_proxy(redis.port(), Duration::from_millis(200)).await;
    let url = format!("redis://127.0.0.1:{port}/0");
    let instances = Instances::start(1, None, |c| {
        c.rate_limit_store = Some(RateLimitStore::new(&url, None).unwrap());
    })
    .await;
    let (_, plain) = instances
        .create_limited(RateLimit::new(1_000_000, 60).unwrap())
        .await;
    let started = Instant::now();
    let mut waited = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let request = Instant::now();
        let code = instances.engines[0]
            .verify(&plain, &[] as &[&str])
            .await
            .unwrap()
            .code;
        assert_eq!(code, VerifyCode::Valid);
        if request.elapsed() >= RateLimitStore::DEFAULT_TIMEOUT - Duration::from_millis(5) {
            waited += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waited <= 1, "{waited} requests waited for the store in 3 s");
}
