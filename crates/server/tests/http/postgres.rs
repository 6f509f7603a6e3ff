//! The HTTP suites on a fresh PostgreSQL database per test (the at-rest file scan is
//! SQLite's: PostgreSQL's storage is not a file the tests read).

pub type TestApp = crate::common::TestApp<crate::common::Postgres>;

#[path = "suites/admin.rs"]
mod admin;
#[path = "suites/auth.rs"]
mod auth;
#[path = "suites/create.rs"]
mod create;
#[path = "suites/lifecycle.rs"]
mod lifecycle;
#[path = "suites/list_and_get.rs"]
mod list_and_get;
#[path = "suites/operations.rs"]
mod operations;
#[path = "suites/verify.rs"]
mod verify;

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
