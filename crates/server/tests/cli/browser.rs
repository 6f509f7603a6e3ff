//! The docs page in a real browser (Debian's Chromium, headless), under the strict
//! Content-Security-Policy keyward sends with it. Needs `KEYWARD_TEST_CHROMIUM` (the
//! chromium binary; `.ci/run` installs and names it).

use std::process::Command;

use crate::common::start_server;

#[test]
#[cfg_attr(
    not(keyward_chromium_tests),
    ignore = "browser test: set KEYWARD_TEST_CHROMIUM to a chromium binary"
)]
fn the_docs_page_renders_the_api_under_its_content_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let chromium = std::env::var("KEYWARD_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = dir.path().join("profile");
    let output = Command::new(&chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            // Time for the page's fetch of openapi.json and its rendering.
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{}/docs", server.address))
        .output()
        .unwrap_or_else(|err| panic!("{chromium} could not be run: {err}"));
    assert!(output.status.success(), "{output:?}");
    let dom = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        !log.contains("Content Security Policy") && !log.contains("Content-Security-Policy"),
        "the policy blocked something:\n{log}"
    );
    // The script ran and rendered the spec: the operations are on the page.
    for rendered in [
        r#"<span class="path">/api/api-keys/verify</span>"#,
        r#"<span class="path">/api/admin/api-keys/{id}</span>"#,
        "Create a key.",
    ] {
        assert!(dom.contains(rendered), "{rendered} not rendered:\n{dom}");
    }
    // The script's own text holds the failure message; the rendered error has a class.
    assert!(!dom.contains(r#"id="subtitle" class="error""#), "{dom}");
}
