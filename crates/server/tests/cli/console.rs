//! The web console's browser suite (`crates/server/tests/console`, pytest with
//! Playwright driving Debian's Chromium), against this build's `keyward` binary: the
//! suite starts its own `keyward serve` on 127.0.0.1 and writes screenshots to
//! `target/console-screenshots/`. Needs `KEYWARD_TEST_PYTHON` (a Python with
//! `clients/python[test]` and the suite's `requirements.txt` installed) and
//! `KEYWARD_TEST_CHROMIUM` (the chromium binary); `.ci/run` provides both.

use std::process::Command;

use crate::common::run_python;

#[test]
#[cfg_attr(
    not(all(keyward_python_tests, keyward_chromium_tests)),
    ignore = "console browser test: set KEYWARD_TEST_PYTHON (clients/python[test] and \
              crates/server/tests/console/requirements.txt installed) and KEYWARD_TEST_CHROMIUM"
)]
fn the_console_works_in_a_real_browser_under_its_content_security_policy() {
    let python = std::env::var("KEYWARD_TEST_PYTHON")
        .expect("KEYWARD_TEST_PYTHON names a Python with the console suite's requirements");
    let chromium =
        std::env::var("KEYWARD_TEST_CHROMIUM").expect("KEYWARD_TEST_CHROMIUM names chromium");
    let mut command = Command::new(&python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "."])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console"))
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"))
        .env("KEYWARD_TEST_CHROMIUM", chromium);
    let stdout = run_python(command, "pytest");
    // The summary line, e.g. "10 passed in 30.1s", in the test's output.
    println!("{}", stdout.lines().last().unwrap_or_default());
}
