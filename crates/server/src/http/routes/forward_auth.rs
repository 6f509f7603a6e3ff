//! Forward authentication, for reverse proxies that ask before they forward a
//! request: nginx `auth_request`, Traefik ForwardAuth, Envoy `ext_authz` (HTTP).
//!
//! The proxy sends the client's request headers here (any method, no body). The key
//! comes from `X-API-Key` or `Authorization: Bearer …`; the permissions the route
//! needs are those of `X-Keyward-Permissions: A,B` (which the proxy must set,
//! overwriting a client's) and of `?permissions=A,B`, together.
//!
//! The proxy itself proves who it is with the service token in
//! `X-Keyward-Proxy-Token` (set in the proxy's configuration, overwriting anything a
//! client sent): only a proxy holding it gets verdicts. The end client, for the
//! failed-attempt limit, is decided by [`crate::http::client_address`]: the socket peer,
//! or behind trusted proxies (`KEYWARD_TRUSTED_PROXIES`) the rightmost
//! `X-Forwarded-For` entry that is not one of them.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::credential::ServiceScope;
use keyward_core::verify::Refusal;
use keyward_engine::{EngineError, VerifyOptions};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::ServiceIdentity;
use crate::http::client_address::Peer;
use crate::http::documented::Callers;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::ApiQuery;
use crate::http::state::AppState;

/// Each route here documents its own callers.
pub const CALLERS: Callers = Callers::PerRoute;
pub const TAG: &str = "verify";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(forward_auth))
}

pub const PROXY_TOKEN: HeaderName = HeaderName::from_static("x-keyward-proxy-token");
pub const PERMISSIONS: HeaderName = HeaderName::from_static("x-keyward-permissions");
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub const USER_ID: HeaderName = HeaderName::from_static("x-keyward-user-id");
pub const KEY_ID: HeaderName = HeaderName::from_static("x-keyward-key-id");
pub const KEY_PERMISSIONS: HeaderName = HeaderName::from_static("x-keyward-key-permissions");
pub const CODE: HeaderName = HeaderName::from_static("x-keyward-code");

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthQuery {
    /// Required permissions, comma-separated (when the proxy cannot set the
    /// `X-Keyward-Permissions` header).
    pub permissions: Option<String>,
}

/// Forward authentication for reverse proxies (any HTTP method).
///
/// 200 lets the request through, with `X-Keyward-User-Id`, `X-Keyward-Key-Id` and
/// `X-Keyward-Key-Permissions` for the upstream. 401 (with `WWW-Authenticate`): no
/// key, or a key that is malformed, unknown, suspended, revoked or expired, all
/// answered alike. 403: the key lacks a required permission (`Missing required
/// permission(s): …`), its usage credits are spent, or it is bound to networks the
/// end client is not in. 429 with `Retry-After`: rate limited. 400: the required
/// permissions are blank, hold an empty name, or the header is sent twice. The
/// required permissions are the union of the header and the query. Every verdict
/// carries `X-Keyward-Code`: `VALID`, `INSUFFICIENT_PERMISSIONS`, `USAGE_EXCEEDED`,
/// `RATE_LIMITED`, `IP_NOT_ALLOWED`, or `INVALID` for every key that does not pass as
/// a key.
#[utoipa::path(
    get,
    path = "/api/auth",
    operation_id = "forward_auth",
    params(
        AuthQuery,
        ("X-Keyward-Proxy-Token" = String, Header, description = "The service token: the proxy's credential"),
        ("X-API-Key" = Option<String>, Header, description = "The client's key (or Authorization: Bearer)"),
        ("X-Keyward-Permissions" = Option<String>, Header, description = "Required permissions, comma-separated; the proxy sets it, overwriting a client's"),
    ),
    responses(
        (status = 200, description = "Let through; identity in the X-Keyward-* headers", body = ForwardAuthVerdict),
        (status = 400, description = "Blank or repeated required permissions", body = ErrorBody),
        (status = 401, description = "No valid key, or the proxy is not authenticated", body = ErrorBody),
        (status = 403, description = "A required permission is missing, or usage credits are spent", body = ErrorBody),
        (status = 422, description = "Unknown permission names (a proxy configuration error)", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        (status = 503, description = "The key is not cached and the database is unavailable", body = ErrorBody),
    )
)]
pub async fn forward_auth(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<AuthQuery>,
) -> Result<Response, ApiError> {
    let proxy = headers.get(&PROXY_TOKEN).and_then(|v| v.to_str().ok());
    let unauthenticated = || {
        ApiError::unauthorized(
            "the proxy is not authenticated: send a keys.verify credential (or the service \
             token) in X-Keyward-Proxy-Token",
        )
    };
    let proxy = proxy.ok_or_else(unauthenticated)?;
    let client = state.trusted_proxies.client(peer, &headers);
    let identity = ServiceIdentity::of(&state, proxy, Some(client))
        .await
        .map_err(|err| match err.status() {
            StatusCode::UNAUTHORIZED => unauthenticated(),
            _ => err,
        })?;
    identity.require(ServiceScope::KeysVerify)?;
    let Some(key) = presented_key(&headers) else {
        return Ok(refused(&Refusal::MissingKey));
    };
    let names = required_permissions(&headers, query.permissions.as_deref())?;
    let engine = &state.engine;
    let required = engine.permission_set(&names)?;
    let options = VerifyOptions {
        // A key bound to networks needs the client a trusted proxy named: not the
        // peer (the proxy itself) when none did.
        vouched_client: state.trusted_proxies.vouched_client(peer, &headers),
        ..VerifyOptions::for_client(Some(client))
    };
    let verification = match engine.verify_with(key, required, options).await {
        Ok(verification) => verification,
        Err(EngineError::Unavailable(cause)) => {
            tracing::warn!(error = %cause, "storage unavailable");
            return Ok(refused(&Refusal::Unavailable));
        }
        Err(other) => return Err(other.into()),
    };
    let code = verification.code;
    let found = verification.key.as_deref();
    let held = found.map_or(&[][..], |k| &k.permissions[..]);
    let refusal = Refusal::for_verdict(code, &names, held, verification.retry_after_seconds());
    let mut response = match (refusal, found) {
        (Some(refusal), _) => refused(&refusal),
        (None, Some(found)) => {
            let verdict = ForwardAuthVerdict {
                user_id: found.user_id.as_str().to_owned(),
                key_id: found.id.to_string(),
                permissions: found.permissions.to_vec(),
            };
            let mut response = axum::Json(&verdict).into_response();
            let out = response.headers_mut();
            for (name, value) in [
                (USER_ID, verdict.user_id.as_str()),
                (KEY_ID, verdict.key_id.as_str()),
                (KEY_PERMISSIONS, &verdict.permissions.join(",")),
            ] {
                // User ids are checked for control characters on the way in.
                if let Ok(value) = HeaderValue::from_str(value) {
                    out.insert(name, value);
                }
            }
            response
        }
        (None, None) => refused(&Refusal::Unavailable),
    };
    tracing::debug!(code = code.as_str(), "forward authentication");
    // Malformed, unknown, suspended, revoked, expired: one answer, the same in every
    // byte, so a client cannot learn a key's state through the proxy. The verdict
    // itself is in keyward_verify_total{code} and the debug log.
    let shown = if code.is_disclosed() {
        code.as_str()
    } else {
        INVALID
    };
    response
        .headers_mut()
        .insert(CODE, HeaderValue::from_static(shown));
    Ok(response)
}

