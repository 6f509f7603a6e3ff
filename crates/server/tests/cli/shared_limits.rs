//! Three `keyward serve` processes on one PostgreSQL, as behind a load balancer, with
//! their rate limits in one Redis (`KEYWARD_RATE_LIMIT_STORE`) or each their own.
//! Needs `KEYWARD_TEST_POSTGRES_URL` and `KEYWARD_TEST_REDIS` (`.ci/run` sets both).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keyward_engine::testing::RedisServer;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, JWT_SECRET, PEPPER, Server, http, start_server_with};

struct Trio {
    servers: Vec<Server>,
    logs: Vec<std::sync::Mutex<std::sync::mpsc::Receiver<String>>>,
    _dir: tempfile::TempDir,
    _db: keyward_store::testing::TestDatabase,
    _runtime: tokio::runtime::Runtime,
}

/// How many requests a quota of `requests` per `per_seconds` admits over `elapsed`:
/// the burst, and what refilled meanwhile.
fn admitted(requests: u64, per_seconds: u64, elapsed: Duration) -> u64 {
    requests + (elapsed.as_secs_f64() * requests as f64 / per_seconds as f64).ceil() as u64
}

impl Trio {
    fn start(redis: Option<&RedisServer>) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let db = runtime.block_on(keyward_store::testing::postgres());
        let url = db.url_string();
        let store = redis.map(RedisServer::url).unwrap_or_default();
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("KEYWARD_DATABASE_URL", url.as_str()),
            ("KEYWARD_PEPPER", PEPPER),
            ("KEYWARD_JWT_SECRET", JWT_SECRET),
            ("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("KEYWARD_RATE_LIMIT_STORE", store.as_str()),
            // A loaded test machine must not be taken for an outage; a stopped
            // server is refused at once whatever the wait.
            ("KEYWARD_RATE_LIMIT_STORE_TIMEOUT_MS", "2000"),
        ];
        let (servers, logs) = (0..3)
            .map(|_| start_server_with(dir.path(), &env))
            .map(|(server, logs)| (server, std::sync::Mutex::new(logs)))
            .unzip();
        let trio = Self {
            servers,
            logs,
            _dir: dir,
            _db: db,
            _runtime: runtime,
        };
        if redis.is_some() {
            trio.until_every_instance_shows("keyward_rate_limit_store_up 1");
        }
        trio
    }

    /// A key limited to `requests` per `per_seconds`; its plaintext.
    fn limited_key(&self, requests: u32, per_seconds: u32) -> String {
        self.key(json!({"requests": requests, "per_seconds": per_seconds}))
    }

    /// A key with this `rate_limit` (null: none); its plaintext.
    fn key(&self, rate_limit: serde_json::Value) -> String {
        let (status, body) = http(
            &self.servers[0].address,
            "POST",
            "/api/admin/users/platform-user/api-keys",
            Some(ADMIN_TOKEN),
            Some(&json!({"name": "k", "permissions": [], "rate_limit": rate_limit})),
        );
        assert_eq!(status, 200, "{body}");
        body["plain_text_key"].as_str().unwrap().to_owned()
    }

    /// A key of `user` without limits of its own; its plaintext.
    fn user_key(&self, user: &str) -> String {
        let (status, body) = http(
            &self.servers[0].address,
            "POST",
            &format!("/api/admin/users/{user}/api-keys"),
            Some(ADMIN_TOKEN),
            Some(&json!({"name": "k", "permissions": []})),
        );
        assert_eq!(status, 200, "{body}");
        body["plain_text_key"].as_str().unwrap().to_owned()
    }

    /// Sets the limits all of `user`'s keys share (through instance 1).
    fn set_user_limits(&self, user: &str, limits: serde_json::Value) {
        let (status, body) = http(
            &self.servers[1].address,
            "PUT",
            &format!("/api/admin/users/{user}/limits"),
            Some(ADMIN_TOKEN),
            Some(&limits),
        );
        assert_eq!(status, 200, "{body}");
    }

    /// One verification through instance `i % 3`; its answer's code.
    fn verify(&self, i: usize, key: &str, client_ip: Option<&str>) -> String {
        let mut body = json!({"key": key, "permissions": []});
        if let Some(ip) = client_ip {
            body["client_ip"] = json!(ip);
        }
        let server = &self.servers[i % self.servers.len()];
        let (status, answer) = http(
            &server.address,
            "POST",
            "/api/api-keys/verify",
            Some(ADMIN_TOKEN),
            Some(&body),
        );
        assert_eq!(status, 200, "{answer}");
        answer["code"].as_str().unwrap().to_owned()
    }

    /// `rounds` verifications of `key`, round-robin over the three; how many were
    /// answered `code`, and how long they took.
    fn round_robin(
        &self,
        key: &str,
        rounds: usize,
        client_ip: Option<&str>,
        code: &str,
    ) -> (u64, Duration) {
        let started = Instant::now();
        let count = (0..rounds)
            .filter(|&i| self.verify(i, key, client_ip) == code)
            .count();
        (count as u64, started.elapsed())
    }

    fn metrics(&self, i: usize) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.servers[i].address).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// Waits (up to 10 s) until every instance's metrics contain `line`.
    fn until_every_instance_shows(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 0..self.servers.len() {
            while !self.metrics(i).lines().any(|l| l == line) {
                assert!(
                    Instant::now() < deadline,
                    "instance {i} never showed {line:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn status(&self, i: usize, path: &str) -> u16 {
        http(&self.servers[i].address, "GET", path, None, None).0
    }
}

#[test]
#[cfg_attr(
    not(all(keyward_postgres_tests, keyward_redis_tests)),
    ignore = "shared limits: set KEYWARD_TEST_POSTGRES_URL and KEYWARD_TEST_REDIS"
)]
fn three_instances_hold_a_keys_limit_and_a_clients_failures_together_through_redis_and_not_without()
{
    let redis = RedisServer::start();
    let shared = Trio::start(Some(&redis));
    let apart = Trio::start(None);

    // A key limited to 100 a minute, hit 300 times round-robin through the three.
    let key = shared.limited_key(100, 60);
    let (valid, took) = shared.round_robin(&key, 300, None, "VALID");
    eprintln!("shared store: {valid} of 300 VALID in {took:?}");
    assert!(
        valid >= 100 && valid <= admitted(100, 60, took),
        "{valid} in {took:?}"
    );
    let key = apart.limited_key(100, 60);
    let (valid, took) = apart.round_robin(&key, 300, None, "VALID");
    eprintln!("per instance: {valid} of 300 VALID in {took:?}");
    assert_eq!(valid, 300, "each instance admits its own 100");

    // One client's failed attempts (60 a minute by default), spread over the three.
    let forged = keyward_core::key::KeyFormat::default().generate();
    let forged = forged.expose();
    let client = Some("198.51.100.23");
    let (refused, took) = shared.round_robin(forged, 180, client, "RATE_LIMITED");
    let failed = 180 - refused;
    eprintln!("shared store: {failed} of 180 attempts failed before RATE_LIMITED, in {took:?}");
    assert!(
        failed >= 60 && failed <= admitted(60, 60, took),
        "{failed} in {took:?}"
    );
    let (refused, _) = apart.round_robin(forged, 180, client, "RATE_LIMITED");
    eprintln!("per instance: {} of 180 attempts failed", 180 - refused);
    assert_eq!(refused, 0, "each instance allows the client its own 60");
}

