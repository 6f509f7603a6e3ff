//! The web console at `/console`: hand-written ES modules and CSS, embedded in the
//! binary, nothing built or fetched. It is a client of the JSON API like any other:
//! it sends the token the person pasted (a user's JWT or the service token) as a
//! bearer token, keeps it in the tab's `sessionStorage`, and the server holds no
//! session for it.
//!
//! Every file goes out under one strict Content-Security-Policy: scripts and styles
//! from these files only (no inline code), requests to this origin only, no framing,
//! no referrer. Files are revalidated on each load (`no-cache` with an `ETag`), so a
//! new binary's console is picked up at once without a build step's hashed names.
//! The console's routes are not part of the OpenAPI document: they serve a page, not
//! the API.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::ops::not_found;
use crate::http::state::AppState;

/// The console's Content-Security-Policy.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page and the files it loads; `/console/{name}` serves each.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("dialogs.js", JS),
    asset!("chart.js", JS),
    asset!("keys.js", JS),
    asset!("key.js", JS),
    asset!("operator.js", JS),
    asset!("webhooks.js", JS),
];

/// `/console` and its files.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route("/console/{name}", get(file))
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    // The page itself lives at `/console`, not under a second name.
    if name == "index.html" {
        return not_found().await.into_response();
    }
    match ASSETS.iter().any(|asset| asset.name == name) {
        true => serve(&name, &headers),
        false => not_found().await.into_response(),
    }
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body.as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header")
            })
            .collect()
    });
    let index = ASSETS
        .iter()
        .position(|asset| asset.name == name)
        .expect("only known names are served");
    let asset = &ASSETS[index];
    let etag = etags[index].clone();
    let headers = [
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (ETAG, etag.clone()),
    ];
    let unchanged = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag.to_str().unwrap_or_default());
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(CONTENT_TYPE, HeaderValue::from_static(asset.content_type))],
        asset.body,
    )
        .into_response()
}
