//! Remote mode: the guard in front of a real axum route, asking a real keyward server
//! (the service's own router, served on 127.0.0.1) over HTTP.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use keyward_core::input::NewKeyRequest;
use keyward_core::model::Scope;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_guard::{ClientAddress, Guard, RemoteConfig};
use serde_json::{Value, json};

mod common;
use common::server::{SERVICE_TOKEN, keyward};
use common::{app, call, detail};

#[tokio::test]
async fn a_valid_key_reaches_the_handler_with_its_identity() {
    let keyward = keyward(|_| {}).await;
    let (id, plain) = keyward.key_with(&["READ_GRAPH", "EXECUTE_GRAPH"]).await;
    let app = app(&keyward.guard(Duration::from_secs(2)), &["READ_GRAPH"]);
    let bearer = format!("Bearer {plain}");
    for header in [("x-api-key", plain.as_str()), ("authorization", &bearer)] {
        let (status, _, body) = call(&app, &[header]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"user_id": "alice", "key_id": id, "permissions": ["EXECUTE_GRAPH", "READ_GRAPH"]})
        );
    }
}

#[tokio::test]
async fn refusals_are_answered_as_autogpt_did() {
    let keyward = keyward(|_| {}).await;
    let (_, plain) = keyward.key_with(&["READ_GRAPH"]).await;
    let app = app(
        &keyward.guard(Duration::from_secs(2)),
        &["READ_GRAPH", "EXECUTE_GRAPH", "EXECUTE_BLOCK"],
    );
    let (status, _, body) = call(&app, &[]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::UNAUTHORIZED, "Missing API key")
    );
    let (status, _, body) = call(&app, &[("x-api-key", "agpt_not_a_key")]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::UNAUTHORIZED, "Invalid API key")
    );
    // Twice: the second answer comes from the cache and must say the same.
    for _ in 0..2 {
        let (status, _, body) = call(&app, &[("x-api-key", &plain)]).await;
        assert_eq!(
            (status, body),
            detail(
                StatusCode::FORBIDDEN,
                "Missing required permission(s): EXECUTE_GRAPH, EXECUTE_BLOCK"
            )
        );
    }
}

#[tokio::test]
async fn verdicts_are_reused_across_requests_and_routes_until_the_cache_ttl_ends() {
    let keyward = keyward(|_| {}).await;
    let (_, plain) = keyward.key_with(&["READ_GRAPH"]).await;
    let guard = keyward.guard(Duration::from_secs(60));
    let read = app(&guard, &["READ_GRAPH"]);
    let execute = app(&guard, &["EXECUTE_GRAPH"]);
    for _ in 0..5 {
        assert_eq!(
            call(&read, &[("x-api-key", &plain)]).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&execute, &[("x-api-key", &plain)]).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call(&read, &[("x-api-key", "agpt_forged")]).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // One question per route for the key (each route's first, which also has the
    // server accept its permission names), one for the forged key: 15 requests.
    assert_eq!(keyward.calls(), 3);
}

#[tokio::test]
async fn a_revocation_is_honoured_within_the_cache_ttl() {
    let keyward = keyward(|_| {}).await;
    let ttl = Duration::from_millis(300);
    let (id, plain) = keyward.key_with(&[]).await;
    let app = app(&keyward.guard(ttl), &[]);
    assert_eq!(call(&app, &[("x-api-key", &plain)]).await.0, StatusCode::OK);
    keyward
        .engine
        .revoke(Scope::Admin, id.parse().unwrap())
        .await
        .unwrap();
    // Whatever the cache still says now, once the TTL has passed the key is refused.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let (status, _, body) = call(&app, &[("x-api-key", &plain)]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::UNAUTHORIZED, "Invalid API key")
    );
}

