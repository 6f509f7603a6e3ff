//! `TestApp`: the real router on a fresh SQLite file, with helpers to call it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use keyward::app::App;
use keyward::secrets::Secret;
use keyward::settings::{JwtSettings, Settings};
use keyward_core::hash::Peppers;
use keyward_core::model::Scope;
use keyward_core::permissions::Catalogue;
use keyward_core::time::Timestamp;
use keyward_engine::{Engine, EngineConfig};
use keyward_store::testing::{self, TestDatabase};
use keyward_store::{AnyStore, ConnectOptions};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdefghijklmnop";
pub const ADMIN_TOKEN: &str = "test-service-token-0123456789";
pub const PEPPER: &str = "test-pepper-0123456789abcdefghijklmnopqrst";

/// Where a test's database lives.
pub trait Backend {
    fn database() -> impl std::future::Future<Output = TestDatabase>;
}

/// A fresh SQLite file per test.
pub struct Sqlite;

impl Backend for Sqlite {
    async fn database() -> TestDatabase {
        testing::sqlite()
    }
}

/// A fresh database on the test PostgreSQL server per test.
#[cfg_attr(not(keyward_postgres_tests), allow(dead_code))]
pub struct Postgres;

impl Backend for Postgres {
    async fn database() -> TestDatabase {
        testing::postgres().await
    }
}

pub struct TestAppBuilder<B> {
    backend: std::marker::PhantomData<B>,
    max_connections: u32,
    max_keys_per_user: u32,
    catalogue: Option<Catalogue>,
    jwt: JwtSettings,
    via: Option<std::net::SocketAddr>,
    configure: Option<Configure>,
    metrics_token: Option<&'static str>,
    static_token: bool,
    github_keys: Option<String>,
    trusted_proxies: Option<&'static str>,
    shared: Option<TestDatabase>,
}

/// A change to the engine's settings before it starts.
type Configure = Box<dyn FnOnce(&mut EngineConfig)>;

