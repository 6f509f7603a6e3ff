//! Webhooks end to end: `keyward serve` delivers to a consumer written as a platform
//! would write one (`tests/webhooks/receiver.py`), which verifies every delivery with
//! the official Standard Webhooks library from PyPI, not with keyward's code. Needs
//! `KEYWARD_TEST_PYTHON` (a Python with `tests/webhooks/requirements.txt`); the
//! two-instance test also needs `KEYWARD_TEST_POSTGRES_URL`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, JWT_SECRET, PEPPER, Server, http, start_server_with, user_token};

/// Every event type an endpoint may subscribe to.
const ALL_EVENTS: [&str; 12] = [
    "api_key.created",
    "api_key.updated",
    "api_key.suspended",
    "api_key.reactivated",
    "api_key.rotated",
    "api_key.revoked",
    "api_key.expiring",
    "api_key.expired",
    "api_key.leaked",
    "api_key.credits_low",
    "api_key.credits_exhausted",
    "api_key.rate_limited",
];

/// The consumer: a real HTTP server in Python, logging each delivery it verified.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    secrets: PathBuf,
}

impl Receiver {
    /// Starts on `port` (0: a free one), answering after `delay` seconds with
    /// `status`.
    fn start(dir: &Path, port: u16, delay: f64, status: u16) -> Self {
        let python = std::env::var("KEYWARD_TEST_PYTHON").expect("KEYWARD_TEST_PYTHON is set");
        let (log, secrets) = (dir.join("received.jsonl"), dir.join("secrets"));
        if !secrets.exists() {
            std::fs::write(&secrets, "").unwrap();
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--secrets", secrets.to_str().unwrap()])
            .args(["--log", log.to_str().unwrap()])
            .args(["--port", &port.to_string()])
            .args(["--delay", &delay.to_string()])
            .args(["--status", &status.to_string()])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the receiver prints its port");
        Self {
            child,
            port,
            log,
            secrets,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The secrets deliveries are verified with, in this order.
    fn trust(&self, secrets: &[&str]) {
        std::fs::write(&self.secrets, secrets.join("\n")).unwrap();
    }

    fn received(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until `done` holds for what was received; what was received.
    fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                start.elapsed() < deadline,
                "{what} within {deadline:?}; received {}:\n{}",
                received.len(),
                summary(&received)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn summary(received: &[Value]) -> String {
    received
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["id"], r["type"], r["key_id"], r["verified"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A server on a fresh SQLite file, delivering to private addresses, retrying
/// every second.
fn serve(dir: &Path, database: &str) -> Server {
    let env = settings(database);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_server_with(dir, &env).0
}

fn settings(database: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KEYWARD_DATABASE_URL", database.to_owned()),
        ("KEYWARD_PEPPER", PEPPER.to_owned()),
        ("KEYWARD_JWT_SECRET", JWT_SECRET.to_owned()),
        ("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("KEYWARD_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("KEYWARD_WEBHOOK_TIMEOUT", "2".to_owned()),
        (
            "KEYWARD_WEBHOOK_RETRY_SCHEDULE",
            "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1".to_owned(),
        ),
    ]
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("keyward.db").display())
}

fn admin(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http(
        &server.address,
        method,
        path,
        Some(ADMIN_TOKEN),
        body.as_ref(),
    )
}

/// Adds an endpoint for `events`; its id and secret.
fn add_endpoint(server: &Server, url: &str, events: &[&str]) -> (String, String) {
    let (status, body) = admin(
        server,
        "POST",
        "/api/admin/webhooks",
        Some(json!({"url": url, "events": events, "description": "test consumer"})),
    );
    assert_eq!(status, 200, "{body}");
    (
        body["webhook"]["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

fn as_user(server: &Server, user: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = http(
        &server.address,
        method,
        path,
        Some(&user_token(user)),
        body.as_ref(),
    );
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

fn create_key(server: &Server, user: &str) -> String {
    let body = as_user(
        server,
        user,
        "POST",
        "/api/api-keys",
        Some(json!({"name": "ci", "permissions": ["READ_GRAPH"]})),
    );
    body["api_key"]["id"].as_str().unwrap().to_owned()
}

/// Each key's event types in the order they arrived, first arrival of each event.
fn per_key(received: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in received {
        if seen.insert(r["id"].as_str().unwrap().to_owned())
            && let Some(key) = r["key_id"].as_str()
        {
            let kind = r["type"].as_str().unwrap().to_owned();
            keys.entry(key.to_owned()).or_default().push(kind);
        }
    }
    keys
}

/// Every delivery verified, and no event arrived under two ids.
fn assert_verified_once_each(received: &[Value]) {
    for r in received {
        assert_eq!(r["verified"][0], true, "not verified: {r}");
    }
    let mut ids_of: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in received {
        let event = (r["key_id"].to_string(), r["body"].to_string());
        ids_of
            .entry(event)
            .or_default()
            .insert(r["id"].as_str().unwrap().to_owned());
    }
    for (event, ids) in ids_of {
        assert_eq!(
            ids.len(),
            1,
            "one event under several ids: {event:?} {ids:?}"
        );
    }
}

#[test]
#[cfg_attr(
    not(keyward_python_tests),
    ignore = "webhook consumer test: set KEYWARD_TEST_PYTHON to a Python with \
              crates/server/tests/webhooks/requirements.txt installed"
)]
fn a_consumer_using_the_standard_webhooks_library_verifies_every_key_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &sqlite(dir.path()));
    let receiver = Receiver::start(dir.path(), 0, 0.0, 204);
    let (webhook, secret) = add_endpoint(&server, &receiver.url(), &ALL_EVENTS);
    receiver.trust(&[&secret]);

    let key = create_key(&server, "alice");
    let path = format!("/api/api-keys/{key}");
    as_user(
        &server,
        "alice",
        "PATCH",
        &path,
        Some(json!({"name": "renamed"})),
    );
    as_user(&server, "alice", "POST", &format!("{path}/suspend"), None);
    as_user(
        &server,
        "alice",
        "POST",
        &format!("{path}/reactivate"),
        None,
    );
    let rotated = as_user(
        &server,
        "alice",
        "POST",
        &format!("{path}/rotate"),
        Some(json!({"grace_seconds": 0})),
    );
    let new_key = rotated["api_key"]["id"].as_str().unwrap().to_owned();
    as_user(
        &server,
        "alice",
        "DELETE",
        &format!("/api/api-keys/{new_key}"),
        None,
    );
    let (status, test) = admin(
        &server,
        "POST",
        &format!("/api/admin/webhooks/{webhook}/test"),
        None,
    );
    assert_eq!(status, 202, "{test}");

    let received = receiver.wait_for("every event", Duration::from_secs(20), |r| r.len() >= 8);
    assert_verified_once_each(&received);
    let keys = per_key(&received);
    assert_eq!(
        keys[&key],
        [
            "api_key.created",
            "api_key.updated",
            "api_key.suspended",
            "api_key.reactivated",
            "api_key.rotated",
        ]
    );
    assert_eq!(keys[&new_key], ["api_key.created", "api_key.revoked"]);
    let test_event = received
        .iter()
        .find(|r| r["type"] == "webhook.test")
        .unwrap();
    assert_eq!(test_event["id"], test["event_id"]);

    // The payload: the key's public record as the API shows it, the actor, the time.
    let (_, shown) = admin(
        &server,
        "GET",
        &format!("/api/admin/api-keys/{new_key}"),
        None,
    );
    let revoked = received
        .iter()
        .find(|r| r["type"] == "api_key.revoked")
        .unwrap();
    assert_eq!(
        revoked["body"]["data"]["key"], shown,
        "the record as GET shows it"
    );
    assert_eq!(
        revoked["body"]["data"]["actor"],
        json!({"type": "user", "id": "alice"})
    );
    let text = serde_json::to_string(&received).unwrap();
    assert!(
        !text.contains(rotated["plain_text_key"].as_str().unwrap()),
        "a secret was sent"
    );

    // The delivery log shows each attempt.
    let (status, log) = admin(
        &server,
        "GET",
        &format!("/api/admin/webhooks/{webhook}/deliveries"),
        None,
    );
    assert_eq!(status, 200, "{log}");
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 8);
    for delivery in log {
        assert_eq!(delivery["state"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"][0]["status_code"], 204);
    }
}

#[test]
#[cfg_attr(
    not(keyward_python_tests),
    ignore = "webhook consumer test: set KEYWARD_TEST_PYTHON to a Python with \
              crates/server/tests/webhooks/requirements.txt installed"
)]
fn expiry_credits_and_rate_limits_are_announced_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &sqlite(dir.path()));
    let receiver = Receiver::start(dir.path(), 0, 0.0, 204);
    let (_, secret) = add_endpoint(&server, &receiver.url(), &ALL_EVENTS);
    receiver.trust(&[&secret]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let expires = keyward_core::time::Timestamp::from_millis(i64::try_from(now).unwrap() + 9_000)
        .unwrap()
        .to_rfc3339();
    let (status, created) = admin(
        &server,
        "POST",
        "/api/admin/users/alice/api-keys",
        Some(json!({
            "name": "metered",
            "permissions": [],
            "remaining": 1,
            "expires_at": expires,
            "rate_limit": {"requests": 1, "per_seconds": 60},
        })),
    );
    assert_eq!(status, 200, "{created}");
    let key = created["plain_text_key"].as_str().unwrap().to_owned();
    let id = created["api_key"]["id"].as_str().unwrap().to_owned();
    let codes: Vec<Value> = (0..5)
        .map(|_| {
            let (_, verdict) = admin(
                &server,
                "POST",
                "/api/api-keys/verify",
                Some(json!({"key": key})),
            );
            verdict["code"].clone()
        })
        .collect();
    assert_eq!(codes[0], "VALID");
    assert!(codes[1..].iter().all(|c| c == "RATE_LIMITED"), "{codes:?}");

    let expected = [
        "api_key.created",
        "api_key.expiring",
        "api_key.credits_low",
        "api_key.credits_exhausted",
        "api_key.rate_limited",
        "api_key.expired",
    ];
    receiver.wait_for("six events", Duration::from_secs(30), |r| {
        per_key(r)
            .get(&id)
            .is_some_and(|events| events.len() >= expected.len())
    });
    // Some more time: nothing is announced twice.
    std::thread::sleep(Duration::from_secs(6));
    let received = receiver.received();
    assert_verified_once_each(&received);
    let mut events = per_key(&received).remove(&id).unwrap();
    assert_eq!(events[0], "api_key.created");
    events.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(events, want);
}

#[test]
#[cfg_attr(
    not(keyward_python_tests),
    ignore = "webhook consumer test: set KEYWARD_TEST_PYTHON to a Python with \
              crates/server/tests/webhooks/requirements.txt installed"
)]
fn events_wait_while_the_consumer_is_down_and_arrive_in_order_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &sqlite(dir.path()));
    // Reserve a port, then leave it closed: the consumer is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let (webhook, secret) = add_endpoint(&server, &url, &ALL_EVENTS);
    let keys: Vec<String> = (0..5)
        .map(|n| create_key(&server, &format!("user{n}")))
        .collect();
    for (n, key) in keys.iter().enumerate() {
        let path = format!("/api/api-keys/{key}");
        let user = format!("user{n}");
        as_user(&server, &user, "POST", &format!("{path}/suspend"), None);
        as_user(&server, &user, "DELETE", &path, None);
    }
    // Attempts fail meanwhile, and are recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = admin(
            &server,
            "GET",
            &format!("/api/admin/webhooks/{webhook}/deliveries"),
            None,
        );
        let failed = log.as_array().unwrap().iter().any(|d| {
            d["attempts"].as_array().is_some_and(|a| a.len() >= 2)
                && d["attempts"][0]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("connect"))
        });
        if failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt recorded: {log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let receiver = Receiver::start(dir.path(), port, 0.0, 204);
    receiver.trust(&[&secret]);
    let received = receiver.wait_for("all 15 events", Duration::from_secs(30), |r| {
        per_key(r).values().map(Vec::len).sum::<usize>() >= 15
    });
    assert_verified_once_each(&received);
    for (key, events) in per_key(&received) {
        assert_eq!(
            events,
            ["api_key.created", "api_key.suspended", "api_key.revoked"],
            "{key}"
        );
    }
}

