//! `/api/auth`: forward authentication for reverse proxies, through the real router.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use keyward_core::rate::RateLimit;

use super::TestApp;
use crate::common::{ADMIN_TOKEN, TestResponse};

async fn ask(app: &TestApp, method: Method, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn a_valid_key_passes_with_its_identity_in_headers() {
    let app = TestApp::new().await;
    let (id, key) = app
        .key_with("alice", &["READ_GRAPH", "EXECUTE_GRAPH"])
        .await;
    let proxy = ("x-keyward-proxy-token", ADMIN_TOKEN);
    let bearer = format!("Bearer {key}");
    for (method, credential) in [
        (Method::GET, ("x-api-key", key.as_str())),
        (Method::POST, ("authorization", bearer.as_str())),
        (Method::DELETE, ("x-api-key", key.as_str())),
    ] {
        let response = ask(
            &app,
            method.clone(),
            "/api/auth",
            &[proxy, credential, ("x-keyward-permissions", "READ_GRAPH")],
        )
        .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{method}: {}",
            response.text
        );
        assert_eq!(response.headers["x-keyward-user-id"], "alice");
        assert_eq!(response.headers["x-keyward-key-id"], id.as_str());
        assert_eq!(
            response.headers["x-keyward-key-permissions"],
            "EXECUTE_GRAPH,READ_GRAPH"
        );
        assert_eq!(response.headers["x-keyward-code"], "VALID");
    }
    // Permissions may come in the query instead.
    let response = ask(
        &app,
        Method::GET,
        "/api/auth?permissions=EXECUTE_GRAPH,READ_GRAPH",
        &[proxy, ("x-api-key", &key)],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn missing_invalid_and_underpermitted_keys_are_refused_as_autogpt_did() {
    let app = TestApp::new().await;
    let (id, key) = app.key_with("alice", &["READ_GRAPH"]).await;
    let proxy = ("x-keyward-proxy-token", ADMIN_TOKEN);

    let missing = ask(&app, Method::GET, "/api/auth", &[proxy]).await;
    assert_eq!(
        missing.error(StatusCode::UNAUTHORIZED)["message"],
        "Missing API key"
    );
    assert_eq!(missing.headers[header::WWW_AUTHENTICATE], "Bearer");

    let forged = keyward_core::key::KeyFormat::default().generate();
    for bad in ["agpt_nope", forged.expose()] {
        let response = ask(&app, Method::GET, "/api/auth", &[proxy, ("x-api-key", bad)]).await;
        assert_eq!(
            response.error(StatusCode::UNAUTHORIZED)["message"],
            "Invalid API key"
        );
    }
    let denied = ask(
        &app,
        Method::GET,
        "/api/auth",
        &[
            proxy,
            ("x-api-key", &key),
            ("x-keyward-permissions", "READ_GRAPH, WRITE_GRAPH"),
        ],
    )
    .await;
    let error = denied.error(StatusCode::FORBIDDEN);
    assert_eq!(
        error["detail"],
        "Missing required permission(s): WRITE_GRAPH"
    );
    assert_eq!(denied.headers["x-keyward-code"], "INSUFFICIENT_PERMISSIONS");

    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{id}"),
        None,
    )
    .await
    .ok();
    let revoked = ask(
        &app,
        Method::GET,
        "/api/auth",
        &[proxy, ("x-api-key", &key)],
    )
    .await;
    revoked.error(StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.headers["x-keyward-code"], "INVALID");
}

#[tokio::test]
async fn only_a_proxy_with_the_service_token_gets_verdicts() {
    let app = TestApp::new().await;
    let (_, key) = app.key_with("alice", &[]).await;
    for proxy in [None, Some("wrong-token"), Some("")] {
        let mut headers = vec![("x-api-key", key.as_str())];
        if let Some(token) = proxy {
            headers.push(("x-keyward-proxy-token", token));
        }
        let response = ask(&app, Method::GET, "/api/auth", &headers).await;
        let error = response.error(StatusCode::UNAUTHORIZED);
        assert!(
            error["detail"].as_str().unwrap().contains("proxy"),
            "{error}"
        );
        assert!(response.headers.get("x-keyward-user-id").is_none());
    }
}

#[tokio::test]
async fn a_proxy_may_hold_a_keys_verify_credential_and_nothing_more() {
    let app = TestApp::new().await;
    let (_, key) = app.key_with("alice", &[]).await;
    let mut secrets = Vec::new();
    for scopes in [vec!["keys.verify"], vec!["keys.read", "keys.write"]] {
        let created = app
            .as_platform(
                Method::POST,
                "/api/admin/credentials",
                Some(serde_json::json!({"name": "proxy", "scopes": scopes})),
            )
            .await;
        secrets.push(created.ok()["secret"].as_str().unwrap().to_owned());
    }
    let (verifier, other) = (&secrets[0], &secrets[1]);

    let passed = ask(
        &app,
        Method::GET,
        "/api/auth",
        &[("x-keyward-proxy-token", verifier), ("x-api-key", &key)],
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.text);
    assert_eq!(passed.headers["x-keyward-user-id"], "alice");

    let refused = ask(
        &app,
        Method::GET,
        "/api/auth",
        &[("x-keyward-proxy-token", other), ("x-api-key", &key)],
    )
    .await;
    let error = refused.error(StatusCode::FORBIDDEN);
    assert!(
        error["detail"].as_str().unwrap().contains("keys.verify"),
        "{error}"
    );
    assert!(refused.headers.get("x-keyward-user-id").is_none());

    // The gateway's credential can do nothing else.
    let listed = app
        .call(
            Method::GET,
            "/api/admin/users/alice/api-keys",
            Some(verifier),
            None,
        )
        .await;
    listed.error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_client_failing_too_often_is_answered_429_by_its_forwarded_address() {
    let app = TestApp::builder()
        .engine(|c| c.failed_verify_limit = RateLimit::per_minute(2).ok())
        .build()
        .await;
    let (_, key) = app.key_with("alice", &[]).await;
    let proxy = ("x-keyward-proxy-token", ADMIN_TOKEN);
    // The proxy appends the peer's address: the last entry is the one to trust.
    let from = ("x-forwarded-for", "10.9.9.9, 198.51.100.7");
    for _ in 0..2 {
        ask(
            &app,
            Method::GET,
            "/api/auth",
            &[proxy, from, ("x-api-key", "agpt_bad")],
        )
        .await;
    }
    let limited = ask(
        &app,
        Method::GET,
        "/api/auth",
        &[proxy, from, ("x-api-key", &key)],
    )
    .await;
    limited.error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers[header::RETRY_AFTER], "30");
    let other = ("x-forwarded-for", "10.9.9.9, 198.51.100.8");
    let fine = ask(
        &app,
        Method::GET,
        "/api/auth",
        &[proxy, other, ("x-api-key", &key)],
    )
    .await;
    assert_eq!(fine.status, StatusCode::OK);
}

#[tokio::test]
async fn the_original_path_may_follow_the_auth_path_as_envoy_sends_it() {
    let app = TestApp::new().await;
    let (_, key) = app.key_with("alice", &["READ_GRAPH"]).await;
    let response = ask(
        &app,
        Method::PATCH,
        "/api/auth/v1/graphs/42?x=1",
        &[
            ("x-keyward-proxy-token", ADMIN_TOKEN),
            ("x-api-key", &key),
            ("x-keyward-permissions", "READ_GRAPH"),
        ],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.headers["x-keyward-user-id"], "alice");
}
