//! A real Caddy in front of a small upstream, asking `keyward serve` through
//! `forward_auth` with deploy/caddy/Caddyfile as written (its addresses and the
//! credential filled in). Needs `KEYWARD_TEST_CADDY` (the caddy binary; `.ci/run`
//! installs Debian's and names it). The same cases as the nginx test, and keyward
//! down.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::{cli_in, http, start_server};
use crate::proxy::{
    asks_keyward_over_its_unix_socket, credential, free_port, get, get_path, get_with_headers,
    passes_with_its_identity_only, refuses_missing_unknown_and_lacking_keys, terminate, upstream,
    wait_listening,
};

/// deploy/caddy/Caddyfile, as shipped.
fn shipped() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/caddy/Caddyfile"
    ))
    .unwrap()
}

struct Caddy(Child);

impl Drop for Caddy {
    /// Stops Caddy the way it expects: SIGTERM, a graceful stop.
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

#[test]
#[cfg_attr(
    not(keyward_caddy_tests),
    ignore = "Caddy test: set KEYWARD_TEST_CADDY to a caddy binary"
)]
fn caddy_lets_valid_keys_through_and_stops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let keyward = start_server(dir.path());
    let gateway = credential(dir.path(), "caddy", "keys.verify");
    let billing = credential(dir.path(), "billing", "keys.write");
    let alice = cli_in(dir.path(), &["token", "--user", "alice"]);
    let create = |body: Value| {
        let (status, created) = http(
            &keyward.address,
            "POST",
            "/api/admin/users/alice/api-keys",
            Some(&billing),
            Some(&body),
        );
        assert_eq!(status, 200, "{created}");
        (
            created["api_key"]["id"].as_str().unwrap().to_owned(),
            created["plain_text_key"].as_str().unwrap().to_owned(),
        )
    };
    let (id, key) = create(json!({"name": "via caddy", "permissions": ["READ_GRAPH"]}));
    let (_, narrow) = create(json!({"name": "narrow", "permissions": ["EXECUTE_GRAPH"]}));

    let hits = Arc::new(AtomicUsize::new(0));
    let upstream_port = upstream(Arc::clone(&hits));
    let port = free_port();
    let caddyfile = shipped()
        .replace("http://:8000", &format!("http://:{port}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream_port}"))
        .replace("127.0.0.1:8080", &keyward.address)
        .replace("<keys.verify credential>", &gateway);
    let caddy = start_caddy(dir.path(), &caddyfile, port);

    // A valid key reaches the upstream, which learns who is calling; the key itself
    // does not travel on, and a client cannot forge the identity headers.
    passes_with_its_identity_only(port, &key, &id);
    let (_, seen) = get(port, &[("X-API-Key", &key), ("X_Keyward_User_Id", "admin")]);
    assert!(seen.get("x_keyward_user_id").is_none(), "{seen}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // The client's query string goes to the upstream, not to keyward: neither a
    // parameter keyward does not take nor a client's own `permissions`.
    for path in ["/graphs?page=2", "/graphs?permissions="] {
        let (status, _, seen) = get_path(port, path, &[("X-API-Key", &key)]);
        assert_eq!(status, 200, "{path}: {seen}");
    }
    let (status, _, _) = get_path(port, "/graphs?permissions=", &[("X-API-Key", &narrow)]);
    assert_eq!(
        status, 403,
        "a client's query does not lower what the route requires"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 5);

    // Missing, unknown and under-permissioned keys never reach it, whatever the
    // client claims.
    refuses_missing_unknown_and_lacking_keys(port, &narrow);
    for sent in ["EXECUTE_GRAPH", "", ","] {
        let permissions = ("X-Keyward-Permissions", sent);
        assert_eq!(
            get(port, &[("X-API-Key", &narrow), permissions]).0,
            403,
            "{sent:?}"
        );
    }
    assert_eq!(
        get(port, &[("X-API-Key", &key), ("X-Keyward-Permissions", "")]).0,
        200,
        "the client's header is overwritten, not added to"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        6,
        "refused requests reached the upstream"
    );

    // A rate-limited key: keyward's 429 and its Retry-After reach the client.
    let (_, limited) = create(json!({"name": "limited", "permissions": ["READ_GRAPH"],
        "rate_limit": {"requests": 1, "per_seconds": 3600}}));
    assert_eq!(get(port, &[("X-API-Key", &limited)]).0, 200);
    let (status, head, body) = get_with_headers(port, &[("X-API-Key", &limited)]);
    assert_eq!(status, 429, "{head}");
    let retry_after = head
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .unwrap_or_else(|| panic!("no Retry-After: {head}"));
    assert!(retry_after.parse::<u64>().unwrap() > 0, "{retry_after}");
    assert_eq!(body["message"], "Too many requests", "{body}");
    assert!(head.contains("X-Keyward-Code: RATE_LIMITED"), "{head}");
    assert_eq!(hits.load(Ordering::SeqCst), 7);

    // Revoked through the API: refused at the very next request.
    let (status, _) = http(
        &keyward.address,
        "DELETE",
        &format!("/api/api-keys/{id}"),
        Some(&alice),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(get(port, &[("X-API-Key", &key)]).0, 401);

    // keyward down: Caddy's own answer (502), never a pass.
    drop(keyward);
    let (status, _) = get(port, &[("X-API-Key", &limited)]);
    assert_eq!(status, 502);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        7,
        "a request passed while keyward was down"
    );
    drop(caddy);
}

/// Caddy running `caddyfile`, its files in `dir`; returns once it listens on `port`.
fn start_caddy(dir: &Path, caddyfile: &str, port: u16) -> Caddy {
    // No admin endpoint (it would take port 2019 for every test run at once), and
    // Caddy's own files in the test's directory.
    let caddyfile = format!("{{\n\tadmin off\n}}\n\n{caddyfile}");
    std::fs::write(dir.join("Caddyfile"), caddyfile).unwrap();
    let binary = std::env::var("KEYWARD_TEST_CADDY").unwrap_or_else(|_| "caddy".into());
    let log = std::fs::File::create(dir.join("caddy.log")).unwrap();
    let caddy = Caddy(
        Command::new(binary)
            .args(["run", "--config", "Caddyfile", "--adapter", "caddyfile"])
            .current_dir(dir)
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_listening("caddy", &[port], &dir.join("caddy.log"));
    caddy
}

#[test]
#[cfg_attr(
    not(keyward_caddy_tests),
    ignore = "Caddy test: set KEYWARD_TEST_CADDY to a caddy binary"
)]
fn caddy_asks_keyward_over_its_unix_socket() {
    asks_keyward_over_its_unix_socket("caddy-unix", |setting| {
        let tcp = "forward_auth 127.0.0.1:8080 {";
        let caddyfile = shipped();
        assert!(caddyfile.contains(tcp), "{caddyfile}");
        let caddyfile = caddyfile
            .replace(tcp, &setting.keyward)
            .replace("http://:8000", &format!("http://:{}", setting.port))
            .replace(
                "127.0.0.1:9000",
                &format!("127.0.0.1:{}", setting.upstream_port),
            )
            .replace("<keys.verify credential>", &setting.gateway);
        start_caddy(&setting.dir, &caddyfile, setting.port)
    });
}