impl<B: Backend> TestAppBuilder<B> {
    #[cfg_attr(not(keyward_postgres_tests), allow(dead_code))]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    pub fn max_keys_per_user(mut self, max: u32) -> Self {
        self.max_keys_per_user = max;
        self
    }

    pub fn permissions(mut self, names: &[&str]) -> Self {
        self.catalogue = Some(Catalogue::new(names).unwrap());
        self
    }

    pub fn jwt(mut self, jwt: JwtSettings) -> Self {
        self.jwt = jwt;
        self
    }

    /// `/metrics` asks for `token` (KEYWARD_METRICS_TOKEN).
    pub fn metrics_token(mut self, token: &'static str) -> Self {
        self.metrics_token = Some(token);
        self
    }

    /// `KEYWARD_GITHUB_SECRET_SCANNING=on`, GitHub's keys served at `url`.
    pub fn github_secret_scanning(mut self, url: String) -> Self {
        self.github_keys = Some(url);
        self
    }

    /// `KEYWARD_TRUSTED_PROXIES` (the test client is 127.0.0.1, trusted by default).
    pub fn trusted_proxies(mut self, list: &'static str) -> Self {
        self.trusted_proxies = Some(list);
        self
    }

    /// `KEYWARD_ADMIN_TOKEN=disabled`: only service credentials are let in.
    pub fn without_static_token(mut self) -> Self {
        self.static_token = false;
        self
    }

    /// Changes the engine's settings before it starts.
    pub fn engine(mut self, configure: impl FnOnce(&mut EngineConfig) + 'static) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    /// Connects to the (PostgreSQL) database through a proxy at `address`.
    #[cfg_attr(not(keyward_postgres_tests), allow(dead_code))]
    pub fn database_via(mut self, address: std::net::SocketAddr) -> Self {
        self.via = Some(address);
        self
    }

    /// A second instance on the database of `first` (which must outlive it).
    #[cfg_attr(not(keyward_postgres_tests), allow(dead_code))]
    pub fn another_instance_of(mut self, first: &TestApp<B>) -> Self {
        self.shared = Some(first.db.another_instance());
        self
    }

    pub async fn build(self) -> TestApp<B> {
        let db = match self.shared {
            Some(db) => db,
            None => B::database().await,
        };
        // The engine's clock is the system clock plus an offset tests can move.
        let offset = Arc::new(AtomicI64::new(0));
        let clock_offset = Arc::clone(&offset);
        let mut engine = EngineConfig::new(Peppers::parse(PEPPER).unwrap());
        engine.max_keys_per_user = self.max_keys_per_user;
        if let Some(catalogue) = self.catalogue {
            engine.catalogue = catalogue;
        }
        if let Some(configure) = self.configure {
            configure(&mut engine);
        }
        engine.clock = Arc::new(move || {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            Timestamp::from_millis(now + clock_offset.load(Ordering::SeqCst)).unwrap()
        });
        let database_url = match (&db.url, self.via) {
            #[cfg(keyward_postgres_tests)]
            (keyward_store::DatabaseUrl::Postgres(url), Some(proxy)) => {
                keyward_store::DatabaseUrl::Postgres(crate::proxy::redirect(url, proxy))
            }
            (url, _) => url.clone(),
        };
        let settings = Settings {
            http: keyward::settings::HttpSettings {
                metrics_token: self.metrics_token.map(Secret::new),
                github_secret_scanning: self
                    .github_keys
                    .map(|url| keyward::http::jwks::JwksUrl::parse(&url).unwrap()),
                trusted_proxies: keyward::http::client_address::TrustedProxies::parse(
                    self.trusted_proxies
                        .unwrap_or(keyward::http::client_address::TrustedProxies::DEFAULT),
                )
                .unwrap(),
                ..Default::default()
            },
            database_url,
            connect: ConnectOptions {
                max_connections: self.max_connections,
            },
            engine,
            jwt: self.jwt,
            admin_token: self.static_token.then(|| Secret::new(ADMIN_TOKEN)),
            local_secrets: None,
        };
        let app = App::start(&settings).await.unwrap();
        // Tests about the cache need it on: wait until the store watches for changes.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !app.engine.cache_active() {
            assert!(
                std::time::Instant::now() < deadline,
                "the cache never turned on"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Both backends share one set of snapshots: the shapes must not differ.
        let mut snapshots = insta::Settings::clone_current();
        snapshots.set_prepend_module_to_snapshot(false);
        TestApp {
            // As if served on a socket, to a client on loopback (a local proxy).
            router: app
                .router
                .layer(MockConnectInfo(std::net::SocketAddr::from((
                    [127, 0, 0, 1],
                    40000,
                )))),
            engine: app.engine,
            offset,
            _snapshots: snapshots.bind_to_scope(),
            db,
            backend: std::marker::PhantomData,
        }
    }
}

pub struct TestApp<B> {
    pub router: Router,
    pub engine: Engine<AnyStore>,
    pub db: TestDatabase,
    offset: Arc<AtomicI64>,
    _snapshots: insta::internals::SettingsBindDropGuard,
    backend: std::marker::PhantomData<B>,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl TestResponse {
    /// The response must be a JSON error with this status; returns its body.
    #[track_caller]
    pub fn error(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert!(
            self.body["message"].is_string(),
            "an error body has a message: {}",
            self.text
        );
        assert!(self.body.get("detail").is_some() && self.body.get("hint").is_some());
        &self.body
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text);
        &self.body
    }
}

/// Every management route that names a key, with a valid body where one is needed
/// (not `PUT …/rate-limit`: a user's JWT gets 403 there before anything is looked up).
pub fn key_routes(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/api/api-keys".to_owned(),
            Some(json!({"name": "k", "permissions": []})),
        ),
        (Method::GET, "/api/api-keys".to_owned(), None),
        (Method::GET, format!("/api/api-keys/{id}"), None),
        (Method::DELETE, format!("/api/api-keys/{id}"), None),
        (
            Method::PATCH,
            format!("/api/api-keys/{id}"),
            Some(json!({"name": "renamed"})),
        ),
        (Method::POST, format!("/api/api-keys/{id}/suspend"), None),
        (Method::POST, format!("/api/api-keys/{id}/reactivate"), None),
        (
            Method::PUT,
            format!("/api/api-keys/{id}/permissions"),
            Some(json!({"permissions": []})),
        ),
        (
            Method::POST,
            format!("/api/api-keys/{id}/rotate"),
            Some(json!({})),
        ),
    ]
}

