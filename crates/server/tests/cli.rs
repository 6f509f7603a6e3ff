//! The `keyward` binary: admin commands against the database a server uses, token
//! minting, and `serve` started with no configuration at all.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use keyward::app::App;
use keyward::config::Secret;
use keyward::settings::{JwtSettings, Settings};
use keyward_core::hash::Peppers;
use keyward_engine::EngineConfig;
use keyward_store::DatabaseUrl;
use serde_json::{Value, json};
use tower::ServiceExt;

const JWT_SECRET: &str = "cli-test-jwt-secret-0123456789abcdefghij";
const ADMIN_TOKEN: &str = "cli-test-service-token-0123";
const PEPPER: &str = "cli-test-pepper-0123456789abcdefghijklmnop";

/// A database shared by a CLI and an in-process server, like an operator's shell
/// beside a running service.
struct Shared {
    dir: tempfile::TempDir,
    app: App,
}

impl Shared {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            database_url: DatabaseUrl::Sqlite(dir.path().join("keyward.db")),
            engine: EngineConfig::new(Peppers::parse(PEPPER).unwrap()),
            jwt: JwtSettings {
                hs256_secret: Some(Secret::new(JWT_SECRET)),
                ..Default::default()
            },
            admin_token: Secret::new(ADMIN_TOKEN),
            local_secrets: None,
        };
        let app = App::start(&settings).await.unwrap();
        Self { dir, app }
    }

    fn cli(&self) -> Command {
        let mut command = clean_command(self.dir.path());
        command
            .env(
                "KEYWARD_DATABASE_URL",
                format!("sqlite://{}", self.dir.path().join("keyward.db").display()),
            )
            .env("KEYWARD_JWT_SECRET", JWT_SECRET)
            .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("KEYWARD_PEPPER", PEPPER);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.cli();
        command.args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    async fn run_json(&self, args: &[&str]) -> Value {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    async fn http(&self, method: &str, uri: &str, bearer: &str, body: Option<Value>) -> Value {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => {
                request = request.header(header::CONTENT_LENGTH, 0);
                request.body(Body::empty())
            }
        };
        let response = self
            .app
            .router
            .clone()
            .oneshot(request.unwrap())
            .await
            .unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn verify_code(&self, key: &str) -> String {
        let verdict = self
            .http(
                "POST",
                "/api/api-keys/verify",
                ADMIN_TOKEN,
                Some(json!({"key": key})),
            )
            .await;
        verdict["code"].as_str().unwrap().to_owned()
    }
}

/// The binary with no `KEYWARD_*` settings inherited from the environment.
fn clean_command(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command.current_dir(cwd);
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYWARD_") {
            command.env_remove(name);
        }
    }
    command
}

