//! The TypeScript client (`clients/typescript`, npm package `@keyward/client`) against
//! this build's `keyward` binary: its generated types checked against this build's
//! OpenAPI document, then `npm test` (tsc, then Node's test runner: every route, the
//! Express, Hono and Next.js guards, `npm pack`), which starts its own `keyward serve`
//! on 127.0.0.1. Needs `KEYWARD_TEST_NODE` (Node 18 or newer) and the package's
//! dependencies installed (`npm ci`; `.ci/run` does both).

use std::process::Command;

const PACKAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/typescript");

fn npm(args: &[&str]) -> String {
    let node = std::env::var("KEYWARD_TEST_NODE").expect("KEYWARD_TEST_NODE names node");
    // npm beside the node named (Debian's and nvm's layouts both).
    let npm = std::path::Path::new(&node).with_file_name("npm");
    let output = Command::new(npm)
        .args(args)
        .current_dir(PACKAGE)
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "npm {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
#[cfg_attr(
    not(keyward_node_tests),
    ignore = "TypeScript client test: set KEYWARD_TEST_NODE to node, with `npm ci` run in clients/typescript"
)]
fn the_typescript_clients_types_are_current_and_its_suite_passes() {
    npm(&["run", "--silent", "check-generated"]);
    let stdout = npm(&["test", "--silent"]);
    // The runner's summary ("# pass 20", "# fail 0"), in the test's output.
    for line in stdout.lines().filter(|l| l.starts_with("# ")) {
        println!("{line}");
    }
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