#[test]
#[cfg_attr(
    not(all(keyward_postgres_tests, keyward_redis_tests)),
    ignore = "shared limits: set KEYWARD_TEST_POSTGRES_URL and KEYWARD_TEST_REDIS"
)]
fn a_users_pool_and_credits_hold_across_their_keys_and_three_instances() {
    let redis = RedisServer::start();
    let trio = Trio::start(Some(&redis));
    // Two keys of one user, 10 verifications a minute for both together.
    let keys = [trio.user_key("pooled"), trio.user_key("pooled")];
    trio.set_user_limits(
        "pooled",
        json!({"rate_limit": {"requests": 10, "per_seconds": 60}}),
    );
    let started = Instant::now();
    let valid = (0..30)
        .filter(|&i| trio.verify(i, &keys[(i / 3) % 2], None) == "VALID")
        .count() as u64;
    let took = started.elapsed();
    eprintln!("user pool through Redis: {valid} of 30 VALID in {took:?}");
    assert!(
        valid >= 10 && valid <= admitted(10, 60, took),
        "{valid} in {took:?}"
    );

    // Seven credits for both keys: exactly seven, whichever instance and key.
    let keys = [trio.user_key("paying"), trio.user_key("paying")];
    trio.set_user_limits("paying", json!({"credits": {"remaining": 7}}));
    let valid = (0..21)
        .filter(|&i| trio.verify(i, &keys[(i / 3) % 2], None) == "VALID")
        .count();
    assert_eq!(valid, 7);
}

