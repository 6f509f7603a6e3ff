//! Marks builds where a Redis server binary is available to the tests, so the shared
//! rate limit tests run there and are reported as ignored (with the reason) elsewhere.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(keyward_redis_tests)");
    println!("cargo::rerun-if-env-changed=KEYWARD_TEST_REDIS");
    if std::env::var_os("KEYWARD_TEST_REDIS").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=keyward_redis_tests");
    }
}
