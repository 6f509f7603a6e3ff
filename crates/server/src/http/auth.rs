//! Who is calling: end users with a JWT from the platform's identity provider, or
//! the platform's services, each with a service credential (`kwsvc_…`) that holds the
//! scopes it needs, or with the static service token (`KEYWARD_ADMIN_TOKEN`), which
//! holds them all unless it is disabled.
//!
//! - User JWTs: HS256 with `KEYWARD_JWT_SECRET`, and/or RS*/PS*/ES*/EdDSA with the
//!   identity provider's keys from `KEYWARD_JWT_JWKS_URL` (found by the token's `kid`,
//!   [`super::jwks`]) and/or the public key in `KEYWARD_JWT_PUBLIC_KEY_FILE` (for
//!   tokens whose kid the set does not have, or that have none). The header's `alg`
//!   only chooses between the HS256 secret and the public keys, and must then be the
//!   key's own algorithm: a public key never verifies an HMAC, so it can never be
//!   misused as an HMAC secret. `exp` and `sub` are required; `iss` and `aud` are
//!   checked (and required) when configured.
//! - The service token is compared in constant time, as SHA-256 digests so that
//!   not even its length leaks. A credential is checked by the engine, from memory.
//! - A route that needs a scope takes [`Service<N>`](Service) with the scope's marker
//!   ([`scope`]): a caller without it gets 403 naming it. Every refusal of the secret
//!   itself (unknown, revoked, expired, malformed) is the same 401.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keyward_core::credential::{ScopeSet, ServiceScope};
use keyward_core::model::UserId;
use keyward_engine::{AuthenticatedCredential, Engine};
use keyward_store::AnyStore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::jwks::{self, Jwks};
use crate::settings::JwtSettings;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("KEYWARD_JWT_PUBLIC_KEY_FILE is not an RSA, EC or Ed25519 public key in PEM form")]
    UnreadablePublicKey,
    #[error(
        "no way to check user tokens: set KEYWARD_JWT_SECRET, KEYWARD_JWT_JWKS_URL or \
         KEYWARD_JWT_PUBLIC_KEY_FILE"
    )]
    NoJwtKey,
    #[error("KEYWARD_JWT_JWKS_URL: cannot make an HTTP client: {0}")]
    JwksClient(String),
}

struct KeyCheck {
    key: DecodingKey,
    validation: Validation,
}

impl KeyCheck {
    fn parts(&self) -> (&DecodingKey, &Validation) {
        (&self.key, &self.validation)
    }
}

/// Checks both kinds of caller.
pub struct Authenticator {
    hmac: Option<KeyCheck>,
    public: Option<KeyCheck>,
    jwks: Option<Jwks>,
    /// The claim checks for a key of the set, by the key's algorithm.
    jwks_validations: Vec<(Algorithm, Validation)>,
    /// `None`: disabled (`KEYWARD_ADMIN_TOKEN=disabled`), only credentials are let in.
    service_token: Option<TokenDigest>,
    /// The token `/metrics` asks for (`KEYWARD_METRICS_TOKEN`), if any.
    metrics_token: Option<TokenDigest>,
    leeway: u64,
    max_ttl: Option<u64>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: Option<u64>,
}

/// What a client is told about a token that is refused: whether it is a matter of
/// time (expired, not yet valid, too long-lived), not which signature, algorithm or
/// claim check failed. The specific reason goes to the debug log.
const INVALID_TOKEN: &str = "the token is not valid";
/// A token whose `kid` the identity provider's key set does not have (yet). Saying so
/// tells nothing secret: the set is public.
const UNKNOWN_SIGNING_KEY: &str = "the token's signing key (kid) is not known";

