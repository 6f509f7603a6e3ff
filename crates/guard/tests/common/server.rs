//! A real keyward server for the guard's tests: the service's own router, on a free
//! loopback port, with a fresh SQLite database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use keyward::app::App;
use keyward::secrets::Secret;
use keyward::settings::{JwtSettings, Settings};
use keyward_core::hash::Peppers;
use keyward_core::input::NewKeyRequest;
use keyward_core::model::UserId;
use keyward_engine::{Engine, EngineConfig};
use keyward_guard::{Guard, RemoteConfig};
use keyward_store::testing::TestDatabase;
use keyward_store::{AnyStore, ConnectOptions};

pub const SERVICE_TOKEN: &str = "remote-guard-service-token-0123456789";

/// A keyward server on a free loopback port, counting the verify calls it serves.
pub struct Keyward {
    pub url: String,
    /// The server's own router, for asking it in-process (forward authentication).
    pub router: Router,
    pub engine: Engine<AnyStore>,
    pub verify_calls: Arc<AtomicUsize>,
    _db: TestDatabase,
}

pub async fn keyward(configure: impl FnOnce(&mut EngineConfig)) -> Keyward {
    let db = keyward_store::testing::sqlite();
    let mut engine =
        EngineConfig::new(Peppers::parse("remote-guard-pepper-0123456789abcdefghij").unwrap());
    configure(&mut engine);
    let settings = Settings {
        http: Default::default(),
        database_url: db.url.clone(),
        connect: ConnectOptions::default(),
        engine,
        jwt: JwtSettings {
            hs256_secret: Some(Secret::new("remote-guard-jwt-secret-0123456789abcdef")),
            ..JwtSettings::default()
        },
        admin_token: Some(Secret::new(SERVICE_TOKEN)),
        local_secrets: None,
    };
    let app = App::start(&settings).await.unwrap();
    let verify_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&verify_calls);
    let router = app.router.layer(axum::middleware::map_request(
        move |request: Request<Body>| {
            let counter = Arc::clone(&counter);
            async move {
                if request.uri().path() == "/api/api-keys/verify" {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                request
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = router.clone();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
    Keyward {
        url: format!("http://{address}"),
        router,
        engine: app.engine,
        verify_calls,
        _db: db,
    }
}

impl Keyward {
    /// A key for alice, provisioned as the platform does (limits and credits allowed).
    pub async fn key(&self, request: NewKeyRequest) -> (String, String) {
        let created = self
            .engine
            .create_key_as_admin(&UserId::parse("alice").unwrap(), &request)
            .await
            .unwrap();
        (
            created.key.id.to_string(),
            created.plain_text.expose().to_owned(),
        )
    }

    pub async fn key_with(&self, permissions: &[&str]) -> (String, String) {
        self.key(NewKeyRequest {
            name: "guarded".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        })
        .await
    }

    pub fn calls(&self) -> usize {
        self.verify_calls.load(Ordering::SeqCst)
    }

    pub fn guard(&self, cache_ttl: Duration) -> Guard {
        let mut config = RemoteConfig::new(&self.url, SERVICE_TOKEN);
        config.cache_ttl = cache_ttl;
        Guard::remote(config).unwrap()
    }
}