#[test]
#[cfg_attr(
    not(keyward_python_tests),
    ignore = "webhook consumer test: set KEYWARD_TEST_PYTHON to a Python with \
              crates/server/tests/webhooks/requirements.txt installed"
)]
fn after_a_secret_rotation_both_secrets_verify_a_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &sqlite(dir.path()));
    let receiver = Receiver::start(dir.path(), 0, 0.0, 204);
    let (webhook, old) = add_endpoint(&server, &receiver.url(), &["api_key.created"]);
    let (status, rotated) = admin(
        &server,
        "POST",
        &format!("/api/admin/webhooks/{webhook}/rotate-secret"),
        None,
    );
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap();
    assert_ne!(new, old);
    assert!(rotated["webhook"]["previous_secret_until"].is_string());
    receiver.trust(&[new, &old]);
    create_key(&server, "alice");
    let received = receiver.wait_for("the event", Duration::from_secs(10), |r| !r.is_empty());
    assert_eq!(
        received[0]["verified"],
        json!([true, true]),
        "{}",
        received[0]
    );
}

#[test]
#[cfg_attr(
    not(keyward_python_tests),
    ignore = "webhook consumer test: set KEYWARD_TEST_PYTHON to a Python with \
              crates/server/tests/webhooks/requirements.txt installed"
)]
fn a_redirect_is_not_followed_and_counts_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &sqlite(dir.path()));
    let receiver = Receiver::start(dir.path(), 0, 0.0, 302);
    let (webhook, secret) = add_endpoint(&server, &receiver.url(), &["api_key.created"]);
    receiver.trust(&[&secret]);
    create_key(&server, "alice");
    receiver.wait_for("two attempts", Duration::from_secs(10), |r| r.len() >= 2);
    let (_, log) = admin(
        &server,
        "GET",
        &format!("/api/admin/webhooks/{webhook}/deliveries"),
        None,
    );
    let delivery = &log[0];
    assert_eq!(delivery["state"], "pending", "{delivery}");
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["status_code"], 302);
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{attempt}"
    );
}

