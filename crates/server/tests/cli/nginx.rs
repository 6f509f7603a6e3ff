//! A real nginx in front of a small upstream, asking `keyward serve` through
//! `auth_request` with the configuration of docs/INTEGRATIONS.md. Needs
//! `KEYWARD_TEST_NGINX` (the nginx binary; `.ci/run` installs and names it).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::{cli_in, http, start_server};
use crate::proxy::{
    asks_keyward_over_its_unix_socket, documented, free_port, get, get_with_headers,
    passes_with_its_identity_only, refuses_missing_unknown_and_lacking_keys, terminate, upstream,
    wait_listening,
};

/// The forward-auth server block, with the management routes of the AutoGPT migration
/// guide added inside it (as a platform's proxy would have both).
fn documented_config() -> String {
    let server = documented("nginx-config");
    let close = server.rfind('}').unwrap();
    format!(
        "{}{}{}",
        &server[..close],
        documented("nginx-management"),
        &server[close..]
    )
}

struct Nginx(Child);

impl Drop for Nginx {
    /// Stops nginx the way it expects: SIGTERM to the master, which stops its workers
    /// and then exits. SIGKILL would end the master alone and leave the workers
    /// running, still listening, in a directory that no longer exists.
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

#[test]
#[cfg_attr(
    not(keyward_nginx_tests),
    ignore = "nginx test: set KEYWARD_TEST_NGINX to an nginx binary"
)]
fn nginx_lets_valid_keys_through_and_stops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let keyward = start_server(dir.path());
    // The documented setup: nginx holds a credential that can verify keys and do
    // nothing else.
    let created = cli_in(
        dir.path(),
        &[
            "credentials",
            "create",
            "--name",
            "nginx",
            "--scope",
            "keys.verify",
            "--json",
        ],
    );
    let created: Value = serde_json::from_str(&created).unwrap();
    let gateway = created["secret"].as_str().unwrap().to_owned();
    let created = cli_in(
        dir.path(),
        &[
            "credentials",
            "create",
            "--name",
            "billing",
            "--scope",
            "keys.write",
            "--json",
        ],
    );
    let created: Value = serde_json::from_str(&created).unwrap();
    let billing = created["secret"].as_str().unwrap().to_owned();
    let alice = cli_in(dir.path(), &["token", "--user", "alice"]);
    let create = |permissions: Value| {
        let (status, created) = http(
            &keyward.address,
            "POST",
            "/api/api-keys",
            Some(&alice),
            Some(&json!({"name": "via nginx", "permissions": permissions})),
        );
        assert_eq!(status, 200, "{created}");
        (
            created["api_key"]["id"].as_str().unwrap().to_owned(),
            created["plain_text_key"].as_str().unwrap().to_owned(),
        )
    };
    let (id, key) = create(json!(["READ_GRAPH"]));
    let (_, narrow) = create(json!(["EXECUTE_GRAPH"]));

    let hits = Arc::new(AtomicUsize::new(0));
    let upstream_port = upstream(Arc::clone(&hits));
    let port = free_port();
    let server = documented_config()
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream_port}"))
        .replace("127.0.0.1:8080", &keyward.address)
        .replace("<keys.verify credential>", &gateway);
    // The other way to name a route's permissions, in the auth URL's query, with the
    // header not set by the proxy: nginx then passes a client's own header on.
    let query_port = free_port();
    let query_form = documented("nginx-config")
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{query_port}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream_port}"))
        .replace("/api/auth;", "/api/auth?permissions=READ_GRAPH;")
        .replace("127.0.0.1:8080", &keyward.address)
        .replace("<keys.verify credential>", &gateway)
        .replace("proxy_set_header X-Keyward-Permissions \"READ_GRAPH\";", "");
    assert!(
        !query_form.contains("X-Keyward-Permissions \""),
        "{query_form}"
    );
    let server = format!("{server}\n{query_form}");
    let _nginx = start_nginx(dir.path(), &server, &[port, query_port]);

    // A valid key reaches the upstream, which learns who is calling; the key itself
    // does not travel on, and a client cannot forge the identity headers.
    passes_with_its_identity_only(port, &key, &id);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Missing, invalid and under-permissioned keys never reach it.
    refuses_missing_unknown_and_lacking_keys(port, &narrow);
    // A client cannot lower what the route requires with its own header: the documented
    // proxy overwrites it, and in the query form keyward requires the union.
    for sent in ["EXECUTE_GRAPH", "", ","] {
        let permissions = ("X-Keyward-Permissions", sent);
        assert_eq!(
            get(port, &[("X-API-Key", &narrow), permissions]).0,
            403,
            "{sent:?}"
        );
        assert_ne!(
            get(query_port, &[("X-API-Key", &narrow), permissions]).0,
            200,
            "{sent:?}"
        );
    }
    assert_eq!(get(query_port, &[("X-API-Key", &narrow)]).0, 403);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "refused requests reached the upstream"
    );
    assert_eq!(
        get(query_port, &[("X-API-Key", &key)]).0,
        200,
        "the query form works"
    );
    assert_eq!(
        get(port, &[("X-API-Key", &key), ("X-Keyward-Permissions", "")]).0,
        200,
        "the client's header is simply overwritten"
    );
    hits.fetch_sub(2, Ordering::SeqCst);

    // A rate-limited key: 429 with Retry-After, not the 500 nginx makes of it by default.
    let (status, limited) = http(
        &keyward.address,
        "POST",
        "/api/admin/users/alice/api-keys",
        Some(&billing),
        Some(&json!({"name": "limited", "permissions": ["READ_GRAPH"],
            "rate_limit": {"requests": 1, "per_seconds": 3600}})),
    );
    assert_eq!(status, 200, "{limited}");
    let limited = limited["plain_text_key"].as_str().unwrap().to_owned();
    assert_eq!(get(port, &[("X-API-Key", &limited)]).0, 200);
    hits.fetch_sub(1, Ordering::SeqCst);
    let (status, head, body) = get_with_headers(port, &[("X-API-Key", &limited)]);
    assert_eq!(status, 429, "{head}");
    let retry_after = head
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .unwrap_or_else(|| panic!("no Retry-After: {head}"));
    assert!(retry_after.parse::<u64>().unwrap() > 0, "{retry_after}");
    assert_eq!(body["message"], "Too many requests");

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
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // The migration guide's routes: key management through the proxy reaches keyward
    // with the user's JWT; the verify API is not exposed there.
    let proxy = format!("127.0.0.1:{port}");
    let body = json!({"name": "through the proxy", "permissions": ["READ_GRAPH"]});
    let (status, created) = http(&proxy, "POST", "/api/api-keys", Some(&alice), Some(&body));
    assert_eq!(status, 200, "{created}");
    let (status, listed) = http(&proxy, "GET", "/api/api-keys", Some(&alice), None);
    assert_eq!(status, 200);
    assert!(listed.as_array().unwrap().len() >= 3, "{listed}");
    let plain = created["plain_text_key"].as_str().unwrap();
    assert_eq!(
        get(port, &[("X-API-Key", plain)]).0,
        200,
        "the new key works"
    );
    let verify = json!({"key": plain});
    let (status, _) = http(
        &proxy,
        "POST",
        "/api/api-keys/verify",
        Some(&gateway),
        Some(&verify),
    );
    assert_eq!(status, 404, "the verify API stays private");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // keyward down: nginx's own answer (500), never a pass.
    drop(keyward);
    assert_eq!(get(port, &[("X-API-Key", plain)]).0, 500);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "a request passed while keyward was down"
    );
}

