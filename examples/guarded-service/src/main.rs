//! A service whose API is protected by keyward keys.
//!
//! ```sh
//! # remote mode: ask a running keyward server
//! KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_SERVICE_TOKEN=… cargo run -p guarded-service
//! # in-process mode: open keyward's database, with keyward's pepper
//! KEYWARD_DATABASE_URL=sqlite://keyward.db KEYWARD_PEPPER=… cargo run -p guarded-service
//!
//! curl -H "X-API-Key: agpt_…" http://127.0.0.1:3000/graphs
//! ```
//!
//! It serves `GET /graphs` (needs READ_GRAPH) and `POST /graphs/run` (needs
//! EXECUTE_GRAPH). `GET /health` is open. The marked parts are quoted in
//! docs/INTEGRATIONS.md; a test keeps the two the same.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use keyward_core::hash::Peppers;
use keyward_engine::{Engine, EngineConfig};
use keyward_guard::{Guard, RemoteConfig, VerifiedKey};
use keyward_store::{AnyStore, DatabaseUrl, Store};

// docs: routes begin
async fn list_graphs(key: VerifiedKey) -> String {
    format!("graphs of {} (key {})\n", key.user_id, key.key_id)
}

async fn run_graph(key: VerifiedKey) -> String {
    format!("graph run for {}\n", key.user_id)
}

/// The service's routes, protected by `guard`.
fn app(guard: &Guard) -> anyhow::Result<Router> {
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
// docs: routes end

/// A guard asking the keyward server at `url`.
fn remote_guard(url: String) -> anyhow::Result<Guard> {
    // docs: remote begin
    let token = std::env::var("KEYWARD_SERVICE_TOKEN")?;
    let mut config = RemoteConfig::new(url, token);
    // How late a revocation made on the server may be seen here.
    config.cache_ttl = Duration::from_secs(2);
    let guard = Guard::remote(config)?;
    // docs: remote end
    Ok(guard)
}

/// A guard with keyward's engine on its database, and the engine (to shut down).
async fn in_process_guard() -> anyhow::Result<(Guard, Engine<AnyStore>)> {
    let url =
        std::env::var("KEYWARD_DATABASE_URL").unwrap_or_else(|_| "sqlite://keyward.db".into());
    let pepper = std::env::var("KEYWARD_PEPPER")
        .map_err(|_| anyhow::anyhow!("set KEYWARD_URL, or KEYWARD_PEPPER to keyward's pepper"))?;
    // docs: in-process begin
    let store = keyward_store::connect(&DatabaseUrl::parse(&url)?).await?;
    store.migrate().await?;
    let engine = Engine::start(store, EngineConfig::new(Peppers::parse(&pepper)?));
    let guard = Guard::in_process(engine.clone());
    // docs: in-process end
    Ok((guard, engine))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The guard logs why a key could not be checked (keyward unreachable, a wrong
    // service token); RUST_LOG=debug for more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (guard, engine) = match std::env::var("KEYWARD_URL") {
        Ok(url) => (remote_guard(url)?, None),
        Err(_) => {
            let (guard, engine) = in_process_guard().await?;
            (guard, Some(engine))
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    // With connect info, the guard passes each client's address to keyward's limit
    // on failed verifications.
    let service = app(&guard)?.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).await?;
    if let Some(engine) = engine {
        engine.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The parts of this file marked `// docs: NAME begin/end`.
    fn marked(source: &str, name: &str) -> String {
        let begin = format!("// docs: {name} begin");
        let end = format!("// docs: {name} end");
        let lines: Vec<&str> = source
            .lines()
            .skip_while(|l| l.trim() != begin)
            .skip(1)
            .take_while(|l| l.trim() != end)
            .collect();
        assert!(!lines.is_empty(), "no `{begin}` in main.rs");
        let indent = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        lines
            .iter()
            .map(|l| l.get(indent..).unwrap_or("").trim_end())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The ```rust block after `<!-- rust-guard: NAME -->` in docs/INTEGRATIONS.md.
    fn documented(doc: &str, name: &str) -> String {
        let marker = format!("<!-- rust-guard: {name} -->");
        let after = doc
            .split_once(&marker)
            .unwrap_or_else(|| panic!("no `{marker}` in docs/INTEGRATIONS.md"))
            .1;
        let block = after
            .split_once("```rust\n")
            .and_then(|(_, rest)| rest.split_once("```"))
            .unwrap_or_else(|| panic!("no ```rust block after `{marker}`"))
            .0;
        block.trim_end().to_owned()
    }

    #[test]
    fn the_snippets_in_the_integration_guide_are_this_examples_code() {
        let source = include_str!("main.rs");
        let doc = include_str!("../../../docs/INTEGRATIONS.md");
        for name in ["routes", "remote", "in-process"] {
            assert_eq!(
                documented(doc, name),
                marked(source, name),
                "docs/INTEGRATIONS.md's `{name}` snippet differs from examples/guarded-service"
            );
        }
    }
}