#[test]
fn endpoints_on_private_addresses_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KEYWARD_DATABASE_URL", sqlite(dir.path())),
        ("KEYWARD_PEPPER", PEPPER.to_owned()),
        ("KEYWARD_JWT_SECRET", JWT_SECRET.to_owned()),
        ("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (server, _) = start_server_with(dir.path(), &env);
    for url in [
        "http://hooks.example.com/in",
        "https://127.0.0.1/in",
        "https://10.0.0.7/in",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/in",
        "https://[::ffff:192.168.0.1]/in",
        "https://localhost/in",
        "https://user:pw@hooks.example.com/in",
    ] {
        let (status, body) = admin(
            &server,
            "POST",
            "/api/admin/webhooks",
            Some(json!({"url": url, "events": ["api_key.created"]})),
        );
        assert_eq!(status, 422, "{url}: {body}");
        assert!(body.to_string().contains("url"), "{url}: {body}");
    }
    let (status, body) = admin(
        &server,
        "POST",
        "/api/admin/webhooks",
        Some(json!({"url": "https://hooks.example.com/in", "events": ["webhook.test"]})),
    );
    assert_eq!(status, 422, "{body}");
    let (status, _) = admin(
        &server,
        "POST",
        "/api/admin/webhooks",
        Some(json!({"url": "https://hooks.example.com/in", "events": ["api_key.created"]})),
    );
    assert_eq!(status, 200);
}

