//! Marks builds where a PostgreSQL server is available to the tests, so the
//! PostgreSQL suites run there (and the TLS ones where the server is TLS-only) and are
//! reported as ignored (with the reason) elsewhere.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(keyward_postgres_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(keyward_postgres_tls_tests)");
    let url = std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_default();
    if !url.is_empty() {
        println!("cargo::rustc-cfg=keyward_postgres_tests");
    }
    // A TLS-only server (`.ci/postgres start --tls`): its own tests run too.
    if url.contains("sslrootcert=") {
        println!("cargo::rustc-cfg=keyward_postgres_tls_tests");
    }
}
