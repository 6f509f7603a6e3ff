//! Benchmark tools for keyward. The binaries are driven by `bench/run.py`:
//! - `baseline`: the same HTTP stack as keyward answering with a constant, the
//!   ceiling that keyward's verify throughput is compared against;
//! - `seed`: writes many keys straight through the store, and their plaintexts to a
//!   file for the load generator.
//!
//! `benches/verify.rs` measures one verification in-process (divan).
#![forbid(unsafe_code)]
