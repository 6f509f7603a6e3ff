//! A do-nothing HTTP server: axum on Tokio's default multi-threaded runtime, like
//! `keyward serve`, answering `POST /api/api-keys/verify` with a constant verdict of
//! the same shape and size as keyward's. Whatever keyward's verify throughput lacks
//! compared with this is the cost of keyward's own work, not of the transport.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post};
use clap::Parser;

// The same allocator as `keyward`: the comparison is about keyward's work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A verdict as keyward sends it for a valid key.
const VERDICT: &str = r#"{"valid":true,"code":"VALID","key_id":"019ac8a4-6a49-7b61-a2c1-6f1d0d6c9f3e","user_id":"bench-user-17","permissions":["EXECUTE_GRAPH","READ_GRAPH"]}"#;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    bind: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = Router::new()
        .route(
            "/api/api-keys/verify",
            post(|| async { ([(CONTENT_TYPE, "application/json")], VERDICT) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&args.bind).await?;
    eprintln!("baseline listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
