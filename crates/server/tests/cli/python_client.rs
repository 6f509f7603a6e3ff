//! The Python client's pytest suite (`clients/python/tests`), against this build's
//! `keyward` binary: the suite starts its own `keyward serve` on 127.0.0.1. Needs
//! `KEYWARD_TEST_PYTHON`, a Python with `clients/python[test]` installed (`.ci/run`
//! makes that virtualenv).

use std::process::Command;

use crate::common::run_python;

#[test]
#[cfg_attr(
    not(keyward_python_tests),
    ignore = "Python client test: set KEYWARD_TEST_PYTHON to a Python with clients/python[test] installed"
)]
fn the_python_clients_test_suite_passes_against_this_build() {
    let python = std::env::var("KEYWARD_TEST_PYTHON")
        .expect("KEYWARD_TEST_PYTHON names a Python with clients/python[test] installed");
    let mut command = Command::new(&python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/python"))
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"));
    let stdout = run_python(command, "pytest");
    // The summary line, e.g. "42 passed in 9.1s", in the test's output.
    println!("{}", stdout.lines().last().unwrap_or_default());
}
