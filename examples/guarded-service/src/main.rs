//! A service whose API is protected by keyward keys, verified in this process.
//!
//! ```sh
//! KEYWARD_DATABASE_URL=sqlite://keyward.db KEYWARD_PEPPER=… cargo run -p guarded-service
//! curl -H "X-API-Key: agpt_…" http://127.0.0.1:3000/graphs
//! ```
//!
//! It opens keyward's database (the one `keyward serve` or the CLI uses) with the same
//! pepper, and serves `GET /graphs` (needs READ_GRAPH) and `POST /graphs/run` (needs
//! EXECUTE_GRAPH). `GET /health` is open.

use axum::Router;
use axum::routing::{get, post};
use keyward_core::hash::Peppers;
use keyward_engine::{Engine, EngineConfig};
use keyward_guard::{Guard, KeyIdentity};
use keyward_store::{DatabaseUrl, Store};

async fn list_graphs(key: KeyIdentity) -> String {
    format!("graphs of {} (key {})\n", key.user_id, key.key_id)
}

async fn run_graph(key: KeyIdentity) -> String {
    format!("graph run for {}\n", key.user_id)
}

/// The service's routes, protected by `guard`.
pub fn app(guard: &Guard) -> anyhow::Result<Router> {
    let read = Router::new()
        .route("/graphs", get(list_graphs))
        .layer(guard.require(&["READ_GRAPH"])?);
    let execute = Router::new()
        .route("/graphs/run", post(run_graph))
        .layer(guard.require(&["EXECUTE_GRAPH"])?);
    Ok(Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .merge(read)
        .merge(execute))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url =
        std::env::var("KEYWARD_DATABASE_URL").unwrap_or_else(|_| "sqlite://keyward.db".into());
    let pepper = std::env::var("KEYWARD_PEPPER")
        .map_err(|_| anyhow::anyhow!("set KEYWARD_PEPPER to keyward's pepper"))?;
    let store = keyward_store::connect(&DatabaseUrl::parse(&url)?).await?;
    store.migrate().await?;
    let engine = Engine::start(store, EngineConfig::new(Peppers::parse(&pepper)?));
    let guard = Guard::in_process(engine.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(&guard)?).await?;
    engine.shutdown().await;
    Ok(())
}