impl Authenticator {
    /// Checks the settings; with a JWKS URL, starts fetching its keys (on the current
    /// Tokio runtime, until the authenticator is dropped).
    pub fn new(jwt: &JwtSettings, service_token: Option<&str>) -> Result<Self, AuthSetupError> {
        let validation = |algorithms: &[Algorithm]| {
            let mut v = Validation::new(algorithms[0]);
            v.algorithms = algorithms.to_vec();
            v.leeway = jwt.leeway_seconds;
            // `nbf` is checked when present (jsonwebtoken leaves it off by default).
            v.validate_nbf = true;
            let mut required = vec!["exp", "sub"];
            if jwt.max_ttl_seconds.is_some() {
                required.push("iat");
            }
            if let Some(iss) = &jwt.issuer {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            match &jwt.audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                // Without a configured audience, a token's `aud` is not ours to judge.
                None => v.validate_aud = false,
            }
            v.set_required_spec_claims(&required);
            v
        };
        let hmac = jwt.hs256_secret.as_ref().map(|secret| KeyCheck {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation: validation(&[Algorithm::HS256]),
        });
        let public = match &jwt.public_key_pem {
            None => None,
            Some(pem) => Some(public_key_check(pem, validation)?),
        };
        if hmac.is_none() && public.is_none() && jwt.jwks.is_none() {
            return Err(AuthSetupError::NoJwtKey);
        }
        let jwks = jwt
            .jwks
            .as_ref()
            .map(Jwks::start)
            .transpose()
            .map_err(AuthSetupError::JwksClient)?;
        let jwks_validations = jwks::ALLOWED
            .iter()
            .map(|&algorithm| (algorithm, validation(&[algorithm])))
            .collect();
        Ok(Self {
            hmac,
            public,
            jwks,
            jwks_validations,
            service_token: service_token.map(TokenDigest::of),
            metrics_token: None,
            leeway: jwt.leeway_seconds,
            max_ttl: jwt.max_ttl_seconds,
        })
    }

    /// The user a JWT speaks for, or why it is refused (safe to tell the client).
    pub async fn user_from_jwt(&self, token: &str) -> Result<UserId, &'static str> {
        let refused = |reason: &str| {
            tracing::debug!(reason, "a user token was refused");
            INVALID_TOKEN
        };
        let header_json = compact_parts(token).ok_or_else(|| refused("not a compact JWS"))?;
        // RFC 7515 §4.1.11: a `crit` header names extensions the verifier must
        // understand; keyward understands none.
        if header_json.contains_key("crit") {
            return Err(refused("a crit header"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("no JOSE header"))?;
        // HS256 is the secret's; any other algorithm is a public key's: the set's by
        // kid first, then the configured one.
        let from_set = match (&self.jwks, &header.kid) {
            (Some(jwks), Some(kid)) if header.alg != Algorithm::HS256 => jwks.key(kid).await,
            _ => None,
        };
        let (key, validation) = match (&from_set, header.alg) {
            (Some(found), _) => (&found.key, self.jwks_validation(found.algorithm)),
            (None, Algorithm::HS256) => self
                .hmac
                .as_ref()
                .map(KeyCheck::parts)
                .ok_or_else(|| refused("HS256 without a configured secret"))?,
            (None, _) => self.public.as_ref().map(KeyCheck::parts).ok_or_else(|| {
                match (&self.jwks, &header.kid) {
                    (Some(_), Some(_)) => {
                        tracing::debug!("a user token names a kid the JWT signing keys lack");
                        UNKNOWN_SIGNING_KEY
                    }
                    (Some(_), None) => refused("no kid to find the signing key by"),
                    (None, _) => refused("a public-key algorithm without a configured key"),
                }
            })?,
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                other => refused(&format!("{other:?}")),
            })?;
        if let Some(max_ttl) = self.max_ttl {
            let iat = data.claims.iat.ok_or_else(|| refused("no iat"))?;
            let now = jsonwebtoken::get_current_timestamp();
            if iat > now + self.leeway {
                return Err(refused("iat in the future"));
            }
            if data.claims.exp.saturating_sub(iat) > max_ttl {
                return Err("the token's lifetime is longer than this service accepts");
            }
        }
        UserId::parse(&data.claims.sub).map_err(|_| refused("a subject that is not a user id"))
    }

    /// `Err(why)` while the JWKS has never been loaded (no JWKS configured: ready).
    pub fn readiness(&self) -> Result<(), String> {
        self.jwks.as_ref().map_or(Ok(()), Jwks::readiness)
    }

    fn jwks_validation(&self, algorithm: Algorithm) -> &Validation {
        &self
            .jwks_validations
            .iter()
            .find(|(allowed, _)| *allowed == algorithm)
            .expect("a key of the set has an allowed algorithm")
            .1
    }

    /// True if `token` is the service token (never, while it is disabled).
    pub fn is_service_token(&self, token: &str) -> bool {
        self.service_token
            .as_ref()
            .is_some_and(|digest| digest.matches(token))
    }

