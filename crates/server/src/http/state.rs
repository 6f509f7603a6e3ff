//! What every handler can reach: the engine, the authenticator, the metrics and the
//! API's own document.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use keyward_engine::Engine;
use keyward_store::AnyStore;
use metrics_exporter_prometheus::PrometheusHandle;

use super::auth::{Authenticated, Authenticator};
use super::client_address::TrustedProxies;

/// What every handler can reach: one `Arc`, because axum clones the state for every
/// request.
#[derive(Clone)]
pub struct AppState(pub(super) Arc<Shared>);

pub struct Shared {
    pub engine: Engine<AnyStore>,
    pub auth: Authenticator,
    pub metrics: PrometheusHandle,
    pub openapi_json: Arc<str>,
    pub trusted_proxies: TrustedProxies,
    /// GitHub's secret scanning keys, when the partner endpoint is enabled.
    pub github: Option<Arc<crate::secret_scanning::GithubKeys>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Authenticated for AppState {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
    fn engine(&self) -> &Engine<AnyStore> {
        &self.engine
    }
    fn client(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        Some(self.trusted_proxies.client(peer, &parts.headers))
    }
}
