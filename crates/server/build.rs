//! Marks builds where a PostgreSQL server (or nginx, Caddy, Redis, the Python client's test
//! environment, or root for filesystem faults) is available to the tests, so those suites run there and are
//! reported as ignored (with the reason) elsewhere.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(keyward_postgres_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_POSTGRES_URL");
    if std::env::var_os("KEYWARD_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=keyward_postgres_tests");
    }
    // The nginx test runs where KEYWARD_TEST_NGINX names an nginx binary (.ci/run).
    println!("cargo::rustc-check-cfg=cfg(keyward_nginx_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_NGINX");
    if std::env::var_os("KEYWARD_TEST_NGINX").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=keyward_nginx_tests");
    }
    // The Caddy test runs where KEYWARD_TEST_CADDY names a caddy binary (.ci/run).
    println!("cargo::rustc-check-cfg=cfg(keyward_caddy_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_CADDY");
    if std::env::var_os("KEYWARD_TEST_CADDY").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=keyward_caddy_tests");
    }
    // The TypeScript client's suite runs where KEYWARD_TEST_NODE names node, with
    // the package's dependencies installed (.ci/run).
    println!("cargo::rustc-check-cfg=cfg(keyward_node_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_NODE");
    if std::env::var_os("KEYWARD_TEST_NODE").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=keyward_node_tests");
    }
    // The Python client's suite runs where KEYWARD_TEST_PYTHON names a Python with
    // clients/python[test] installed (.ci/run).
    println!("cargo::rustc-check-cfg=cfg(keyward_python_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_PYTHON");
    if std::env::var_os("KEYWARD_TEST_PYTHON").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=keyward_python_tests");
    }
    // The shared rate limit tests run where KEYWARD_TEST_REDIS names a redis-server
    // binary (.ci/run installs Debian's); each starts its own on a free port.
    println!("cargo::rustc-check-cfg=cfg(keyward_redis_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_REDIS");
    if std::env::var_os("KEYWARD_TEST_REDIS").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=keyward_redis_tests");
    }
    // The browser test runs where KEYWARD_TEST_CHROMIUM names a chromium binary
    // (.ci/run installs Debian's).
    println!("cargo::rustc-check-cfg=cfg(keyward_chromium_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_CHROMIUM");
    if std::env::var_os("KEYWARD_TEST_CHROMIUM").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=keyward_chromium_tests");
    }
    // The full-disk and read-only database tests mount a tmpfs and make files
    // immutable: they run where KEYWARD_TEST_ROOT_FS is set (.ci/run, as root).
    println!("cargo::rustc-check-cfg=cfg(keyward_root_fs_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_ROOT_FS");
    if std::env::var_os("KEYWARD_TEST_ROOT_FS").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=keyward_root_fs_tests");
    }
}
