//! What a hostile client tried, through the real router (docs/RELIABILITY.md, "Hostile
//! input"). Attacks that need a real socket (timeouts, `100 Continue`, the peer
//! address) are in the CLI tests' `connections.rs`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use super::TestApp;

/// A request with this method to `/healthz`.
fn with_method(method: &str) -> Request<Body> {
    Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri("/healthz")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn invented_methods_do_not_become_metric_labels() {
    let app = TestApp::new().await;
    let invented: Vec<String> = (0..1000).map(|i| format!("MXYZ{i:05}")).collect();
    for method in &invented {
        let response = app.send(with_method(method)).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    for method in &invented {
        assert!(
            !metrics.contains(method.as_str()),
            "{method} became a label"
        );
    }
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("keyward_http_requests_total{"))
    {
        let method = line.split("method=\"").nth(1).unwrap().split('"').next();
        assert!(
            matches!(
                method,
                Some(
                    "GET"
                        | "HEAD"
                        | "POST"
                        | "PUT"
                        | "PATCH"
                        | "DELETE"
                        | "OPTIONS"
                        | "CONNECT"
                        | "TRACE"
                        | "other"
                )
            ),
            "{line}"
        );
    }
    assert!(
        metrics.contains(r#"method="other",route="/healthz",status="405""#),
        "invented methods are counted as `other`"
    );
}

#[tokio::test]
async fn a_method_longer_than_sixteen_bytes_is_refused_before_routing() {
    let app = TestApp::new().await;
    let long = format!("M{}", "A".repeat(30 * 1024));
    let response = app.send(with_method(&long)).await;
    let body = response.error(StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Invalid method");
    // Sixteen bytes is still an (unknown) method, answered by the router.
    let response = app.send(with_method(&"M".repeat(16))).await;
    response.error(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let app = TestApp::new().await;
    // The body never arrives: a 413 must not wait for it.
    let (_sender, body) =
        http_body_util::channel::Channel::<axum::body::Bytes, std::io::Error>::new(1);
    let body = Body::new(body);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/api-keys/verify")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "99999999999")
        .body(body)
        .unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), app.send(request))
        .await
        .expect("answered at once, not after the request deadline");
    let body = response.error(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["message"], "Request body too large");
}

async fn forward(
    app: &TestApp,
    uri: &str,
    headers: &[(&str, &str)],
) -> crate::common::TestResponse {
    let mut request = Request::builder().method(Method::GET).uri(uri);
    request = request.header("x-keyward-proxy-token", crate::common::ADMIN_TOKEN);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn a_client_header_cannot_lower_what_the_auth_url_requires() {
    let app = TestApp::new().await;
    let (_, key) = app.key_with("alice", &["READ_GRAPH"]).await;
    let url = "/api/auth?permissions=WRITE_GRAPH";
    // A proxy that passes the client's headers on: the client asks for less.
    for sent in ["READ_GRAPH", "IDENTITY"] {
        let response = forward(
            &app,
            url,
            &[("x-api-key", &key), ("x-keyward-permissions", sent)],
        )
        .await;
        let body = response.error(StatusCode::FORBIDDEN);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("WRITE_GRAPH"), "{sent}: {detail}");
    }
    // Both sources count: the header adds to the query.
    let response = forward(
        &app,
        "/api/auth?permissions=READ_GRAPH",
        &[
            ("x-api-key", &key),
            ("x-keyward-permissions", "WRITE_GRAPH"),
        ],
    )
    .await;
    response.error(StatusCode::FORBIDDEN);
    let response = forward(
        &app,
        "/api/auth?permissions=READ_GRAPH",
        &[("x-api-key", &key), ("x-keyward-permissions", "READ_GRAPH")],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

#[tokio::test]
async fn blank_empty_or_repeated_required_permissions_are_a_bad_request() {
    let app = TestApp::new().await;
    let (_, key) = app.key_with("alice", &["READ_GRAPH", "WRITE_GRAPH"]).await;
    let key = ("x-api-key", key.as_str());
    for value in ["", " ", ",", "READ_GRAPH,,WRITE_GRAPH", "READ_GRAPH,"] {
        let response = forward(&app, "/api/auth", &[key, ("x-keyward-permissions", value)]).await;
        let body = response.error(StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "Invalid required permissions", "{value:?}");
    }
    for query in ["permissions=", "permissions=%20", "permissions=A,,B"] {
        let response = forward(&app, &format!("/api/auth?{query}"), &[key]).await;
        response.error(StatusCode::BAD_REQUEST);
    }
    let response = forward(
        &app,
        "/api/auth",
        &[
            key,
            ("x-keyward-permissions", "WRITE_GRAPH"),
            ("x-keyward-permissions", "READ_GRAPH"),
        ],
    )
    .await;
    let body = response.error(StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("more than once"));
}

#[tokio::test]
async fn forward_auth_answers_unknown_revoked_suspended_and_expired_keys_alike() {
    let app = TestApp::new().await;
    let (revoked_id, revoked) = app.key_with("alice", &[]).await;
    let (suspended_id, suspended) = app.key_with("alice", &[]).await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, expired) = app
        .create_key(
            "alice",
            serde_json::json!({"name": "e", "permissions": [], "expires_at": soon}),
        )
        .await;
    app.as_user(
        "alice",
        Method::DELETE,
        &format!("/api/api-keys/{revoked_id}"),
        None,
    )
    .await
    .ok();
    app.as_user(
        "alice",
        Method::POST,
        &format!("/api/api-keys/{suspended_id}/suspend"),
        None,
    )
    .await
    .ok();
    app.advance(std::time::Duration::from_secs(600));
    let unknown = keyward_core::key::KeyFormat::default().generate();
    let mut answers = Vec::new();
    for key in [
        unknown.expose(),
        revoked.as_str(),
        suspended.as_str(),
        expired.as_str(),
        "agpt_malformed",
    ] {
        let response = forward(&app, "/api/auth", &[("x-api-key", key)]).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            response.text
        );
        answers.push((response.status, response.headers, response.text));
    }
    for answer in &answers[1..] {
        assert_eq!(answer, &answers[0], "every byte of the answer is the same");
    }
    assert_eq!(answers[0].1["x-keyward-code"], "INVALID");
    assert!(!answers[0].2.contains("REVOKED") && !answers[0].2.contains("NOT_FOUND"));
    // The verify API, for the platform's services, still tells them apart.
    assert_eq!(app.verify_code(&revoked, &[]).await, "REVOKED");
    assert_eq!(app.verify_code(&suspended, &[]).await, "SUSPENDED");
}

#[tokio::test]
async fn a_key_id_names_a_key_only_in_its_canonical_spelling() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let percent: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let spellings = [
        id.to_uppercase(),
        uuid.simple().to_string(),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        percent,
        format!("%7B{id}%7D"),
        format!("{id}%00"),
    ];
    for spelling in &spellings {
        for (method, path) in [
            (Method::GET, format!("/api/api-keys/{spelling}")),
            (Method::DELETE, format!("/api/api-keys/{spelling}")),
            (Method::POST, format!("/api/api-keys/{spelling}/suspend")),
        ] {
            let response = app.as_user("alice", method.clone(), &path, None).await;
            response.error(StatusCode::NOT_FOUND);
        }
    }
    let key = app
        .as_user("alice", Method::GET, &format!("/api/api-keys/{id}"), None)
        .await;
    assert_eq!(key.ok()["status"], "ACTIVE", "no spelling reached the key");
}

#[tokio::test]
async fn names_that_look_blank_or_break_lines_are_refused() {
    let app = TestApp::new().await;
    let zalgo = format!("z{}", "\u{0301}".repeat(99));
    for name in [
        "\u{3164}",
        "\u{2800}",
        "one\u{2028}two",
        "one\u{2029}two",
        "non\u{FFFE}char",
        "non\u{FFFF}char",
        zalgo.as_str(),
    ] {
        let response = app
            .as_user(
                "alice",
                Method::POST,
                "/api/api-keys",
                Some(serde_json::json!({"name": name, "permissions": []})),
            )
            .await;
        let body = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["detail"].as_str().unwrap().starts_with("name:"),
            "{name:?}: {body}"
        );
    }
    let response = app
        .as_user(
            "alice",
            Method::POST,
            "/api/api-keys",
            Some(serde_json::json!({"name": "ok", "description": "a\u{2028}b", "permissions": []})),
        )
        .await;
    response.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app.engine.list_keys(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn user_ids_that_look_like_another_or_hide_characters_are_refused() {
    let app = TestApp::new().await;
    for sub in [
        " alice",
        "alice ",
        "ali\u{202E}ce",
        "ali\u{200B}ce",
        "alice\u{2028}",
        "\u{FEFF}alice",
        "\u{3164}",
    ] {
        let token = crate::common::hs256_token(
            crate::common::JWT_SECRET,
            serde_json::json!({"sub": sub, "exp": crate::common::now_secs() + 600}),
        );
        let response = app
            .call(Method::GET, "/api/api-keys", Some(&token), None)
            .await;
        response.error(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn rotations_with_a_grace_period_cannot_lift_a_user_over_the_key_cap() {
    let app = TestApp::builder().max_keys_per_user(3).build().await;
    let (mut id, _) = app.key_with("alice", &["READ_GRAPH"]).await;
    // Rotating again and again, each old key still working for a week.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app
            .as_user(
                "alice",
                Method::POST,
                &format!("/api/api-keys/{id}/rotate"),
                Some(serde_json::json!({"grace_seconds": 604800})),
            )
            .await;
        statuses.push(response.status);
        if response.status == StatusCode::OK {
            id = response.body["api_key"]["id"].as_str().unwrap().to_owned();
        } else {
            let body = response.error(StatusCode::CONFLICT);
            assert!(
                body["hint"]
                    .as_str()
                    .unwrap()
                    .contains("\"grace_seconds\": 0"),
                "{body}"
            );
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT
        ]
    );
    let keys = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(
        keys.ok().as_array().unwrap().len(),
        3,
        "never more than the cap"
    );
    // Without a grace period the new key replaces the old one at once: allowed.
    let response = app
        .as_user(
            "alice",
            Method::POST,
            &format!("/api/api-keys/{id}/rotate"),
            Some(serde_json::json!({"grace_seconds": 0})),
        )
        .await;
    response.ok();
}
