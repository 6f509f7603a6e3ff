//! Benchmark tools for keyward. The binaries are driven by `bench/run.py`:
//! - `baseline`: the same HTTP stack as keyward answering with a constant, the
//!   ceiling that keyward's verify throughput is compared against;
//! - `seed`: writes many keys straight through the store, and their plaintexts to a
//!   file for the load generator.
//!
//! `benches/verify.rs` measures one verification in-process (divan).
#![forbid(unsafe_code)]

use keyward_store::DatabaseUrl;

/// The runtime the in-process benchmarks run on: one worker for the engine's
/// background tasks (the change feed that keeps the cache trusted, the usage
/// flush); the measured futures are driven from the benchmark's own thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime starts")
}

/// A SQLite database in a fresh temporary directory (removed when it drops).
pub fn temp_sqlite() -> (tempfile::TempDir, DatabaseUrl) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .expect("a SQLite URL");
    (dir, url)
}

/// keyward's service (engine and router) on `url`, as `keyward serve` assembles it,
/// with `service_token` for the verify API, once its cache is active (so what is
/// measured is the warm path).
pub async fn start_app(url: DatabaseUrl, service_token: &str) -> keyward::app::App {
    use keyward::secrets::Secret;
    use keyward::settings::{JwtSettings, Settings};
    use std::time::{Duration, Instant};

    let settings = Settings {
        http: Default::default(),
        database_url: url,
        connect: keyward_store::ConnectOptions::default(),
        engine: keyward_engine::EngineConfig::new(
            keyward_core::hash::Peppers::parse("bench-pepper-0123456789abcdefghijklmnop")
                .expect("a valid pepper"),
        ),
        jwt: JwtSettings {
            hs256_secret: Some(Secret::new("bench-jwt-secret-0123456789abcdefghijkl")),
            ..Default::default()
        },
        admin_token: Some(Secret::new(service_token)),
        local_secrets: None,
    };
    let app = keyward::app::App::start(&settings)
        .await
        .expect("keyward starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.engine.cache_active() {
        assert!(Instant::now() < deadline, "the cache never became active");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app
}
