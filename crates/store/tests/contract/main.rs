//! The store contract: behaviour every backend must have, written once against the
//! `Store` interface. Each file in `suites/` is compiled once per backend module
//! (`sqlite.rs`, `postgres.rs`), and its tests take a fresh database from that
//! backend's `fixture()`; what the suites share is in `common.rs`. The PostgreSQL run
//! needs `KEYWARD_TEST_POSTGRES_URL` (`.ci/run` provides it) and is reported as
//! ignored, with the reason, without it.

// Each suite file is compiled once per backend, on purpose.
#![allow(clippy::duplicate_mod)]

mod common;

#[cfg(keyward_postgres_tests)]
mod postgres;
mod sqlite;
#[cfg(keyward_postgres_tls_tests)]
mod tls;

use keyward_store::testing::{self, POSTGRES_SKIP_REASON};

#[cfg(not(keyward_postgres_tests))]
#[test]
#[ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL to run the store contract on PostgreSQL"]
fn postgres_store_contract() {
    // Run with --ignored, it says why it cannot: the suites exist only where the
    // server is named (build.rs compiles them in then).
    assert!(testing::postgres_available(), "{POSTGRES_SKIP_REASON}");
}

#[cfg(not(keyward_postgres_tls_tests))]
#[test]
#[ignore = "PostgreSQL over TLS: set KEYWARD_TEST_POSTGRES_URL to a TLS-only server with \
            sslmode=verify-full&sslrootcert=<its CA> (`.ci/postgres start --tls` prints one)"]
fn postgres_over_tls() {
    let url = std::env::var(testing::POSTGRES_URL_ENV).unwrap_or_default();
    assert!(url.contains("sslrootcert="), "no TLS server named: {url:?}");
}

#[test]
fn the_skip_reason_names_the_variable() {
    assert!(POSTGRES_SKIP_REASON.contains(testing::POSTGRES_URL_ENV));
}