/// Two instances on one PostgreSQL database; one is killed (SIGKILL) while it
/// holds deliveries in flight, and the consumer goes down for a while: every event
/// still arrives, verified, none under two ids.
#[test]
#[cfg_attr(
    not(all(keyward_python_tests, keyward_postgres_tests)),
    ignore = "webhook cluster test: set KEYWARD_TEST_PYTHON (with \
              crates/server/tests/webhooks/requirements.txt) and KEYWARD_TEST_POSTGRES_URL"
)]
fn no_event_is_lost_through_a_kill_and_a_consumer_outage_on_two_instances() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(keyward_store::testing::postgres());
    let url = db.url_string();
    let dir = tempfile::tempdir().unwrap();
    let mut a = serve(dir.path(), &url);
    let b = serve(dir.path(), &url);
    // Slow answers: A is killed with deliveries in flight.
    let receiver = Receiver::start(dir.path(), 0, 1.0, 204);
    let port = receiver.port;
    let (_, secret) = add_endpoint(&a, &receiver.url(), &ALL_EVENTS);
    receiver.trust(&[&secret]);

    let mut keys = Vec::new();
    for n in 0..20 {
        let server = if n % 2 == 0 { &a } else { &b };
        keys.push((n, create_key(server, &format!("user{n}"))));
    }
    receiver.wait_for("deliveries under way", Duration::from_secs(10), |r| {
        !r.is_empty()
    });
    let _ = a.child.kill(); // SIGKILL
    let _ = a.child.wait();
    for (n, key) in &keys {
        as_user(
            &b,
            &format!("user{n}"),
            "DELETE",
            &format!("/api/api-keys/{key}"),
            None,
        );
    }
    // The consumer goes down, and comes back.
    receiver.stop();
    std::thread::sleep(Duration::from_secs(3));
    let receiver = Receiver::start(dir.path(), port, 0.0, 204);
    let received = receiver.wait_for("all 40 events", Duration::from_secs(90), |r| {
        per_key(r).values().map(Vec::len).sum::<usize>() >= 40
    });
    assert_verified_once_each(&received);
    for (key, events) in per_key(&received) {
        assert_eq!(events, ["api_key.created", "api_key.revoked"], "{key}");
    }
    let unique: BTreeSet<&str> = received.iter().filter_map(|r| r["id"].as_str()).collect();
    println!(
        "webhook cluster: {} events, {} deliveries received ({} repeated after the kill or outage)",
        unique.len(),
        received.len(),
        received.len() - unique.len()
    );
    drop(b);
    drop(db);
}