fn user_token(user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_by_the_cli_verifies_through_the_server() {
    let shared = Shared::new().await;
    let created = shared
        .run_json(&[
            "keys",
            "create",
            "--user",
            "alice",
            "--name",
            "ci",
            "-p",
            "READ_GRAPH,EXECUTE_GRAPH",
            "--json",
        ])
        .await;
    assert_eq!(
        created["api_key"]["permissions"],
        json!(["EXECUTE_GRAPH", "READ_GRAPH"])
    );
    let plain = created["plain_text_key"].as_str().unwrap();
    assert_eq!(shared.verify_code(plain).await, "VALID");

    // The owner sees it through the API.
    let listed = shared
        .http("GET", "/api/api-keys", &user_token("alice"), None)
        .await;
    assert_eq!(listed[0]["id"], created["api_key"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_shows_keys_created_through_the_server() {
    let shared = Shared::new().await;
    let created = shared
        .http(
            "POST",
            "/api/api-keys",
            &user_token("bob"),
            Some(json!({"name": "from-api", "permissions": ["IDENTITY"]})),
        )
        .await;
    let id = created["api_key"]["id"].as_str().unwrap();

    let listed = shared.run_json(&["keys", "list", "--json"]).await;
    assert_eq!(listed, json!([created["api_key"]]));
    let shown = shared.run_json(&["keys", "show", id, "--json"]).await;
    assert_eq!(shown, created["api_key"]);

    let table = shared.run(&["keys", "list", "--user", "bob"]).await;
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains("from-api") && text.contains("IDENTITY") && text.contains("ACTIVE"));
    let others = shared.run(&["keys", "list", "--user", "carol"]).await;
    assert_eq!(String::from_utf8(others.stdout).unwrap(), "no keys\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_by_the_cli_reaches_a_running_server_at_once() {
    let shared = Shared::new().await;
    let created = shared
        .http(
            "POST",
            "/api/api-keys",
            &user_token("alice"),
            Some(json!({"name": "k", "permissions": []})),
        )
        .await;
    let id = created["api_key"]["id"].as_str().unwrap();
    let plain = created["plain_text_key"].as_str().unwrap();
    // The server caches the key.
    assert_eq!(shared.verify_code(plain).await, "VALID");
    assert_eq!(shared.verify_code(plain).await, "VALID");

    let revoked = shared.run_json(&["keys", "revoke", id, "--json"]).await;
    assert_eq!(revoked["status"], "REVOKED");
    let started = Instant::now();
    while shared.verify_code(plain).await != "REVOKED" {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the server kept a revoked key valid"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_changes_status_and_permissions() {
    let shared = Shared::new().await;
    let created = shared
        .run_json(&["keys", "create", "--user", "alice", "--name", "k", "--json"])
        .await;
    let id = created["api_key"]["id"].as_str().unwrap();
    assert_eq!(
        shared.run_json(&["keys", "suspend", id, "--json"]).await["status"],
        "SUSPENDED"
    );
    assert_eq!(
        shared.run_json(&["keys", "reactivate", id, "--json"]).await["status"],
        "ACTIVE"
    );
    let rescoped = shared
        .run_json(&[
            "keys",
            "set-permissions",
            id,
            "READ_BLOCK,IDENTITY",
            "--json",
        ])
        .await;
    assert_eq!(rescoped["permissions"], json!(["IDENTITY", "READ_BLOCK"]));
    let cleared = shared
        .run_json(&["keys", "set-permissions", id, "--json"])
        .await;
    assert_eq!(cleared["permissions"], json!([]));

    let again = shared.run(&["keys", "reactivate", id]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("only a suspended key can be reactivated")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_clear_and_exit_non_zero() {
    let shared = Shared::new().await;
    let cases: [(&[&str], &str); 4] = [
        (
            &["keys", "show", "01900000-0000-7000-8000-000000000000"],
            "no key with this id",
        ),
        (&["keys", "show", "nope"], "not a key id"),
        (
            &["keys", "create", "--user", "alice", "--name", " "],
            "name: must not be empty",
        ),
        (
            &[
                "keys", "create", "--user", "alice", "--name", "k", "-p", "ROOT",
            ],
            "unknown permission(s): ROOT",
        ),
    ];
    for (args, message) in cases {
        let output = shared.run(args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verify_reads_the_key_from_stdin_and_reports_by_exit_code() {
    let shared = Shared::new().await;
    let created = shared
        .run_json(&[
            "keys",
            "create",
            "--user",
            "alice",
            "--name",
            "k",
            "-p",
            "READ_GRAPH",
            "--json",
        ])
        .await;
    let plain = created["plain_text_key"].as_str().unwrap().to_owned();
    let verify = |args: &'static [&'static str], input: String| {
        let mut command = shared.cli();
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut child = command.spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let ok = verify(
        &["keys", "verify", "-p", "READ_GRAPH"],
        format!("{plain}\n"),
    )
    .await;
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("VALID"));
    let denied = verify(
        &["keys", "verify", "-", "-p", "WRITE_GRAPH", "--json"],
        plain.clone(),
    )
    .await;
    assert_eq!(denied.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&denied.stdout).unwrap();
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
    let garbage = verify(&["keys", "verify"], "agpt_nope\n".into()).await;
    assert_eq!(garbage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&garbage.stdout).starts_with("MALFORMED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_tokens_are_accepted_by_the_server() {
    let shared = Shared::new().await;
    let output = shared
        .run(&["token", "--user", "dave", "--ttl", "5m"])
        .await;
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let listed = shared
        .http("GET", "/api/api-keys", token.trim(), None)
        .await;
    assert_eq!(listed, json!([]));
    let admin = shared.run(&["token", "--admin"]).await;
    assert_eq!(String::from_utf8(admin.stdout).unwrap().trim(), ADMIN_TOKEN);
    let bad = shared
        .run(&["token", "--user", "dave", "--ttl", "99d"])
        .await;
    assert!(!bad.status.success());
}

// ---- `keyward serve` with no configuration ------------------------------------

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(cwd: &Path) -> Server {
    start_server_with(cwd, &[]).0
}

/// Starts `keyward serve` on a free port; the log lines it writes arrive on the
/// returned channel.
fn start_server_with(
    cwd: &Path,
    env: &[(&str, &str)],
) -> (Server, std::sync::mpsc::Receiver<String>) {
    let mut command = clean_command(cwd);
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = address_tx.send(format!("127.0.0.1:{port}"));
            }
            let _ = lines_tx.send(line);
        }
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server reports its address");
    (Server { child, address }, lines_rx)
}

/// A one-shot HTTP/1.1 request; returns the status and the body.
fn http(
    address: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn cli_in(cwd: &Path, args: &[&str]) -> String {
    let output = clean_command(cwd).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn serve_runs_with_no_configuration_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cwd: PathBuf = dir.path().to_owned();
    let mut server = start_server(&cwd);

    // The local trial's files appear beside each other, the secrets private.
    let secrets = cwd.join("keyward.db.secrets");
    assert!(cwd.join("keyward.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    assert_eq!(http(&server.address, "GET", "/healthz", None, None).0, 200);
    let token = cli_in(&cwd, &["token", "--user", "alice"]);
    let (status, created) = http(
        &server.address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "trial", "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(status, 200, "{created}");
    let admin = cli_in(&cwd, &["token", "--admin"]);
    let key = created["plain_text_key"].as_str().unwrap();
    let (_, verdict) = http(
        &server.address,
        "POST",
        "/api/api-keys/verify",
        Some(&admin),
        Some(&json!({"key": key, "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(verdict["code"], "VALID");

    // SIGTERM: the server finishes, writes the pending last_used_at and exits 0.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let listed: Value = serde_json::from_str(&cli_in(&cwd, &["keys", "list", "--json"])).unwrap();
    assert!(
        listed[0]["last_used_at"].is_string(),
        "usage was flushed on shutdown: {listed}"
    );

    // A second start reuses the same secrets: the old token still works.
    let server = start_server(&cwd);
    let (status, listed) = http(&server.address, "GET", "/api/api-keys", Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "trial");
}

#[test]
fn logs_are_json_lines_and_never_contain_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (mut server, lines) = start_server_with(
        cwd,
        &[("KEYWARD_LOG", "debug"), ("KEYWARD_LOG_FORMAT", "json")],
    );
    let token = cli_in(cwd, &["token", "--user", "erin"]);
    let admin = cli_in(cwd, &["token", "--admin"]);
    let (_, created) = http(
        &server.address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "logged", "permissions": []})),
    );
    let key = created["plain_text_key"].as_str().unwrap().to_owned();
    let id = created["api_key"]["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        http(
            &server.address,
            "POST",
            "/api/api-keys/verify",
            Some(&admin),
            Some(&json!({"key": key})),
        );
    }
    http(
        &server.address,
        "POST",
        "/api/api-keys/verify",
        Some(&admin),
        Some(&json!({"key": format!("{key}x")})),
    );
    http(
        &server.address,
        "DELETE",
        &format!("/api/api-keys/{id}"),
        Some(&token),
        None,
    );
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    server.child.wait().unwrap();

    // The reader thread ends (and the channel with it) when the process's stderr closes.
    let logged: Vec<String> = lines.iter().collect();
    assert!(logged.len() >= 4, "{logged:?}");
    for line in &logged {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
    }
    let all = logged.join("\n");
    assert!(all.contains(&id), "key ids are logged");
    for secret in [&key[8..46], token.as_str(), admin.as_str()] {
        assert!(!all.contains(secret), "a secret reached the log");
    }
    let secrets = std::fs::read_to_string(cwd.join("keyward.db.secrets")).unwrap();
    let secrets: Value = serde_json::from_str(&secrets).unwrap();
    for name in ["pepper", "jwt_secret"] {
        assert!(
            !all.contains(secrets[name].as_str().unwrap()),
            "{name} reached the log"
        );
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut server = start_server(cwd);
    let token = cli_in(cwd, &["token", "--user", "frank"]);
    let admin = cli_in(cwd, &["token", "--admin"]);
    let (_, created) = http(
        &server.address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "k", "permissions": []})),
    );
    let body = json!({"key": created["plain_text_key"]}).to_string();

    // Headers and half the body, then the signal, then the rest.
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (first, second) = body.split_at(body.len() / 2);
    write!(
        stream,
        "POST /api/api-keys/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server waits for the request"
    );
    stream.write_all(second.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"code\":\"VALID\""), "{response}");

    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // New connections are no longer accepted.
    assert!(TcpStream::connect(&server.address).is_err());
}

#[test]
fn sigint_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn admin_commands_in_the_wrong_directory_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["keys", "list"][..], &["token", "--user", "alice"]] {
        let output = clean_command(dir.path()).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("run `keyward serve`"), "{args:?}: {stderr}");
    }
    let configured = clean_command(dir.path())
        .args(["keys", "list"])
        .env("KEYWARD_PEPPER", PEPPER)
        .env("KEYWARD_JWT_SECRET", JWT_SECRET)
        .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(configured.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&configured.stderr).contains("no database at"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file was created"
    );
}

#[test]
fn a_partial_secret_configuration_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = clean_command(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("KEYWARD_PEPPER"), "{stderr}");
    assert!(!dir.path().join("keyward.db.secrets").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_openapi_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = clean_command(dir.path()).arg("migrate").output().unwrap();
    assert!(migrate.status.success());
    assert_eq!(
        String::from_utf8_lossy(&migrate.stdout),
        "database is up to date\n"
    );
    assert!(dir.path().join("keyward.db").exists());
    // Running it again changes nothing.
    assert!(
        clean_command(dir.path())
            .arg("migrate")
            .output()
            .unwrap()
            .status
            .success()
    );

    let shared = Shared::new().await;
    let printed = shared.run(&["openapi"]).await;
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let response = shared
        .app
        .router
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let served: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(printed, served);
}
