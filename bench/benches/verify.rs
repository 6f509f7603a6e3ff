//! One verification, in-process: what `Engine::verify` costs without HTTP.
//!
//! `cargo bench -p keyward-bench --bench verify`
//!
//! The engine runs as in `keyward serve`: on SQLite, with the Prometheus recorder
//! installed (every verification records its metrics) and the change feed keeping
//! the cache trusted. A verification that completes without waiting (a cache hit, a
//! malformed key) is polled once on the bench thread, as a request task would poll
//! it; a database read is driven to completion on the runtime.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use divan::Bencher;
use keyward_core::hash::Peppers;
use keyward_core::input::NewKeyRequest;
use keyward_core::model::UserId;
use keyward_core::permissions::PermissionSet;
use keyward_core::rate::RateLimit;
use keyward_engine::{Engine, EngineConfig, VerifyOptions};
use keyward_store::AnyStore;
use sha2::Digest;
use tokio::runtime::Runtime;

// The server's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // The server's recorder: metrics cost what they cost in production.
    let _ = keyward::telemetry::metrics();
    divan::main();
}

const PEPPER: &str = "bench-pepper-0123456789abcdefghijklmnop";

struct Fixture {
    runtime: Runtime,
    engine: Engine<AnyStore>,
    key: String,
    required: PermissionSet,
    _dir: tempfile::TempDir,
}

/// An engine on a fresh SQLite database holding one key; `lease` zero keeps the
/// cache untrusted, so every verification reads the database.
fn fixture(lease: Duration) -> Fixture {
    fixture_with(lease, None)
}

/// [`fixture`], the key carrying `rate_limit`.
fn fixture_with(lease: Duration, rate_limit: Option<RateLimit>) -> Fixture {
    fixture_full(lease, rate_limit, None)
}

/// [`fixture`], the key carrying `rate_limit` and `remaining` usage credits.
fn fixture_full(lease: Duration, rate_limit: Option<RateLimit>, remaining: Option<u64>) -> Fixture {
    fixture_configured(lease, rate_limit, remaining, |_| {})
}

/// [`fixture_full`], with the engine's configuration changed by `configure`.
fn fixture_configured(
    lease: Duration,
    rate_limit: Option<RateLimit>,
    remaining: Option<u64>,
    configure: impl FnOnce(&mut EngineConfig),
) -> Fixture {
    let runtime = keyward_bench::runtime();
    let (dir, url) = keyward_bench::temp_sqlite();
    let (engine, key) = runtime.block_on(async {
        let store = keyward_store::connect(&url).await.unwrap();
        keyward_store::Store::migrate(&store).await.unwrap();
        let mut config = EngineConfig::new(Peppers::parse(PEPPER).unwrap());
        config.change_feed_lease = lease;
        configure(&mut config);
        let engine = Engine::start(store, config);
        let request = NewKeyRequest {
            name: "bench".into(),
            description: None,
            permissions: vec!["READ_GRAPH".into(), "EXECUTE_GRAPH".into()],
            rate_limit,
            remaining,
            ..Default::default()
        };
        let created = engine
            .create_key_as_admin(&UserId::parse("bench").unwrap(), &request)
            .await
            .unwrap();
        (engine, created.plain_text.expose().to_owned())
    });
    let required = engine.permission_set(&["READ_GRAPH"]).unwrap();
    let fixture = Fixture {
        runtime,
        engine,
        key,
        required,
        _dir: dir,
    };
    if !lease.is_zero() {
        // The cache is trusted once the change feed has confirmed it watches.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fixture.engine.cache_active() {
            assert!(Instant::now() < deadline, "the cache never became active");
            std::thread::sleep(Duration::from_millis(10));
        }
        let first = fixture.run(fixture.engine.verify_with(
            &fixture.key,
            fixture.required,
            VerifyOptions::default(),
        ));
        assert!(first.unwrap().is_valid());
    }
    fixture
}

impl Fixture {
    /// Polls once on this thread; completes on the runtime if it has to wait.
    fn run<F: Future>(&self, future: F) -> F::Output {
        let _context = self.runtime.enter();
        let mut future = pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => self.runtime.block_on(future),
        }
    }
}

fn warm() -> Fixture {
    fixture(EngineConfig::new(Peppers::parse(PEPPER).unwrap()).change_feed_lease)
}

/// Parse, HMAC, cache hit, decision, usage record, metrics.
#[divan::bench]
fn warm_cache_hit(bencher: Bencher) {
    let f = warm();
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&f.key, f.required, VerifyOptions::default()),
            )
            .unwrap();
        assert!(verification.is_valid());
    });
}

/// A cache hit with usage history kept (30 days, the default) and off (0), in one
/// run: what counting each verification per key and hour costs on the hot path.
#[divan::bench(args = [30, 0])]
fn warm_cache_hit_usage_history_days(bencher: Bencher, days: u32) {
    let lease = EngineConfig::new(Peppers::parse(PEPPER).unwrap()).change_feed_lease;
    let f = fixture_configured(lease, None, None, |c| c.usage_history_days = days);
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&f.key, f.required, VerifyOptions::default()),
            )
            .unwrap();
        assert!(verification.is_valid());
    });
}

