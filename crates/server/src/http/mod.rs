//! The HTTP transport: routes, authentication, errors and the OpenAPI document.
//!
//! - [`api_keys`]: the management API (users, JWT).
//! - [`verify`]: the verify API (services, service token).
//! - [`admin`]: the platform's own routes: any user's keys, the audit trail, user
//!   deletion (services, service token).
//! - [`usage`]: usage history, per key (users) and per user or deployment (services).
//! - [`ops`]: health, readiness, metrics, `/openapi.json`, `/docs`.
//! - [`console`]: the web console at `/console` (a page on top of the JSON API).
//! - [`auth`] and [`jwks`]: who is calling (user JWTs, the service token).
//!
//! The OpenAPI document is generated from the handlers' annotations as the router is
//! built, so a route cannot exist without being documented.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod catalogue;
pub mod client_address;
pub mod connections;
pub mod console;
pub mod error;
pub mod forward_auth;
pub mod json;
pub mod jwks;
pub mod observe;
pub mod ops;
pub mod query_params;
pub mod usage;
pub mod verify;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use keyward_core::permissions::Catalogue;
use keyward_engine::Engine;
use keyward_store::AnyStore;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi, Type};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::auth::Authenticator;
use self::client_address::TrustedProxies;

/// Request bodies larger than this are refused (413).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach: one `Arc`, because axum clones the state for every
/// request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub engine: Engine<AnyStore>,
    pub auth: Authenticator,
    pub metrics: PrometheusHandle,
    pub openapi_json: Arc<str>,
    pub trusted_proxies: TrustedProxies,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "keyward",
        description = "Self-hosted API key service: users manage their keys; services verify them.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "api-keys", description = "A user's own keys (JWT from the platform's identity provider)"),
        (name = "verify", description = "Key verification for the platform's services (service token)"),
        (name = "permissions", description = "The permission catalogue (JWT or service token)"),
        (name = "admin", description = "Administration for the platform's services (service token)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut user = Http::new(HttpAuthScheme::Bearer);
        user.bearer_format = Some("JWT".into());
        user.description =
            Some("A JWT from the platform's identity provider; `sub` is the user id.".into());
        components.add_security_scheme("user_jwt", SecurityScheme::Http(user));
        let mut service = Http::new(HttpAuthScheme::Bearer);
        service.description = Some("The service token (KEYWARD_ADMIN_TOKEN).".into());
        components.add_security_scheme("service_token", SecurityScheme::Http(service));
        let mut metrics = Http::new(HttpAuthScheme::Bearer);
        metrics.description =
            Some("The metrics token (KEYWARD_METRICS_TOKEN), where one is set.".into());
        components.add_security_scheme("metrics_token", SecurityScheme::Http(metrics));
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api_keys::create_key, api_keys::list_keys))
        .routes(routes!(verify::verify_key))
        .routes(routes!(catalogue::list_permissions))
        .routes(routes!(forward_auth::forward_auth))
        .routes(routes!(
            api_keys::get_key,
            api_keys::revoke_key,
            api_keys::update_key
        ))
        .routes(routes!(api_keys::suspend_key))
        .routes(routes!(api_keys::reactivate_key))
        .routes(routes!(api_keys::set_permissions))
        .routes(routes!(api_keys::set_rate_limit))
        .routes(routes!(api_keys::rotate_key))
        .routes(routes!(api_keys::list_key_events))
        .routes(routes!(usage::get_key_usage))
        .routes(routes!(admin::delete_user))
        .routes(routes!(
            admin::create_key_for_user,
            admin::list_keys_of_user
        ))
        .routes(routes!(
            admin::update_key_as_admin,
            admin::revoke_key_as_admin
        ))
        .routes(routes!(admin::suspend_key_as_admin))
        .routes(routes!(admin::reactivate_key_as_admin))
        .routes(routes!(admin::list_events))
        .routes(routes!(usage::get_usage))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(ops::docs))
}

/// The OpenAPI document, with the permission names of `catalogue` as an enum.
pub fn openapi(catalogue: &Catalogue) -> OpenApi {
    let (_, mut doc) = api_routes().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let permission = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A permission name from this deployment's catalogue."))
        .enum_values(Some(catalogue.names()))
        .build();
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert("Permission".to_owned(), permission.into());
    query_params::document(&mut doc);
    doc
}

/// The whole HTTP service.
pub fn router(
    engine: Engine<AnyStore>,
    auth: Authenticator,
    metrics: PrometheusHandle,
    trusted_proxies: TrustedProxies,
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
    }));
    let (router, _) = api_routes().split_for_parts();
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