#[tokio::test]
async fn without_a_cache_a_revocation_is_refused_by_the_next_request() {
    let keyward = keyward(|_| {}).await;
    let (id, plain) = keyward.key_with(&[]).await;
    let app = app(&keyward.guard(Duration::ZERO), &[]);
    assert_eq!(call(&app, &[("x-api-key", &plain)]).await.0, StatusCode::OK);
    keyward
        .engine
        .revoke(Scope::Admin, id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        call(&app, &[("x-api-key", &plain)]).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_cached_verdict_does_not_outlive_the_key() {
    let keyward = keyward(|_| {}).await;
    let expires_at = Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + 1_000,
    )
    .unwrap();
    let (_, plain) = keyward
        .key(NewKeyRequest {
            name: "short-lived".into(),
            expires_at: Some(expires_at),
            ..Default::default()
        })
        .await;
    let app = app(&keyward.guard(Duration::from_secs(60)), &[]);
    assert_eq!(call(&app, &[("x-api-key", &plain)]).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        call(&app, &[("x-api-key", &plain)]).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn keys_with_a_rate_limit_or_credits_reach_keyward_on_every_use() {
    let keyward = keyward(|_| {}).await;
    let (_, limited) = keyward
        .key(NewKeyRequest {
            name: "limited".into(),
            rate_limit: RateLimit::new(2, 60).ok(),
            ..Default::default()
        })
        .await;
    let (_, metered) = keyward
        .key(NewKeyRequest {
            name: "metered".into(),
            remaining: Some(2),
            ..Default::default()
        })
        .await;
    let app = app(&keyward.guard(Duration::from_secs(60)), &[]);
    for _ in 0..2 {
        assert_eq!(
            call(&app, &[("x-api-key", &limited)]).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&app, &[("x-api-key", &metered)]).await.0,
            StatusCode::OK
        );
    }
    let (status, retry, body) = call(&app, &[("x-api-key", &limited)]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded")
    );
    assert_eq!(retry.as_deref(), Some("30"));
    let (status, _, body) = call(&app, &[("x-api-key", &metered)]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::FORBIDDEN, "API key usage credits exhausted")
    );
    assert_eq!(keyward.calls(), 6);
}

#[tokio::test]
async fn an_unreachable_keyward_gets_503() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = RemoteConfig::new(format!("http://{closed}"), SERVICE_TOKEN);
    config.timeout = Duration::from_millis(500);
    let app = app(&Guard::remote(config).unwrap(), &[]);
    let (status, _, body) = call(&app, &[("x-api-key", "agpt_anything")]).await;
    assert_eq!(
        (status, body),
        detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "The API key cannot be checked right now"
        )
    );
}

