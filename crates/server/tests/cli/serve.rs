//! `keyward serve` as a real process: no configuration, signals, logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{cli_in, http, start_server, start_server_with};

#[test]
fn serve_runs_with_no_configuration_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cwd: PathBuf = dir.path().to_owned();
    let mut server = start_server(&cwd);

    // The local trial's files appear beside each other, the secrets private.
    let secrets = cwd.join("keyward.db.secrets");
    assert!(cwd.join("keyward.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    assert_eq!(http(&server.address, "GET", "/healthz", None, None).0, 200);
    let token = cli_in(&cwd, &["token", "--user", "alice"]);
    let (status, created) = http(
        &server.address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "trial", "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(status, 200, "{created}");
    let admin = cli_in(&cwd, &["token", "--admin"]);
    let key = created["plain_text_key"].as_str().unwrap();
    let (_, verdict) = http(
        &server.address,
        "POST",
        "/api/api-keys/verify",
        Some(&admin),
        Some(&json!({"key": key, "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(verdict["code"], "VALID");

    // SIGTERM: the server finishes, writes the pending last_used_at and exits 0.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let listed: Value = serde_json::from_str(&cli_in(&cwd, &["keys", "list", "--json"])).unwrap();
    assert!(
        listed[0]["last_used_at"].is_string(),
        "usage was flushed on shutdown: {listed}"
    );

    // A second start reuses the same secrets: the old token still works.
    let server = start_server(&cwd);
    let (status, listed) = http(&server.address, "GET", "/api/api-keys", Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "trial");
}

#[test]
fn logs_are_json_lines_and_never_contain_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (mut server, lines) = start_server_with(
        cwd,
        &[("KEYWARD_LOG", "debug"), ("KEYWARD_LOG_FORMAT", "json")],
    );
    let token = cli_in(cwd, &["token", "--user", "erin"]);
    let admin = cli_in(cwd, &["token", "--admin"]);
    let (_, created) = http(
        &server.address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "logged", "permissions": []})),
    );
    let key = created["plain_text_key"].as_str().unwrap().to_owned();
    let id = created["api_key"]["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        http(
            &server.address,
            "POST",
            "/api/api-keys/verify",
            Some(&admin),
            Some(&json!({"key": key})),
        );
    }
    http(
        &server.address,
        "POST",
        "/api/api-keys/verify",
        Some(&admin),
        Some(&json!({"key": format!("{key}x")})),
    );
    http(
        &server.address,
        "DELETE",
        &format!("/api/api-keys/{id}"),
        Some(&token),
        None,
    );
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    server.child.wait().unwrap();

    // The reader thread ends (and the channel with it) when the process's stderr closes.
    let logged: Vec<String> = lines.iter().collect();
    assert!(logged.len() >= 4, "{logged:?}");
    for line in &logged {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
    }
    let all = logged.join("\n");
    assert!(all.contains(&id), "key ids are logged");
    for secret in [&key[8..46], token.as_str(), admin.as_str()] {
        assert!(!all.contains(secret), "a secret reached the log");
    }
    let secrets = std::fs::read_to_string(cwd.join("keyward.db.secrets")).unwrap();
    let secrets: Value = serde_json::from_str(&secrets).unwrap();
    for name in ["pepper", "jwt_secret"] {
        assert!(
            !all.contains(secrets[name].as_str().unwrap()),
            "{name} reached the log"
        );
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut server = start_server(cwd);
    let token = cli_in(cwd, &["token", "--user", "frank"]);
    let admin = cli_in(cwd, &["token", "--admin"]);
    let (_, created) = http(
        &server.address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "k", "permissions": []})),
    );
    let body = json!({"key": created["plain_text_key"]}).to_string();

    // Headers and half the body, then the signal, then the rest.
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (first, second) = body.split_at(body.len() / 2);
    write!(
        stream,
        "POST /api/api-keys/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server waits for the request"
    );
    stream.write_all(second.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"code\":\"VALID\""), "{response}");

    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // New connections are no longer accepted.
    assert!(TcpStream::connect(&server.address).is_err());
}

