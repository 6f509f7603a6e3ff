//! Benchmark tools for keyward. The binaries are driven by `bench/run.py`:
//! - `baseline`: the same HTTP stack as keyward answering with a constant, the
//!   ceiling that keyward's verify throughput is compared against;
//! - `seed`: writes many keys straight through the store, and their plaintexts to a
//!   file for the load generator.
//!
//! `benches/verify.rs` measures one verification in-process (divan).
#![forbid(unsafe_code)]

use keyward_store::DatabaseUrl;

/// The runtime the in-process benchmarks run on: one worker for the engine's
/// background tasks (the change feed that keeps the cache trusted, the usage
/// flush); the measured futures are driven from the benchmark's own thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime starts")
}

/// A SQLite database in a fresh temporary directory (removed when it drops).
pub fn temp_sqlite() -> (tempfile::TempDir, DatabaseUrl) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .expect("a SQLite URL");
    (dir, url)
}
