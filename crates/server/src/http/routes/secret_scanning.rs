//! GitHub's secret scanning partner endpoint (`KEYWARD_GITHUB_SECRET_SCANNING=on`):
//! tokens of this deployment's format that GitHub found in public, signed by GitHub.
//! Each live key among them is acted on as any leaked key (`KEYWARD_LEAKED_KEY_ACTION`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use futures_util::{StreamExt as _, TryStreamExt as _};
use keyward_core::audit::Actor;
use keyward_core::credential::ScopeSet;
use keyward_core::leak::Sighting;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::documented::{self, Callers};
use crate::http::error::{ApiError, BATCH_BODY_LIMIT, ErrorBody};
use crate::http::state::AppState;
use crate::wire::secret_scanning::{GithubFeedback, GithubMatch};

/// The route documents its own authentication (GitHub's signature).
pub const CALLERS: Callers = Callers::PerRoute;
pub const TAG: &str = "leaks";

/// Tokens of one batch looked up at once: enough to hide a database's round trips,
/// few enough to leave the pool to verifications.
const CONCURRENT_LOOKUPS: usize = 8;

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    // Larger than other bodies (`error::body_limit`).
    OpenApiRouter::new()
        .routes(routes!(github_secret_scanning))
        .layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT))
}

/// GitHub's secret scanning partner endpoint. The body is a JSON array of
/// `{token, type, url, source}`, signed by GitHub (`Github-Public-Key-Identifier`,
/// `Github-Public-Key-Signature`: ECDSA P-256 with SHA-256 over the body as sent). Each
/// token that is a live key of this deployment is revoked (`KEYWARD_LEAKED_KEY_ACTION`),
/// recorded (`leaked`, with the URL and source) and announced (`api_key.leaked`). The
/// answer labels each token: `true_positive` for a live key, `false_positive` otherwise.
/// Enabled with `KEYWARD_GITHUB_SECRET_SCANNING=on` (404 otherwise).
#[utoipa::path(
    post,
    path = "/api/secret-scanning/github",
    operation_id = "github_secret_scanning",
    request_body = Vec<GithubMatch>,
    security(()),
    responses(
        (status = 200, description = "Each token's label", body = Vec<GithubFeedback>),
        (status = 400, description = "Not a JSON array of matches", body = ErrorBody),
        (status = 401, description = "Not signed by GitHub", body = ErrorBody),
        (status = 404, description = "Not enabled here", body = ErrorBody),
        (status = 413, description = "Over 1 MiB", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn github_secret_scanning(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Vec<GithubFeedback>>, ApiError> {
    let Some(github) = state.github.as_ref() else {
        return Err(ApiError::not_found());
    };
    // The signature's headers and key first: the body (up to 1 MiB) is read only for
    // a request that names one of GitHub's keys.
    // Owned, in a block: a request's body is not `Sync`, so nothing may borrow it
    // across an await.
    let (identifier, signature) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            header("github-public-key-identifier"),
            header("github-public-key-signature"),
        )
    };
    let signed = github
        .signed_by(identifier.as_deref(), signature.as_deref())
        .await;
    let body = match signed {
        Ok(signed) => {
            let body =
                Bytes::from_request(request, &state)
                    .await
                    .map_err(|rejected| match rejected.status() {
                        StatusCode::PAYLOAD_TOO_LARGE => {
                            ApiError::payload_too_large(BATCH_BODY_LIMIT)
                        }
                        _ => ApiError::new(StatusCode::BAD_REQUEST, "Unreadable request body")
                            .detail(rejected.body_text()),
                    })?;
            signed.verify(&body).map(|()| body)
        }
        Err(why) => Err(why),
    };
    let body = body.map_err(|why| {
        tracing::warn!(reason = %why, "a secret scanning request was not signed by GitHub; ignored");
        ApiError::new(StatusCode::UNAUTHORIZED, "Not signed by GitHub")
            .detail("the body's signature does not verify with GitHub's secret scanning keys")
    })?;
    let matches: Vec<GithubMatch> = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(StatusCode::BAD_REQUEST, "Malformed JSON").detail(format!(
            "expected an array of {{token, type, url, source}}: {err}"
        ))
    })?;
    let engine = state.engine.acting_as(
        Actor::Admin("github-secret-scanning".into()),
        ScopeSet::default(),
    );
    // Each distinct token looked up once (a token twice in a batch gets one label),
    // a few at a time: a thousand unknown tokens are a thousand reads.
    let mut distinct = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for found in &matches {
        if seen.insert(found.token.as_str()) {
            let source = format!("github:{}", found.source.as_deref().unwrap_or("unknown"));
            let sighting = Sighting::new(found.url.as_deref(), Some(&source));
            distinct.push((found.token.clone(), sighting));
        }
    }
    // Owned values in, owned values out: the handler's future stays `Send`.
    let looked_up: Vec<(String, bool)> = futures_util::stream::iter(distinct)
        .map(|(token, sighting)| {
            let engine = engine.clone();
            async move {
                let live = engine.report_leak(&token, &sighting).await?;
                Ok::<_, ApiError>((token, live.is_some()))
            }
        })
        .buffered(CONCURRENT_LOOKUPS)
        .try_collect()
        .await?;
    let live: std::collections::HashMap<String, bool> = looked_up.into_iter().collect();
    let feedback = matches
        .iter()
        .map(|found| GithubFeedback {
            token_hash: hex(&Sha256::digest(found.token.as_bytes())),
            token_type: found.token_type.clone(),
            label: if live.get(&found.token) == Some(&true) {
                "true_positive"
            } else {
                "false_positive"
            },
        })
        .collect();
    Ok(Json(feedback))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
