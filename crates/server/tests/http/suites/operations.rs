//! Health, readiness, metrics, the OpenAPI document, the docs page, and the
//! answers to requests no route takes.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use super::TestApp;
use crate::common::{ADMIN_TOKEN, key_routes};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::new().await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.ok(), &json!({"status": "ok"}));
    // Ready once the cache's warm-up at start has ended (here, an empty database,
    // as soon as the change feed watches); until then 503, saying so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
    loop {
        let ready = app.call(Method::GET, "/readyz", None, None).await;
        if ready.status == StatusCode::OK {
            assert_eq!(ready.ok(), &json!({"status": "ready"}));
            break;
        }
        let body = ready.error(StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["detail"].as_str().unwrap().contains("warming up"),
            "{body}"
        );
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::new().await;
    app.engine.shutdown().await;
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    ready.error(StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn every_route_that_needs_the_database_answers_503_without_it() {
    let app = TestApp::new().await;
    let (id, plain) = app.key_with("alice", &[]).await;
    app.engine.shutdown().await;
    let calls = key_routes(&id);
    for (method, uri, body) in calls {
        let response = app.as_user("alice", method.clone(), &uri, body).await;
        let error = response.error(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error["message"], "Service unavailable", "{method} {uri}");
    }
    // A key never verified is not in the cache: no answer rather than a guess.
    let verify = app
        .call(
            Method::POST,
            "/api/api-keys/verify",
            Some(ADMIN_TOKEN),
            Some(json!({"key": plain})),
        )
        .await;
    verify.error(StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_cover_verification_cache_and_requests() {
    let app = TestApp::new().await;
    let (_, plain) = app.key_with("alice", &[]).await;
    app.verify(&plain, &[]).await;
    app.verify(&plain, &[]).await;
    let response = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for needle in [
        "keyward_verify_total{code=\"VALID\"}",
        "keyward_verify_duration_seconds_bucket",
        "keyward_cache_hits_total",
        "keyward_cache_misses_total",
        "keyward_cache_entries",
        "keyward_http_requests_total{method=\"POST\",route=\"/api/api-keys/verify\",status=\"200\"}",
        "keyward_http_request_duration_seconds_bucket",
    ] {
        assert!(response.text.contains(needle), "missing {needle}");
    }
}

#[tokio::test]
async fn with_a_metrics_token_only_its_bearer_reads_the_metrics() {
    const TOKEN: &str = "metrics-token-0123456789";
    let app = TestApp::builder().metrics_token(TOKEN).build().await;
    for bearer in [None, Some("metrics-token-012345678x"), Some(ADMIN_TOKEN)] {
        let response = app.call(Method::GET, "/metrics", bearer, None).await;
        let error = response.error(StatusCode::UNAUTHORIZED);
        assert!(!response.text.contains("keyward_"), "{}", response.text);
        assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
        if bearer.is_some() {
            assert_eq!(error["detail"], "the metrics token is not valid");
        }
    }
    let response = app.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.text.contains("keyward_http_requests_total"));
    // The other operational routes do not ask for it.
    for path in ["/healthz", "/openapi.json", "/docs"] {
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
    }
}

/// The routes clients rely on (the management API AutoGPT's clients know, verify, forward
/// authentication, the admin routes, operations), as (method, OpenAPI path).
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("post", "/api/api-keys"),
    ("get", "/api/api-keys"),
    ("get", "/api/api-keys/{id}"),
    ("delete", "/api/api-keys/{id}"),
    ("patch", "/api/api-keys/{id}"),
    ("post", "/api/api-keys/{id}/suspend"),
    ("post", "/api/api-keys/{id}/reactivate"),
    ("put", "/api/api-keys/{id}/permissions"),
    ("put", "/api/api-keys/{id}/rate-limit"),
    ("post", "/api/api-keys/{id}/rotate"),
    ("get", "/api/api-keys/{id}/events"),
    ("get", "/api/api-keys/{id}/usage"),
    ("post", "/api/api-keys/verify"),
    ("post", "/api/api-keys/report-leak"),
    ("post", "/api/secret-scanning/github"),
    ("get", "/api/permissions"),
    ("get", "/api/auth"),
    ("delete", "/api/admin/users/{user_id}"),
    ("get", "/api/admin/users/{user_id}/limits"),
    ("put", "/api/admin/users/{user_id}/limits"),
    ("delete", "/api/admin/users/{user_id}/limits"),
    ("post", "/api/admin/users/{user_id}/api-keys"),
    ("get", "/api/admin/users/{user_id}/api-keys"),
    ("get", "/api/admin/api-keys/{id}"),
    ("get", "/api/admin/api-keys/{id}/events"),
    ("patch", "/api/admin/api-keys/{id}"),
    ("delete", "/api/admin/api-keys/{id}"),
    ("post", "/api/admin/api-keys/{id}/suspend"),
    ("post", "/api/admin/api-keys/{id}/reactivate"),
    ("get", "/api/admin/events"),
    ("get", "/api/admin/usage"),
    ("post", "/api/admin/credentials"),
    ("get", "/api/admin/credentials"),
    ("get", "/api/admin/credentials/{id}"),
    ("delete", "/api/admin/credentials/{id}"),
    ("post", "/api/admin/credentials/{id}/rotate"),
    ("get", "/api/admin/whoami"),
    ("post", "/api/admin/webhooks"),
    ("get", "/api/admin/webhooks"),
    ("get", "/api/admin/webhooks/{id}"),
    ("patch", "/api/admin/webhooks/{id}"),
    ("delete", "/api/admin/webhooks/{id}"),
    ("post", "/api/admin/webhooks/{id}/rotate-secret"),
    ("post", "/api/admin/webhooks/{id}/test"),
    ("get", "/api/admin/webhooks/{id}/deliveries"),
    (
        "post",
        "/api/admin/webhooks/{id}/deliveries/{delivery_id}/retry",
    ),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/openapi.json", None, None).await;
    let doc = response.ok();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<_> = CONTRACT_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);

    // And every documented operation is served: none answers "no such route".
    let id = "01900000-0000-7000-8000-000000000000";
    for (method, path) in &documented {
        let uri = path
            .replace("{id}", id)
            .replace("{user_id}", "someone")
            .replace("{delivery_id}", "1");
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert!(
            response.status != StatusCode::NOT_FOUND || response.body["message"] != "Not found",
            "{method} {uri} is documented but not routed"
        );
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
    }
}

#[tokio::test]
async fn the_permission_catalogue_is_listed_to_users_and_services_only() {
    let app = TestApp::builder()
        .permissions(&["ALPHA", "BETA"])
        .build()
        .await;
    let user = app.token("alice");
    for token in [user.as_str(), ADMIN_TOKEN] {
        let listed = app
            .call(Method::GET, "/api/permissions", Some(token), None)
            .await;
        assert_eq!(listed.ok(), &json!({"permissions": ["ALPHA", "BETA"]}));
    }
    for token in [None, Some("not-a-token")] {
        let refused = app.call(Method::GET, "/api/permissions", token, None).await;
        refused.error(StatusCode::UNAUTHORIZED);
    }
}

/// A resource's callers are documented once for all its routes (`Callers`), apart
/// from the handlers' extractors: each documented scheme must be the one enforced.
#[tokio::test]
async fn every_route_refuses_callers_other_than_those_its_document_names() {
    let app = TestApp::new().await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let user_token = app.token("alice");
    let mut checked = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let others: Vec<Option<&str>> = match &operation["security"] {
                security if *security == json!([{"user_jwt": []}]) => {
                    vec![None, Some(ADMIN_TOKEN)]
                }
                security if security[0]["service_token"].is_array() => {
                    vec![None, Some(&user_token)]
                }
                _ => continue,
            };
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path} documents no 401"
            );
            let uri = path
                .replace("{id}", "0190b1c4-9f43-7cc4-8a5e-2f1d3c4b5a69")
                .replace("{user_id}", "alice");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for caller in others {
                let answer = app
                    .call(method.clone(), &uri, caller, Some(json!({})))
                    .await;
                answer.error(StatusCode::UNAUTHORIZED);
            }
            checked.insert(format!("{method} {path}"));
        }
    }
    // The key routes, the admin routes and verify.
    assert!(checked.len() >= 22, "{checked:?}");
}

