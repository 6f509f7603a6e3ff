//! The identity provider's signing keys, from its JWKS URL (`KEYWARD_JWT_JWKS_URL`),
//! followed as the provider rotates them.
//!
//! One background task does all the fetching, so there is never more than one request
//! to the provider in flight. It loads the set at start, again when the provider's
//! `Cache-Control: max-age` runs out (kept between `KEYWARD_JWT_JWKS_MIN_REFRESH` and an
//! hour; ten minutes when the provider says nothing), and early when a token names a
//! `kid` the set lacks — at most once per `KEYWARD_JWT_JWKS_MIN_REFRESH`, so made-up kids
//! cannot turn keyward against the provider. A failed fetch keeps the last good set
//! (a warning and `keyward_jwks_fetches_total{outcome="error"}`). A token whose kid is
//! known never waits for a fetch; one whose kid is unknown waits half a second at most.
//! Redirects are followed within the URL's origin only.
//!
//! Each key's algorithm comes from the key (its `alg`, else its `kty` and `crv`) and must
//! be one of [`ALLOWED`]; never from a token. Encryption keys (`use: enc`), symmetric
//! keys and key types keyward does not know are skipped without spoiling the set.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderValue};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The signature algorithms a key of the set may have.
pub const ALLOWED: [Algorithm; 9] = {
    use Algorithm::*;
    [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ]
};
/// How long one fetch may take, connection and body included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request with an unknown kid waits for the fetch it started (or found
/// running). A slow provider must not hold every such request for a whole fetch: past
/// this, the token is refused as signed by an unknown key, and the fetch goes on.
pub const UNKNOWN_KID_WAIT: Duration = Duration::from_millis(500);
/// Redirects followed within the provider's origin.
const MAX_REDIRECTS: usize = 3;
/// The largest answer read; a JWK set of a few keys is a few KiB.
pub const MAX_BODY: usize = 256 * 1024;
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
const MAX_LIFETIME: Duration = Duration::from_secs(3600);
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// A JWKS URL keyward may fetch: `https://`, or plain `http://` to a loopback address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksUrl(Url);

impl JwksUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        match url.scheme() {
            "https" => Ok(Self(url)),
            "http" if is_loopback(&url) => Ok(Self(url)),
            "http" => Err(
                "plain http:// is only for loopback addresses (127.0.0.1, [::1]); \
                 use https://"
                    .to_owned(),
            ),
            other => Err(format!("{other}:// is not supported; use https://")),
        }
    }
}

impl std::fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where the keys are, and how often tokens may make keyward fetch them.
#[derive(Clone, Debug)]
pub struct JwksSettings {
    pub url: JwksUrl,
    /// The shortest time between two fetches asked for by unknown kids; also the
    /// shortest time a fetched set is kept.
    pub min_refresh: Duration,
}

impl JwksSettings {
    pub const DEFAULT_MIN_REFRESH_SECONDS: u64 = 30;
}

/// One usable key of the set, and the one algorithm it verifies.
pub struct SigningKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

type KeySet = HashMap<String, Arc<SigningKey>>;

/// The cached set and its refresher; dropping it stops the refresher.
pub struct Jwks {
    shared: Arc<Shared>,
    refresher: tokio::task::JoinHandle<()>,
}

struct Shared {
    keys: RwLock<KeySet>,
    state: Mutex<FetchState>,
    /// Asks the refresher for an early fetch.
    wake: Notify,
    /// Counts finished fetches, for the requests waiting on one.
    fetched: watch::Sender<u64>,
    min_refresh: Duration,
}

#[derive(Default)]
struct FetchState {
    loaded: bool,
    in_flight: bool,
    last_early: Option<Instant>,
    last_error: Option<String>,
}

