//! Request extractors that answer in the API's error shape.

use axum::Json;
use axum::body::{Bytes, HttpBody};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use keyward_core::credential::CredentialId;
use keyward_core::model::{KeyId, UserId};
use keyward_core::webhook::WebhookId;
use keyward_engine::EngineError;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Like [`axum::Json`], but bad bodies become JSON errors (400/413/415/422).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !plain_json(req.headers()) {
            return Json::<T>::from_request(req, state)
                .await
                .map(|Json(value)| Self(value))
                .map_err(ApiError::from_json_rejection);
        }
        // The common case, measured on the verify route: the body is parsed without
        // tracking where the parser is in it. Only a body that fails to parse is
        // parsed again the detailed way, for the error's path (`cost: invalid type…`).
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::from_json_rejection(rejection.into()))?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Self(value)),
            Err(_) => Json::<T>::from_bytes(&bytes)
                .map(|Json(value)| Self(value))
                .map_err(ApiError::from_json_rejection),
        }
    }
}

/// `Content-Type: application/json` as nearly every client spells it; other JSON
/// spellings (`; charset=utf-8`, `+json`) and everything else are judged by axum's
/// extractor.
fn plain_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"application/json"))
}

/// [`ApiJson`] for bodies whose fields are all optional: a request with no body at
/// all (no `Content-Type` and an empty body), or `null`, is the default value, so
/// `curl -X POST …/rotate` works without `-d '{}'`.
pub struct ApiJsonOrEmpty<T>(pub T);

impl<T, S> FromRequest<S> for ApiJsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The body's size is known to be zero: no Content-Length or a zero one, and
        // no chunked transfer.
        let no_body =
            !req.headers().contains_key(CONTENT_TYPE) && req.body().size_hint().exact() == Some(0);
        if no_body {
            return Ok(Self(T::default()));
        }
        // A JSON `null` is the default too (the spec's body is `T` or null).
        ApiJson::<Option<T>>::from_request(req, state)
            .await
            .map(|ApiJson(value)| Self(value.unwrap_or_default()))
    }
}

/// Like [`axum::extract::Query`], but bad query strings become JSON errors (422).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// Declares an extractor of the `{id}` path segment as `$id` (see [`id_segment`]):
/// what is not such an id in its canonical spelling names nothing, `$unknown`.
macro_rules! id_path {
    ($(#[$doc:meta])* $name:ident($id:ty), $unknown:expr) => {
        $(#[$doc])*
        pub struct $name(pub $id);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                id_segment(parts, state).await.map(Self).ok_or_else($unknown)
            }
        }
    };
}

id_path!(
    /// The `{id}` path segment, parsed as a key id. Text that is not a key id in its
    /// canonical spelling cannot name one of the caller's keys, so it is answered like
    /// any unknown id: 404. That holds for the segment as sent, before percent-decoding:
    /// `%30190…` names no key either (see [`KeyId`]'s `FromStr`).
    KeyIdPath(KeyId),
    ApiError::not_found
);

id_path!(
    /// The `{id}` path segment of a service credential, read as [`KeyIdPath`] reads a
    /// key's: anything but a canonical id is an unknown credential, 404.
    CredentialIdPath(CredentialId),
    || EngineError::NoSuchCredential.into()
);

id_path!(
    /// The `{id}` path segment of a webhook endpoint, read as [`KeyIdPath`] reads a
    /// key's: anything but a canonical id is an unknown endpoint, 404.
    WebhookIdPath(WebhookId),
    || EngineError::NoSuchWebhook.into()
);

/// The `{delivery_id}` path segment: a delivery's number as the log shows it
/// (digits, no sign or leading zero). Anything else names no delivery: 404.
pub struct DeliveryIdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for DeliveryIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::from(EngineError::NoSuchDelivery))?;
        params
            .iter()
            .find_map(|(name, value)| (name == "delivery_id").then_some(value))
            .filter(|text| {
                text.bytes().all(|b| b.is_ascii_digit())
                    && !text.starts_with('0')
                    && text.len() <= 18
            })
            .and_then(|text| text.parse().ok())
            .map(Self)
            .ok_or_else(|| EngineError::NoSuchDelivery.into())
    }
}

/// The `{id}` segment as an id, if it stands in the path as sent, as a whole segment
/// (the parameters come percent-decoded), in the id's canonical spelling.
async fn id_segment<S: Send + Sync, T: std::str::FromStr>(
    parts: &mut Parts,
    state: &S,
) -> Option<T> {
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    let id = params
        .iter()
        .find_map(|(name, value)| (name == "id").then_some(value))?;
    if !parts.uri.path().split('/').any(|segment| segment == id) {
        return None;
    }
    id.parse().ok()
}

/// The `{user_id}` path segment, percent-decoded, read as stored: a user whose id
/// predates today's rules (see [`UserId::from_stored`]) can still be listed and
/// removed; new keys are held to today's rules by the engine. Anything else: 422.
pub struct UserIdPath(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for UserIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid("user_id: not UTF-8 once percent-decoded"))?;
        UserId::from_stored(&id)
            .map(Self)
            .map_err(|e| ApiError::invalid(format!("user_id: {e}")))
    }
}
