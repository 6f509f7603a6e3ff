//! PostgreSQL over TLS, against a server that accepts nothing else (`.ci/postgres
//! start --tls`: a test authority, a server certificate for 127.0.0.1 and localhost,
//! also listening on 127.0.0.2). Compiled where `KEYWARD_TEST_POSTGRES_URL` carries an
//! `sslrootcert` (see build.rs); the whole store contract then runs over TLS as well.

use keyward_store::{ConnectOptions, PostgresStore, Store};
use sqlx::Connection;

use crate::postgres::fixture;

fn server_url() -> String {
    std::env::var(keyward_store::testing::POSTGRES_URL_ENV).unwrap()
}

/// The test server's URL with one query parameter set to `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (address, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    params.push(format!("{name}={value}"));
    format!("{address}?{}", params.join("&"))
}

/// The authority beside the test CA that signed nothing.
fn other_authority(url: &str) -> String {
    let (_, root) = url.split_once("sslrootcert=").unwrap();
    let root = root.split('&').next().unwrap();
    root.replace("/ca.crt", "/other-ca.crt")
}

async fn open(url: &str) -> Result<PostgresStore, String> {
    PostgresStore::open(url, &ConnectOptions::default())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn verify_full_with_the_servers_authority_connects_the_pool_and_the_change_feed_over_tls() {
    let f = fixture().await;
    // Subscribing opens the change feed's own connection.
    f.store.next_external_change().await.unwrap();
    let keyward_store::DatabaseUrl::Postgres(url) = &f.url else {
        unreachable!()
    };
    let database = url.split('?').next().unwrap().rsplit('/').next().unwrap();
    let mut admin = sqlx::PgConnection::connect(&server_url()).await.unwrap();
    let connections: Vec<(String, bool)> = sqlx::query_as(
        "SELECT a.application_name, s.ssl FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 ORDER BY 1",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let names: Vec<&str> = connections.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"keyward"), "{connections:?}");
    assert!(names.contains(&"keyward-listener"), "{connections:?}");
    assert!(connections.iter().all(|(_, ssl)| *ssl), "{connections:?}");
}

#[tokio::test]
async fn a_tls_only_server_refuses_plaintext_and_keyward_says_what_to_set() {
    let err = open(&with_param(&server_url(), "sslmode", "disable"))
        .await
        .unwrap_err();
    assert!(err.contains("no encryption"), "{err}");
    assert!(err.contains("add sslmode=verify-full"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_another_authority_is_refused_at_start() {
    let url = server_url();
    let err = open(&with_param(&url, "sslrootcert", &other_authority(&url)))
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(err.contains("TLS certificate is not trusted"), "{err}");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name_which_verify_ca_lets_through() {
    // The server also listens on 127.0.0.2, a name its certificate does not hold.
    let other_name = server_url().replacen("@127.0.0.1:", "@127.0.0.2:", 1);
    let err = open(&other_name).await.unwrap_err();
    assert!(err.contains("127.0.0.2"), "{err}");
    assert!(err.contains("certificate"), "{err}");
    // sqlx's verify-ca checks the authority only: why keyward warns about it.
    let store = open(&with_param(&other_name, "sslmode", "verify-ca"))
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn require_accepts_a_certificate_from_any_authority_as_the_docs_warn() {
    let url = server_url();
    let any = with_param(&url, "sslrootcert", &other_authority(&url));
    let store = open(&with_param(&any, "sslmode", "require")).await.unwrap();
    store.close().await;
}
