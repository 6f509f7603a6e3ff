//! Both modes side by side on one keyward: the guard asking its server (remote) and
//! the guard on its engine (in-process) must answer alike, hand handlers the same
//! verified key, and take the same usage credits; and both must agree with keyward's
//! forward authentication.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use keyward_core::input::NewKeyRequest;
use keyward_core::model::{MAX_REMAINING, Metadata, Scope};
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_guard::{Guard, RequireKeyLayer, VerifiedKey};
use serde_json::{Value, json};

mod common;
use common::server::{Keyward, SERVICE_TOKEN, keyward};
use common::{app, call, detail};

/// A handler answering with everything the guard verified.
async fn verified(key: VerifiedKey) -> axum::Json<Value> {
    axum::Json(json!({
        "user_id": key.user_id,
        "key_id": key.key_id,
        "permissions": key.permissions,
        "metadata": key.metadata,
        "remaining": key.remaining,
    }))
}

/// A `/whoami` route answering with [`verified`], behind `layer`.
fn route(layer: RequireKeyLayer) -> Router {
    Router::new().route("/whoami", get(verified)).layer(layer)
}

/// The guard in each mode on `keyward`; the remote one reuses verdicts for a minute.
fn guards(keyward: &Keyward) -> [(&'static str, Guard); 2] {
    [
        ("remote", keyward.guard(Duration::from_secs(60))),
        ("in-process", Guard::in_process(keyward.engine.clone())),
    ]
}

/// A key for alice with usage credits (and nothing else).
async fn key_with_credits(keyward: &Keyward, credits: u64) -> (String, String) {
    keyward
        .key(NewKeyRequest {
            name: "metered".into(),
            remaining: Some(credits),
            ..Default::default()
        })
        .await
}

/// The credits keyward holds for the key `id`.
async fn credits_left(keyward: &Keyward, id: &str) -> Option<u64> {
    let key = keyward
        .engine
        .get_key(Scope::Admin, id.parse().unwrap())
        .await
        .unwrap();
    key.remaining
}

const EXHAUSTED: &str = "API key usage credits exhausted";

#[tokio::test]
async fn the_verified_key_carries_the_keys_metadata_in_both_modes() {
    let keyward = keyward(|_| {}).await;
    let metadata = json!({"plan": "pro", "team": {"id": 7, "name": "graphs"}, "beta": true});
    let (id, plain) = keyward
        .key(NewKeyRequest {
            name: "with metadata".into(),
            permissions: vec!["READ_GRAPH".into()],
            metadata: Some(Metadata::from_json_object(metadata.to_string()).unwrap()),
            ..Default::default()
        })
        .await;
    let (bare_id, bare) = keyward.key_with(&["READ_GRAPH"]).await;
    for (mode, guard) in guards(&keyward) {
        let app = route(guard.require(&["READ_GRAPH"]).unwrap());
        // Twice: the remote guard's second answer comes from its cache.
        for _ in 0..2 {
            let (status, _, body) = call(&app, &[("x-api-key", &plain)]).await;
            assert_eq!(status, StatusCode::OK, "{mode}: {body}");
            assert_eq!(
                body,
                json!({"user_id": "alice", "key_id": id, "permissions": ["READ_GRAPH"],
                       "metadata": metadata, "remaining": null}),
                "{mode}"
            );
            let (_, _, body) = call(&app, &[("x-api-key", &bare)]).await;
            assert_eq!(
                body,
                json!({"user_id": "alice", "key_id": bare_id, "permissions": ["READ_GRAPH"],
                       "metadata": null, "remaining": null}),
                "{mode}"
            );
        }
    }
    // One question per key for the remote guard; its cache kept the metadata.
    assert_eq!(keyward.calls(), 2);
}

#[tokio::test]
async fn a_key_with_credits_loses_the_routes_cost_per_request_and_shows_what_is_left() {
    let keyward = keyward(|_| {}).await;
    let (id, plain) = key_with_credits(&keyward, 10).await;
    let [(_, remote), (_, in_process)] = guards(&keyward);
    let remaining = |body: &Value| body["remaining"].clone();

    // keyward's default: one credit a request.
    let (status, _, body) = call(
        &route(remote.require::<&str>(&[]).unwrap()),
        &[("x-api-key", &plain)],
    )
    .await;
    assert_eq!((status, remaining(&body)), (StatusCode::OK, json!(9)));
    let (status, _, body) = call(
        &route(in_process.require::<&str>(&[]).unwrap()),
        &[("x-api-key", &plain)],
    )
    .await;
    assert_eq!((status, remaining(&body)), (StatusCode::OK, json!(8)));

    // A route costing 3.
    let remote_run = route(remote.require::<&str>(&[]).unwrap().cost(3));
    let in_process_run = route(in_process.require::<&str>(&[]).unwrap().cost(3));
    let (status, _, body) = call(&remote_run, &[("x-api-key", &plain)]).await;
    assert_eq!((status, remaining(&body)), (StatusCode::OK, json!(5)));
    let (status, _, body) = call(&in_process_run, &[("x-api-key", &plain)]).await;
    assert_eq!((status, remaining(&body)), (StatusCode::OK, json!(2)));

    // Two left, three asked: refused in both modes, and nothing is taken.
    for app in [&remote_run, &in_process_run] {
        let (status, _, body) = call(app, &[("x-api-key", &plain)]).await;
        assert_eq!((status, body), detail(StatusCode::FORBIDDEN, EXHAUSTED));
    }
    assert_eq!(credits_left(&keyward, &id).await, Some(2));
}

#[tokio::test]
async fn a_route_costing_nothing_only_checks_that_credits_are_left() {
    let keyward = keyward(|_| {}).await;
    let (id, plain) = key_with_credits(&keyward, 1).await;
    for (mode, guard) in guards(&keyward) {
        let free = route(guard.require::<&str>(&[]).unwrap().cost(0));
        for _ in 0..2 {
            let (status, _, body) = call(&free, &[("x-api-key", &plain)]).await;
            assert_eq!(status, StatusCode::OK, "{mode}: {body}");
            assert_eq!(body["remaining"], json!(1), "{mode}");
        }
    }
    assert_eq!(credits_left(&keyward, &id).await, Some(1));

    // The last credit spent on a route of the default cost: a free route then
    // refuses the key too, in both modes.
    let [(_, remote), _] = guards(&keyward);
    let (status, _, body) = call(
        &route(remote.require::<&str>(&[]).unwrap()),
        &[("x-api-key", &plain)],
    )
    .await;
    assert_eq!(
        (status, body["remaining"].clone()),
        (StatusCode::OK, json!(0))
    );
    for (mode, guard) in guards(&keyward) {
        let free = route(guard.require::<&str>(&[]).unwrap().cost(0));
        let (status, _, body) = call(&free, &[("x-api-key", &plain)]).await;
        assert_eq!(
            (status, body),
            detail(StatusCode::FORBIDDEN, EXHAUSTED),
            "{mode}"
        );
    }
    assert_eq!(credits_left(&keyward, &id).await, Some(0));
}

#[tokio::test]
async fn a_key_without_credits_passes_a_route_whatever_its_cost() {
    let keyward = keyward(|_| {}).await;
    let (id, plain) = keyward.key_with(&[]).await;
    for (mode, guard) in guards(&keyward) {
        for cost in [0, 1, 3, MAX_REMAINING] {
            let app = route(guard.require::<&str>(&[]).unwrap().cost(cost));
            let (status, _, body) = call(&app, &[("x-api-key", &plain)]).await;
            assert_eq!(status, StatusCode::OK, "{mode}, cost {cost}: {body}");
            assert_eq!(body["remaining"], Value::Null, "{mode}, cost {cost}");
        }
    }
    assert_eq!(credits_left(&keyward, &id).await, None);
}

/// keyward's forward authentication, asked as a proxy asks it for a route requiring
/// READ_GRAPH: the status, whether `Retry-After` came, and the sentence (`detail`).
async fn forward_auth(keyward: &Keyward, key: Option<&str>) -> (StatusCode, bool, Value) {
    use tower::ServiceExt;
    let mut request = Request::get("/api/auth")
        .header("x-keyward-proxy-token", SERVICE_TOKEN)
        .header("x-keyward-permissions", "READ_GRAPH");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = keyward
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let retry = response.headers().contains_key("retry-after");
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry, body["detail"].clone())
}

