//! One request through keyward-guard in front of an axum route, in each mode: what a
//! protected service pays per request.
//!
//! `cargo bench -p keyward-bench --bench guard`
//!
//! - `in_process`: the engine on a SQLite file in this process, cache warm;
//! - `remote_cached`: a verdict the remote guard remembers (within `cache_ttl`);
//! - `remote_uncached`: `cache_ttl` zero, so one HTTP call per request to a keyward
//!   server on 127.0.0.1 (the same process's runtime, a real socket);
//! - `unguarded`: the same route without the guard, the floor.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use divan::Bencher;
use keyward_core::input::NewKeyRequest;
use keyward_core::model::UserId;
use keyward_engine::Engine;
use keyward_guard::{Guard, RemoteConfig, VerifiedKey};
use keyward_store::AnyStore;
use tokio::runtime::Runtime;
use tower::ServiceExt;

// The server's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

const TOKEN: &str = "bench-service-token-0123456789";

struct Fixture {
    runtime: Runtime,
    engine: Engine<AnyStore>,
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

/// A keyward server on a free loopback port with one READ_GRAPH key.
fn keyward() -> Fixture {
    let runtime = keyward_bench::runtime();
    let (dir, url) = keyward_bench::temp_sqlite();
    let (engine, address, key) = runtime.block_on(async {
        let app = keyward_bench::start_app(url, TOKEN).await;
        let request = NewKeyRequest {
            name: "bench".into(),
            permissions: vec!["READ_GRAPH".into()],
            ..Default::default()
        };
        let created = app
            .engine
            .create_key(&UserId::parse("bench").unwrap(), &request)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = app.router;
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (app.engine, address, created.plain_text.expose().to_owned())
    });
    Fixture {
        runtime,
        engine,
        url: format!("http://{address}"),
        key,
        _dir: dir,
    }
}

async fn graphs(key: VerifiedKey) -> String {
    key.user_id
}

impl Fixture {
    fn remote(&self, cache_ttl: Duration) -> Guard {
        let mut config = RemoteConfig::new(&self.url, TOKEN);
        config.cache_ttl = cache_ttl;
        Guard::remote(config).unwrap()
    }

    fn app(&self, guard: Option<&Guard>) -> Router {
        match guard {
            Some(guard) => Router::new()
                .route("/graphs", get(graphs))
                .layer(guard.require(&["READ_GRAPH"]).unwrap()),
            None => Router::new().route("/graphs", get(|| async { "bench".to_owned() })),
        }
    }

    fn call(&self, app: &Router) -> StatusCode {
        let request = Request::get("/graphs")
            .header("x-api-key", &self.key)
            .body(Body::empty())
            .unwrap();
        // Driven on the runtime (not the bench thread): the remote call needs its
        // connection pool's tasks, which run there.
        self.runtime
            .block_on(async { app.clone().oneshot(request).await.unwrap().status() })
    }

    fn bench(&self, bencher: Bencher, app: Router) {
        assert_eq!(self.call(&app), StatusCode::OK);
        bencher.bench_local(|| self.call(&app));
    }
}

#[divan::bench]
fn unguarded(bencher: Bencher) {
    let f = keyward();
    f.bench(bencher, f.app(None));
}

#[divan::bench]
fn in_process(bencher: Bencher) {
    let f = keyward();
    let guard = Guard::in_process(f.engine.clone());
    f.bench(bencher, f.app(Some(&guard)));
}

#[divan::bench]
fn remote_cached(bencher: Bencher) {
    let f = keyward();
    let guard = f.remote(Duration::from_secs(3600));
    f.bench(bencher, f.app(Some(&guard)));
}

#[divan::bench]
fn remote_uncached(bencher: Bencher) {
    let f = keyward();
    let guard = f.remote(Duration::ZERO);
    f.bench(bencher, f.app(Some(&guard)));
}
