//! One HTTP request through the real router, in-process (no sockets): what
//! keyward's routing, middleware, extractors, verification and JSON cost per request,
//! next to a do-nothing axum router answering the same request with a constant.
//!
//! `cargo bench -p keyward-bench --bench http`

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use axum::routing::post;
use divan::Bencher;
use http_body_util::BodyExt;
use keyward_core::input::NewKeyRequest;
use keyward_core::model::UserId;
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
    router: Router,
    body: Bytes,
    _dir: tempfile::TempDir,
}

fn keyward() -> Fixture {
    let runtime = keyward_bench::runtime();
    let (dir, url) = keyward_bench::temp_sqlite();
    let (router, key) = runtime.block_on(async {
        let app = keyward_bench::start_app(url, TOKEN).await;
        let request = NewKeyRequest {
            name: "bench".into(),
            permissions: vec!["READ_GRAPH".into(), "EXECUTE_GRAPH".into()],
            ..Default::default()
        };
        let created = app
            .engine
            .create_key(&UserId::parse("bench").unwrap(), &request)
            .await
            .unwrap();
        (app.router, created.plain_text.expose().to_owned())
    });
    let body = Bytes::from(format!(r#"{{"key":"{key}","permissions":["READ_GRAPH"]}}"#));
    Fixture {
        runtime,
        router,
        body,
        _dir: dir,
    }
}

fn baseline() -> Fixture {
    let runtime = keyward_bench::runtime();
    let router = Router::new().route(
        "/api/api-keys/verify",
        post(|| async {
            (
                [(CONTENT_TYPE, "application/json")],
                r#"{"valid":true,"code":"VALID","key_id":"019ac8a4-6a49-7b61-a2c1-6f1d0d6c9f3e","user_id":"bench","permissions":["EXECUTE_GRAPH","READ_GRAPH"]}"#,
            )
        }),
    );
    Fixture {
        runtime,
        router,
        body: Bytes::from_static(br#"{"key":"x","permissions":["READ_GRAPH"]}"#),
        _dir: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    fn verify(&self) -> Bytes {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/api-keys/verify")
            .header(CONTENT_TYPE, "application/json")
            .header(
                AUTHORIZATION,
                concat!("Bearer ", "bench-service-token-0123456789"),
            )
            .body(Body::from(self.body.clone()))
            .unwrap();
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.into_body().collect().await.unwrap().to_bytes()
        })
    }
}

/// POST /api/api-keys/verify through keyward's router, cache warm.
#[divan::bench]
fn keyward_verify(bencher: Bencher) {
    let f = keyward();
    assert!(f.verify().starts_with(br#"{"valid":true"#));
    bencher.bench_local(|| f.verify());
}

/// The same request through a router with one constant handler.
#[divan::bench]
fn baseline_verify(bencher: Bencher) {
    let f = baseline();
    bencher.bench_local(|| f.verify());
}
