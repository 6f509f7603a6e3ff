//! Remote mode: ask a keyward server's verify API, and reuse its verdicts briefly.
//!
//! The cache is keyed by the SHA-256 of the presented key (never the key itself) and
//! holds, for a key keyward found, its identity and all its permissions, so one
//! answer serves every route whatever it requires; for a key keyward refused, only
//! that. An entry lives `cache_ttl`, and never past the key's own expiry. Keys with a
//! rate limit or usage credits (`metered` in the answer) are never cached, nor are
//! answers that depend on the moment (`RATE_LIMITED`, `USAGE_EXCEEDED`).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyward_core::time::Timestamp;
use keyward_core::verify::{Refusal as KeyRefusal, VerifyCode};
use quick_cache::sync::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Refusal, Required, VerifiedKey};

/// Where the keyward server is and how long its verdicts are reused.
#[derive(Clone)]
pub struct RemoteConfig {
    /// The server's base URL, `http://host:port` (optionally with a path prefix).
    /// Plain HTTP only: keep keyward on a private network or behind a local
    /// TLS-terminating sidecar; the service token and keys travel in each request.
    pub url: String,
    /// keyward's service token (`KEYWARD_ADMIN_TOKEN`).
    pub service_token: String,
    /// How long a verdict is reused: the bound on how late a revocation, a
    /// suspension or a permission change made on the server is honoured here.
    /// Zero asks the server on every request. Default 2 s.
    pub cache_ttl: Duration,
    /// Most keys remembered at once (valid and refused together). Default 10,000.
    pub cache_capacity: usize,
    /// Longest wait for the server's answer, connecting included; past it the
    /// request gets 503. Default 2 s.
    pub timeout: Duration,
}

impl RemoteConfig {
    pub fn new(url: impl Into<String>, service_token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            service_token: service_token.into(),
            cache_ttl: Duration::from_secs(2),
            cache_capacity: 10_000,
            timeout: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("service_token", &"[redacted]")
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_capacity", &self.cache_capacity)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a [`RemoteConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteConfigError {
    /// The URL is not an `http://host[:port][/prefix]` URL.
    #[error("keyward URL: {0}")]
    Url(String),
    /// The service token is empty or cannot be sent in a header.
    #[error("keyward service token: empty or not a valid header value")]
    ServiceToken,
}

/// What is remembered of one key.
#[derive(Clone)]
enum Remembered {
    Found {
        identity: Arc<VerifiedKey>,
        until: Instant,
    },
    Refused {
        until: Instant,
    },
}

impl Remembered {
    fn until(&self) -> Instant {
        match self {
            Self::Found { until, .. } | Self::Refused { until } => *until,
        }
    }
}

/// The parts of keyward's verify answer used here.
#[derive(Deserialize)]
struct Answer {
    code: String,
    key_id: Option<String>,
    user_id: Option<String>,
    permissions: Option<Vec<String>>,
    expires_at: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    remaining: Option<u64>,
    retry_after: Option<f64>,
    metered: Option<bool>,
}

/// keyward's error body (`message` is enough for the log).
#[derive(Deserialize)]
struct ErrorAnswer {
    message: String,
}

/// Answers are small; anything larger is not keyward's.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub(crate) struct Remote {
    client: Client<HttpConnector, Full<Bytes>>,
    verify_uri: Uri,
    authorization: HeaderValue,
    timeout: Duration,
    ttl: Duration,
    cache: Option<Cache<[u8; 32], Remembered>>,
}

/// Without the service token (the `Authorization` header it is sent in) or the cache's
/// content.
impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("verify_uri", &self.verify_uri)
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.ttl)
            .field("cache_capacity", &self.cache.as_ref().map(Cache::capacity))
            .finish_non_exhaustive()
    }
}

