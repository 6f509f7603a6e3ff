//! Service credentials: each admin route needs the one scope its document names,
//! credentials are made, read, revoked and rotated through their routes, every bad
//! secret gets the same 401, changes name the credential that made them, and the
//! static token can be turned off.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode, header};
use keyward_core::credential::ServiceScope;
use serde_json::{Value, json};

use super::TestApp;
use crate::common::{ADMIN_TOKEN, TestResponse};

const SOME_ID: &str = "0190b1c4-9f43-7cc4-8a5e-2f1d3c4b5a69";

/// Makes a credential holding `scopes` (with the static token); returns its JSON and
/// its secret.
async fn credential(app: &TestApp, name: &str, scopes: &[&str]) -> (Value, String) {
    let answer = app
        .call(
            Method::POST,
            "/api/admin/credentials",
            Some(ADMIN_TOKEN),
            Some(json!({"name": name, "scopes": scopes})),
        )
        .await;
    let body = answer.ok();
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    let secret = body["secret"].as_str().unwrap().to_owned();
    (body["credential"].clone(), secret)
}

/// Every route a service calls, with the one scope its document names (`None`: open
/// to every service).
async fn service_routes(app: &TestApp) -> Vec<(Method, String, Option<ServiceScope>)> {
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(scopes) = operation["security"][0]["service_token"].as_array() else {
                continue;
            };
            assert!(
                scopes.len() <= 1,
                "{method} {path} must name one scope at most: {scopes:?}"
            );
            let scope = scopes.first().map(|name| {
                ServiceScope::parse(name.as_str().unwrap())
                    .unwrap_or_else(|| panic!("{method} {path}: {scopes:?} is no scope"))
            });
            assert_eq!(
                operation["responses"]["403"].is_object(),
                scope.is_some(),
                "{method} {path} documents a 403 exactly when it names a scope"
            );
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            routes.push((method, path.clone(), scope));
        }
    }
    routes
}

fn uri(path: &str) -> String {
    path.replace("{id}", SOME_ID).replace("{user_id}", "alice")
}

#[tokio::test]
async fn every_service_route_needs_the_scope_its_document_names_and_no_other() {
    let app = TestApp::new().await;
    let routes = service_routes(&app).await;
    let mut only = BTreeMap::new();
    let mut all_but = BTreeMap::new();
    for scope in ServiceScope::ALL {
        let others: Vec<&str> = ServiceScope::ALL
            .iter()
            .filter(|other| **other != scope)
            .map(|other| other.as_str())
            .collect();
        let (_, secret) = credential(&app, &format!("all-but-{scope}"), &others).await;
        all_but.insert(scope, secret);
        let (_, secret) = credential(&app, &format!("only-{scope}"), &[scope.as_str()]).await;
        only.insert(scope, secret);
    }
    for (method, path, scope) in &routes {
        let uri = uri(path);
        let Some(scope) = scope else {
            // Open to every service: the narrowest credential is let in.
            let answer = app
                .call(
                    method.clone(),
                    &uri,
                    Some(&only[&ServiceScope::KeysVerify]),
                    None,
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{method} {path}: {}",
                answer.text
            );
            continue;
        };
        let refused = app
            .call(method.clone(), &uri, Some(&all_but[scope]), Some(json!({})))
            .await;
        let body = refused.error(StatusCode::FORBIDDEN);
        assert!(
            body["detail"].as_str().unwrap().contains(scope.as_str()),
            "{method} {path}: the 403 names {scope}: {body}"
        );
        let let_in = app
            .call(method.clone(), &uri, Some(&only[scope]), Some(json!({})))
            .await;
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&let_in.status),
            "{method} {path} with {scope}: {} {}",
            let_in.status,
            let_in.text
        );
    }
    let route_list: Vec<String> = routes
        .iter()
        .map(|(m, p, s)| match s {
            Some(scope) => format!("{m} {p} {scope}"),
            None => format!("{m} {p} (any)"),
        })
        .collect();
    let table = route_list.join("\n");
    // The admin routes, verify and the credentials' own.
    assert!(routes.len() >= 14, "{table}");
    for expected in [
        "POST /api/api-keys/verify keys.verify",
        "GET /api/admin/users/{user_id}/api-keys keys.read",
        "GET /api/admin/api-keys/{id} keys.read",
        "GET /api/admin/api-keys/{id}/events keys.read",
        "PATCH /api/admin/api-keys/{id} keys.write",
        "GET /api/admin/usage usage.read",
        "GET /api/admin/events audit.read",
        "POST /api/admin/credentials credentials.manage",
        "GET /api/admin/whoami (any)",
    ] {
        assert!(
            route_list.iter().any(|r| r == expected),
            "{expected} in\n{table}"
        );
    }
}