impl Jwks {
    /// Starts the refresher on the current Tokio runtime; the first fetch begins at once.
    pub fn start(settings: &JwksSettings) -> Result<Self, String> {
        let client = client(&settings.url).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            keys: RwLock::default(),
            state: Mutex::default(),
            wake: Notify::new(),
            fetched: watch::Sender::new(0),
            min_refresh: settings.min_refresh,
        });
        let url = settings.url.0.clone();
        let refresher = tokio::spawn(refresh(Arc::clone(&shared), client, url));
        Ok(Self { shared, refresher })
    }

    /// The key named `kid`. An unknown kid waits (at most [`UNKNOWN_KID_WAIT`]) for a
    /// fetch in flight, or starts one when the last early fetch is at least
    /// `min_refresh` old; otherwise it is unknown.
    pub async fn key(&self, kid: &str) -> Option<Arc<SigningKey>> {
        if let Some(key) = self.shared.find(kid) {
            return Some(key);
        }
        let mut fetched = self.shared.fetched.subscribe();
        // Looked up again after subscribing: a fetch that ends in between is not missed.
        if let Some(key) = self.shared.find(kid) {
            return Some(key);
        }
        let (in_flight, may_start) = {
            let state = self.shared.state();
            let in_flight = state.in_flight;
            (
                in_flight,
                !in_flight && self.shared.early_fetch_allowed(&state),
            )
        };
        if may_start {
            self.shared.wake.notify_one();
        } else if !in_flight {
            return None;
        }
        let _ = tokio::time::timeout(UNKNOWN_KID_WAIT, fetched.changed()).await;
        self.shared.find(kid)
    }

    /// `Err(why)` until a first set is loaded; later failures keep the last good set.
    pub fn readiness(&self) -> Result<(), String> {
        let state = self.shared.state();
        match (state.loaded, &state.last_error) {
            (true, _) => Ok(()),
            (false, Some(error)) => Err(error.clone()),
            (false, None) => Err("the first fetch has not finished yet".to_owned()),
        }
    }
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Shared {
    fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(kid).cloned()
    }

    fn state(&self) -> MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn early_fetch_allowed(&self, state: &FetchState) -> bool {
        state
            .last_early
            .is_none_or(|at| at.elapsed() >= self.min_refresh)
    }
}

/// The refresher: fetches on schedule, or early when asked and allowed.
async fn refresh(shared: Arc<Shared>, client: reqwest::Client, url: Url) {
    let mut next = Instant::now();
    let mut retry = FIRST_RETRY;
    loop {
        let early = tokio::select! {
            () = tokio::time::sleep_until(next) => false,
            () = shared.wake.notified() => true,
        };
        {
            let mut state = shared.state();
            if early {
                if !shared.early_fetch_allowed(&state) {
                    continue;
                }
                state.last_early = Some(Instant::now());
            }
            state.in_flight = true;
        }
        let wait = match fetch(&client, &url).await {
            Ok((keys, max_age)) => {
                shared.loaded(keys);
                retry = FIRST_RETRY;
                let longest = MAX_LIFETIME.max(shared.min_refresh);
                max_age
                    .unwrap_or(DEFAULT_LIFETIME)
                    .clamp(shared.min_refresh, longest)
            }
            Err(error) => {
                shared.failed(&url, &error);
                let wait = retry;
                retry = (retry * 2).min(shared.min_refresh.max(FIRST_RETRY));
                wait
            }
        };
        next = Instant::now() + wait;
        shared.fetched.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Shared {
    fn loaded(&self, keys: KeySet) {
        metrics::counter!("keyward_jwks_fetches_total", "outcome" => "ok").increment(1);
        metrics::gauge!("keyward_jwks_keys").set(keys.len() as f64);
        let mut current = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.state();
        log_change(state.loaded.then_some(&*current), &keys);
        *current = keys;
        drop(current);
        state.in_flight = false;
        state.loaded = true;
        state.last_error = None;
    }

    fn failed(&self, url: &Url, error: &FetchError) {
        metrics::counter!("keyward_jwks_fetches_total", "outcome" => "error").increment(1);
        let mut state = self.state();
        state.in_flight = false;
        state.last_error = Some(error.to_string());
        let consequence = if state.loaded {
            "the last good set keeps serving"
        } else {
            "tokens signed with the provider's keys are refused until it works"
        };
        tracing::warn!(%url, %error, "cannot fetch the JWT signing keys; {consequence}");
    }
}

/// Says which keys serve, when that changes (`old`: none before the first load).
fn log_change(old: Option<&KeySet>, new: &KeySet) {
    if old.is_some_and(|old| old.len() == new.len() && new.keys().all(|k| old.contains_key(k))) {
        tracing::debug!(keys = new.len(), "JWT signing keys fetched, unchanged");
        return;
    }
    if new.is_empty() {
        tracing::warn!("the JWK set has no signing key keyward can use");
        return;
    }
    let mut kids: Vec<&str> = new.keys().map(String::as_str).collect();
    kids.sort_unstable();
    tracing::info!(?kids, "JWT signing keys loaded");
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("no complete answer within {} s", FETCH_TIMEOUT.as_secs())]
    Timeout,
    #[error("{0}")]
    Request(String),
    #[error("the provider answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("the answer is larger than {} KiB", MAX_BODY / 1024)]
    TooLarge,
    #[error("the answer is not a JWK set: {0}")]
    NotASet(#[from] serde_json::Error),
}

impl From<reqwest::Error> for FetchError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            return Self::Timeout;
        }
        // reqwest's own message is generic; its causes say what happened.
        let error = error.without_url();
        let mut text = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(inner) = cause {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            cause = inner.source();
        }
        Self::Request(text)
    }
}