#[test]
#[cfg_attr(
    not(all(keyward_postgres_tests, keyward_redis_tests)),
    ignore = "shared limits: set KEYWARD_TEST_POSTGRES_URL and KEYWARD_TEST_REDIS"
)]
fn redis_stopping_under_load_brings_no_errors_limits_go_on_per_instance_and_sharing_resumes() {
    let mut redis = RedisServer::start();
    let trio = Arc::new(Trio::start(Some(&redis)));
    let unlimited = trio.key(serde_json::Value::Null);
    let hammered = trio.limited_key(50, 60);

    // Load through all three for the whole test: every answer must be a 200 with a
    // verdict (the helper asserts it), whatever Redis does.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = [unlimited.clone(), hammered]
        .into_iter()
        .map(|key| {
            let (trio, stop) = (Arc::clone(&trio), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut answers = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let code = trio.verify(answers as usize, &key, None);
                    assert!(code == "VALID" || code == "RATE_LIMITED", "{code}");
                    answers += 1;
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    redis.stop();
    // Limits go on, per instance: a key limited to 20 a minute gets 20 on each.
    let key = trio.limited_key(20, 60);
    let (valid, took) = trio.round_robin(&key, 90, None, "VALID");
    eprintln!("Redis down: {valid} of 90 VALID in {took:?}");
    assert!(
        valid >= 60 && valid <= 3 * admitted(20, 60, took),
        "{valid} in {took:?}"
    );
    assert_eq!(trio.verify(0, &unlimited, None), "VALID");
    trio.until_every_instance_shows("keyward_rate_limit_store_up 0");
    for i in 0..3 {
        assert_eq!(
            trio.status(i, "/readyz"),
            200,
            "readiness does not depend on Redis"
        );
        let metrics = trio.metrics(i);
        let failures = metrics
            .lines()
            .find_map(|l| l.strip_prefix("keyward_rate_limit_store_failures_total "))
            .and_then(|n| n.parse::<f64>().ok());
        assert!(failures.is_some_and(|n| n >= 1.0), "{metrics}");
    }

    redis.resume();
    trio.until_every_instance_shows("keyward_rate_limit_store_up 1");
    let key = trio.limited_key(20, 60);
    let (valid, took) = trio.round_robin(&key, 90, None, "VALID");
    eprintln!("Redis back: {valid} of 90 VALID in {took:?}");
    assert!(
        valid >= 20 && valid <= admitted(20, 60, took),
        "{valid} in {took:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let answered: u64 = load.into_iter().map(|t| t.join().unwrap()).sum();
    // One warning per instance for the outage, however many requests met it, and one
    // line when it ended.
    for i in 0..3 {
        let lines: Vec<String> = trio.logs[i].lock().unwrap().try_iter().collect();
        let count = |text: &str| lines.iter().filter(|l| l.contains(text)).count();
        assert_eq!(
            count("the rate limit store is unreachable"),
            1,
            "{lines:#?}"
        );
        assert_eq!(count("the rate limit store is back"), 1, "{lines:#?}");
        assert!(!lines.iter().any(|l| l.contains("ERROR")), "{lines:#?}");
    }
    eprintln!("{answered} verifications under load, none failed");
    assert!(answered > 0);
}
