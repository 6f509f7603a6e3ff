//! `keyward serve`: the HTTP service, until SIGTERM or Ctrl-C.

use std::time::Duration;

use crate::app::App;
use crate::flags::Flags;
use crate::http::connections;
use crate::http::listener::Listener;
use crate::settings::LocalTrial;
use crate::telemetry;
use crate::webhooks::Sender;

/// How long in-flight requests may run on after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(35);

pub async fn serve(flags: &Flags) -> anyhow::Result<()> {
    // The address first: when it is taken, nothing else has started (no database opened,
    // no secrets generated, no change feed watched) and the message says only that.
    let listener = Listener::bind(&flags.bind).await?;
    let settings = flags.resolve(LocalTrial::Create)?;
    if let Some((path, created)) = &settings.local_secrets {
        let verb = if *created { "generated" } else { "using" };
        tracing::info!(
            path = %path.display(),
            "{verb} local secrets (pepper, JWT secret, service token); \
             `keyward token --user <id>` mints a user token, `keyward token --admin` prints the service token"
        );
    }
    let app = App::start(&settings).await?;
    let webhooks = Sender::start(app.engine.clone())?;
    let stop = shutdown_signal()?;
    tracing::info!(
        address = %listener.describe(),
        database = %settings.database_url,
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

    // After the signal, in-flight requests get SHUTDOWN_GRACE to finish (each is
    // bounded by the request deadline anyway); then the server stops without them,
    // and pending usage is still written.
    connections::serve(
        listener,
        app.router,
        settings.http.connections,
        stop,
        SHUTDOWN_GRACE,
    )
    .await;
    upkeep.abort();
    // Attempts under way finish and are recorded; what is left waits in the outbox.
    webhooks.stop().await;
    tracing::info!("requests finished; writing pending usage");
    app.engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled: a signal that arrives once the service has said it
/// is listening must already find them (otherwise the default action kills the process
/// without the final usage flush).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("interrupt received; shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("interrupt received; shutting down");
        })
    }
}
