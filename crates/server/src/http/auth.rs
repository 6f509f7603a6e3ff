//! Who is calling: end users with a JWT from the platform's identity provider, or
//! the platform's services with the admin/service token.
//!
//! - User JWTs: HS256 with `KEYWARD_JWT_SECRET`, and/or RS*/PS*/ES*/EdDSA with the
//!   public key in `KEYWARD_JWT_PUBLIC_KEY_FILE`. The header's `alg` picks the key, and
//!   a key only ever verifies its own family, so an RSA public key can never be
//!   misused as an HMAC secret. `exp` and `sub` are required; `iss` and `aud` are
//!   checked (and required) when configured.
//! - The service token is compared in constant time, as SHA-256 digests so that
//!   not even its length leaks.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keyward_core::model::UserId;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::settings::JwtSettings;

/// Leeway for `exp`/`nbf`, for clocks that disagree a little.
const CLOCK_LEEWAY_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("KEYWARD_JWT_PUBLIC_KEY_FILE is not an RSA, EC or Ed25519 public key in PEM form")]
    UnreadablePublicKey,
    #[error("no way to check user tokens: set KEYWARD_JWT_SECRET or KEYWARD_JWT_PUBLIC_KEY_FILE")]
    NoJwtKey,
}

struct KeyCheck {
    key: DecodingKey,
    validation: Validation,
}

/// Checks both kinds of caller.
pub struct Authenticator {
    hmac: Option<KeyCheck>,
    public: Option<KeyCheck>,
    service_token_digest: [u8; 32],
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl Authenticator {
    pub fn new(jwt: &JwtSettings, service_token: &str) -> Result<Self, AuthSetupError> {
        let validation = |algorithms: &[Algorithm]| {
            let mut v = Validation::new(algorithms[0]);
            v.algorithms = algorithms.to_vec();
            v.leeway = CLOCK_LEEWAY_SECS;
            // `nbf` is checked when present (jsonwebtoken leaves it off by default).
            v.validate_nbf = true;
            let mut required = vec!["exp", "sub"];
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
        if hmac.is_none() && public.is_none() {
            return Err(AuthSetupError::NoJwtKey);
        }
        Ok(Self {
            hmac,
            public,
            service_token_digest: Sha256::digest(service_token.as_bytes()).into(),
        })
    }

    /// The user a JWT speaks for, or why it is refused (safe to tell the client).
    pub fn user_from_jwt(&self, token: &str) -> Result<UserId, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is not a JWT")?;
        let check = if header.alg == Algorithm::HS256 {
            self.hmac.as_ref()
        } else {
            self.public.as_ref()
        }
        .ok_or("the token's algorithm is not accepted")?;
        let data =
            jsonwebtoken::decode::<Claims>(token, &check.key, &check.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidSignature => "the token's signature is invalid",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                    ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                    ErrorKind::InvalidAudience => "the token's audience is not accepted",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is invalid",
                }
            })?;
        UserId::parse(&data.claims.sub).map_err(|_| "the token's subject is not a valid user id")
    }

    /// True if `token` is the service token.
    pub fn is_service_token(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        digest.ct_eq(&self.service_token_digest).into()
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

/// The bearer credential of a request, if it has one.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("an Authorization: Bearer <token> header is required")
    })?;
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

/// An end user, authenticated by a JWT (`sub` is the user id).
pub struct AuthUser(pub UserId);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        state
            .auth
            .user_from_jwt(token)
            .map(AuthUser)
            .map_err(ApiError::unauthorized)
    }
}

/// Anyone with a credential: a user (JWT) or one of the platform's services (the
/// service token).
pub struct AnyCaller;

impl FromRequestParts<AppState> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if state.auth.is_service_token(token) {
            return Ok(AnyCaller);
        }
        state
            .auth
            .user_from_jwt(token)
            .map(|_| AnyCaller)
            .map_err(ApiError::unauthorized)
    }
}

/// One of the platform's services, authenticated by the service token.
pub struct ServiceCaller;

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if state.auth.is_service_token(token) {
            Ok(ServiceCaller)
        } else {
            Err(ApiError::unauthorized("the service token is not valid"))
        }
    }
}