#[tokio::test]
async fn forward_auth_and_the_guard_in_both_modes_give_the_same_answer_for_every_verdict() {
    use keyward_core::verify::VerifyCode;
    let keyward = keyward(|_| {}).await;
    let engine = &keyward.engine;
    let (_, valid) = keyward.key_with(&["READ_GRAPH"]).await;
    let (_, narrow) = keyward.key_with(&["EXECUTE_GRAPH"]).await;
    let (suspended_id, suspended) = keyward.key_with(&["READ_GRAPH"]).await;
    engine
        .suspend(Scope::Admin, suspended_id.parse().unwrap())
        .await
        .unwrap();
    let (revoked_id, revoked) = keyward.key_with(&["READ_GRAPH"]).await;
    engine
        .revoke(Scope::Admin, revoked_id.parse().unwrap())
        .await
        .unwrap();
    let soon = Timestamp::from_millis(engine_now_ms() + 300).unwrap();
    let (_, expired) = keyward
        .key(NewKeyRequest {
            name: "short-lived".into(),
            permissions: vec!["READ_GRAPH".into()],
            expires_at: Some(soon),
            ..Default::default()
        })
        .await;
    let (_, limited) = keyward
        .key(NewKeyRequest {
            name: "limited".into(),
            permissions: vec!["READ_GRAPH".into()],
            rate_limit: RateLimit::new(1, 3600).ok(),
            ..Default::default()
        })
        .await;
    assert!(
        engine
            .verify(&limited, &["READ_GRAPH"])
            .await
            .unwrap()
            .is_valid()
    );
    let (_, spent) = keyward
        .key(NewKeyRequest {
            name: "spent".into(),
            permissions: vec!["READ_GRAPH".into()],
            remaining: Some(0),
            ..Default::default()
        })
        .await;
    // Bound to a network the test's clients (loopback) are not in.
    let (_, elsewhere) = keyward
        .key(NewKeyRequest {
            name: "elsewhere".into(),
            permissions: vec!["READ_GRAPH".into()],
            allowed_ips: keyward_core::network::AllowedNetworks::parse(&["203.0.113.0/24"]).ok(),
            ..Default::default()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let forged = keyward_core::key::KeyFormat::default().generate();

    let cases: Vec<(Option<VerifyCode>, Option<&str>)> = vec![
        (None, None),
        (Some(VerifyCode::Valid), Some(&valid)),
        (Some(VerifyCode::Malformed), Some("agpt_not-a-key")),
        (Some(VerifyCode::NotFound), Some(forged.expose())),
        (Some(VerifyCode::Suspended), Some(&suspended)),
        (Some(VerifyCode::Revoked), Some(&revoked)),
        (Some(VerifyCode::Expired), Some(&expired)),
        (Some(VerifyCode::InsufficientPermissions), Some(&narrow)),
        (Some(VerifyCode::RateLimited), Some(&limited)),
        (Some(VerifyCode::UsageExceeded), Some(&spent)),
        (Some(VerifyCode::IpNotAllowed), Some(&elsewhere)),
    ];
    let verdict_codes: Vec<VerifyCode> = cases.iter().filter_map(|(c, _)| *c).collect();
    assert_eq!(
        verdict_codes,
        VerifyCode::all().collect::<Vec<_>>(),
        "every verdict code is here"
    );

    let remote = app(&keyward.guard(Duration::ZERO), &["READ_GRAPH"]);
    let in_process = app(&Guard::in_process(engine.clone()), &["READ_GRAPH"]);
    for (code, key) in cases {
        let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        let proxy = forward_auth(&keyward, key).await;
        for (mode, app) in [("remote", &remote), ("in-process", &in_process)] {
            let (status, retry, body) = call(app, &headers).await;
            let sentence = if status == StatusCode::OK {
                Value::Null
            } else {
                body["detail"].clone()
            };
            assert_eq!(
                (status, retry.is_some(), sentence),
                proxy,
                "{code:?} through the guard ({mode}) and through forward auth"
            );
        }
    }
}

fn engine_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
