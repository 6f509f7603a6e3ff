//! GET /console and its files: embedded, under a strict Content-Security-Policy,
//! revalidated with an ETag; nothing else under /console.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use super::TestApp;

const FILES: &[(&str, &str)] = &[
    ("/console", "text/html"),
    ("/console/console.css", "text/css"),
    ("/console/app.js", "text/javascript"),
    ("/console/api.js", "text/javascript"),
    ("/console/keys.js", "text/javascript"),
    ("/console/key.js", "text/javascript"),
    ("/console/operator.js", "text/javascript"),
    ("/console/chart.js", "text/javascript"),
];

#[tokio::test]
async fn the_console_and_its_files_are_served_under_a_strict_policy() {
    let app = TestApp::new().await;
    for (path, content_type) in FILES {
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        let headers = &response.headers;
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {:?}",
            headers[header::CONTENT_TYPE]
        );
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        // Revalidated on every load, so a new binary's console is used at once.
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
        assert!(headers.contains_key(header::ETAG), "{path}");
    }
}

#[tokio::test]
async fn the_page_loads_only_its_own_files_and_has_no_inline_code() {
    let app = TestApp::new().await;
    let page = app.call(Method::GET, "/console", None, None).await;
    assert!(
        page.text
            .contains(r#"<script type="module" src="/console/app.js"></script>"#)
    );
    assert!(
        page.text
            .contains(r#"<link rel="stylesheet" href="/console/console.css">"#)
    );
    assert_eq!(page.text.matches("<script").count(), 1, "{}", page.text);
    assert!(!page.text.contains("<style"), "{}", page.text);
    assert!(!page.text.contains("style="), "{}", page.text);
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again() {
    let app = TestApp::new().await;
    let first = app.call(Method::GET, "/console/app.js", None, None).await;
    let etag = first.headers[header::ETAG].clone();
    let request = Request::builder()
        .uri("/console/app.js")
        .header(header::IF_NONE_MATCH, etag.clone())
        .body(Body::empty())
        .unwrap();
    let again = app.send(request).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers[header::ETAG], etag);
    assert!(again.text.is_empty());
    // Another file's tag does not match.
    let request = Request::builder()
        .uri("/console/api.js")
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_console_paths_are_not_found() {
    let app = TestApp::new().await;
    for path in [
        "/console/nope.js",
        "/console/index.html",
        "/console/",
        "/console/../Cargo.toml",
        "/console/%2e%2e%2fCargo.toml",
        "/console/app.js/more",
        "/console/APP.JS",
    ] {
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            response.text
        );
        assert_eq!(response.headers[header::CONTENT_TYPE], "application/json");
    }
    let post = app.call(Method::POST, "/console", None, None).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}