/// TLS for keyward's outbound requests (JWKS, webhooks): rustls on ring, Mozilla's
/// root authorities.
pub(crate) fn tls_client_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn client(url: &JwksUrl) -> reqwest::Result<reqwest::Client> {
    let https = url.0.scheme() == "https";
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_client_config())
        .https_only(https)
        .timeout(FETCH_TIMEOUT)
        .redirect(same_origin_redirects(&url.0))
        // A fetch every few minutes: no connection is worth keeping open.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")));
    if !https {
        // Loopback: never through a proxy.
        builder = builder.no_proxy();
    }
    builder.build()
}

/// Redirects within the configured URL's origin (scheme, host and port) are followed,
/// a few at most; one to another origin is not: the keys served there would replace the
/// provider's. The refused fetch is logged with the place it pointed to.
fn same_origin_redirects(configured: &Url) -> reqwest::redirect::Policy {
    let origin = configured.origin();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.url().origin() != origin {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(format!(
                "a redirect to another origin ({to}) is not followed: \
                 set KEYWARD_JWT_JWKS_URL to the URL that serves the keys"
            ))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

async fn fetch(
    client: &reqwest::Client,
    url: &Url,
) -> Result<(KeySet, Option<Duration>), FetchError> {
    let mut response = client
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let max_age = response.headers().get(CACHE_CONTROL).and_then(max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((key_set(&body)?, max_age))
}

/// `max-age` of a `Cache-Control` header.
fn max_age(header: &HeaderValue) -> Option<Duration> {
    header.to_str().ok()?.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        value
            .trim()
            .trim_matches('"')
            .parse()
            .ok()
            .map(Duration::from_secs)
    })
}

/// The usable keys of a JWK set, by kid. Each key is read on its own, so one that
/// keyward cannot use (or read) is skipped and the others still serve.
fn key_set(body: &[u8]) -> Result<KeySet, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body)?;
    let mut keys = KeySet::new();
    for value in raw.keys {
        let kid = value
            .get("kid")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_owned();
        match signing_key(value) {
            Ok((kid, key)) => {
                keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
            Err(reason) => tracing::debug!(kid, reason, "a key of the JWK set is skipped"),
        }
    }
    Ok(keys)
}

fn signing_key(value: serde_json::Value) -> Result<(String, SigningKey), &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a JWK keyward can read")?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|used| *used != PublicKeyUse::Signature)
    {
        return Err("not a signature key (use)");
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err("not a verification key (key_ops)");
    }
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    let algorithm = algorithm(&jwk).ok_or("an algorithm keyward does not accept")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "unreadable key material")?;
    Ok((kid, SigningKey { key, algorithm }))
}

