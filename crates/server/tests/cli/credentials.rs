//! `keyward credentials …` and a production deployment without the static token:
//! the CLI is the way in, the static token (and the word `disabled` itself) is refused
//! everywhere, and a credential's secret reaches neither the log nor the database.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{JWT_SECRET, PEPPER, clean_command, cli_in, http, start_server_with};

const DISABLED: [(&str, &str); 3] = [
    ("KEYWARD_PEPPER", PEPPER),
    ("KEYWARD_JWT_SECRET", JWT_SECRET),
    ("KEYWARD_ADMIN_TOKEN", "disabled"),
];

/// `keyward credentials …` with the static token disabled, in `cwd`.
fn credentials(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    clean_command(cwd)
        .envs(DISABLED)
        .arg("credentials")
        .args(args)
        .output()
        .unwrap()
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn with_the_static_token_disabled_the_cli_makes_the_first_credential_and_nothing_else_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut env: Vec<(&str, &str)> = DISABLED.to_vec();
    env.extend([("KEYWARD_LOG", "debug"), ("KEYWARD_LOG_FORMAT", "json")]);
    let (mut server, lines) = start_server_with(cwd, &env);

    // Nothing all-powerful is left: not a former token, not the word itself.
    for token in ["disabled", "cli-test-service-token-0123"] {
        let (status, body) = http(
            &server.address,
            "GET",
            "/api/admin/credentials",
            Some(token),
            None,
        );
        assert_eq!(status, 401, "{token}: {body}");
    }
    let refused = clean_command(cwd)
        .envs(DISABLED)
        .args(["token", "--admin"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("keyward credentials create"), "{message}");

    // The way in: the CLI, on the server's database.
    let ops = json_of(&credentials(
        cwd,
        &[
            "create",
            "--name",
            "ops",
            "--scope",
            "credentials.manage,keys.verify",
            "--json",
        ],
    ));
    let ops_secret = ops["secret"].as_str().unwrap().to_owned();
    assert_eq!(ops["credential"]["created_by"], "admin:cli");

    // The operator's credential makes the gateway's, which verifies and does no more;
    // it cannot give what it does not hold itself.
    let (status, body) = http(
        &server.address,
        "POST",
        "/api/admin/credentials",
        Some(&ops_secret),
        Some(&json!({"name": "escalation", "scopes": ["keys.write"]})),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("keys.write"),
        "{body}"
    );
    let (status, gateway) = http(
        &server.address,
        "POST",
        "/api/admin/credentials",
        Some(&ops_secret),
        Some(&json!({"name": "gateway", "scopes": ["keys.verify"]})),
    );
    assert_eq!(status, 200, "{gateway}");
    assert_eq!(gateway["credential"]["created_by"], "credential:ops");
    let gateway_secret = gateway["secret"].as_str().unwrap().to_owned();
    let (status, verdict) = http(
        &server.address,
        "POST",
        "/api/api-keys/verify",
        Some(&gateway_secret),
        Some(&json!({"key": "agpt_unknown"})),
    );
    assert_eq!((status, &verdict["code"]), (200, &json!("MALFORMED")));
    let (status, body) = http(
        &server.address,
        "GET",
        "/api/admin/credentials",
        Some(&gateway_secret),
        None,
    );
    assert_eq!(status, 403, "{body}");

    // Listed by the CLI, never with a secret; revoked by it, refused by the server.
    let listed = cli_json(cwd, &["list", "--json"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gateway", "ops"]);
    let gateway_id = gateway["credential"]["id"].as_str().unwrap();
    let revoked = cli_json(cwd, &["revoke", gateway_id, "--json"]);
    assert_eq!(revoked["status"], "REVOKED");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let (status, _) = http(
            &server.address,
            "POST",
            "/api/api-keys/verify",
            Some(&gateway_secret),
            Some(&json!({"key": "agpt_unknown"})),
        );
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server kept accepting a credential the CLI revoked"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Rotated by the CLI: a new secret, the old one within its grace period.
    let ops_id = ops["credential"]["id"].as_str().unwrap();
    let rotated = cli_json(cwd, &["rotate", ops_id, "--grace-seconds", "0", "--json"]);
    let rotated_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(rotated_secret, ops_secret);
    let (status, _) = http(
        &server.address,
        "GET",
        "/api/admin/credentials",
        Some(&rotated_secret),
        None,
    );
    assert_eq!(status, 200);

    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    server.child.wait().unwrap();
    let log: Vec<String> = lines.iter().collect();
    let log = log.join("\n");
    assert!(log.contains(gateway_id), "credential ids are logged");
    let mut database = Vec::new();
    for entry in std::fs::read_dir(cwd).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("keyward.db") {
            database.extend(std::fs::read(&path).unwrap());
        }
    }
    let database = String::from_utf8_lossy(&database);
    for secret in [&ops_secret, &gateway_secret, &rotated_secret] {
        let body = &secret["kwsvc_".len()..];
        assert!(!log.contains(body), "a credential's secret reached the log");
        assert!(
            !database.contains(body),
            "a credential's secret is in the database"
        );
    }
}

/// `keyward credentials …` (static token disabled) as JSON.
fn cli_json(cwd: &std::path::Path, args: &[&str]) -> Value {
    json_of(&credentials(cwd, args))
}

#[test]
fn the_cli_says_what_is_wrong_with_a_credential_request() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    cli_in(cwd, &["migrate"]);
    let unknown = credentials(
        cwd,
        &["create", "--name", "x", "--scope", "keys.verify,root"],
    );
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(message.contains("unknown scope(s): root"), "{message}");
    assert!(
        message.contains("keys.verify"),
        "the allowed names are listed: {message}"
    );
    let no_scope = credentials(cwd, &["create", "--name", "x"]);
    assert!(!no_scope.status.success());
    let not_an_id = credentials(cwd, &["revoke", "gateway"]);
    let message = String::from_utf8_lossy(&not_an_id.stderr);
    assert!(message.contains("not a credential id"), "{message}");
    let unknown_id = credentials(cwd, &["show", "0190b1c4-9f43-7cc4-8a5e-2f1d3c4b5a69"]);
    let message = String::from_utf8_lossy(&unknown_id.stderr);
    assert!(message.contains("no credential with this id"), "{message}");
    let too_long = credentials(
        cwd,
        &[
            "rotate",
            "0190b1c4-9f43-7cc4-8a5e-2f1d3c4b5a69",
            "--grace-seconds",
            "604801",
        ],
    );
    assert!(!too_long.status.success());
}

#[test]
fn a_credential_is_printed_once_in_a_table_world_too() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    cli_in(cwd, &["migrate"]);
    let created = credentials(
        cwd,
        &[
            "create",
            "--name",
            "billing",
            "--scope",
            "keys.write",
            "--scope",
            "usage.read",
        ],
    );
    let text = String::from_utf8(created.stdout).unwrap();
    assert!(created.status.success(), "{text}");
    let secret = text
        .split_whitespace()
        .find(|word| word.starts_with("kwsvc_"))
        .expect("the secret is printed")
        .to_owned();
    assert!(text.contains("keys.write,usage.read"), "{text}");
    assert!(text.contains("shown once"), "{text}");
    let listed = String::from_utf8(credentials(cwd, &["list"]).stdout).unwrap();
    assert!(
        listed.contains("billing") && listed.contains("ACTIVE"),
        "{listed}"
    );
    assert!(!listed.contains(&secret[6..]), "{listed}");
}