    /// `/metrics` asks for `token` from now on (`None`: answers anyone).
    #[must_use]
    pub fn with_metrics_token(mut self, token: Option<&str>) -> Self {
        self.metrics_token = token.map(TokenDigest::of);
        self
    }
}

fn public_key_check(
    pem: &[u8],
    validation: impl Fn(&[Algorithm]) -> Validation,
) -> Result<KeyCheck, AuthSetupError> {
    use Algorithm::*;
    let (key, algorithms): (DecodingKey, &[Algorithm]) =
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (key, &[RS256, RS384, RS512, PS256, PS384, PS512])
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (key, &[ES256, ES384])
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            (key, &[EdDSA])
        } else {
            return Err(AuthSetupError::UnreadablePublicKey);
        };
    Ok(KeyCheck {
        key,
        validation: validation(algorithms),
    })
}

/// The three parts of a compact JWS, each in canonical unpadded base64url (no
/// padding, no stray characters, no set bits past the data: one token, one
/// spelling); returns the decoded header object.
fn compact_parts(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| canonical_base64url(p)) {
        return None;
    }
    let header = URL_SAFE_NO_PAD.decode(parts[0]).ok()?;
    serde_json::from_slice(&header).ok()
}

fn canonical_base64url(text: &str) -> bool {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    };
    let Some(last) = text.bytes().last() else {
        return false;
    };
    if !text.bytes().all(|c| value(c).is_some()) {
        return false;
    }
    // The last character of a partial group carries unused low bits, which must be 0.
    let unused_bits_mask = match text.len() % 4 {
        0 => 0,
        2 => 0b1111,
        3 => 0b11,
        _ => return false,
    };
    value(last).is_some_and(|v| v & unused_bits_mask == 0)
}

/// The bearer credential of a request, if it has one (exactly one).
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let mut sent = parts.headers.get_all(AUTHORIZATION).iter();
    let value = sent.next().ok_or_else(|| {
        ApiError::unauthorized("an Authorization: Bearer <token> header is required")
    })?;
    if sent.next().is_some() {
        return Err(ApiError::unauthorized(
            "the Authorization header is sent more than once",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be: Bearer <token>",
        )),
    }
}

/// A configured token, kept as its SHA-256: a presented token is compared with it in
/// constant time, digest against digest, so neither its length nor its first
/// differing byte shows in the time taken.
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        Self::of(presented).0.ct_eq(&self.0).into()
    }
}

/// A router's state that can tell who is calling: what the extractors below need of
/// it (the HTTP state implements it).
pub trait Authenticated: Send + Sync {
    fn authenticator(&self) -> &Authenticator;
    /// The engine, which knows the service credentials.
    fn engine(&self) -> &Engine<AnyStore>;
    /// The address a request comes from, for the failed-attempt limit.
    fn client(&self, parts: &Parts) -> Option<std::net::IpAddr>;
}

/// An end user, authenticated by a JWT (`sub` is the user id).
pub struct AuthUser(pub UserId);

impl<S: Authenticated> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        state
            .authenticator()
            .user_from_jwt(token)
            .await
            .map(AuthUser)
            .map_err(ApiError::unauthorized)
    }
}

/// Anyone with a credential: a user (JWT) or one of the platform's services
/// (whatever its scopes).
pub struct AnyCaller;

impl<S: Authenticated> FromRequestParts<S> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Ok(token) = bearer(parts) {
            match ServiceIdentity::of(state, token, state.client(parts)).await {
                Ok(_) => return Ok(AnyCaller),
                // The database is down: a user's JWT may still be good.
                Err(err) if err.status() != StatusCode::UNAUTHORIZED => return Err(err),
                Err(_) => {}
            }
        }
        AuthUser::from_request_parts(parts, state)
            .await
            .map(|_| AnyCaller)
    }
}

/// Who may read `/metrics`: anyone, or with `KEYWARD_METRICS_TOKEN` set, a caller
/// presenting it as a bearer token.
pub struct MetricsReader;

impl<S: Authenticated> FromRequestParts<S> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Some(expected) = &state.authenticator().metrics_token else {
            return Ok(MetricsReader);
        };
        if expected.matches(bearer(parts)?) {
            Ok(MetricsReader)
        } else {
            Err(ApiError::unauthorized("the metrics token is not valid")
                .hint("Send Authorization: Bearer <KEYWARD_METRICS_TOKEN>."))
        }
    }
}