/// A refusal as keyward's error body: its title ([`Refusal::title`]) as `message`, and
/// as `detail` the sentence every transport uses ([`Refusal::message`]).
fn refused(refusal: &Refusal) -> Response {
    let title = refusal.title();
    let status = StatusCode::from_u16(refusal.status()).expect("a valid status");
    let error = match refusal {
        Refusal::RateLimited {
            retry_after_seconds,
        } => ApiError::too_many_requests(refusal.message(), *retry_after_seconds),
        _ => ApiError::new(status, title).detail(refusal.message()),
    };
    error.into_response()
}

/// `X-Keyward-Code` of every key that does not pass as a key at all.
const INVALID: &str = "INVALID";

/// The permissions a route requires: every name in `X-Keyward-Permissions` and every
/// name in `?permissions=`, together. Either may narrow what passes, neither can widen
/// it: a client that slips its own header past a proxy can only ask for more. A
/// header sent twice, a blank list or an empty item (`A,,B`) is a configuration or
/// request error (400), never "nothing required".
fn required_permissions<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Vec<&'a str>, ApiError> {
    let mut sent = headers.get_all(&PERMISSIONS).iter();
    let header = match (sent.next(), sent.next()) {
        (_, Some(_)) => {
            return Err(bad_permissions(
                "X-Keyward-Permissions is sent more than once",
            ));
        }
        (Some(value), None) => Some(
            value
                .to_str()
                .map_err(|_| bad_permissions("X-Keyward-Permissions is not plain text"))?,
        ),
        (None, None) => None,
    };
    let mut names = Vec::new();
    for (source, list) in [("X-Keyward-Permissions", header), ("permissions", query)] {
        let Some(list) = list else { continue };
        for name in list.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(bad_permissions(format!(
                    "{source}: a blank list or an empty name (A,,B); list the required names"
                )));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

fn bad_permissions(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Invalid required permissions")
        .detail(detail)
        .hint("The proxy must set X-Keyward-Permissions itself, overwriting what a client sent.")
}

/// What a successful forward authentication answers (also in the headers).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ForwardAuthVerdict {
    pub user_id: String,
    pub key_id: String,
    pub permissions: Vec<String>,
}

/// `X-API-Key` first (AutoGPT's header), else `Authorization: Bearer …`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    keyward_core::key::presented_key(text(&API_KEY), text(&header::AUTHORIZATION))
}
