//! Shared fixtures: a database used by both an in-process server and the binary,
//! and helpers to run `keyward serve` as a real process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use keyward::app::App;
use keyward::secrets::Secret;
use keyward::settings::{JwtSettings, Settings};
use keyward_core::hash::Peppers;
use keyward_engine::EngineConfig;
use keyward_store::DatabaseUrl;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const JWT_SECRET: &str = "cli-test-jwt-secret-0123456789abcdefghij";
pub const ADMIN_TOKEN: &str = "cli-test-service-token-0123";
pub const PEPPER: &str = "cli-test-pepper-0123456789abcdefghijklmnop";

/// A database shared by a CLI and an in-process server, like an operator's shell
/// beside a running service.
pub struct Shared {
    pub dir: tempfile::TempDir,
    pub app: App,
}

impl Shared {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            http: Default::default(),
            database_url: DatabaseUrl::Sqlite(dir.path().join("keyward.db")),
            connect: Default::default(),
            engine: EngineConfig::new(Peppers::parse(PEPPER).unwrap()),
            jwt: JwtSettings {
                hs256_secret: Some(Secret::new(JWT_SECRET)),
                ..Default::default()
            },
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            local_secrets: None,
        };
        let app = App::start(&settings).await.unwrap();
        Self { dir, app }
    }

    pub fn cli(&self) -> Command {
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

    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.cli();
        command.args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    pub async fn run_json(&self, args: &[&str]) -> Value {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    pub async fn http(&self, method: &str, uri: &str, bearer: &str, body: Option<Value>) -> Value {
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

    /// Creates a key with the CLI; returns the `--json` output.
    pub async fn create_with_cli(&self, name: &str, permissions: &str) -> Value {
        let mut args = vec![
            "keys", "create", "--user", "alice", "--name", name, "--json",
        ];
        if !permissions.is_empty() {
            args.extend(["-p", permissions]);
        }
        self.run_json(&args).await
    }

    pub async fn verify_code(&self, key: &str) -> String {
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
pub fn clean_command(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command.current_dir(cwd);
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYWARD_") {
            command.env_remove(name);
        }
    }
    command
}

pub fn user_token(user: &str) -> String {
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

pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(cwd: &Path) -> Server {
    start_server_with(cwd, &[]).0
}

/// Starts `keyward serve` on a free port; the log lines it writes arrive on the
/// returned channel.
pub fn start_server_with(
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
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    try_http(address, method, path, bearer, body).unwrap()
}

/// [`http`], with connection failures (a server that is gone) as errors.
pub fn try_http(
    address: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    exchange(stream, address, method, path, bearer, body)
}

/// One HTTP/1.1 request on `stream` (any transport), naming `host`: the status and
/// the JSON body.
pub fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

pub fn cli_in(cwd: &Path, args: &[&str]) -> String {
    let output = clean_command(cwd).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Runs a Python test program (a `KEYWARD_TEST_PYTHON` command), writing nothing into
/// the source tree; its standard output, or a panic with all it said unless it
/// succeeded.
pub fn run_python(mut command: Command, what: &str) -> String {
    let output = command
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|err| panic!("{what} could not be run: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
