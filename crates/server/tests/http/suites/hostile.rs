//! What a hostile client tried, through the real router (docs/RELIABILITY.md, "Hostile
//! input"). Attacks that need a real socket (timeouts, `100 Continue`, the peer
//! address) are in the CLI tests' `connections.rs`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use keyward_core::model::Scope;

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
    assert!(app.engine.list_keys(Scope::Admin).await.unwrap().is_empty());
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
        "alice\u{FE0F}",
        "alice\u{1D173}",
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

#[tokio::test]
async fn owners_cannot_raise_their_credits_or_lift_their_rate_limit() {
    let app = TestApp::new().await;
    let (key, plain) = app
        .create_key_as_platform(
            "alice",
            serde_json::json!({"name": "metered", "permissions": [],
                "remaining": 1, "rate_limit": {"requests": 5, "per_seconds": 60}}),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    assert_eq!(app.verify_code(&plain, &[]).await, "USAGE_EXCEEDED");
    let uri = format!("/api/api-keys/{id}");
    for body in [
        serde_json::json!({"remaining": null}),
        serde_json::json!({"remaining": 1_000_000_000_000_000_u64}),
        serde_json::json!({"rate_limit": null}),
        serde_json::json!({"name": "renamed", "remaining": 100}),
    ] {
        let response = app.as_user("alice", Method::PATCH, &uri, Some(body)).await;
        let error = response.error(StatusCode::FORBIDDEN);
        assert!(
            error["hint"]
                .as_str()
                .unwrap()
                .contains("PATCH /api/admin/api-keys/{id}"),
            "{error}"
        );
    }
    let response = app
        .as_user(
            "alice",
            Method::PUT,
            &format!("{uri}/rate-limit"),
            Some(serde_json::json!({"rate_limit": null})),
        )
        .await;
    response.error(StatusCode::FORBIDDEN);
    for body in [
        serde_json::json!({"name": "free", "permissions": [], "remaining": 1_000_000}),
        serde_json::json!({"name": "fast", "permissions": [], "rate_limit": {"requests": 1, "per_seconds": 1}}),
    ] {
        let response = app
            .as_user("alice", Method::POST, "/api/api-keys", Some(body))
            .await;
        response.error(StatusCode::FORBIDDEN);
    }
    // Nothing changed: the key stays spent and limited; the owner still sees both.
    assert_eq!(app.verify_code(&plain, &[]).await, "USAGE_EXCEEDED");
    let shown = app.as_user("alice", Method::GET, &uri, None).await;
    assert_eq!(shown.ok()["remaining"], 0);
    assert_eq!(shown.ok()["rate_limit"]["requests"], 5);
    assert_eq!(app.engine.list_keys(Scope::Admin).await.unwrap().len(), 1);

    // The platform tops up; the audit trail says who.
    let topped = app
        .patch_as_platform(id, serde_json::json!({"remaining": 10}))
        .await;
    assert_eq!(topped.ok()["remaining"], 10);
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    let events = app
        .as_user("alice", Method::GET, &format!("{uri}/events"), None)
        .await;
    let last = events.ok()["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["actor"],
        serde_json::json!({"type": "admin", "id": "service"})
    );
    assert_eq!(
        last["changes"]["remaining"],
        serde_json::json!({"before": 0, "after": 10})
    );
}

#[tokio::test]
async fn the_platform_creates_keys_on_a_users_behalf_within_the_cap() {
    let app = TestApp::builder().max_keys_per_user(1).build().await;
    let (key, plain) = app
        .create_key_as_platform(
            "alice",
            serde_json::json!({"name": "provisioned", "permissions": ["READ_GRAPH"], "remaining": 3}),
        )
        .await;
    assert_eq!(key["user_id"], "alice");
    assert_eq!(key["remaining"], 3);
    assert_eq!(app.verify_code(&plain, &["READ_GRAPH"]).await, "VALID");
    let listed = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(listed.ok().as_array().unwrap().len(), 1, "the user sees it");
    let over = app
        .as_platform(
            Method::POST,
            "/api/admin/users/alice/api-keys",
            Some(serde_json::json!({"name": "second", "permissions": []})),
        )
        .await;
    over.error(StatusCode::CONFLICT);
    // Only with the service token; a user id that could pass for another is refused.
    let user = app
        .as_user(
            "alice",
            Method::POST,
            "/api/admin/users/alice/api-keys",
            Some(serde_json::json!({"name": "x", "permissions": []})),
        )
        .await;
    user.error(StatusCode::UNAUTHORIZED);
    let padded = app
        .as_platform(
            Method::POST,
            "/api/admin/users/%20bob/api-keys",
            Some(serde_json::json!({"name": "x", "permissions": []})),
        )
        .await;
    padded.error(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn keys_users_create_get_the_deployments_default_credits_and_rate_limit() {
    let app = TestApp::builder()
        .engine(|c| {
            c.default_credits = Some("2".parse().unwrap());
            c.default_rate_limit = keyward_core::rate::RateLimit::new(100, 60).ok();
        })
        .build()
        .await;
    let (key, plain) = app
        .create_key(
            "alice",
            serde_json::json!({"name": "mine", "permissions": []}),
        )
        .await;
    assert_eq!(key["remaining"], 2);
    assert_eq!(
        key["rate_limit"],
        serde_json::json!({"requests": 100, "per_seconds": 60})
    );
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
    assert_eq!(app.verify_code(&plain, &[]).await, "USAGE_EXCEEDED");
    // The platform's own keys are as it asks.
    let (platform, _) = app
        .create_key_as_platform("alice", serde_json::json!({"name": "p", "permissions": []}))
        .await;
    assert_eq!(platform["remaining"], serde_json::Value::Null);
}

/// A token signed with the test secret, with this header and these claims.
fn token_with(header: serde_json::Value, claims: serde_json::Value) -> String {
    use hmac::Mac;
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(crate::common::JWT_SECRET.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

async fn list_as(app: &TestApp, token: &str) -> crate::common::TestResponse {
    app.call(Method::GET, "/api/api-keys", Some(token), None)
        .await
}

fn claims(lifetime: i64) -> serde_json::Value {
    let now = crate::common::now_secs() as i64;
    serde_json::json!({"sub": "alice", "iat": now, "exp": now + lifetime})
}

#[tokio::test]
async fn a_token_with_a_crit_header_is_refused_whatever_it_names() {
    let app = TestApp::new().await;
    let plain = token_with(
        serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        claims(600),
    );
    assert_eq!(list_as(&app, &plain).await.status, StatusCode::OK);
    for crit in [
        serde_json::json!(["exp"]),
        serde_json::json!(["b64"]),
        serde_json::json!([]),
    ] {
        let token = token_with(
            serde_json::json!({"alg": "HS256", "crit": crit, "b64": true}),
            claims(600),
        );
        let response = list_as(&app, &token).await;
        let body = response.error(StatusCode::UNAUTHORIZED);
        assert_eq!(body["detail"], "the token is not valid", "{crit}");
    }
}

#[tokio::test]
async fn a_signature_in_a_non_canonical_spelling_is_refused() {
    let app = TestApp::new().await;
    let token = token_with(serde_json::json!({"alg": "HS256"}), claims(600));
    assert_eq!(list_as(&app, &token).await.status, StatusCode::OK);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    // 32 bytes are 43 characters: the last carries two unused bits, which may be set
    // without changing the bytes; padding and a stray character change nothing either.
    let last = signature.chars().last().unwrap();
    let table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = table.find(last).unwrap();
    let twin = table.chars().nth(value ^ 1).unwrap();
    for spelling in [
        format!("{}{twin}", &signature[..signature.len() - 1]),
        format!("{signature}="),
        format!("{signature}.="),
        signature.replace('-', "+").replace('_', "/"),
    ] {
        if spelling == signature {
            continue;
        }
        let response = list_as(&app, &format!("{signed}.{spelling}")).await;
        response.error(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = TestApp::new().await;
    let good = app.token("alice");
    let request = Request::builder()
        .method(Method::GET)
        .uri("/api/api-keys")
        .header(header::AUTHORIZATION, format!("Bearer {good}"))
        .header(header::AUTHORIZATION, "Bearer something-else")
        .body(Body::empty())
        .unwrap();
    let response = app.send(request).await;
    let body = response.error(StatusCode::UNAUTHORIZED);
    assert!(body["detail"].as_str().unwrap().contains("more than once"));
}

#[tokio::test]
async fn the_clock_leeway_and_the_longest_token_lifetime_are_the_deployments() {
    let app = TestApp::builder()
        .jwt(keyward::settings::JwtSettings {
            hs256_secret: Some(keyward::secrets::Secret::new(crate::common::JWT_SECRET)),
            leeway_seconds: 0,
            max_ttl_seconds: Some(3600),
            ..Default::default()
        })
        .build()
        .await;
    let now = crate::common::now_secs() as i64;
    let header = serde_json::json!({"alg": "HS256"});
    let ok = token_with(header.clone(), claims(600));
    assert_eq!(list_as(&app, &ok).await.status, StatusCode::OK);
    // Expired ten seconds ago: no leeway here.
    let late = token_with(
        header.clone(),
        serde_json::json!({"sub": "alice", "iat": now - 600, "exp": now - 10}),
    );
    let body = list_as(&app, &late).await;
    assert_eq!(
        body.error(StatusCode::UNAUTHORIZED)["detail"],
        "the token has expired"
    );
    // Longer-lived than an hour, or without iat: refused.
    let long = token_with(header.clone(), claims(7200));
    let body = list_as(&app, &long).await;
    assert!(
        body.error(StatusCode::UNAUTHORIZED)["detail"]
            .as_str()
            .unwrap()
            .contains("lifetime")
    );
    let no_iat = token_with(
        header.clone(),
        serde_json::json!({"sub": "alice", "exp": now + 60}),
    );
    list_as(&app, &no_iat).await.error(StatusCode::UNAUTHORIZED);
    // Issued in the future, to outlive the limit: refused.
    let future = token_with(
        header,
        serde_json::json!({"sub": "alice", "iat": now + 86_400, "exp": now + 87_000}),
    );
    list_as(&app, &future).await.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_rotated_key_cannot_be_given_a_new_life_by_editing_its_expiry() {
    let app = TestApp::builder().max_keys_per_user(2).build().await;
    let (first, first_plain) = app.key_with("alice", &[]).await;
    app.key_with("alice", &[]).await;
    let rotated = app
        .as_user(
            "alice",
            Method::POST,
            &format!("/api/api-keys/{first}/rotate"),
            Some(serde_json::json!({"grace_seconds": 0})),
        )
        .await;
    rotated.ok();
    for expires_at in [
        serde_json::Value::Null,
        serde_json::json!("2999-01-01T00:00:00Z"),
    ] {
        let response = app
            .as_user(
                "alice",
                Method::PATCH,
                &format!("/api/api-keys/{first}"),
                Some(serde_json::json!({ "expires_at": expires_at })),
            )
            .await;
        let body = response.error(StatusCode::BAD_REQUEST);
        assert!(
            body["detail"].as_str().unwrap().contains("rotated"),
            "{body}"
        );
        // Not for the platform either.
        app.patch_as_platform(&first, serde_json::json!({ "expires_at": expires_at }))
            .await
            .error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.verify_code(&first_plain, &[]).await, "EXPIRED");
    let live = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["status"] != "REVOKED" && k["rotated_to"].is_null())
        .count();
    assert_eq!(live, 2);
    app.as_user(
        "alice",
        Method::POST,
        "/api/api-keys",
        Some(serde_json::json!({"name": "third", "permissions": []})),
    )
    .await
    .error(StatusCode::CONFLICT);
}

#[tokio::test]
async fn rotating_a_rate_limited_key_does_not_refill_its_quota() {
    let app = TestApp::new().await;
    let (key, mut plain) = app
        .create_key_as_platform(
            "frank",
            serde_json::json!({"name": "limited", "permissions": [],
                "rate_limit": {"requests": 2, "per_seconds": 3600}}),
        )
        .await;
    let mut id = key["id"].as_str().unwrap().to_owned();
    let mut valid = 0;
    for _ in 0..4 {
        for _ in 0..3 {
            if app.verify_code(&plain, &[]).await == "VALID" {
                valid += 1;
            }
        }
        let rotated = app
            .as_user(
                "frank",
                Method::POST,
                &format!("/api/api-keys/{id}/rotate"),
                Some(serde_json::json!({"grace_seconds": 0})),
            )
            .await;
        let body = rotated.ok();
        id = body["api_key"]["id"].as_str().unwrap().to_owned();
        plain = body["plain_text_key"].as_str().unwrap().to_owned();
    }
    assert_eq!(valid, 2, "two an hour, however often the key is rotated");
}

#[tokio::test]
async fn concurrent_failed_attempts_from_one_client_never_pass_the_limit() {
    let app = TestApp::builder()
        .engine(|c| c.failed_verify_limit = keyward_core::rate::RateLimit::new(5, 3600).ok())
        .build()
        .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let router = app.router.clone();
        // Well-formed keys that do not exist: each needs a database read.
        let forged = keyward_core::key::KeyFormat::default().generate();
        let body = serde_json::json!({"key": forged.expose(), "client_ip": "203.0.113.9"});
        tasks.spawn(async move {
            use tower::ServiceExt;
            let request = Request::post("/api/api-keys/verify")
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", crate::common::ADMIN_TOKEN),
                )
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["code"].clone()
        });
    }
    let mut looked_up = 0;
    while let Some(code) = tasks.join_next().await {
        if code.unwrap() == "NOT_FOUND" {
            looked_up += 1;
        }
    }
    assert_eq!(
        looked_up, 5,
        "only the limit's worth of attempts reached the lookup"
    );
}

#[tokio::test]
async fn the_auth_url_takes_no_parameter_but_permissions() {
    let app = TestApp::new().await;
    let (_, key) = app.key_with("alice", &["READ_GRAPH"]).await;
    for query in [
        "Permissions=WRITE_GRAPH",
        "permission=WRITE_GRAPH",
        "permissions[]=WRITE_GRAPH",
    ] {
        let response = forward(&app, &format!("/api/auth?{query}"), &[("x-api-key", &key)]).await;
        let body = response.error(StatusCode::BAD_REQUEST);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("unknown query parameter"),
            "{body}"
        );
    }
    // Under Envoy's path form the query is the client's own request's.
    let response = forward(&app, "/api/auth/v1/graphs?page=2", &[("x-api-key", &key)]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}