pub fn hs256_token(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl<B: Backend> TestApp<B> {
    pub async fn new() -> Self {
        Self::builder().build().await
    }

    pub fn builder() -> TestAppBuilder<B> {
        TestAppBuilder {
            backend: std::marker::PhantomData,
            max_connections: ConnectOptions::default().max_connections,
            max_keys_per_user: 100,
            catalogue: None,
            jwt: JwtSettings {
                hs256_secret: Some(Secret::new(JWT_SECRET)),
                ..Default::default()
            },
            via: None,
            configure: None,
            metrics_token: None,
            static_token: true,
            github_keys: None,
            trusted_proxies: None,
            shared: None,
        }
    }

    /// Moves the engine's clock forward (JWT checks keep the real time).
    pub fn advance(&self, by: Duration) {
        self.offset
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// A valid user JWT, good for an hour.
    pub fn token(&self, user: &str) -> String {
        hs256_token(JWT_SECRET, json!({"sub": user, "exp": now_secs() + 3600}))
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    /// A management call as `user`.
    pub async fn as_user(
        &self,
        user: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let token = self.token(user);
        self.call(method, uri, Some(&token), body).await
    }

    /// Creates a key for `user`; returns the key's JSON and its plaintext.
    pub async fn create_key(&self, user: &str, body: Value) -> (Value, String) {
        let response = self
            .as_user(user, Method::POST, "/api/api-keys", Some(body))
            .await;
        let body = response.ok();
        let plain = body["plain_text_key"].as_str().unwrap().to_owned();
        (body["api_key"].clone(), plain)
    }

    /// A call with the service token, as the platform's services make it.
    pub async fn as_platform(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> TestResponse {
        self.call(method, uri, Some(ADMIN_TOKEN), body).await
    }

    /// Creates a key for `user` as the platform does (`POST
    /// /api/admin/users/{user}/api-keys`), which may set credits and a rate limit;
    /// returns the key's JSON and its plaintext.
    pub async fn create_key_as_platform(&self, user: &str, body: Value) -> (Value, String) {
        let response = self
            .as_platform(
                Method::POST,
                &format!("/api/admin/users/{user}/api-keys"),
                Some(body),
            )
            .await;
        let body = response.ok();
        let plain = body["plain_text_key"].as_str().unwrap().to_owned();
        (body["api_key"].clone(), plain)
    }

    /// Changes a key as the platform does (`PATCH /api/admin/api-keys/{id}`).
    pub async fn patch_as_platform(&self, id: &str, body: Value) -> TestResponse {
        self.as_platform(
            Method::PATCH,
            &format!("/api/admin/api-keys/{id}"),
            Some(body),
        )
        .await
    }

    /// Creates a key with these permissions; returns its id and plaintext.
    pub async fn key_with(&self, user: &str, permissions: &[&str]) -> (String, String) {
        let (key, plain) = self
            .create_key(
                user,
                json!({"name": "test key", "permissions": permissions}),
            )
            .await;
        (key["id"].as_str().unwrap().to_owned(), plain)
    }

    /// `last_used_at` as stored in the database (not the engine's pending view).
    pub async fn stored_last_used(&self, id: &str) -> Option<String> {
        use keyward_store::KeyStore;
        let key = self
            .engine
            .store()
            .get_key(Scope::Admin, id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        key.last_used_at.map(|t| t.to_rfc3339())
    }

    pub async fn verify(&self, key: &str, permissions: &[&str]) -> Value {
        let response = self
            .call(
                Method::POST,
                "/api/api-keys/verify",
                Some(ADMIN_TOKEN),
                Some(json!({"key": key, "permissions": permissions})),
            )
            .await;
        response.ok().clone()
    }

    /// A key's audit trail, oldest first, read with the service token.
    pub async fn key_events(&self, id: &str) -> Vec<Value> {
        let answer = self
            .call(
                Method::GET,
                &format!("/api/admin/api-keys/{id}/events"),
                Some(ADMIN_TOKEN),
                None,
            )
            .await;
        answer.ok()["events"].as_array().unwrap().clone()
    }

    /// Makes a service credential holding `scopes` (with the service token); its id
    /// and its secret.
    pub async fn credential_with(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let answer = self
            .call(
                Method::POST,
                "/api/admin/credentials",
                Some(ADMIN_TOKEN),
                Some(json!({"name": name, "scopes": scopes})),
            )
            .await;
        let made = answer.ok();
        (
            made["credential"]["id"].as_str().unwrap().to_owned(),
            made["secret"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn verify_code(&self, key: &str, permissions: &[&str]) -> String {
        self.verify(key, permissions).await["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
