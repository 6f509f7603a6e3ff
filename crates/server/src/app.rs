//! Assembling the service from settings: open the store, migrate, start the engine,
//! build the router. Shared by `serve`, the CLI and the tests.

use axum::Router;
use keyward_engine::Engine;
use keyward_store::{AnyStore, Store, Use};

use crate::http::{self, auth::Authenticator};
use crate::secret_scanning::GithubKeys;
use crate::secrets::Secret;
use crate::settings::Settings;
use crate::telemetry;

/// A running service: the engine (to shut down) and its router. `serve` starts the
/// webhook sender beside them ([`crate::webhooks::Sender`]); a router used in process
/// (tests) delivers nothing.
pub struct App {
    pub engine: Engine<AnyStore>,
    pub router: Router,
}

/// Opens the database (creating and migrating it as needed) and starts the engine:
/// what `serve` and `migrate` do.
pub async fn start_engine(settings: &Settings, use_: Use) -> anyhow::Result<Engine<AnyStore>> {
    let store = keyward_store::connect_with(&settings.database_url, &settings.connect).await?;
    store.migrate().await?;
    begin_use(store, use_)
        .await
        .map(|store| Engine::start(store, settings.engine.clone()))
}

/// A database half filled by `keyward copy` lacks keys and events of its source:
/// serving it, or changing it, is refused (see `keyward_store::begin_use`).
async fn begin_use(store: AnyStore, use_: Use) -> anyhow::Result<AnyStore> {
    if let Err(err) = keyward_store::begin_use(&store, use_).await {
        store.close().await;
        return Err(err.into());
    }
    Ok(store)
}

/// Starts the engine on the database as it is, without migrating: admin commands must
/// not upgrade a production schema as a side effect.
pub async fn open_engine(settings: &Settings) -> anyhow::Result<Engine<AnyStore>> {
    let store = keyward_store::connect_with(&settings.database_url, &settings.connect).await?;
    let store = begin_use(store, Use::Admin).await?;
    // A command lives for one operation: nothing to warm a cache for.
    let mut config = settings.engine.clone();
    config.cache_warmup = 0;
    Ok(Engine::start(store, config))
}

impl App {
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let auth = Authenticator::new(
            &settings.jwt,
            settings.admin_token.as_ref().map(Secret::expose),
        )?
        .with_metrics_token(settings.http.metrics_token.as_ref().map(Secret::expose));
        // The recorder first: the engine resolves its metric handles as it starts.
        let metrics = telemetry::metrics();
        let engine = start_engine(settings, Use::Serve).await?;
        let router = http::router(
            engine.clone(),
            auth,
            metrics,
            settings.http.trusted_proxies.clone(),
            settings
                .http
                .github_secret_scanning
                .clone()
                .map(|url| GithubKeys::new(url).map(std::sync::Arc::new))
                .transpose()?,
        );
        Ok(Self { engine, router })
    }
}
