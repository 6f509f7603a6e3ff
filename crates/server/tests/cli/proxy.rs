//! What the forward-auth tests share: an upstream that shows what reached it, and
//! requests through the proxy in front of it (nginx, Caddy).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream that answers every request with the headers it saw, and counts them.
pub fn upstream(hits: Arc<AtomicUsize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            hits.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut seen = serde_json::Map::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    seen.insert(name.to_ascii_lowercase(), json!(value.trim()));
                }
                line.clear();
            }
            let body = Value::Object(seen).to_string();
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A GET of /graphs through the proxy on `port` with these headers: the status and the body.
pub fn get(port: u16, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = get_with_headers(port, headers);
    (status, body)
}

/// [`get`], with the answer's head as well.
pub fn get_with_headers(port: u16, headers: &[(&str, &str)]) -> (u16, String, Value) {
    get_path(port, "/graphs", headers)
}

/// A GET of `path` through the proxy on `port`: the status, the answer's head, the body.
pub fn get_path(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        status,
        head.to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// A valid key (`key`, id `id`, of alice, holding READ_GRAPH) through the proxy on
/// `port`, by either header: the upstream learns who is calling, and neither the key,
/// the proxy's credential, nor an identity the client forged reaches it.
pub fn passes_with_its_identity_only(port: u16, key: &str, id: &str) {
    let (status, seen) = get(
        port,
        &[
            ("X-API-Key", key),
            ("X-Keyward-User-Id", "mallory"),
            ("X-Keyward-Key-Permissions", "ADMIN"),
        ],
    );
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["x-keyward-user-id"], "alice");
    assert_eq!(seen["x-keyward-key-id"], id);
    assert_eq!(seen["x-keyward-key-permissions"], "READ_GRAPH");
    for header in ["x-api-key", "x-keyward-proxy-token"] {
        assert!(
            seen.get(header).is_none(),
            "{header} reached the upstream: {seen}"
        );
    }
    let (status, seen) = get(port, &[("Authorization", &format!("Bearer {key}"))]);
    assert_eq!(status, 200);
    assert!(
        seen.get("authorization").is_none(),
        "the key reached the upstream: {seen}"
    );
}

/// No key, a guess, a well-formed unknown key, and a key lacking the route's
/// permission (`narrow`): refused by the proxy on `port` (the caller checks that
/// nothing reached the upstream).
pub fn refuses_missing_unknown_and_lacking_keys(port: u16, narrow: &str) {
    let forged = keyward_core::key::KeyFormat::default().generate();
    assert_eq!(get(port, &[("X-Keyward-User-Id", "mallory")]).0, 401);
    assert_eq!(get(port, &[("X-API-Key", "agpt_guess")]).0, 401);
    assert_eq!(get(port, &[("X-API-Key", forged.expose())]).0, 401);
    assert_eq!(get(port, &[("X-API-Key", narrow)]).0, 403);
}

/// Stops a proxy the way it expects: SIGTERM, then a wait (nginx's master stops its
/// workers first; SIGKILL would leave them listening), SIGKILL only after 10 s.
pub fn terminate(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The block `name` of docs/INTEGRATIONS.md (between its begin and end markers),
/// exactly as documented, without its fence.
pub fn documented(name: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/INTEGRATIONS.md"
    ))
    .unwrap();
    let start = doc.find(&format!("<!-- {name}: begin -->")).unwrap();
    let end = doc.find(&format!("<!-- {name}: end -->")).unwrap();
    let fenced = doc[start..end].split("```").nth(1).unwrap();
    // The fence's first line names the language.
    fenced.split_once('\n').unwrap().1.to_owned()
}

/// A service credential with these scopes: its secret.
pub fn credential(dir: &std::path::Path, name: &str, scope: &str) -> String {
    let created = crate::common::cli_in(
        dir,
        &[
            "credentials",
            "create",
            "--name",
            name,
            "--scope",
            scope,
            "--json",
        ],
    );
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

/// Two keys of alice's, made with the CLI: one with READ_GRAPH (its id and key) and one
/// with EXECUTE_GRAPH only.
pub fn alices_keys(dir: &std::path::Path) -> (String, String, String) {
    let create = |name: &str, permission: &str| {
        let created = crate::common::cli_in(
            dir,
            &[
                "keys", "create", "--user", "alice", "--name", name, "-p", permission, "--json",
            ],
        );
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        (
            created["api_key"]["id"].as_str().unwrap().to_owned(),
            created["plain_text_key"].as_str().unwrap().to_owned(),
        )
    };
    let (id, key) = create("read", "READ_GRAPH");
    let (_, narrow) = create("narrow", "EXECUTE_GRAPH");
    (id, key, narrow)
}

/// What a proxy test over keyward's Unix socket fills into its configuration.
pub struct OverTheSocket {
    pub dir: std::path::PathBuf,
    /// The documented line naming keyward's socket, with the test's socket in it.
    pub keyward: String,
    /// Where the proxy listens, and the upstream it protects.
    pub port: u16,
    pub upstream_port: u16,
    pub gateway: String,
}

/// keyward on a Unix socket, a proxy in front of it started by `start` (given the
/// documented block `block` with the test's socket in it), then: a valid key passes
/// with its identity only, missing, unknown and lacking keys do not, and with keyward
/// stopped nothing passes. The proxy is stopped when `start`'s value is dropped.
pub fn asks_keyward_over_its_unix_socket<P>(block: &str, start: impl FnOnce(&OverTheSocket) -> P) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("keyward.sock");
    let keyward = crate::unix_socket::serve(dir.path(), &socket).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let setting = OverTheSocket {
        dir: dir.path().to_owned(),
        keyward: documented(block)
            .replace("/run/keyward/keyward.sock", &socket.display().to_string())
            .trim()
            .to_owned(),
        port: free_port(),
        upstream_port: upstream(Arc::clone(&hits)),
        gateway: credential(dir.path(), block, "keys.verify"),
    };
    let (id, key, narrow) = alices_keys(dir.path());
    let proxy = start(&setting);
    passes_with_its_identity_only(setting.port, &key, &id);
    refuses_missing_unknown_and_lacking_keys(setting.port, &narrow);
    assert_eq!(hits.load(Ordering::SeqCst), 2, "only the valid key passed");
    keyward.stop("-TERM");
    assert_ne!(get(setting.port, &[("X-API-Key", &key)]).0, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    drop(proxy);
}

/// Waits until a proxy listens on every one of `ports` (10 s at most), failing with its
/// log (`log`, a file) if it does not.
pub fn wait_listening(name: &str, ports: &[u16], log: &std::path::Path) {
    let started = std::time::Instant::now();
    while ports
        .iter()
        .any(|port| TcpStream::connect(("127.0.0.1", *port)).is_err())
    {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} did not start: {said}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
