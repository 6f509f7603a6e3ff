//! Setup commands and configuration mistakes: `migrate`, `openapi`, commands run in
//! the wrong place, partial secrets.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::common::{ADMIN_TOKEN, JWT_SECRET, PEPPER, Shared, clean_command};

#[test]
fn admin_commands_in_the_wrong_directory_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["keys", "list"][..], &["token", "--user", "alice"]] {
        let output = clean_command(dir.path()).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("run `keyward serve`"), "{args:?}: {stderr}");
    }
    let configured = clean_command(dir.path())
        .args(["keys", "list"])
        .env("KEYWARD_PEPPER", PEPPER)
        .env("KEYWARD_JWT_SECRET", JWT_SECRET)
        .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(configured.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&configured.stderr).contains("no database at"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file was created"
    );
}

#[test]
fn a_partial_secret_configuration_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = clean_command(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("KEYWARD_PEPPER"), "{stderr}");
    assert!(!dir.path().join("keyward.db.secrets").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_openapi_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = clean_command(dir.path()).arg("migrate").output().unwrap();
    assert!(migrate.status.success());
    assert_eq!(
        String::from_utf8_lossy(&migrate.stdout),
        "database is up to date\n"
    );
    assert!(dir.path().join("keyward.db").exists());
    // Running it again changes nothing.
    assert!(
        clean_command(dir.path())
            .arg("migrate")
            .output()
            .unwrap()
            .status
            .success()
    );

    let shared = Shared::new().await;
    let printed = shared.run(&["openapi"]).await;
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let response = shared
        .app
        .router
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let served: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(printed, served);
}
