//! Protect axum/tower routes with keyward API keys.
//!
//! ```no_run
//! # async fn example(engine: keyward_engine::Engine<keyward_store::AnyStore>) {
//! use axum::{Router, routing::get};
//! use keyward_guard::{Guard, VerifiedKey};
//!
//! async fn graphs(key: VerifiedKey) -> String {
//!     format!("graphs of {}", key.user_id)
//! }
//!
//! async fn run(key: VerifiedKey) -> String {
//!     format!("run for {}, {:?} credits left", key.user_id, key.remaining)
//! }
//!
//! let guard = Guard::in_process(engine);
//! let app: Router = Router::new()
//!     .route("/graphs", get(graphs))
//!     .layer(guard.require(&["READ_GRAPH"]).unwrap())
//!     .merge(
//!         Router::new()
//!             .route("/graphs/run", get(run))
//!             // A run takes 5 usage credits from a key that has credits.
//!             .layer(guard.require(&["EXECUTE_GRAPH"]).unwrap().cost(5)),
//!     );
//! # }
//! ```
//!
//! The layer reads the key from `X-API-Key` (AutoGPT's header) or
//! `Authorization: Bearer …`, verifies it and the permissions the routes need, and
//! answers as AutoGPT's external API did: 401 `{"detail": "Missing API key"}` or
//! `{"detail": "Invalid API key"}`, 403 `{"detail": "Missing required permission(s):
//! A, B"}`, 429 with `Retry-After`, 503 when the key cannot be checked. Otherwise the
//! request goes on, carrying a [`VerifiedKey`] that handlers take as an extractor:
//! the key's owner, id, permissions, metadata and remaining usage credits, as the
//! Python client's FastAPI dependency hands its routes under the same name.
//!
//! Two modes, one layer:
//! - **in-process** ([`Guard::in_process`], feature `in-process`): embeds keyward's
//!   engine on its database: the same cache, the same change feed, so a revocation is
//!   refused by the very next request here (and within milliseconds on PostgreSQL
//!   when made elsewhere).
//! - **remote** ([`Guard::remote`], feature `remote`): asks a keyward server's verify
//!   API, and reuses its verdicts for a short while (`cache_ttl`, default 2 s). A
//!   revocation, suspension, permission or metadata change made on the server is
//!   honoured here within that time. Keys with a rate limit or usage credits are never served from
//!   the cache: every use of them reaches the server, which counts it.
//!
//! The end client's address is passed along for keyward's failed-verification limit
//! and, for keys bound to networks (`allowed_ips`), to decide whether the key may be
//! used from there: by default the connection's peer (`ConnectInfo<SocketAddr>`, present when the
//! service is served with `into_make_service_with_connect_info`); see
//! [`ClientAddress`] for a service behind a reverse proxy.

#[cfg(not(any(feature = "in-process", feature = "remote")))]
compile_error!("keyward-guard needs the `in-process` or the `remote` feature (or both)");

#[cfg(feature = "in-process")]
mod in_process;
#[cfg(feature = "remote")]
mod remote;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::model::MAX_REMAINING;
use keyward_core::permissions::{Catalogue, CatalogueError, UnknownPermissions};
use keyward_core::verify::Refusal as KeyRefusal;

#[cfg(feature = "remote")]
pub use remote::{RemoteConfig, RemoteConfigError};

/// Longer presented keys are refused as invalid without asking anyone.
const MAX_KEY_LENGTH: usize = 1024;

/// Who a verified request is from, and what keyward's verification said of the key.
/// The same in both modes, and the same as the Python client's `VerifiedKey`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedKey {
    pub user_id: String,
    pub key_id: String,
    /// Every permission the key holds (not only those the route needs).
    pub permissions: Vec<String>,
    /// The key's metadata (its owner's JSON object), when it has some.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// For a key with usage credits: how many are left after this request.
    pub remaining: Option<u64>,
}

/// The former name of [`VerifiedKey`].
#[deprecated(note = "renamed `VerifiedKey`, the name the Python client's FastAPI dependency uses")]
pub type KeyIdentity = VerifiedKey;

