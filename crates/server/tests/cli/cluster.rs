//! Two `keyward serve` processes on one PostgreSQL database, as behind a load
//! balancer: a change made through one is seen by the other within a deadline,
//! even when the other had the key cached. Needs `KEYWARD_TEST_POSTGRES_URL`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, JWT_SECRET, PEPPER, Server, http, start_server_with, user_token};

/// How long another instance may take to see a change (the goal is far less).
const DEADLINE: Duration = Duration::from_secs(2);

struct Cluster {
    a: Server,
    b: Server,
    _dir: tempfile::TempDir,
    db: keyward_store::testing::TestDatabase,
    _runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let db = runtime.block_on(keyward_store::testing::postgres());
        let url = db.url_string();
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("KEYWARD_DATABASE_URL", url.as_str()),
            ("KEYWARD_PEPPER", PEPPER),
            ("KEYWARD_JWT_SECRET", JWT_SECRET),
            ("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ];
        let (a, _) = start_server_with(dir.path(), &env);
        let (b, _) = start_server_with(dir.path(), &env);
        Self {
            a,
            b,
            _dir: dir,
            db,
            _runtime: runtime,
        }
    }

    fn create(&self, permissions: &[&str]) -> (String, String) {
        let (status, body) = http(
            &self.a.address,
            "POST",
            "/api/api-keys",
            Some(&user_token("alice")),
            Some(&json!({"name": "k", "permissions": permissions})),
        );
        assert_eq!(status, 200, "{body}");
        (
            body["api_key"]["id"].as_str().unwrap().to_owned(),
            body["plain_text_key"].as_str().unwrap().to_owned(),
        )
    }

    /// The verdict on `key` from `server`, asked with the static token.
    fn code(server: &Server, key: &str, permissions: &[&str]) -> String {
        let (status, body) = Self::verify(server, key, permissions, ADMIN_TOKEN);
        assert_eq!(status, 200, "{body}");
        body["code"].as_str().unwrap().to_owned()
    }

    /// The verify API's answer from `server`, asked with `caller`'s secret.
    fn verify(server: &Server, key: &str, permissions: &[&str], caller: &str) -> (u16, Value) {
        http(
            &server.address,
            "POST",
            "/api/api-keys/verify",
            Some(caller),
            Some(&json!({"key": key, "permissions": permissions})),
        )
    }

    fn through_a(&self, method: &str, path: &str, body: Option<Value>) {
        let (status, answer) = http(
            &self.a.address,
            method,
            path,
            Some(&user_token("alice")),
            body.as_ref(),
        );
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }

    /// Polls B until it answers `expected`; returns how long that took.
    fn b_sees(&self, key: &str, permissions: &[&str], expected: &str) -> Duration {
        let started = Instant::now();
        loop {
            let code = Self::code(&self.b, key, permissions);
            if code == expected {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < DEADLINE,
                "B still answers {code}, not {expected}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (up to 10 s) until B's metrics contain `line`.
    fn b_metrics_show(&self, line: &str) {
        let started = Instant::now();
        loop {
            let metrics = self.b_metrics();
            if metrics.lines().any(|l| l == line) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "B never showed {line:?}: {metrics}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// B's metrics text.
    fn b_metrics(&self) -> String {
        let mut stream = std::net::TcpStream::connect(&self.b.address).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
fn a_revocation_through_one_instance_reaches_the_other() {
    let cluster = Cluster::start();
    let (id, key) = cluster.create(&[]);
    // B verifies first, so it holds the key in its cache.
    assert_eq!(Cluster::code(&cluster.b, &key, &[]), "VALID");
    assert_eq!(Cluster::code(&cluster.b, &key, &[]), "VALID");
    cluster.through_a("DELETE", &format!("/api/api-keys/{id}"), None);
    cluster.b_sees(&key, &[], "REVOKED");
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
fn a_suspension_and_a_reactivation_reach_the_other_instance() {
    let cluster = Cluster::start();
    let (id, key) = cluster.create(&[]);
    assert_eq!(Cluster::code(&cluster.b, &key, &[]), "VALID");
    cluster.through_a("POST", &format!("/api/api-keys/{id}/suspend"), None);
    cluster.b_sees(&key, &[], "SUSPENDED");
    cluster.through_a("POST", &format!("/api/api-keys/{id}/reactivate"), None);
    cluster.b_sees(&key, &[], "VALID");
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
fn a_re_scope_reaches_the_other_instance() {
    let cluster = Cluster::start();
    let (id, key) = cluster.create(&["READ_GRAPH"]);
    assert_eq!(Cluster::code(&cluster.b, &key, &["READ_GRAPH"]), "VALID");
    cluster.through_a(
        "PUT",
        &format!("/api/api-keys/{id}/permissions"),
        Some(json!({"permissions": ["IDENTITY"]})),
    );
    cluster.b_sees(&key, &["READ_GRAPH"], "INSUFFICIENT_PERMISSIONS");
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
fn a_credential_revoked_through_one_instance_is_refused_by_the_others_next_request() {
    let cluster = Cluster::start();
    let (status, created) = http(
        &cluster.a.address,
        "POST",
        "/api/admin/credentials",
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "gateway", "scopes": ["keys.verify"]})),
    );
    assert_eq!(status, 200, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["credential"]["id"].as_str().unwrap().to_owned();
    let (_, key) = cluster.create(&[]);
    // B takes the credential twice: it is cached there.
    for _ in 0..2 {
        assert_eq!(Cluster::verify(&cluster.b, &key, &[], &secret).0, 200);
    }
    let (status, revoked) = http(
        &cluster.a.address,
        "DELETE",
        &format!("/api/admin/credentials/{id}"),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 200, "{revoked}");
    let started = Instant::now();
    while Cluster::verify(&cluster.b, &key, &[], &secret).0 != 401 {
        assert!(
            started.elapsed() < DEADLINE,
            "B still takes a credential revoked on A"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "B refused the revoked credential after {:?}",
        started.elapsed()
    );
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
fn deleting_a_user_through_one_instance_fails_their_keys_on_the_other() {
    let cluster = Cluster::start();
    let (_, key) = cluster.create(&[]);
    assert_eq!(Cluster::code(&cluster.b, &key, &[]), "VALID");
    let (status, body) = http(
        &cluster.a.address,
        "DELETE",
        "/api/admin/users/alice",
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!((status, body["deleted_keys"].as_u64()), (200, Some(1)));
    cluster.b_sees(&key, &[], "NOT_FOUND");
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
fn an_instance_that_loses_its_change_feed_serves_no_stale_positive() {
    let cluster = Cluster::start();
    let (id, key) = cluster.create(&[]);
    assert_eq!(Cluster::code(&cluster.b, &key, &[]), "VALID");

    // Both instances watch once their LISTEN connections are up (they subscribe in
    // the background after start: over TLS, on a busy machine, that takes a moment).
    let url = cluster.db.url_string();
    let listeners = || {
        let output = std::process::Command::new("psql")
            .args([
                url.as_str(),
                "-Atc",
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'keyward-listener' AND datname = current_database()",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while listeners() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    // Cut both instances' LISTEN connections from the server side (only this test's
    // database: other tests run beside it), waiting until the backends are gone.
    let terminated = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-Atc",
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) \
             FROM pg_stat_activity \
             WHERE application_name = 'keyward-listener' AND datname = current_database()",
        ])
        .output()
        .unwrap();
    let count: u32 = String::from_utf8_lossy(&terminated.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 2, "one listener per instance");

    // B notices the loss and says so in its metrics (and its log).
    cluster.b_metrics_show("keyward_change_feed_failures_total 1");

    // A change made now cannot reach B through the feed, yet B never answers from a
    // cache that may have missed it: it reads through until it has re-subscribed.
    cluster.through_a("DELETE", &format!("/api/api-keys/{id}"), None);
    assert_eq!(Cluster::code(&cluster.b, &key, &[]), "REVOKED");

    // B recovers by itself, and caches again.
    cluster.b_metrics_show("keyward_change_feed_up 1");
    let (_, other) = cluster.create(&[]);
    assert_eq!(Cluster::code(&cluster.b, &other, &[]), "VALID");
}
