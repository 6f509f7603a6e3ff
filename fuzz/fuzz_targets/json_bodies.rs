//! Fuzzes the JSON request bodies through the real HTTP router, in-process.
//!
//! One process builds the service once (as `crates/server/tests/http/common.rs`
//! does: `App::start` on a fresh SQLite file, HS256 user JWTs, the service token),
//! then every input is sent, as the body with `Content-Type: application/json` and
//! valid credentials, to each route that reads a JSON body:
//!
//! - `POST /api/api-keys` (a user's JWT; a key it creates is deleted again at once,
//!   so the database and the per-user key cap stay where they were),
//! - `PUT /api/api-keys/{id}/permissions` (the owner's JWT, on a key that exists),
//! - `PUT /api/api-keys/{id}/rate-limit` (the same),
//! - `POST /api/api-keys/verify` (the service token).
//!
//! Every `$KEY` in the input is replaced by the plaintext of that existing key first,
//! so the fuzzer can reach the verify paths of a real key (VALID, insufficient
//! permissions) and not only MALFORMED / NOT_FOUND.
//!
//! Asserted for every answer: no panic (libfuzzer-sys aborts on any panic, also one
//! that the router's Observe layer would turn into a 500), never a 5xx status nor
//! the router's own 408 deadline, and a JSON body; when the status is >= 400 the body
//! is the API's error shape: a string `message`, and `detail` and `hint` present.
//! Successful answers are checked lightly: a created key's plaintext parses with the
//! key format, a verdict has `valid` and `code`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use keyward::app::App;
use keyward::secrets::Secret;
use keyward::settings::{JwtSettings, Settings};
use keyward_core::hash::Peppers;
use keyward_core::key::KeyFormat;
use keyward_core::model::UserId;
use keyward_engine::{Engine, EngineConfig};
use keyward_store::{AnyStore, ConnectOptions, DatabaseUrl};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower::ServiceExt;

const JWT_SECRET: &str = "fuzz-jwt-secret-0123456789abcdefghijklmnop";
const ADMIN_TOKEN: &str = "fuzz-service-token-0123456789";
const PEPPER: &str = "fuzz-pepper-0123456789abcdefghijklmnopqrst";
/// Holds the key whose permissions are set and that `$KEY` verifies.
const OWNER: &str = "fuzz-owner";
/// Creates keys from fuzz bodies; deleted after every successful create.
const CREATOR: &str = "fuzz-creator";
const KEY_PLACEHOLDER: &[u8] = b"$KEY";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    engine: Engine<AnyStore>,
    owner_token: String,
    creator_token: String,
    /// `/api/api-keys/{id}/permissions` and `.../rate-limit` for the owner's key.
    permissions_uri: String,
    rate_limit_uri: String,
    key_id: String,
    plain_key: String,
    /// `KEYWARD_FUZZ_TRACE=1`: print each route's status and body (to see what a
    /// corpus reaches, e.g. with `cargo fuzz run json_bodies <dir> -- -runs=0`).
    trace: bool,
    _db_dir: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(setup)
}