/// Which address counts as the end client, for keyward's limit on failed
/// verifications per client and for keys bound to networks (`allowed_ips`, checked
/// against it: behind a proxy, `Peer` is the proxy's address unless the service
/// rewrites it, and a key bound to networks is then checked against that).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAddress {
    /// The connection's peer (`ConnectInfo<SocketAddr>`); none when the service
    /// was not served with connect info.
    #[default]
    Peer,
    /// The last `X-Forwarded-For` entry, which the reverse proxy in front of this
    /// service appended (earlier entries are the client's to forge); the peer when
    /// the header is absent, none when that entry is not an address. Only right when
    /// every request comes through that proxy.
    LastForwardedFor,
    /// None: failed verifications are not counted per client, and a key bound to
    /// networks is refused (`IP_NOT_ALLOWED`).
    None,
}

/// Verifies keys for routes; cheap to clone.
#[derive(Clone, Debug)]
pub struct Guard {
    verifier: Verifier,
    client_address: ClientAddress,
}

#[derive(Clone)]
enum Verifier {
    #[cfg(feature = "in-process")]
    InProcess(keyward_engine::Engine<keyward_store::AnyStore>),
    #[cfg(feature = "remote")]
    Remote(Arc<remote::Remote>),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The engine has no `Debug`; its configuration holds the pepper anyway.
            #[cfg(feature = "in-process")]
            Self::InProcess(_) => f.write_str("InProcess"),
            #[cfg(feature = "remote")]
            Self::Remote(remote) => f.debug_tuple("Remote").field(remote).finish(),
        }
    }
}

/// Why a request is refused, whichever mode decided: keyward's one vocabulary for
/// keys ([`KeyRefusal`], shared with forward authentication and the Python client),
/// or a configuration the service got wrong.
enum Refusal {
    Key(KeyRefusal),
    /// keyward refused the question itself (a wrong service token, a permission it
    /// does not know): the service's configuration is wrong, not the client's key.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Misconfigured,
}

impl From<KeyRefusal> for Refusal {
    fn from(refusal: KeyRefusal) -> Self {
        Self::Key(refusal)
    }
}

/// What a layer asks of a key: the permissions it requires (their names, and for
/// in-process mode the set), and the usage credits each request takes.
#[derive(Clone, Debug)]
struct Required {
    names: Arc<[String]>,
    /// Credits taken from a key that has them; `None`: keyward's default (1).
    cost: Option<u64>,
    #[cfg(feature = "in-process")]
    set: keyward_core::permissions::PermissionSet,
    /// Remote mode: whether the server has accepted these names (answered without a
    /// 422). Until then no remembered verdict is used for them: a name the server's
    /// catalogue no longer has must be refused as the server refuses it, even for a
    /// key that still lists it.
    #[cfg(feature = "remote")]
    accepted: Arc<std::sync::atomic::AtomicBool>,
}

impl Guard {
    /// Verifies in this process, with keyward's engine on its database.
    #[cfg(feature = "in-process")]
    pub fn in_process(engine: keyward_engine::Engine<keyward_store::AnyStore>) -> Self {
        Self {
            verifier: Verifier::InProcess(engine),
            client_address: ClientAddress::default(),
        }
    }

    /// Verifies by asking the keyward server at `config.url`, with its service token,
    /// reusing verdicts for `config.cache_ttl`.
    #[cfg(feature = "remote")]
    pub fn remote(config: RemoteConfig) -> Result<Self, RemoteConfigError> {
        Ok(Self {
            verifier: Verifier::Remote(Arc::new(remote::Remote::new(config)?)),
            client_address: ClientAddress::default(),
        })
    }

    /// Which address is passed to keyward as the end client's.
    pub fn client_address(mut self, source: ClientAddress) -> Self {
        self.client_address = source;
        self
    }