#[tokio::test]
async fn a_credential_is_shown_once_and_never_its_secret_again() {
    let app = TestApp::new().await;
    let (created, secret) = credential(&app, "gateway", &["keys.verify"]).await;
    assert!(
        secret.starts_with("kwsvc_") && secret.len() == 55,
        "{secret}"
    );
    assert_eq!(created["name"], "gateway");
    assert_eq!(created["scopes"], json!(["keys.verify"]));
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["created_by"], "admin:service");
    let id = created["id"].as_str().unwrap();

    let list = app
        .call(
            Method::GET,
            "/api/admin/credentials",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    let one = app
        .call(
            Method::GET,
            &format!("/api/admin/credentials/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(list.ok()[0]["id"], id);
    assert_eq!(one.ok()["id"], id);
    for answer in [&list, &one] {
        assert!(!answer.text.contains(&secret[6..]), "{}", answer.text);
        assert!(answer.body.get("secret").is_none());
    }
    let unknown = app
        .call(
            Method::GET,
            &format!("/api/admin/credentials/{SOME_ID}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(
        unknown.error(StatusCode::NOT_FOUND)["message"],
        "Credential not found"
    );
    let not_an_id = app
        .call(
            Method::GET,
            "/api/admin/credentials/gateway",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    not_an_id.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_create_request_is_refused_whole_with_every_problem_named() {
    let app = TestApp::new().await;
    let answer = app
        .call(
            Method::POST,
            "/api/admin/credentials",
            Some(ADMIN_TOKEN),
            Some(
                json!({"name": " ", "scopes": ["keys.verify", "root"], "expires_at": "yesterday"}),
            ),
        )
        .await;
    let body = answer.error(StatusCode::UNPROCESSABLE_ENTITY);
    let detail = body["detail"].as_str().unwrap();
    for expected in ["name", "unknown scope(s): root", "expires_at"] {
        assert!(detail.contains(expected), "{expected}: {detail}");
    }
    let no_scope = app
        .call(
            Method::POST,
            "/api/admin/credentials",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "nothing", "scopes": []})),
        )
        .await;
    let detail = no_scope.error(StatusCode::UNPROCESSABLE_ENTITY)["detail"].clone();
    assert!(
        detail.as_str().unwrap().contains("at least one"),
        "{detail}"
    );
    let extra = app
        .call(
            Method::POST,
            "/api/admin/credentials",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "x", "scopes": ["keys.verify"], "admin": true})),
        )
        .await;
    assert_eq!(
        extra.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        extra.text
    );
    let listed = app
        .call(
            Method::GET,
            "/api/admin/credentials",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(listed.ok(), &json!([]));
}

/// The verify API's answer to `secret` as the caller.
async fn verify_as(app: &TestApp, secret: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/api/api-keys/verify",
        Some(secret),
        Some(json!({"key": "agpt_nothing", "permissions": []})),
    )
    .await
}