/// What a platform's service authenticated with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceIdentity {
    /// The static service token: every scope.
    StaticToken,
    Credential(AuthenticatedCredential),
}

/// The one answer to a service secret that is not good, whatever is wrong with it.
const INVALID_SERVICE_SECRET: &str = "the service token is not valid";

impl ServiceIdentity {
    /// Who `secret`, sent from `client`, is: the static token (compared first, in
    /// constant time), or an active credential. Unknown, revoked, expired or
    /// malformed: the same 401; too many of those from one address: 429. The database
    /// down while a credential is not cached: 503.
    pub async fn of<S: Authenticated>(
        state: &S,
        secret: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Self, ApiError> {
        if state.authenticator().is_service_token(secret) {
            return Ok(Self::StaticToken);
        }
        let engine = state.engine();
        match engine.authenticate_credential_from(secret, client).await? {
            Some(credential) => Ok(Self::Credential(credential)),
            None => Err(ApiError::unauthorized(INVALID_SERVICE_SECRET)),
        }
    }

    pub fn scopes(&self) -> ScopeSet {
        match self {
            Self::StaticToken => ScopeSet::ALL,
            Self::Credential(credential) => credential.scopes,
        }
    }

    /// 403, naming the scope, unless this service holds `scope`.
    pub fn require(&self, scope: ServiceScope) -> Result<(), ApiError> {
        if self.scopes().contains(scope) {
            return Ok(());
        }
        Err(ApiError::new(StatusCode::FORBIDDEN, "Missing scope")
            .detail(format!("this credential does not hold the scope {scope}"))
            .hint(format!(
                "Use a credential that holds {scope} (keyward credentials create --scope {scope})."
            )))
    }

    /// How the audit trail names this service.
    pub fn actor(&self, engine: &Engine<AnyStore>) -> keyward_core::audit::Actor {
        match self {
            Self::StaticToken => {
                keyward_core::audit::Actor::Admin(engine.config().admin_actor.clone())
            }
            Self::Credential(credential) => credential.actor(),
        }
    }

    /// The engine, recording what it changes as made by this service.
    pub fn engine(&self, engine: &Engine<AnyStore>) -> Engine<AnyStore> {
        match self {
            Self::StaticToken => engine.clone(),
            Self::Credential(credential) => engine.acting_as(credential.actor(), credential.scopes),
        }
    }
}

/// The scopes routes need, as types: a handler taking `Service<scope::KeysRead>` is
/// only reached by a service holding `keys.read`.
pub mod scope {
    use keyward_core::credential::ServiceScope;

    /// A scope a route needs.
    pub trait Needs: Send + Sync + 'static {
        const SCOPE: ServiceScope;
    }

    macro_rules! markers {
        ($($scope:ident),* $(,)?) => {$(
            #[doc = concat!("Needs [`ServiceScope::", stringify!($scope), "`].")]
            pub struct $scope;
            impl Needs for $scope {
                const SCOPE: ServiceScope = ServiceScope::$scope;
            }
        )*};
    }

    markers!(
        KeysVerify,
        KeysRead,
        KeysWrite,
        UsageRead,
        AuditRead,
        CredentialsManage,
        WebhooksManage
    );
}

/// One of the platform's services, whatever its scopes (for what every service may
/// ask: who it is).
pub struct AnyService(pub ServiceIdentity);

impl<S: Authenticated> FromRequestParts<S> for AnyService {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let identity = ServiceIdentity::of(state, bearer(parts)?, state.client(parts)).await?;
        Ok(Self(identity))
    }
}

/// One of the platform's services, holding the scope `N` names; `engine` records
/// its changes as made by it.
pub struct Service<N> {
    pub engine: Engine<AnyStore>,
    pub identity: ServiceIdentity,
    needs: std::marker::PhantomData<N>,
}

impl<S: Authenticated, N: scope::Needs> FromRequestParts<S> for Service<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let AnyService(identity) = AnyService::from_request_parts(parts, state).await?;
        identity.require(N::SCOPE)?;
        Ok(Self {
            engine: identity.engine(state.engine()),
            identity,
            needs: std::marker::PhantomData,
        })
    }
}