/// The key's algorithm: its `alg` when it names one of [`ALLOWED`] that fits the key
/// type, else the one its `kty`/`crv` implies (RS256 for RSA).
fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    use Algorithm::*;
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => ES256,
            EllipticCurve::P384 => ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => EdDSA,
        // Symmetric keys (a shared secret has no place in a published set), unknown types.
        _ => return None,
    };
    let Some(named) = jwk.common.key_algorithm else {
        return Some(implied);
    };
    let named = match named {
        KeyAlgorithm::RS256 => RS256,
        KeyAlgorithm::RS384 => RS384,
        KeyAlgorithm::RS512 => RS512,
        KeyAlgorithm::PS256 => PS256,
        KeyAlgorithm::PS384 => PS384,
        KeyAlgorithm::PS512 => PS512,
        KeyAlgorithm::ES256 => ES256,
        KeyAlgorithm::ES384 => ES384,
        KeyAlgorithm::EdDSA => EdDSA,
        _ => return None,
    };
    let fits = match implied {
        RS256 => matches!(named, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        other => named == other,
    };
    (fits && ALLOWED.contains(&named)).then_some(named)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_jwks_url_is_https_or_plain_http_to_loopback() {
        for good in [
            "https://ref.supabase.co/auth/v1/.well-known/jwks.json",
            "http://127.0.0.1:9999/jwks",
            "http://[::1]:9999/jwks",
        ] {
            assert!(JwksUrl::parse(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("http://id.example/jwks", "loopback"),
            ("http://10.0.0.5/jwks", "loopback"),
            ("http://localhost/jwks", "loopback"),
            ("ftp://id.example/jwks", "not supported"),
            ("id.example/jwks", "not a URL"),
        ] {
            let error = JwksUrl::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let header = |text| max_age(&HeaderValue::from_static(text));
        assert_eq!(
            header("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            header("Max-Age=\"15\", stale-while-revalidate=15"),
            Some(Duration::from_secs(15))
        );
        assert_eq!(header("no-cache"), None);
        assert_eq!(header("max-age=soon"), None);
    }

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_keys_algorithm_comes_from_its_alg_or_its_type_and_curve() {
        let rsa = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        let ec = |crv| json!({"kty": "EC", "crv": crv, "x": "AA", "y": "AA"});
        let with_alg = |mut key: serde_json::Value, alg: &str| {
            key["alg"] = json!(alg);
            key
        };
        use Algorithm::*;
        let cases = [
            (rsa.clone(), Some(RS256)),
            (with_alg(rsa.clone(), "PS384"), Some(PS384)),
            (with_alg(rsa.clone(), "ES256"), None),
            (with_alg(rsa.clone(), "RSA-OAEP"), None),
            (with_alg(rsa, "HS256"), None),
            (ec("P-256"), Some(ES256)),
            (ec("P-384"), Some(ES384)),
            (with_alg(ec("P-256"), "ES384"), None),
            (ec("P-521"), None),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"}),
                Some(EdDSA),
            ),
            (json!({"kty": "OKP", "crv": "X25519", "x": "AA"}), None),
            (json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}), None),
            (json!({"kty": "AKP", "alg": "ML-DSA-65", "pub": "AA"}), None),
        ];
        for (key, expected) in cases {
            assert_eq!(algorithm(&jwk(key.clone())), expected, "{key}");
        }
    }

    #[test]
    fn a_set_keeps_its_usable_keys_and_skips_the_rest() {
        let body = json!({"keys": [
            {"kid": "sig", "kty": "OKP", "crv": "Ed25519", "use": "sig",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kid": "enc", "kty": "OKP", "crv": "Ed25519", "use": "enc",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kid": "sign-only", "kty": "OKP", "crv": "Ed25519", "key_ops": ["sign"],
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kid": "odd", "kty": "EC", "use": 7},
            "not even an object"
        ]});
        let keys = key_set(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["sig"]);
        assert!(key_set(b"{\"keys\": {}}").is_err());
        assert!(key_set(b"<html>").is_err());
    }
}