#[tokio::test]
async fn every_bad_secret_gets_the_same_401() {
    let app = TestApp::new().await;
    let (revoked, revoked_secret) = credential(&app, "revoked", &["keys.verify"]).await;
    app.call(
        Method::DELETE,
        &format!("/api/admin/credentials/{}", revoked["id"].as_str().unwrap()),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .ok();
    let expiring = app
        .call(
            Method::POST,
            "/api/admin/credentials",
            Some(ADMIN_TOKEN),
            Some(json!({
                "name": "expiring",
                "scopes": ["keys.verify"],
                "expires_at": now_plus(60),
            })),
        )
        .await;
    let expiring_secret = expiring.ok()["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        verify_as(&app, &expiring_secret).await.status,
        StatusCode::OK
    );
    app.advance(std::time::Duration::from_secs(61));

    // A well-formed secret nobody holds, and one with a wrong checksum.
    let (_, live) = credential(&app, "live", &["keys.verify"]).await;
    let unknown = format!("kwsvc_{}", &live[6..].chars().rev().collect::<String>());
    let mut typo = live.clone();
    typo.pop();
    typo.push(if live.ends_with('A') { 'B' } else { 'A' });
    let (_, key) = app.key_with("alice", &[]).await;

    let mut bodies = Vec::new();
    for secret in [
        revoked_secret.as_str(),
        &expiring_secret,
        &unknown,
        &typo,
        &key,
        "not-a-token",
    ] {
        let answer = verify_as(&app, secret).await;
        bodies.push(answer.error(StatusCode::UNAUTHORIZED).clone());
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:#?}"
    );
    assert_eq!(verify_as(&app, &live).await.status, StatusCode::OK);
}

/// RFC 3339 for now plus `seconds` (the test's clock is the system's until moved).
fn now_plus(seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    keyward_core::time::Timestamp::from_millis(now + seconds * 1_000)
        .unwrap()
        .to_rfc3339()
}

#[tokio::test]
async fn a_revoked_credential_is_refused_by_its_next_request() {
    let app = TestApp::new().await;
    let (created, secret) =
        credential(&app, "billing", &["keys.write", "credentials.manage"]).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(verify_as(&app, &secret).await.status, StatusCode::FORBIDDEN);
    // A credential may revoke itself; it is refused from then on.
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/admin/credentials/{id}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(revoked.ok()["status"], "REVOKED");
    let after = app
        .call(Method::GET, "/api/admin/credentials", Some(&secret), None)
        .await;
    after.error(StatusCode::UNAUTHORIZED);
    let again = app
        .call(
            Method::DELETE,
            &format!("/api/admin/credentials/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(again.ok()["revoked_at"], revoked.body["revoked_at"]);
    let rotate = app
        .call(
            Method::POST,
            &format!("/api/admin/credentials/{id}/rotate"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    let body = rotate.error(StatusCode::BAD_REQUEST);
    assert_eq!(body["detail"], "the credential is revoked");
}

#[tokio::test]
async fn a_rotation_keeps_the_old_secret_for_its_grace_period() {
    let app = TestApp::new().await;
    let (created, old) = credential(&app, "gateway", &["keys.verify"]).await;
    let id = created["id"].as_str().unwrap();
    let rotated = app
        .call(
            Method::POST,
            &format!("/api/admin/credentials/{id}/rotate"),
            Some(ADMIN_TOKEN),
            Some(json!({"grace_seconds": 30})),
        )
        .await;
    assert_eq!(rotated.headers[header::CACHE_CONTROL], "no-store");
    let new = rotated.ok()["secret"].as_str().unwrap().to_owned();
    assert!(rotated.body["credential"]["previous_secret_until"].is_string());
    assert_eq!(verify_as(&app, &old).await.status, StatusCode::OK);
    assert_eq!(verify_as(&app, &new).await.status, StatusCode::OK);
    app.advance(std::time::Duration::from_secs(31));
    verify_as(&app, &old).await.error(StatusCode::UNAUTHORIZED);
    assert_eq!(verify_as(&app, &new).await.status, StatusCode::OK);

    let too_long = app
        .call(
            Method::POST,
            &format!("/api/admin/credentials/{id}/rotate"),
            Some(ADMIN_TOKEN),
            Some(json!({"grace_seconds": 604_801})),
        )
        .await;
    too_long.error(StatusCode::UNPROCESSABLE_ENTITY);
}

/// alice's audit trail, oldest first, as the static token reads it.
async fn alices_events(app: &TestApp) -> Vec<Value> {
    let answer = app
        .call(
            Method::GET,
            "/api/admin/events?user_id=alice",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    answer.ok()["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_credentials_changes_are_recorded_as_its_own() {
    let app = TestApp::new().await;
    let (created, secret) = credential(&app, "billing", &["keys.write"]).await;
    let key = app
        .call(
            Method::POST,
            "/api/admin/users/alice/api-keys",
            Some(&secret),
            Some(json!({"name": "provisioned", "permissions": [], "remaining": 100})),
        )
        .await;
    let key_id = key.ok()["api_key"]["id"].as_str().unwrap().to_owned();
    app.call(
        Method::POST,
        &format!("/api/admin/api-keys/{key_id}/suspend"),
        Some(&secret),
        None,
    )
    .await
    .ok();
    let events = alices_events(&app).await;
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        assert_eq!(
            event["actor"],
            json!({"type": "credential", "id": "billing", "credential_id": created["id"]})
        );
    }
    // The static token stays the administrator, without a credential id.
    app.patch_as_platform(&key_id, json!({"remaining": 5}))
        .await
        .ok();
    assert_eq!(
        alices_events(&app).await[2]["actor"],
        json!({"type": "admin", "id": "service"})
    );
    // A credential cannot read the feed without audit.read.
    app.call(Method::GET, "/api/admin/events", Some(&secret), None)
        .await
        .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn with_the_static_token_disabled_only_credentials_are_let_in() {
    let app = TestApp::builder().without_static_token().build().await;
    for (method, path, _) in service_routes(&app).await {
        let answer = app
            .call(
                method.clone(),
                &uri(&path),
                Some(ADMIN_TOKEN),
                Some(json!({})),
            )
            .await;
        answer.error(StatusCode::UNAUTHORIZED);
    }
    // The way back in is the CLI (tested there); a credential made by the engine works.
    let created = app
        .engine
        .create_credential(&keyward_core::credential::NewCredentialRequest {
            name: "ops".into(),
            scopes: vec!["credentials.manage".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let listed = app
        .call(
            Method::GET,
            "/api/admin/credentials",
            Some(created.secret.expose()),
            None,
        )
        .await;
    assert_eq!(listed.ok()[0]["name"], "ops");
    assert_eq!(listed.body[0]["created_by"], "admin:service");
}

#[tokio::test]
async fn the_permission_catalogue_takes_a_credential_of_any_scope() {
    let app = TestApp::new().await;
    let (_, secret) = credential(&app, "gateway", &["keys.verify"]).await;
    app.call(Method::GET, "/api/permissions", Some(&secret), None)
        .await
        .ok();
    let unknown = format!("kwsvc_{}", "A".repeat(49));
    app.call(Method::GET, "/api/permissions", Some(&unknown), None)
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn made_up_credentials_from_one_address_are_answered_429_before_any_lookup() {
    let app = TestApp::builder()
        .engine(|config| {
            config.failed_verify_limit = keyward_core::rate::RateLimit::new(3, 60).ok();
        })
        .build()
        .await;
    let format = keyward_core::credential::credential_format();
    for _ in 0..3 {
        let made_up = format.generate();
        verify_as(&app, made_up.expose())
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    let refused = verify_as(&app, format.generate().expose()).await;
    refused.error(StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    // A user's JWT where services may call too is no failed credential.
    let user = app.token("alice");
    for _ in 0..5 {
        app.call(Method::GET, "/api/permissions", Some(&user), None)
            .await
            .ok();
    }
}

#[tokio::test]
async fn a_service_learns_who_it_is_and_what_it_may_do() {
    let app = TestApp::new().await;
    let (created, secret) = credential(&app, "support", &["usage.read", "keys.read"]).await;
    let me = app
        .call(Method::GET, "/api/admin/whoami", Some(&secret), None)
        .await;
    assert_eq!(
        me.ok(),
        &json!({
            "type": "credential",
            "id": "support",
            "credential_id": created["id"],
            "scopes": ["keys.read", "usage.read"],
        })
    );
    let token = app
        .call(Method::GET, "/api/admin/whoami", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(token.ok()["type"], "admin");
    assert_eq!(token.body["id"], "service");
    assert_eq!(
        token.body["scopes"].as_array().unwrap().len(),
        ServiceScope::ALL.len()
    );
    let user = app.token("alice");
    app.call(Method::GET, "/api/admin/whoami", Some(&user), None)
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_keys_read_credential_reads_any_key_and_its_trail_and_changes_nothing() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &["READ_GRAPH"]).await;
    let (_, support) = credential(&app, "support", &["keys.read"]).await;
    let key = app
        .call(
            Method::GET,
            &format!("/api/admin/api-keys/{id}"),
            Some(&support),
            None,
        )
        .await;
    assert_eq!(key.ok()["user_id"], "alice");
    assert!(key.body.get("plain_text_key").is_none());
    let events = app
        .call(
            Method::GET,
            &format!("/api/admin/api-keys/{id}/events"),
            Some(&support),
            None,
        )
        .await;
    let events = events.ok()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["action"], "create");
    app.call(
        Method::POST,
        &format!("/api/admin/api-keys/{id}/suspend"),
        Some(&support),
        None,
    )
    .await
    .error(StatusCode::FORBIDDEN);
    app.call(
        Method::GET,
        &format!("/api/admin/api-keys/{SOME_ID}/events"),
        Some(&support),
        None,
    )
    .await
    .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn credentials_manage_cannot_hand_out_or_take_over_more_than_it_holds() {
    let app = TestApp::new().await;
    let (billing, billing_secret) = credential(&app, "billing", &["keys.write"]).await;
    let (_, manager) = credential(&app, "ops", &["credentials.manage", "usage.read"]).await;
    let create = |scopes: Value| {
        app.call(
            Method::POST,
            "/api/admin/credentials",
            Some(&manager),
            Some(json!({"name": "minted", "scopes": scopes})),
        )
    };
    let refused = create(json!(["keys.write"])).await;
    let body = refused.error(StatusCode::FORBIDDEN);
    assert!(
        body["detail"].as_str().unwrap().contains("keys.write"),
        "{body}"
    );
    create(json!(["credentials.manage", "audit.read"]))
        .await
        .error(StatusCode::FORBIDDEN);
    create(json!(["usage.read"])).await.ok();

    let id = billing["id"].as_str().unwrap();
    for (method, path) in [
        (Method::POST, format!("/api/admin/credentials/{id}/rotate")),
        (Method::DELETE, format!("/api/admin/credentials/{id}")),
    ] {
        app.call(method, &path, Some(&manager), None)
            .await
            .error(StatusCode::FORBIDDEN);
    }
    // Billing's secret still works: nothing was taken over.
    let listed = app
        .call(
            Method::GET,
            "/api/admin/users/alice/api-keys",
            Some(&billing_secret),
            None,
        )
        .await;
    listed.error(StatusCode::FORBIDDEN); // keys.write only: listing needs keys.read
    assert!(
        listed.body["detail"]
            .as_str()
            .unwrap()
            .contains("keys.read")
    );
    app.call(
        Method::POST,
        "/api/admin/users/alice/api-keys",
        Some(&billing_secret),
        Some(json!({"name": "k", "permissions": []})),
    )
    .await
    .ok();
}
