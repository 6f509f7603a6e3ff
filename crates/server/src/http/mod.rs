//! The HTTP transport. What a request passes through, in order:
//!
//! - [`connections`]: the accept loop, the connection cap, the header and idle
//!   timeouts;
//! - [`observe`]: the request deadline, headers every answer carries, metrics and
//!   logs, refusals that need no handler (see [`query_params`]);
//! - the extractors: [`auth`] (who is calling: user JWTs through [`jwks`], the
//!   service token), [`client_address`] (the end client behind trusted proxies),
//!   [`json`] (bodies, query strings, key ids in the path);
//! - [`routes`]: the handlers, by resource;
//! - [`error`]: every error as the API's JSON shape.
//!
//! [`state`] is what handlers share; [`openapi`] is the API's document, built from
//! the handlers' annotations and what [`documented`] writes once for many routes.

pub mod auth;
pub mod client_address;
pub mod connections;
pub mod documented;
pub mod error;
pub mod json;
pub mod jwks;
pub mod listener;
pub mod observe;
pub mod openapi;
pub mod query_params;
pub mod routes;
pub mod state;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use keyward_engine::Engine;
use keyward_store::AnyStore;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;

use self::auth::Authenticator;
use self::client_address::TrustedProxies;
use self::error::BODY_LIMIT;
pub use self::openapi::openapi;
use self::routes::{console, forward_auth, ops};
use self::state::{AppState, Shared};

/// The whole HTTP service.
pub fn router(
    engine: Engine<AnyStore>,
    auth: Authenticator,
    metrics: PrometheusHandle,
    trusted_proxies: TrustedProxies,
    github: Option<Arc<crate::secret_scanning::GithubKeys>>,
) -> Router {
    let doc = openapi(&engine.config().catalogue);
    let openapi_json: Arc<str> = serde_json::to_string(&doc)
        .expect("the OpenAPI document serialises")
        .into();
    let query_params = query_params::QueryParams::from_openapi(&doc);
    let state = AppState(Arc::new(Shared {
        engine,
        auth,
        metrics,
        openapi_json,
        trusted_proxies,
        github,
    }));
    let (router, _) = openapi::api_routes().split_for_parts();
    // One stack, added once: each `Router::layer` boxes every route again, and each
    // box costs a clone and an allocation per request.
    // Forward authentication answers every method: proxies may ask with the method
    // of the request they are about to forward.
    let any_other = axum::routing::post(forward_auth::forward_auth)
        .put(forward_auth::forward_auth)
        .patch(forward_auth::forward_auth)
        .delete(forward_auth::forward_auth)
        .options(forward_auth::forward_auth);
    router
        .route("/api/auth", any_other)
        // Envoy's ext_authz appends the original path to its `path_prefix`.
        .route(
            "/api/auth/{*original_path}",
            axum::routing::any(forward_auth::forward_auth),
        )
        .merge(console::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(observe::ObserveLayer::new(query_params))
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
}