#[tokio::test]
async fn the_openapi_document_names_the_configured_permissions_and_security() {
    let app = TestApp::builder()
        .permissions(&["ALPHA", "BETA"])
        .build()
        .await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    assert_eq!(
        doc["components"]["schemas"]["Permission"]["enum"],
        json!(["ALPHA", "BETA"])
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["user_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["service_token"]["scheme"], "bearer");
    let verify = &doc["paths"]["/api/api-keys/verify"]["post"];
    assert_eq!(
        verify["security"],
        json!([{"service_token": ["keys.verify"]}])
    );
    for schema in [
        "ApiKeyResponse",
        "CreateKeyRequest",
        "CreateKeyResponse",
        "ErrorBody",
        "VerifyRequest",
        "VerifyResponse",
        "SetPermissionsRequest",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
}

#[tokio::test]
async fn the_docs_page_renders_the_spec_without_the_internet() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/docs", None, None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text.contains("fetch(\"openapi.json\")"));
    // A strict policy that allows exactly the page's own inline script and style.
    let policy = response.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    let hash = |open: &str, close: &str| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let start = response.text.find(open).unwrap() + open.len();
        let end = start + response.text[start..].find(close).unwrap();
        let digest = sha2::Sha256::digest(&response.text.as_bytes()[start..end]);
        base64::engine::general_purpose::STANDARD.encode(digest)
    };
    for directive in [
        "default-src 'none'".to_owned(),
        format!("script-src 'sha256-{}'", hash("<script>", "</script>")),
        format!("style-src 'sha256-{}'", hash("<style>", "</style>")),
        "connect-src 'self'".to_owned(),
        "frame-ancestors 'none'".to_owned(),
    ] {
        assert!(policy.contains(&directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(response.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(response.headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(
        response.text.matches("<script").count(),
        1,
        "one script, the hashed one"
    );
    for external in ["src=\"http", "href=\"http", "@import", "cdn"] {
        assert!(
            !response.text.contains(external),
            "the page loads {external}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::new().await;
    let missing = app.call(Method::GET, "/api/nothing-here", None, None).await;
    insta::assert_json_snapshot!(missing.error(StatusCode::NOT_FOUND));
    let wrong_method = app
        .call(Method::PATCH, "/api/api-keys", Some(ADMIN_TOKEN), None)
        .await;
    wrong_method.error(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn api_answers_are_not_cached_by_intermediaries() {
    let app = TestApp::new().await;
    let list = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(list.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_pages_their_own_policy() {
    let app = TestApp::new().await;
    let token = app.token("alice");
    for (path, bearer, policy) in [
        ("/api/api-keys", Some(token.as_str()), "default-src 'none'"),
        ("/api/api-keys", None, "default-src 'none'"),
        ("/no-such-route", None, "default-src 'none'"),
        ("/healthz", None, "default-src 'none'"),
        ("/docs", None, "script-src 'sha256-"),
        ("/console", None, "script-src 'self'"),
    ] {
        let response = app.call(Method::GET, path, bearer, None).await;
        let headers = &response.headers;
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains(policy), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(
            headers
                .get_all(header::CONTENT_SECURITY_POLICY)
                .iter()
                .count(),
            1,
            "{path}"
        );
    }
}