#[tokio::test]
async fn a_wrong_service_token_or_an_unknown_permission_is_a_500_not_the_clients_fault() {
    let keyward = keyward(|_| {}).await;
    let (_, plain) = keyward.key_with(&[]).await;
    let wrong = Guard::remote(RemoteConfig::new(&keyward.url, "not-the-service-token")).unwrap();
    let (status, _, body) = call(&app(&wrong, &[]), &[("x-api-key", &plain)]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
    );
    let guard = keyward.guard(Duration::from_secs(2));
    let (status, _, _) = call(
        &app(&guard, &["NOT_IN_THE_CATALOGUE"]),
        &[("x-api-key", &plain)],
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // A name that cannot be a permission is refused when the layer is built.
    let err = guard.require(&["read graph"]).err().unwrap();
    assert!(err.to_string().contains("read graph"), "{err}");
}

#[tokio::test]
async fn a_keys_verify_credential_is_all_a_guard_needs_and_another_scope_is_a_500() {
    let keyward = keyward(|_| {}).await;
    let (id, plain) = keyward.key_with(&["READ_GRAPH"]).await;
    let credential = |scope: &str| keyward_core::credential::NewCredentialRequest {
        name: "guard".into(),
        scopes: vec![scope.into()],
        ..Default::default()
    };
    let verifier = keyward
        .engine
        .create_credential(&credential("keys.verify"))
        .await
        .unwrap();
    let mut config = RemoteConfig::new(&keyward.url, verifier.secret.expose());
    config.cache_ttl = Duration::ZERO;
    let guard = Guard::remote(config).unwrap();
    let (status, _, body) = call(&app(&guard, &["READ_GRAPH"]), &[("x-api-key", &plain)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key_id"], id.as_str());

    let reader = keyward
        .engine
        .create_credential(&credential("keys.read"))
        .await
        .unwrap();
    let wrong = Guard::remote(RemoteConfig::new(&keyward.url, reader.secret.expose())).unwrap();
    let (status, _, body) = call(&app(&wrong, &[]), &[("x-api-key", &plain)]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
    );
}

#[tokio::test]
async fn failed_verifications_are_counted_per_end_client() {
    let keyward = keyward(|config| {
        config.failed_verify_limit = RateLimit::new(3, 60).ok();
    })
    .await;
    let (_, plain) = keyward.key_with(&[]).await;
    let guard = keyward
        .guard(Duration::ZERO)
        .client_address(ClientAddress::LastForwardedFor);
    let app = app(&guard, &[]);
    let attacker = [("x-forwarded-for", "198.51.100.1, 203.0.113.9")];
    for n in 0..3 {
        let forged = format!("agpt_forged_{n}");
        let headers = [attacker[0], ("x-api-key", forged.as_str())];
        assert_eq!(call(&app, &headers).await.0, StatusCode::UNAUTHORIZED);
    }
    // The attacker's address is refused even with a good key; another client is not.
    let (status, retry, _) = call(&app, &[attacker[0], ("x-api-key", &plain)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some());
    let other = [("x-forwarded-for", "203.0.113.10"), ("x-api-key", &plain)];
    assert_eq!(call(&app, &other).await.0, StatusCode::OK);
}

#[test]
fn the_service_token_never_shows_in_debug_output_and_https_is_refused() {
    let config = RemoteConfig::new("http://127.0.0.1:8080", SERVICE_TOKEN);
    assert!(!format!("{config:?}").contains(SERVICE_TOKEN));
    let err = Guard::remote(RemoteConfig::new("https://keyward.internal", SERVICE_TOKEN))
        .err()
        .unwrap();
    assert!(err.to_string().contains("https"), "{err}");
    assert!(Guard::remote(RemoteConfig::new("keyward:8080", SERVICE_TOKEN)).is_err());
    assert!(Guard::remote(RemoteConfig::new("http://127.0.0.1:8080", "")).is_err());
}

/// A stand-in for keyward's verify API: answers with `answer(request body)` and keeps
/// the request bodies it saw.
async fn fake_keyward(
    answer: impl Fn(&Value) -> (StatusCode, Value) + Clone + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let router = Router::new().route(
        "/api/api-keys/verify",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let answer = answer.clone();
            let recorded = Arc::clone(&recorded);
            async move {
                let (status, json) = answer(&body);
                recorded.lock().unwrap().push(body);
                (status, axum::Json(json))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}"), seen)
}

fn remote_guard(url: &str) -> Guard {
    let mut config = RemoteConfig::new(url, SERVICE_TOKEN);
    config.cache_ttl = Duration::from_secs(60);
    Guard::remote(config).unwrap()
}

const VALID: fn(&Value) -> (StatusCode, Value) = |_| {
    (
        StatusCode::OK,
        json!({"valid": true, "code": "VALID", "key_id": "k1", "user_id": "alice",
               "permissions": ["READ_GRAPH", "OLD_NAME"], "metered": false}),
    )
};

#[tokio::test]
async fn an_answer_that_does_not_say_whether_the_key_is_metered_is_never_reused() {
    // An older keyward, without the `metered` field: the key may have a rate limit.
    let (url, seen) = fake_keyward(|_| {
        (
            StatusCode::OK,
            json!({"valid": true, "code": "VALID", "key_id": "k1", "user_id": "alice", "permissions": []}),
        )
    })
    .await;
    let app = app(&remote_guard(&url), &[]);
    for _ in 0..3 {
        assert_eq!(
            call(&app, &[("x-api-key", "agpt_k")]).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_name_the_server_refuses_is_refused_even_for_a_key_cached_as_holding_it() {
    // The server no longer knows OLD_NAME (422) though the key still lists it.
    let (url, seen) = fake_keyward(|body| {
        if body["permissions"] == json!(["OLD_NAME"]) {
            let message =
                json!({"message": "unknown permission(s): OLD_NAME", "detail": null, "hint": null});
            (StatusCode::UNPROCESSABLE_ENTITY, message)
        } else {
            VALID(body)
        }
    })
    .await;
    let guard = remote_guard(&url);
    let read = app(&guard, &["READ_GRAPH"]);
    let old = app(&guard, &["OLD_NAME"]);
    assert_eq!(
        call(&read, &[("x-api-key", "agpt_k")]).await.0,
        StatusCode::OK
    );
    for _ in 0..2 {
        assert_eq!(
            call(&old, &[("x-api-key", "agpt_k")]).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    // The accepted route is served from the cache from then on.
    assert_eq!(
        call(&read, &[("x-api-key", "agpt_k")]).await.0,
        StatusCode::OK
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn an_overlong_key_is_invalid_without_asking_keyward() {
    let (url, seen) = fake_keyward(VALID).await;
    let app = app(&remote_guard(&url), &[]);
    let long = format!("agpt_{}", "a".repeat(70_000));
    let (status, _, body) = call(&app, &[("x-api-key", &long)]).await;
    assert_eq!(
        (status, body),
        detail(StatusCode::UNAUTHORIZED, "Invalid API key")
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_forwarded_for_entry_that_is_no_address_sends_no_client_address() {
    let (url, seen) = fake_keyward(VALID).await;
    let guard = Guard::remote(RemoteConfig {
        cache_ttl: Duration::ZERO,
        ..RemoteConfig::new(&url, SERVICE_TOKEN)
    })
    .unwrap()
    .client_address(ClientAddress::LastForwardedFor);
    let app = app(&guard, &[]);
    for forwarded in ["198.51.100.1, 203.0.113.9", "unknown", "203.0.113.9:4711"] {
        let headers = [("x-forwarded-for", forwarded), ("x-api-key", "agpt_k")];
        assert_eq!(call(&app, &headers).await.0, StatusCode::OK);
    }
    let sent: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["client_ip"].clone())
        .collect();
    assert_eq!(sent, [json!("203.0.113.9"), Value::Null, Value::Null]);
}

#[tokio::test]
async fn a_routes_cost_is_sent_only_when_the_layer_sets_one() {
    let (url, seen) = fake_keyward(VALID).await;
    let guard = Guard::remote(RemoteConfig {
        cache_ttl: Duration::ZERO,
        ..RemoteConfig::new(&url, SERVICE_TOKEN)
    })
    .unwrap();
    let layers = [
        guard.require::<&str>(&[]).unwrap(),
        guard.require::<&str>(&[]).unwrap().cost(3),
        guard.require::<&str>(&[]).unwrap().cost(0),
    ];
    for layer in layers {
        let app = Router::new()
            .route("/whoami", axum::routing::get(common::whoami))
            .layer(layer);
        assert_eq!(
            call(&app, &[("x-api-key", "agpt_k")]).await.0,
            StatusCode::OK
        );
    }
    // Without a cost, the request keyward has always had (and keyward's default, 1).
    let sent: Vec<Option<Value>> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.get("cost").cloned())
        .collect();
    assert_eq!(sent, [None, Some(json!(3)), Some(json!(0))]);
}

#[tokio::test]
async fn the_guard_and_its_layers_never_show_the_service_token_in_debug_output() {
    let guard = Guard::remote(RemoteConfig::new("http://127.0.0.1:8080", SERVICE_TOKEN)).unwrap();
    let layer = guard.require(&["READ_GRAPH"]).unwrap().cost(2);
    let service = tower::Layer::layer(&layer, ());
    for shown in [
        format!("{guard:?}"),
        format!("{layer:?}"),
        format!("{service:?}"),
    ] {
        assert!(!shown.contains(SERVICE_TOKEN), "{shown}");
        // What the guard is: where it asks, what a route requires.
        assert!(shown.contains("127.0.0.1:8080"), "{shown}");
    }
    assert!(format!("{layer:?}").contains("READ_GRAPH"));
}

#[test]
#[should_panic(expected = "a cost must be at most 1000000000000000 credits")]
fn a_cost_above_what_a_key_can_hold_is_refused_when_the_layer_is_built() {
    let guard = Guard::remote(RemoteConfig::new("http://127.0.0.1:8080", SERVICE_TOKEN)).unwrap();
    let _ = guard
        .require::<&str>(&[])
        .unwrap()
        .cost(keyward_core::model::MAX_REMAINING + 1);
}

#[tokio::test]
async fn a_verdict_code_the_guard_does_not_know_refuses_by_its_name_and_is_asked_again() {
    // A newer keyward with a code of its own, even with `valid: true` and an identity.
    let (url, seen) = fake_keyward(|_| {
        (
            StatusCode::OK,
            json!({"valid": true, "code": "GEO_BLOCKED", "key_id": "k1", "user_id": "alice",
                   "permissions": ["READ_GRAPH"], "metered": false}),
        )
    })
    .await;
    let app = app(&remote_guard(&url), &["READ_GRAPH"]);
    for _ in 0..2 {
        let (status, _, body) = call(&app, &[("x-api-key", "agpt_k")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body["detail"], "The API key was refused (GEO_BLOCKED)",
            "never taken for NOT_FOUND or another code"
        );
    }
    // Not remembered: what it means is the newer server's to say every time.
    assert_eq!(seen.lock().unwrap().len(), 2);
}
