//! In-process mode: the guard in front of a real axum route, with the engine on a real SQLite file.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use keyward_core::hash::Peppers;
use keyward_core::input::NewKeyRequest;
use keyward_core::model::{Scope, UserId};
use keyward_engine::{Engine, EngineConfig};
use keyward_guard::Guard;
use keyward_store::{AnyStore, Store};
use serde_json::json;

mod common;
use common::{call, whoami};

const PEPPER: &str = "guard-test-pepper-0123456789abcdefghijk";

async fn engine() -> (Engine<AnyStore>, keyward_store::testing::TestDatabase) {
    let db = keyward_store::testing::sqlite();
    let store = keyward_store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let engine = Engine::start(store, EngineConfig::new(Peppers::parse(PEPPER).unwrap()));
    (engine, db)
}

async fn key(engine: &Engine<AnyStore>, permissions: &[&str]) -> (String, String) {
    let request = NewKeyRequest {
        name: "guarded".into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let created = engine
        .create_key(&UserId::parse("alice").unwrap(), &request)
        .await
        .unwrap();
    (
        created.key.id.to_string(),
        created.plain_text.expose().to_owned(),
    )
}

#[tokio::test]
async fn a_valid_key_reaches_the_handler_with_its_identity() {
    let (engine, _db) = engine().await;
    let (id, plain) = key(&engine, &["READ_GRAPH"]).await;
    let guard = Guard::in_process(engine.clone());
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(guard.require(&["READ_GRAPH"]).unwrap());
    let bearer = format!("Bearer {plain}");
    for header in [
        ("x-api-key", plain.as_str()),
        ("authorization", bearer.as_str()),
    ] {
        let (status, _, body) = call(&app, &[header]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"user_id": "alice", "key_id": id, "permissions": ["READ_GRAPH"]})
        );
    }
}

#[tokio::test]
async fn refusals_are_answered_as_autogpt_did() {
    let (engine, _db) = engine().await;
    let (id, plain) = key(&engine, &["READ_GRAPH"]).await;
    let guard = Guard::in_process(engine.clone());
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(guard.require(&["READ_GRAPH", "EXECUTE_GRAPH"]).unwrap());

    let (status, _, body) = call(&app, &[]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Missing API key"})
        )
    );
    let (status, _, body) = call(&app, &[("x-api-key", "agpt_not_a_key")]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid API key"})
        )
    );
    let (status, _, body) = call(&app, &[("x-api-key", &plain)]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"detail": "Missing required permission(s): EXECUTE_GRAPH"})
        )
    );
    // Revoked through the engine: refused by the very next request.
    engine
        .revoke(Scope::Admin, id.parse().unwrap())
        .await
        .unwrap();
    let open = Router::new()
        .route("/whoami", get(whoami))
        .layer(guard.require::<&str>(&[]).unwrap());
    let (status, _, body) = call(&open, &[("x-api-key", &plain)]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid API key"})
        )
    );
}

#[tokio::test]
async fn unknown_permission_names_are_refused_when_the_layer_is_built() {
    let (engine, _db) = engine().await;
    let guard = Guard::in_process(engine);
    let err = guard.require(&["READ_GRAPH", "ADMIN"]).err().unwrap();
    assert!(err.to_string().contains("ADMIN"), "{err}");
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let (engine, _db) = engine().await;
    let request = NewKeyRequest {
        name: "limited".into(),
        rate_limit: keyward_core::rate::RateLimit::new(1, 60).ok(),
        ..Default::default()
    };
    // Rate limits are the platform's to set: an admin creation.
    let created = engine
        .create_key_as_admin(&UserId::parse("alice").unwrap(), &request)
        .await
        .unwrap();
    let plain = created.plain_text.expose().to_owned();
    let guard = Guard::in_process(engine);
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(guard.require::<&str>(&[]).unwrap());
    assert_eq!(call(&app, &[("x-api-key", &plain)]).await.0, StatusCode::OK);
    let (status, retry, _) = call(&app, &[("x-api-key", &plain)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("60"));
}

#[tokio::test]
async fn the_in_process_guard_shows_no_pepper_in_debug_output() {
    let (engine, _db) = engine().await;
    let guard = Guard::in_process(engine);
    let layer = guard.require(&["READ_GRAPH"]).unwrap();
    for shown in [format!("{guard:?}"), format!("{layer:?}")] {
        assert!(!shown.contains(PEPPER), "{shown}");
        assert!(shown.contains("InProcess"), "{shown}");
    }
}

/// A handler written before `VerifiedKey` had its name.
#[allow(deprecated)]
async fn former_name(key: keyward_guard::KeyIdentity) -> axum::Json<serde_json::Value> {
    axum::Json(json!({"user_id": key.user_id}))
}

#[tokio::test]
async fn a_handler_taking_the_former_name_key_identity_still_gets_the_key() {
    let (engine, _db) = engine().await;
    let (_, plain) = key(&engine, &[]).await;
    let guard = Guard::in_process(engine);
    let app = Router::new()
        .route("/whoami", get(former_name))
        .layer(guard.require::<&str>(&[]).unwrap());
    let (status, _, body) = call(&app, &[("x-api-key", &plain)]).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"user_id": "alice"}))
    );
}
