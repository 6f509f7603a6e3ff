//! Keys bound to networks (`allowed_ips`): set by the owner or the platform, shown in
//! the key's record and its audit trail, and a verification on behalf of an end
//! client outside them (or of no client at all) answers `IP_NOT_ALLOWED`, through the
//! verify API and forward authentication alike.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApp;
use crate::common::{ADMIN_TOKEN, TestResponse};

async fn verify_from(app: &TestApp, key: &str, client: Option<&str>) -> Value {
    let mut body = json!({"key": key});
    if let Some(client) = client {
        body["client_ip"] = json!(client);
    }
    let answer = app
        .call(
            Method::POST,
            "/api/api-keys/verify",
            Some(ADMIN_TOKEN),
            Some(body),
        )
        .await;
    answer.ok().clone()
}

async fn forward(app: &TestApp, key: &str, forwarded_for: &str) -> TestResponse {
    use axum::body::Body;
    use axum::http::Request;
    let request = Request::builder()
        .method(Method::GET)
        .uri("/api/auth")
        .header("x-keyward-proxy-token", ADMIN_TOKEN)
        .header("x-api-key", key)
        .header("x-forwarded-for", forwarded_for)
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

#[tokio::test]
async fn a_key_bound_to_networks_verifies_only_for_clients_in_them() {
    let app = TestApp::new().await;
    let (created, key) = app
        .create_key(
            "alice",
            json!({"name": "office", "permissions": [],
                   "allowed_ips": ["203.0.113.7/24", "2001:db8::/32", "203.0.113.0/24"]}),
        )
        .await;
    // Read as networks: host bits cleared, each once.
    assert_eq!(
        created["allowed_ips"],
        json!(["203.0.113.0/24", "2001:db8::/32"])
    );
    for (client, code) in [
        (Some("203.0.113.9"), "VALID"),
        (Some("2001:db8:5::1"), "VALID"),
        (Some("::ffff:203.0.113.9"), "VALID"),
        (Some("198.51.100.1"), "IP_NOT_ALLOWED"),
        (Some("2001:db9::1"), "IP_NOT_ALLOWED"),
        // No client named: the caller cannot vouch for one, so it is refused.
        (None, "IP_NOT_ALLOWED"),
    ] {
        let verdict = verify_from(&app, &key, client).await;
        assert_eq!(verdict["code"], code, "{client:?}");
        assert_eq!(verdict["valid"], code == "VALID", "{client:?}");
        // Decided per client: a verdict must not be reused for another (the remote
        // guard caches only unmetered ones).
        assert_eq!(verdict["metered"], true, "{client:?}");
    }
    // A key without networks is verified for any client, or none.
    let (_, free) = app.key_with("alice", &[]).await;
    let verdict = verify_from(&app, &free, None).await;
    assert_eq!(
        (&verdict["code"], &verdict["metered"]),
        (&json!("VALID"), &json!(false))
    );
    assert_eq!(
        verify_from(&app, &free, Some("198.51.100.1")).await["code"],
        "VALID"
    );
}

#[tokio::test]
async fn networks_that_are_not_networks_are_refused_with_what_is_wrong() {
    let app = TestApp::new().await;
    let many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
    for (allowed, says) in [
        (json!(["nope"]), "is not an IP address or CIDR network"),
        (json!(["10.0.0.0/33"]), "the prefix length must be 0-32"),
        (json!([]), "at least one network"),
        (json!(many), "at most 100 networks"),
        (json!("10.0.0.0/8"), "invalid type"),
    ] {
        let answer = app
            .as_user(
                "alice",
                Method::POST,
                "/api/api-keys",
                Some(json!({"name": "k", "permissions": [], "allowed_ips": allowed})),
            )
            .await;
        assert!(
            answer.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{allowed}: {}",
            answer.status
        );
        assert!(answer.text.contains(says), "{allowed}: {}", answer.text);
    }
}

#[tokio::test]
async fn the_owner_binds_and_frees_a_key_and_the_trail_records_it() {
    let app = TestApp::new().await;
    let (id, key) = app.key_with("alice", &[]).await;
    let bound = app
        .as_user(
            "alice",
            Method::PATCH,
            &format!("/api/api-keys/{id}"),
            Some(json!({"allowed_ips": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(bound.ok()["allowed_ips"], json!(["10.0.0.0/8"]));
    assert_eq!(
        verify_from(&app, &key, Some("10.1.2.3")).await["code"],
        "VALID"
    );
    assert_eq!(
        verify_from(&app, &key, Some("192.0.2.1")).await["code"],
        "IP_NOT_ALLOWED"
    );
    let freed = app
        .as_user(
            "alice",
            Method::PATCH,
            &format!("/api/api-keys/{id}"),
            Some(json!({"allowed_ips": null})),
        )
        .await;
    assert_eq!(freed.ok()["allowed_ips"], Value::Null);
    assert_eq!(verify_from(&app, &key, None).await["code"], "VALID");
    let changes: Vec<Value> = app
        .key_events(&id)
        .await
        .iter()
        .filter_map(|e| e["changes"].get("allowed_ips").cloned())
        .collect();
    assert_eq!(
        changes,
        [
            json!({"before": null, "after": ["10.0.0.0/8"]}),
            json!({"before": ["10.0.0.0/8"], "after": null}),
        ]
    );
}

#[tokio::test]
async fn forward_auth_refuses_a_bound_key_outside_its_networks_with_403() {
    let app = TestApp::new().await;
    let (_, key) = app
        .create_key(
            "alice",
            json!({"name": "office", "permissions": [], "allowed_ips": ["198.51.100.0/24"]}),
        )
        .await;
    // The trusted proxy (loopback) names the end client.
    let inside = forward(&app, &key, "198.51.100.7").await;
    assert_eq!(inside.status, StatusCode::OK);
    let outside = forward(&app, &key, "203.0.113.7").await;
    let body = outside.error(StatusCode::FORBIDDEN);
    assert_eq!(
        body["detail"],
        "The API key may not be used from this address"
    );
}

#[tokio::test]
async fn a_proxy_that_names_no_client_is_not_taken_for_the_client() {
    // Bound to the proxy's own network (loopback), as "internal only" would be: a
    // request the proxy forwards without naming its client must not pass as the
    // proxy's own.
    let app = TestApp::new().await;
    let (_, key) = app
        .create_key(
            "alice",
            json!({"name": "internal", "permissions": [], "allowed_ips": ["127.0.0.0/8"]}),
        )
        .await;
    let request = axum::http::Request::builder()
        .method(Method::GET)
        .uri("/api/auth")
        .header("x-keyward-proxy-token", ADMIN_TOKEN)
        .header("x-api-key", &key)
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(request).await.error(StatusCode::FORBIDDEN);
    // A loopback address it names is a trusted proxy's, passed over: still refused.
    assert_eq!(
        forward(&app, &key, "127.0.0.5").await.status,
        StatusCode::FORBIDDEN
    );
    // A client it names, inside the networks, passes.
    let (_, office) = app
        .create_key(
            "alice",
            json!({"name": "office", "permissions": [], "allowed_ips": ["198.51.100.0/24"]}),
        )
        .await;
    assert_eq!(
        forward(&app, &office, "198.51.100.5").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_forwarded_address_from_a_proxy_that_is_not_trusted_is_not_believed() {
    // Loopback is not a trusted proxy here: its X-Forwarded-For is the client's own
    // word, and the client is the peer (127.0.0.1), outside the key's networks.
    let app = TestApp::builder().trusted_proxies("").build().await;
    let (_, key) = app
        .create_key(
            "alice",
            json!({"name": "office", "permissions": [], "allowed_ips": ["198.51.100.0/24"]}),
        )
        .await;
    let claimed = forward(&app, &key, "198.51.100.7").await;
    claimed.error(StatusCode::FORBIDDEN);
}
