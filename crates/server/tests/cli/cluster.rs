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
        Self::start_with(tokio::runtime::Runtime::new().unwrap(), &[])
    }

    /// Two instances with `extra` settings; `runtime` keeps running what the test
    /// started on it.
    fn start_with(runtime: tokio::runtime::Runtime, extra: &[(&str, &str)]) -> Self {
        let db = runtime.block_on(keyward_store::testing::postgres());
        let url = db.url_string();
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("KEYWARD_DATABASE_URL", url.as_str()),
            ("KEYWARD_PEPPER", PEPPER),
            ("KEYWARD_JWT_SECRET", JWT_SECRET),
            ("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ];
        env.extend_from_slice(extra);
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

/// GitHub's side of secret scanning, made here: a P-256 key, its list served in
/// GitHub's JSON on 127.0.0.1, and requests signed with it.
struct Github {
    url: String,
    key: p256::ecdsa::SigningKey,
}

const GITHUB_KEY_ID: &str = "cluster-test-key";

impl Github {
    fn start(runtime: &tokio::runtime::Runtime) -> Self {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let key = p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let list = json!({"public_keys": [
            {"key_identifier": GITHUB_KEY_ID, "key": pem, "is_current": true}
        ]})
        .to_string();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let list = list.clone();
                tokio::spawn(async move {
                    let _ = socket.read(&mut [0; 4096]).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{list}",
                        list.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { url, key }
    }

    /// Posts `body` to `server`'s partner endpoint, signed; the status and the answer.
    fn post(&self, server: &Server, body: &[u8]) -> (u16, Value) {
        use base64::Engine as _;
        use p256::ecdsa::signature::Signer;
        use std::io::{Read, Write};
        let signature: p256::ecdsa::Signature = self.key.sign(body);
        let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_der());
        let mut stream = std::net::TcpStream::connect(&server.address).unwrap();
        write!(
            stream,
            "POST /api/secret-scanning/github HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Github-Public-Key-Identifier: {GITHUB_KEY_ID}\r\n\
             Github-Public-Key-Signature: {signature}\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
fn a_key_github_finds_in_public_is_revoked_on_every_instance() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let github = Github::start(&runtime);
    let cluster = Cluster::start_with(
        runtime,
        &[
            ("KEYWARD_GITHUB_SECRET_SCANNING", "on"),
            (
                "KEYWARD_GITHUB_SECRET_SCANNING_KEYS_URL",
                github.url.as_str(),
            ),
        ],
    );
    let (id, key) = cluster.create(&["READ_GRAPH"]);
    // B has it cached.
    cluster.b_sees(&key, &["READ_GRAPH"], "VALID");
    let url = "https://github.com/acme/app/blob/4f2a/.env#L2";
    let unknown = keyward_core::key::KeyFormat::default().generate();
    let mut batch = vec![
        json!({"token": key, "type": "acme_api_key", "url": url, "source": "content"}),
        json!({"token": unknown.expose(), "type": "acme_api_key", "url": url, "source": "content"}),
    ];
    let (status, labels) = github.post(&cluster.a, batch_body(&batch).as_bytes());
    assert_eq!(status, 200, "{labels}");
    let labels: Vec<&str> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["true_positive", "false_positive"]);
    let took = cluster.b_sees(&key, &["READ_GRAPH"], "REVOKED");
    eprintln!("B refused the leaked key {took:?} after A's answer");
    let (status, events) = http(
        &cluster.b.address,
        "GET",
        &format!("/api/admin/api-keys/{id}/events"),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 200, "{events}");
    let leaked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "leaked")
        .cloned()
        .expect("a leaked event");
    assert_eq!(leaked["changes"]["url"]["after"], url);
    assert_eq!(leaked["changes"]["source"]["after"], "github:content");

    // A batch of 1,000 (the key again, now revoked, and unknown keys) through B.
    batch.truncate(1);
    batch.extend((1..1_000).map(|_| {
        json!({"token": keyward_core::key::KeyFormat::default().generate().expose(),
               "type": "acme_api_key", "url": url, "source": "content"})
    }));
    let started = Instant::now();
    let (status, labels) = github.post(&cluster.b, batch_body(&batch).as_bytes());
    let took = started.elapsed();
    assert_eq!(status, 200, "{labels}");
    let labels = labels.as_array().unwrap();
    assert_eq!(labels.len(), 1_000);
    assert!(labels.iter().all(|l| l["label"] == "false_positive"));
    eprintln!("1,000 tokens answered by B (PostgreSQL over TLS) in {took:?}");
}

fn batch_body(batch: &[Value]) -> String {
    serde_json::to_string(batch).unwrap()
}
