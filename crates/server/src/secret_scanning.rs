//! GitHub's secret scanning partner programme: GitHub posts the tokens of this
//! deployment's format it finds in public (repositories, issues, gists, npm packages),
//! signed with one of its ECDSA P-256 keys; keyward checks the signature on the bytes
//! as received, then acts on each live key as on any leak report.
//!
//! GitHub's public keys come from `KEYWARD_GITHUB_SECRET_SCANNING_KEYS_URL` (JSON
//! `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`). They are
//! fetched when a request names a key not yet known, at most once a minute whatever
//! the requests say, so a flood of made-up identifiers cannot make keyward hammer
//! GitHub.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

use crate::http::jwks::JwksUrl;

/// GitHub's key list.
pub const DEFAULT_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";
/// The shortest time between two fetches of the key list.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// A fetch's deadline.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest key list read.
const MAX_KEY_LIST: usize = 256 * 1024;

/// GitHub's signing keys, by identifier.
pub struct GithubKeys {
    url: JwksUrl,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    /// When the list was last fetched; held during a fetch, so one runs at a time.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

/// Why a request's signature was not accepted (said in the log; the caller gets 401).
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the Github-Public-Key-Identifier or Github-Public-Key-Signature header is missing")]
    Missing,
    #[error("no GitHub key has this identifier (the list was fetched at most a minute ago)")]
    UnknownKey,
    #[error("the signature is not base64 DER")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// A request's signature and the GitHub key to check it with.
pub struct Signed {
    key: VerifyingKey,
    signature: Signature,
}

impl Signed {
    /// Checks that `body`, exactly as received, is what was signed.
    pub fn verify(&self, body: &[u8]) -> Result<(), SignatureError> {
        self.key
            .verify(body, &self.signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[derive(Deserialize)]
struct KeyList {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

impl GithubKeys {
    pub fn new(url: JwksUrl) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::http::jwks::tls_client_config())
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            url,
            client,
            keys: RwLock::new(HashMap::new()),
            fetched: tokio::sync::Mutex::new(None),
        })
    }

    /// The GitHub key a request names and the signature it carries, checked before
    /// its body is read: a request without them, or naming no GitHub key, is refused
    /// without reading a byte of the body.
    pub async fn signed_by(
        &self,
        identifier: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Signed, SignatureError> {
        let (Some(identifier), Some(signature)) = (identifier, signature) else {
            return Err(SignatureError::Missing);
        };
        let der = STANDARD
            .decode(signature.trim())
            .map_err(|_| SignatureError::Malformed)?;
        let signature = Signature::from_der(&der).map_err(|_| SignatureError::Malformed)?;
        let key = self
            .key(identifier)
            .await
            .ok_or(SignatureError::UnknownKey)?;
        Ok(Signed { key, signature })
    }

    fn known(&self, identifier: &str) -> Option<VerifyingKey> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.get(identifier).copied()
    }

    /// The key named `identifier`, fetching the list if it is unknown and the last
    /// fetch is old enough.
    async fn key(&self, identifier: &str) -> Option<VerifyingKey> {
        if let Some(key) = self.known(identifier) {
            return Some(key);
        }
        let mut fetched = self.fetched.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.known(identifier) {
            return Some(key);
        }
        if fetched.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
            return None;
        }
        *fetched = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %self.url, "GitHub's secret scanning keys fetched");
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
            }
            Err(err) => {
                tracing::warn!(error = %err, url = %self.url, "GitHub's secret scanning keys could not be fetched; the last ones are kept");
            }
        }
        self.known(identifier)
    }

    async fn fetch(&self) -> Result<HashMap<String, VerifyingKey>, String> {
        let mut response = self
            .client
            .get(self.url.to_string())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_KEY_LIST {
                return Err(format!("the key list is over {MAX_KEY_LIST} bytes"));
            }
        }
        let list: KeyList =
            serde_json::from_slice(&body).map_err(|e| format!("not the key list: {e}"))?;
        let mut keys = HashMap::new();
        for published in list.public_keys {
            match VerifyingKey::from_public_key_pem(&published.key) {
                Ok(key) => {
                    keys.insert(published.key_identifier, key);
                }
                Err(_) => tracing::warn!(
                    key_identifier = %published.key_identifier,
                    "a GitHub secret scanning key is not a P-256 public key in PEM; skipped"
                ),
            }
        }
        Ok(keys)
    }
}