/// A user JWT that stays valid for the longest fuzzing session.
fn token(user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user, "exp": now + 10 * 365 * 24 * 3600}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A fresh directory for this process's SQLite file (the store refuses in-memory
/// SQLite), on tmpfs when there is one. libFuzzer ends the process with `exit`, so
/// no destructor runs: directories of processes that are gone are removed here.
fn database_dir() -> PathBuf {
    let base = if cfg!(target_os = "linux") && std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    #[cfg(target_os = "linux")]
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("keyward-fuzz-") {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    let dir = base.join(format!("keyward-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the fuzzing database");
    dir
}

fn setup() -> Fixture {
    // One thread: background tasks (usage flush, change watch) run while a request
    // is being answered, which keeps runs close to deterministic.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db_dir = database_dir();
    let mut engine = EngineConfig::new(Peppers::parse(PEPPER).unwrap());
    // The per-user write limit (60 a minute) would turn almost every accepted body
    // into a 429 after the first minute, and the writes behind it would go untested.
    // It is checked after a body is validated, so the bodies are fuzzed either way.
    engine.user_write_limit = None;
    let settings = Settings {
        database_url: DatabaseUrl::Sqlite(db_dir.join("keyward.db")),
        http: Default::default(),
        connect: ConnectOptions::default(),
        engine,
        jwt: JwtSettings {
            hs256_secret: Some(Secret::new(JWT_SECRET)),
            ..Default::default()
        },
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        local_secrets: None,
    };
    let owner_token = token(OWNER);
    let (app, created) = runtime.block_on(async {
        let app = App::start(&settings).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !app.engine.cache_active() {
            assert!(Instant::now() < deadline, "the cache never turned on");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let body = json!({"name": "fuzz key", "permissions": ["READ_GRAPH", "IDENTITY"]});
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/api-keys")
            .header(header::AUTHORIZATION, format!("Bearer {owner_token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let created: Value = serde_json::from_slice(&bytes).unwrap();
        (app, created)
    });
    let key_id = created["api_key"]["id"].as_str().unwrap().to_owned();
    Fixture {
        runtime,
        router: app.router,
        engine: app.engine,
        owner_token,
        creator_token: token(CREATOR),
        permissions_uri: format!("/api/api-keys/{key_id}/permissions"),
        rate_limit_uri: format!("/api/api-keys/{key_id}/rate-limit"),
        key_id,
        plain_key: created["plain_text_key"].as_str().unwrap().to_owned(),
        trace: std::env::var_os("KEYWARD_FUZZ_TRACE").is_some(),
        _db_dir: db_dir,
    }
}

/// `data` with every `$KEY` replaced by the owner's plaintext key.
fn substitute(data: &[u8], key: &str) -> Bytes {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest
        .windows(KEY_PLACEHOLDER.len())
        .position(|w| w == KEY_PLACEHOLDER)
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(key.as_bytes());
        rest = &rest[at + KEY_PLACEHOLDER.len()..];
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// Sends `body` and checks the invariants every answer must hold; returns the
/// status and the parsed body.
async fn send(
    f: &Fixture,
    method: Method,
    uri: &str,
    bearer: &str,
    body: &Bytes,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.clone()))
        .unwrap();
    let response = f.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let route = format!("{method} {uri}");
    if f.trace {
        eprintln!("{route} -> {status} {text}");
    }
    assert!(
        !status.is_server_error(),
        "{route}: server error {status}: {text}"
    );
    assert_ne!(
        status,
        StatusCode::REQUEST_TIMEOUT,
        "{route}: the request hit the router's deadline: {text}"
    );
    let json: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{route}: {status} with a body that is not JSON ({e}): {text}"));
    if status.as_u16() >= 400 {
        assert!(
            json["message"].is_string(),
            "{route}: {status} without a string `message`: {text}"
        );
        assert!(
            json.get("detail").is_some() && json.get("hint").is_some(),
            "{route}: {status} without `detail`/`hint`: {text}"
        );
    }
    (status, json)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let body = substitute(data, &f.plain_key);
    f.runtime.block_on(async {
        let (status, json) = send(f, Method::POST, "/api/api-keys", &f.creator_token, &body).await;
        if status == StatusCode::OK {
            let plain = json["plain_text_key"].as_str().expect("plain_text_key");
            KeyFormat::default()
                .parse(plain)
                .expect("a created key parses");
            assert_eq!(json["api_key"]["user_id"], CREATOR);
            // Keep the database (and the creator's key count) as it was.
            let deleted = f
                .engine
                .delete_user(&UserId::parse(CREATOR).unwrap())
                .await
                .expect("deleting the creator's keys");
            assert_eq!(deleted, 1);
        }

        let (status, json) = send(f, Method::PUT, &f.permissions_uri, &f.owner_token, &body).await;
        if status == StatusCode::OK {
            assert_eq!(json["id"], f.key_id.as_str());
            assert!(json["permissions"].is_array());
        }

        let (status, json) = send(f, Method::PUT, &f.rate_limit_uri, &f.owner_token, &body).await;
        if status == StatusCode::OK {
            assert_eq!(json["id"], f.key_id.as_str());
            assert!(json["rate_limit"].is_null() || json["rate_limit"].is_object());
        }

        let (status, json) =
            send(f, Method::POST, "/api/api-keys/verify", ADMIN_TOKEN, &body).await;
        if status == StatusCode::OK {
            assert!(
                json["valid"].is_boolean() && json["code"].is_string(),
                "{json}"
            );
            if json["valid"] == true {
                assert_eq!(json["key_id"], f.key_id.as_str());
            }
        }
    });
});
