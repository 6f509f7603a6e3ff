//! The HTTP suites on a fresh PostgreSQL database per test (the at-rest file scan is
//! SQLite's: PostgreSQL's storage is not a file the tests read).

pub type TestApp = crate::common::TestApp<crate::common::Postgres>;

#[path = "suites/admin.rs"]
mod admin;
#[path = "suites/audit.rs"]
mod audit;
#[path = "suites/auth.rs"]
mod auth;
#[path = "suites/bad_input.rs"]
mod bad_input;
#[path = "suites/create.rs"]
mod create;
#[path = "suites/credentials.rs"]
mod credentials;
#[path = "suites/edit.rs"]
mod edit;
#[path = "suites/forward_auth.rs"]
mod forward_auth;
#[path = "suites/hostile.rs"]
mod hostile;
#[path = "suites/leaks.rs"]
mod leaks;
#[path = "suites/lifecycle.rs"]
mod lifecycle;
#[path = "suites/list_and_get.rs"]
mod list_and_get;
#[path = "suites/networks.rs"]
mod networks;
#[path = "suites/operations.rs"]
mod operations;
#[path = "suites/peppers.rs"]
mod peppers;
#[path = "suites/rate_limits.rs"]
mod rate_limits;
#[path = "suites/rotation.rs"]
mod rotation;
#[path = "suites/secret_scanning.rs"]
mod secret_scanning;
#[path = "suites/usage_credits.rs"]
mod usage_credits;
#[path = "suites/usage_history.rs"]
mod usage_history;
#[path = "suites/user_limits.rs"]
mod user_limits;
#[path = "suites/verify.rs"]
mod verify;
#[path = "suites/webhooks.rs"]
mod webhooks;

/// PostgreSQL only: an exhausted pool answers 503 with a JSON body, within the acquire
/// timeout, instead of leaving the request hanging.
#[tokio::test]
async fn an_exhausted_pool_answers_503_instead_of_hanging() {
    use axum::http::{Method, StatusCode};
    use keyward_store::AnyStore;

    let app = TestApp::builder().max_connections(1).build().await;
    let AnyStore::Postgres(store) = app.engine.store() else {
        unreachable!("the PostgreSQL backend")
    };
    let held = store.hold_connection_for_tests().await.unwrap();
    let started = std::time::Instant::now();
    let response = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    let error = response.error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["message"], "Service unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    drop(held);
    let response = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    response.ok();
}

/// Fail closed on PostgreSQL: the connection to the database is cut (every open
/// connection closed, new ones refused), then restored.
#[tokio::test]
async fn a_database_outage_fails_closed_and_recovers_by_itself() {
    use std::time::{Duration, Instant};

    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::common::ADMIN_TOKEN;
    use crate::proxy::Proxy;

    let proxy = Proxy::to_test_postgres().await;
    let app = TestApp::builder()
        .database_via(proxy.address())
        .build()
        .await;
    let (_, cached) = app.key_with("alice", &[]).await;
    let (_, uncached) = app.key_with("alice", &[]).await;
    assert_eq!(app.verify_code(&cached, &[]).await, "VALID");
    let verify = |key: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/api-keys/verify",
                Some(ADMIN_TOKEN),
                Some(json!({ "key": key })),
            )
            .await
        }
    };

    proxy.cut();
    let outage = Instant::now();
    let response = verify(uncached.clone()).await;
    assert_eq!(
        response.error(StatusCode::SERVICE_UNAVAILABLE)["message"],
        "Service unavailable"
    );
    app.call(Method::GET, "/readyz", None, None)
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    // A cached positive is served only until the lost change feed is noticed.
    let lease = app.engine.config().change_feed_lease;
    loop {
        let response = verify(cached.clone()).await;
        if response.status == StatusCode::SERVICE_UNAVAILABLE {
            eprintln!(
                "cached key served for {:?} into the outage",
                outage.elapsed()
            );
            break;
        }
        assert_eq!(response.ok()["code"], "VALID");
        assert!(
            outage.elapsed() <= lease + Duration::from_secs(2),
            "a cached key outlived the feed lease during an outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.restore();
    let back = Instant::now();
    while app.call(Method::GET, "/readyz", None, None).await.status != StatusCode::OK {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "ready again {:?} after the database came back",
        back.elapsed()
    );
    assert_eq!(app.verify_code(&uncached, &[]).await, "VALID");
    assert_eq!(app.verify_code(&cached, &[]).await, "VALID");
    while !app.engine.cache_active() {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "the cache never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("cache trusted again {:?} after", back.elapsed());
}