#[test]
fn sigint_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A scripted session with debug logging: the plaintext key shows in the create
/// response and nowhere else — not in later responses, the log, or the database files.
#[test]
fn the_plaintext_key_never_leaves_the_create_response() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (mut server, lines) = start_server_with(cwd, &[("KEYWARD_LOG", "debug")]);
    let token = cli_in(cwd, &["token", "--user", "grace"]);
    let admin = cli_in(cwd, &["token", "--admin"]);
    let address = server.address.clone();
    let call = |method: &str, path: &str, bearer: &str, body: Option<Value>| {
        let (status, body) = http(&address, method, path, Some(bearer), body.as_ref());
        assert!(status < 500, "{method} {path}: {status} {body}");
        body.to_string()
    };
    let (status, created) = http(
        &address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "hygiene", "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(status, 200, "{created}");
    let key = created["plain_text_key"].as_str().unwrap().to_owned();
    let id = created["api_key"]["id"].as_str().unwrap().to_owned();
    let keys = format!("/api/api-keys/{id}");

    let verify = |key: &str| {
        call(
            "POST",
            "/api/api-keys/verify",
            &admin,
            Some(json!({"key": key, "permissions": ["READ_GRAPH"]})),
        )
    };
    let responses = vec![
        verify(&key),
        verify(&format!("{key}x")),
        call("GET", "/api/api-keys", &token, None),
        call("GET", &keys, &token, None),
        call("POST", &format!("{keys}/suspend"), &token, None),
        verify(&key),
        call("POST", &format!("{keys}/reactivate"), &token, None),
        call(
            "PUT",
            &format!("{keys}/permissions"),
            &token,
            Some(json!({"permissions": ["READ_GRAPH", "EXECUTE_GRAPH"]})),
        ),
        verify(&key),
        call("DELETE", &keys, &token, None),
        verify(&key),
    ];
    assert!(responses[0].contains("\"VALID\""), "{}", responses[0]);
    assert!(responses.last().unwrap().contains("\"REVOKED\""));

    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(server.child.wait().unwrap().success());
    let log = lines.iter().collect::<Vec<_>>().join("\n");
    assert!(log.contains(&id), "the session was logged");

    // The stored display prefix and postfix are the key's first and last 8
    // characters; the 38 between them are the secret part.
    let secret = &key[8..46];
    assert!(
        created.to_string().contains(secret),
        "the check can see a key"
    );
    for (place, text) in responses.iter().enumerate() {
        assert!(!text.contains(secret), "response {place}: {text}");
    }
    assert!(!log.contains(secret), "the plaintext key reached the log");
    let contains =
        |bytes: &[u8], text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    let mut stored = Vec::new();
    for file in ["keyward.db", "keyward.db-wal", "keyward.db-shm"] {
        if let Ok(bytes) = std::fs::read(cwd.join(file)) {
            assert!(!contains(&bytes, secret), "the plaintext key is in {file}");
            stored.extend(bytes);
        }
    }
    assert!(
        contains(&stored, &key[..8]),
        "the key's row is in the files read"
    );
}

/// What never reaches the router: the HTTP parser refuses it, and the server stays up.
#[test]
fn the_http_parser_refuses_what_is_not_http_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let raw = |request: &[u8]| -> String {
        let mut stream = TcpStream::connect(&server.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The server may answer and close before reading everything.
        let _ = stream.write_all(request);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    };
    let status = |response: &str| response.get(9..12).unwrap_or("none").to_owned();

    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    assert_eq!(status(&raw(huge_header.as_bytes())), "431");
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    assert_eq!(status(&raw(many_headers.as_bytes())), "431");
    assert_eq!(status(&raw(b"NOT HTTP AT ALL\r\n\r\n")), "400");
    assert_eq!(
        status(&raw(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
        )),
        "400"
    );
    // Bytes that are not UTF-8 are legal in header values: the route answers.
    let response =
        raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Odd: \xff\xfe\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&response), "200");

    assert_eq!(http(&server.address, "GET", "/healthz", None, None).0, 200);
}