/// nginx with these `server` blocks, its files in `dir`; returns once it listens on
/// every one of `ports`.
fn start_nginx(dir: &Path, server: &str, ports: &[u16]) -> Nginx {
    let prefix = dir.display();
    // As root, nginx's workers would drop to `nobody`, which cannot use this
    // directory; keep them as root (the test's files only).
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let config = format!(
        "{}pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {prefix}/body;\n proxy_temp_path {prefix}/proxy;\n\
         fastcgi_temp_path {prefix}/fastcgi;\n uwsgi_temp_path {prefix}/uwsgi;\n scgi_temp_path {prefix}/scgi;\n\
         {server}\n}}\n",
        if root { "user root;\n" } else { "" },
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    let binary = std::env::var("KEYWARD_TEST_NGINX").unwrap_or_else(|_| "nginx".into());
    let nginx = Nginx(
        Command::new(binary)
            .args([
                "-p",
                &prefix.to_string(),
                "-c",
                "nginx.conf",
                "-g",
                "daemon off;",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening("nginx", ports, &dir.join("error.log"));
    nginx
}

#[test]
#[cfg_attr(
    not(keyward_nginx_tests),
    ignore = "nginx test: set KEYWARD_TEST_NGINX to an nginx binary"
)]
fn nginx_asks_keyward_over_its_unix_socket() {
    asks_keyward_over_its_unix_socket("nginx-unix", |setting| {
        let tcp = "proxy_pass http://127.0.0.1:8080/api/auth;";
        let server = documented("nginx-config");
        assert!(server.contains(tcp), "{server}");
        let server = server
            .replace(tcp, &setting.keyward)
            .replace("127.0.0.1:8000", &format!("127.0.0.1:{}", setting.port))
            .replace(
                "127.0.0.1:9000",
                &format!("127.0.0.1:{}", setting.upstream_port),
            )
            .replace("<keys.verify credential>", &setting.gateway);
        start_nginx(&setting.dir, &server, &[setting.port])
    });
}
