//! `keyward serve`: the HTTP service, until SIGTERM or Ctrl-C.

use std::time::Duration;

use crate::app::App;
use crate::config::Config;
use crate::telemetry;

pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    if let Some((path, created)) = &settings.local_secrets {
        let verb = if *created { "generated" } else { "using" };
        tracing::info!(
            path = %path.display(),
            "{verb} local secrets (pepper, JWT secret, service token); \
             `keyward token --user <id>` mints a user token, `keyward token --admin` prints the service token"
        );
    }
    let app = App::start(&settings).await?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
    tracing::info!(
        address = %format!("http://{}", listener.local_addr()?),
        database = %config.database_url,
        backend = app.engine.store_backend(),
        "keyward is listening; API docs at /docs"
    );

    let metrics = telemetry::metrics();
    let upkeep = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            metrics.run_upkeep();
        }
    });

    axum::serve(listener, app.router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    upkeep.abort();
    tracing::info!("requests finished; writing pending usage");
    app.engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupt received; shutting down"),
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