    /// A layer for routes that need a key holding all of `permissions` (none: any
    /// valid key). In-process, names the catalogue does not have are refused here,
    /// at start-up, rather than on every request. Remote, names that cannot be
    /// permission names are refused here; a well-formed name the server does not
    /// know makes every request through the layer fail with 500 and an error in
    /// the log.
    pub fn require<N: AsRef<str>>(
        &self,
        permissions: &[N],
    ) -> Result<RequireKeyLayer, UnknownPermissions> {
        let mut names: Vec<String> = Vec::with_capacity(permissions.len());
        for name in permissions {
            let name = name.as_ref();
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        if !names.is_empty() {
            Catalogue::new(&names).map_err(|err| match err {
                CatalogueError::InvalidName(name) => UnknownPermissions(vec![name]),
                _ => UnknownPermissions(names.clone()),
            })?;
        }
        let required = Required {
            #[cfg(feature = "in-process")]
            set: match &self.verifier {
                Verifier::InProcess(engine) => {
                    engine.permission_set(&names).map_err(|err| match err {
                        keyward_engine::EngineError::UnknownPermissions(unknown) => unknown,
                        other => UnknownPermissions(vec![other.to_string()]),
                    })?
                }
                #[cfg(feature = "remote")]
                Verifier::Remote(_) => Default::default(),
            },
            names: names.into(),
            cost: None,
            #[cfg(feature = "remote")]
            accepted: Arc::default(),
        };
        Ok(RequireKeyLayer {
            guard: self.clone(),
            required,
        })
    }

    async fn check(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        required: &Required,
    ) -> Result<VerifiedKey, Refusal> {
        let Some(key) = presented_key(headers) else {
            return Err(Refusal::Key(KeyRefusal::MissingKey));
        };
        if key.len() > MAX_KEY_LENGTH {
            // Longer than any key keyward makes or imports; not worth a lookup, and in
            // remote mode it would not fit keyward's request body limit.
            return Err(Refusal::Key(KeyRefusal::Invalid));
        }
        match &self.verifier {
            #[cfg(feature = "in-process")]
            Verifier::InProcess(engine) => in_process::check(engine, key, required, client).await,
            #[cfg(feature = "remote")]
            Verifier::Remote(remote) => remote.check(key, required, client).await,
        }
    }

    fn client_ip(&self, request: &Request<Body>) -> Option<IpAddr> {
        let peer = || {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
        };
        match self.client_address {
            ClientAddress::Peer => peer(),
            ClientAddress::LastForwardedFor => {
                match request
                    .headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .next_back()
                {
                    // Not an address (`unknown`, `ip:port`): none, rather than the
                    // proxy's own, which would put every client behind one counter.
                    Some(value) => value
                        .to_str()
                        .ok()
                        .and_then(|v| v.rsplit(',').next())
                        .and_then(|v| v.trim().parse().ok()),
                    None => peer(),
                }
            }
            ClientAddress::None => None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal::Key(refusal) = self else {
            return refusal_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal error");
        };
        let status = StatusCode::from_u16(refusal.status()).expect("a valid status");
        let mut response = refusal_response(status, &refusal.message());
        if let KeyRefusal::RateLimited {
            retry_after_seconds,
        } = refusal
        {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds.max(1)));
        }
        response
    }
}

/// AutoGPT's (FastAPI's) error shape: `{"detail": …}`.
fn refusal_response(status: StatusCode, detail: &str) -> Response {
    let mut response =
        (status, axum::Json(serde_json::json!({ "detail": detail }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// `X-API-Key` first, else `Authorization: Bearer …`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    keyward_core::key::presented_key(text("x-api-key"), text(AUTHORIZATION.as_str()))
}

/// The layer [`Guard::require`] makes.
#[derive(Clone, Debug)]
pub struct RequireKeyLayer {
    guard: Guard,
    required: Required,
}

impl RequireKeyLayer {
    /// Usage credits each request through this layer takes from a key that has
    /// credits (keyward's default: 1), in both modes alike. With too few left the
    /// request is refused: 403 `{"detail": "API key usage credits exhausted"}`.
    /// `0` only checks that some are left, taking none. Keys without credits
    /// ignore it.
    ///
    /// # Panics
    ///
    /// When `credits` is over 10^15, the most a key can hold (keyward refuses such
    /// a cost).
    pub fn cost(mut self, credits: u64) -> Self {
        assert!(
            credits <= MAX_REMAINING,
            "keyward-guard: a cost must be at most {MAX_REMAINING} credits"
        );
        self.required.cost = Some(credits);
        self
    }
}

impl<S> tower::Layer<S> for RequireKeyLayer {
    type Service = RequireKey<S>;
    fn layer(&self, inner: S) -> RequireKey<S> {
        RequireKey {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service of [`RequireKeyLayer`].
#[derive(Clone, Debug)]
pub struct RequireKey<S> {
    layer: RequireKeyLayer,
    inner: S,
}

impl<S> tower::Service<Request<Body>> for RequireKey<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let layer = self.layer.clone();
        // The clone that was made ready serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let client = layer.guard.client_ip(&request);
            let verdict = layer
                .guard
                .check(request.headers(), client, &layer.required)
                .await;
            match verdict {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(refused) => Ok(refused.into_response()),
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<VerifiedKey>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("VerifiedKey used on a route without keyward's guard layer");
                refusal_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            })
    }
}
