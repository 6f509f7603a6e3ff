//! HTTP tests: the real router on a real database per test, nothing mocked. The
//! suites in `suites/` run once per backend; the PostgreSQL run needs
//! `KEYWARD_TEST_POSTGRES_URL` (`.ci/run` provides it) and is reported as ignored
//! without it.

// Each suite file is compiled once per backend, on purpose.
#![allow(clippy::duplicate_mod)]

mod common;
mod jwks;

#[cfg(keyward_postgres_tests)]
mod postgres;
#[cfg(keyward_postgres_tests)]
mod proxy;
mod sqlite;

#[cfg(not(keyward_postgres_tests))]
#[test]
#[ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL to run the HTTP suites on PostgreSQL"]
fn postgres_http_suites() {
    // Run with --ignored, it says why it cannot: the suites exist only where the
    // server is named (build.rs compiles them in then).
    assert!(
        std::env::var_os("KEYWARD_TEST_POSTGRES_URL").is_some(),
        "set KEYWARD_TEST_POSTGRES_URL to a PostgreSQL server the tests may create databases on"
    );
}