impl Remote {
    pub(crate) fn new(config: RemoteConfig) -> Result<Self, RemoteConfigError> {
        let base = config.url.trim_end_matches('/');
        let verify_uri: Uri = format!("{base}/api/api-keys/verify")
            .parse()
            .map_err(|err| RemoteConfigError::Url(format!("{err}")))?;
        match verify_uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(RemoteConfigError::Url(
                    "https is not supported: reach keyward over a private network, or \
                     through a local TLS-terminating sidecar"
                        .into(),
                ));
            }
            _ => return Err(RemoteConfigError::Url("must start with http://".into())),
        }
        if verify_uri.host().is_none_or(str::is_empty) {
            return Err(RemoteConfigError::Url("no host".into()));
        }
        if config.service_token.is_empty() {
            return Err(RemoteConfigError::ServiceToken);
        }
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", config.service_token))
            .map_err(|_| RemoteConfigError::ServiceToken)?;
        authorization.set_sensitive(true);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let cache = (!config.cache_ttl.is_zero() && config.cache_capacity > 0)
            .then(|| Cache::new(config.cache_capacity));
        Ok(Self {
            client,
            verify_uri,
            authorization,
            timeout: config.timeout,
            ttl: config.cache_ttl,
            cache,
        })
    }

    pub(crate) async fn check(
        &self,
        key: &str,
        required: &Required,
        client: Option<IpAddr>,
    ) -> Result<VerifiedKey, Refusal> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let accepted = required.accepted.load(Ordering::Relaxed);
        if let Some(cache) = self.cache.as_ref().filter(|_| accepted)
            && let Some(remembered) = cache.get(&digest)
        {
            if Instant::now() < remembered.until() {
                return decide(&remembered, required);
            }
            cache.remove(&digest);
        }
        // The verdict is remembered from the moment it was asked for: it reflects the
        // server's state at some point after this, so `cache_ttl` bounds its age.
        let asked_at = Instant::now();
        let answer = self.ask(key, required, client).await?;
        required.accepted.store(true, Ordering::Relaxed);
        let verdict = verdict_of(&answer, required);
        if let (Some(cache), Some(remembered)) = (&self.cache, self.remember(&answer, asked_at)) {
            cache.insert(digest, remembered);
        }
        verdict
    }

    /// What of `answer` may be reused, and until when.
    fn remember(&self, answer: &Answer, asked_at: Instant) -> Option<Remembered> {
        let now = Instant::now();
        let mut until = asked_at + self.ttl;
        // A code this guard does not know is not remembered.
        let code = answer.code.parse::<VerifyCode>().ok()?;
        match code {
            // Only when the server says the key is not metered: one that does not say
            // (older than this field) may have a rate limit or credits.
            VerifyCode::Valid | VerifyCode::InsufficientPermissions => {
                if answer.metered != Some(false) {
                    return None;
                }
                let identity = identity_of(answer)?;
                if let Some(expires_at) = &answer.expires_at {
                    // A verdict must not outlive the key: capped at its expiry.
                    let expires_at = Timestamp::parse_rfc3339(expires_at).ok()?;
                    let left = SystemTime::UNIX_EPOCH
                        + Duration::from_millis(u64::try_from(expires_at.as_millis()).ok()?);
                    let left = left.duration_since(SystemTime::now()).ok()?;
                    until = until.min(now + left);
                }
                Some(Remembered::Found {
                    identity: Arc::new(identity),
                    until,
                })
            }
            // Refusals that stay true for a while (a suspended key may be
            // reactivated: that is seen within the same bound).
            VerifyCode::Malformed
            | VerifyCode::NotFound
            | VerifyCode::Suspended
            | VerifyCode::Revoked
            | VerifyCode::Expired => Some(Remembered::Refused { until }),
            // Every use must reach keyward; an address refused is this client's
            // answer, not the key's.
            VerifyCode::RateLimited | VerifyCode::UsageExceeded | VerifyCode::IpNotAllowed => None,
        }
    }

    async fn ask(
        &self,
        key: &str,
        required: &Required,
        client: Option<IpAddr>,
    ) -> Result<Answer, Refusal> {
        let mut body = serde_json::json!({
            "key": key,
            "permissions": &*required.names,
            "client_ip": client,
        });
        // Only when the layer sets one, as keyward-client does: keyward's default
        // otherwise, and the same request as before there were costs.
        if let Some(cost) = required.cost {
            body["cost"] = cost.into();
        }
        let request = Request::post(self.verify_uri.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|err| {
                tracing::error!(error = %err, "building the request to keyward failed");
                Refusal::Misconfigured
            })?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|err| {
                tracing::warn!(error = %err, uri = %self.verify_uri, "keyward could not be reached");
                Refusal::Key(KeyRefusal::Unavailable)
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|err| {
                    tracing::warn!(error = %err, "reading keyward's answer failed");
                    Refusal::Key(KeyRefusal::Unavailable)
                })?
                .to_bytes();
            Ok::<_, Refusal>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                tracing::warn!(uri = %self.verify_uri, timeout = ?self.timeout, "keyward did not answer in time");
                Refusal::Key(KeyRefusal::Unavailable)
            })??;
        if status == StatusCode::OK {
            return serde_json::from_slice(&bytes).map_err(|err| {
                tracing::warn!(error = %err, "keyward's answer was not a verdict");
                Refusal::Key(KeyRefusal::Unavailable)
            });
        }
        let message = serde_json::from_slice::<ErrorAnswer>(&bytes)
            .map(|e| e.message)
            .unwrap_or_default();
        Err(match status {
            StatusCode::UNAUTHORIZED => {
                tracing::error!(%message, "keyward refused the service token");
                Refusal::Misconfigured
            }
            // A credential without keys.verify: the service's configuration, as above.
            StatusCode::FORBIDDEN => {
                tracing::error!(%message, "keyward refused the service credential: it needs keys.verify");
                Refusal::Misconfigured
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                tracing::error!(%message, required = ?required.names, "keyward refused the permissions a route requires");
                Refusal::Misconfigured
            }
            _ => {
                tracing::warn!(%status, %message, "keyward could not verify the key");
                Refusal::Key(KeyRefusal::Unavailable)
            }
        })
    }
}

fn identity_of(answer: &Answer) -> Option<VerifiedKey> {
    Some(VerifiedKey {
        user_id: answer.user_id.clone()?,
        key_id: answer.key_id.clone()?,
        permissions: answer.permissions.clone()?,
        metadata: answer.metadata.clone(),
        remaining: answer.remaining,
    })
}

/// The verdict of a fresh answer. A code this guard does not know (from a newer
/// server) refuses, by its name.
fn verdict_of(answer: &Answer, required: &Required) -> Result<VerifiedKey, Refusal> {
    let held = answer.permissions.as_deref().unwrap_or_default();
    let retry_after = answer.retry_after.map(|s| s.ceil() as u64);
    match KeyRefusal::for_code(&answer.code, &required.names, held, retry_after) {
        Some(refusal) => Err(refusal.into()),
        None => identity_of(answer).ok_or(KeyRefusal::Unavailable.into()),
    }
}

/// The verdict of a remembered answer, for this route's permissions.
fn decide(remembered: &Remembered, required: &Required) -> Result<VerifiedKey, Refusal> {
    match remembered {
        Remembered::Refused { .. } => Err(Refusal::Key(KeyRefusal::Invalid)),
        Remembered::Found { identity, .. } => {
            let missing = KeyRefusal::missing(&required.names, &identity.permissions);
            if missing.is_empty() {
                Ok(VerifiedKey::clone(identity))
            } else {
                Err(KeyRefusal::MissingPermissions(missing).into())
            }
        }
    }
}