/// A service credential presented with a request (a gateway's `keys.verify`), held
/// in the cache: parse, HMAC, cache hit, the decision, the use recorded; beside it
/// in one run, the static token's constant-time comparison of SHA-256 digests, which
/// every service secret passes first.
#[divan::bench(args = ["credential", "static token"])]
fn service_secret_cached(bencher: Bencher, kind: &str) {
    let f = warm();
    let secret = f.run(async {
        let request = keyward_core::credential::NewCredentialRequest {
            name: "gateway".into(),
            scopes: vec!["keys.verify".into()],
            ..Default::default()
        };
        let created = f.engine.create_credential(&request).await.unwrap();
        created.secret.expose().to_owned()
    });
    let client = Some(std::net::IpAddr::from([10, 0, 0, 5]));
    let token = sha2::Sha256::digest(b"bench-static-service-token-0123456789");
    // The first use reads the database and fills the cache.
    let first = f.run(f.engine.authenticate_credential_from(&secret, client));
    assert!(first.unwrap().is_some());
    bencher.bench_local(|| match kind {
        "credential" => {
            let caller = f
                .run(f.engine.authenticate_credential_from(&secret, client))
                .unwrap();
            assert!(caller.is_some());
        }
        _ => {
            use subtle::ConstantTimeEq;
            let presented = sha2::Sha256::digest(divan::black_box(secret.as_bytes()));
            assert!(!bool::from(presented.ct_eq(&token)));
        }
    });
}

/// The same, with the required permissions given by name (as over HTTP).
#[divan::bench]
fn warm_cache_hit_with_permission_names(bencher: Bencher) {
    let f = warm();
    bencher.bench_local(|| {
        let verification = f.run(f.engine.verify(&f.key, &["READ_GRAPH"])).unwrap();
        assert!(verification.is_valid());
    });
}

/// A cache hit for a request that names its end client (`client_ip`): the
/// failure limiter is consulted first.
#[divan::bench]
fn warm_cache_hit_with_client_ip(bencher: Bencher) {
    let f = warm();
    let client = Some(std::net::IpAddr::from([203, 0, 113, 7]));
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&f.key, f.required, VerifyOptions::for_client(client)),
            )
            .unwrap();
        assert!(verification.is_valid());
    });
}

/// A cache hit for a key with its own rate limit (high enough never to refuse):
/// the limiter's atomic update on every verification.
#[divan::bench]
fn warm_cache_hit_with_key_rate_limit(bencher: Bencher) {
    let lease = EngineConfig::new(Peppers::parse(PEPPER).unwrap()).change_feed_lease;
    let f = fixture_with(lease, RateLimit::new(1_000_000, 1).ok());
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&f.key, f.required, VerifyOptions::default()),
            )
            .unwrap();
        assert!(verification.is_valid());
    });
}

/// A cache hit for a key with usage credits: each verification takes one with an
/// atomic conditional decrement in SQLite (a durable write, `synchronous=FULL`).
#[divan::bench]
fn warm_cache_hit_with_usage_credits(bencher: Bencher) {
    let lease = EngineConfig::new(Peppers::parse(PEPPER).unwrap()).change_feed_lease;
    let f = fixture_full(lease, None, Some(1_000_000_000));
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&f.key, f.required, VerifyOptions::default()),
            )
            .unwrap();
        assert!(verification.is_valid());
    });
}

/// The same with a cost of 0: checks that credits are left (one read), takes none.
#[divan::bench]
fn warm_cache_hit_checking_usage_credits(bencher: Bencher) {
    let lease = EngineConfig::new(Peppers::parse(PEPPER).unwrap()).change_feed_lease;
    let f = fixture_full(lease, None, Some(1_000_000_000));
    let check = keyward_engine::VerifyOptions {
        cost: 0,
        ..Default::default()
    };
    bencher.bench_local(|| {
        let verification = f
            .run(f.engine.verify_with(&f.key, f.required, check))
            .unwrap();
        assert!(verification.is_valid());
    });
}

/// A client over its failed-attempt limit: refused before parsing or hashing.
#[divan::bench]
fn refused_client_over_its_failure_limit(bencher: Bencher) {
    let f = warm();
    let client = Some(std::net::IpAddr::from([198, 51, 100, 9]));
    // The default limit is 60 failures a minute: spend it.
    for _ in 0..61 {
        f.run(
            f.engine
                .verify_with("agpt_nope", f.required, VerifyOptions::for_client(client)),
        )
        .unwrap();
    }
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&f.key, f.required, VerifyOptions::for_client(client)),
            )
            .unwrap();
        assert_eq!(verification.code.as_str(), "RATE_LIMITED");
    });
}

/// Parse, HMAC, and a read from SQLite (the cache is bypassed).
#[divan::bench]
fn database_read_sqlite(bencher: Bencher) {
    let f = fixture(Duration::ZERO);
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&f.key, f.required, VerifyOptions::default()),
            )
            .unwrap();
        assert!(verification.is_valid());
    });
}

/// Inputs that are not keys at all, and near misses (one character changed, so the
/// checksum fails): rejected before any hashing or lookup.
#[divan::bench(args = ["not-a-key", "wrong-length", "bad-checksum"])]
fn malformed_rejection(bencher: Bencher, kind: &str) {
    let f = warm();
    let presented = match kind {
        "not-a-key" => "hello".to_owned(),
        "wrong-length" => format!("{}x", f.key),
        _ => {
            let mut bytes = f.key.clone().into_bytes();
            let i = 10;
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        }
    };
    bencher.bench_local(|| {
        let verification = f
            .run(
                f.engine
                    .verify_with(&presented, f.required, VerifyOptions::default()),
            )
            .unwrap();
        assert!(!verification.is_valid());
    });
}
