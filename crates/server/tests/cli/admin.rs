//! Admin commands against the database a running server uses.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Shared, user_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_by_the_cli_verifies_through_the_server() {
    let shared = Shared::new().await;
    let created = shared
        .create_with_cli("ci", "READ_GRAPH,EXECUTE_GRAPH")
        .await;
    assert_eq!(
        created["api_key"]["permissions"],
        json!(["EXECUTE_GRAPH", "READ_GRAPH"])
    );
    let plain = created["plain_text_key"].as_str().unwrap();
    assert_eq!(shared.verify_code(plain).await, "VALID");

    // The owner sees it through the API.
    let listed = shared
        .http("GET", "/api/api-keys", &user_token("alice"), None)
        .await;
    assert_eq!(listed[0]["id"], created["api_key"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_shows_keys_created_through_the_server() {
    let shared = Shared::new().await;
    let created = shared
        .http(
            "POST",
            "/api/api-keys",
            &user_token("bob"),
            Some(json!({"name": "from-api", "permissions": ["IDENTITY"]})),
        )
        .await;
    let id = created["api_key"]["id"].as_str().unwrap();

    let listed = shared.run_json(&["keys", "list", "--json"]).await;
    assert_eq!(listed, json!([created["api_key"]]));
    let shown = shared.run_json(&["keys", "show", id, "--json"]).await;
    assert_eq!(shown, created["api_key"]);

    let table = shared.run(&["keys", "list", "--user", "bob"]).await;
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains("from-api") && text.contains("IDENTITY") && text.contains("ACTIVE"));
    let others = shared.run(&["keys", "list", "--user", "carol"]).await;
    assert_eq!(String::from_utf8(others.stdout).unwrap(), "no keys\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_by_the_cli_reaches_a_running_server_at_once() {
    let shared = Shared::new().await;
    let created = shared
        .http(
            "POST",
            "/api/api-keys",
            &user_token("alice"),
            Some(json!({"name": "k", "permissions": []})),
        )
        .await;
    let id = created["api_key"]["id"].as_str().unwrap();
    let plain = created["plain_text_key"].as_str().unwrap();
    // The server caches the key.
    assert_eq!(shared.verify_code(plain).await, "VALID");
    assert_eq!(shared.verify_code(plain).await, "VALID");

    let revoked = shared.run_json(&["keys", "revoke", id, "--json"]).await;
    assert_eq!(revoked["status"], "REVOKED");
    let started = Instant::now();
    while shared.verify_code(plain).await != "REVOKED" {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the server kept a revoked key valid"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_changes_status_and_permissions() {
    let shared = Shared::new().await;
    let created = shared.create_with_cli("k", "").await;
    let id = created["api_key"]["id"].as_str().unwrap();
    assert_eq!(
        shared.run_json(&["keys", "suspend", id, "--json"]).await["status"],
        "SUSPENDED"
    );
    assert_eq!(
        shared.run_json(&["keys", "reactivate", id, "--json"]).await["status"],
        "ACTIVE"
    );
    let rescoped = shared
        .run_json(&[
            "keys",
            "set-permissions",
            id,
            "READ_BLOCK,IDENTITY",
            "--json",
        ])
        .await;
    assert_eq!(rescoped["permissions"], json!(["IDENTITY", "READ_BLOCK"]));
    let cleared = shared
        .run_json(&["keys", "set-permissions", id, "--json"])
        .await;
    assert_eq!(cleared["permissions"], json!([]));

    let again = shared.run(&["keys", "reactivate", id]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("only a suspended key can be reactivated")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_clear_and_exit_non_zero() {
    let shared = Shared::new().await;
    let cases: [(&[&str], &str); 4] = [
        (
            &["keys", "show", "01900000-0000-7000-8000-000000000000"],
            "no key with this id",
        ),
        (&["keys", "show", "nope"], "not a key id"),
        (
            &["keys", "create", "--user", "alice", "--name", " "],
            "name: must not be empty",
        ),
        (
            &[
                "keys", "create", "--user", "alice", "--name", "k", "-p", "ROOT",
            ],
            "unknown permission(s): ROOT",
        ),
    ];
    for (args, message) in cases {
        let output = shared.run(args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verify_reads_the_key_from_stdin_and_reports_by_exit_code() {
    let shared = Shared::new().await;
    let created = shared.create_with_cli("k", "READ_GRAPH").await;
    let plain = created["plain_text_key"].as_str().unwrap().to_owned();
    let verify = |args: &'static [&'static str], input: String| {
        let mut command = shared.cli();
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut child = command.spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let ok = verify(
        &["keys", "verify", "-p", "READ_GRAPH"],
        format!("{plain}\n"),
    )
    .await;
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("VALID"));
    let denied = verify(
        &["keys", "verify", "-", "-p", "WRITE_GRAPH", "--json"],
        plain.clone(),
    )
    .await;
    assert_eq!(denied.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&denied.stdout).unwrap();
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
    let garbage = verify(&["keys", "verify"], "agpt_nope\n".into()).await;
    assert_eq!(garbage.status.code(), Some(1));
    let said = String::from_utf8_lossy(&garbage.stdout);
    assert!(said.starts_with("MALFORMED: not a key"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_tokens_are_accepted_by_the_server() {
    let shared = Shared::new().await;
    let output = shared
        .run(&["token", "--user", "dave", "--ttl", "5m"])
        .await;
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let listed = shared
        .http("GET", "/api/api-keys", token.trim(), None)
        .await;
    assert_eq!(listed, json!([]));
    let admin = shared.run(&["token", "--admin"]).await;
    assert_eq!(String::from_utf8(admin.stdout).unwrap().trim(), ADMIN_TOKEN);
    let bad = shared
        .run(&["token", "--user", "dave", "--ttl", "99d"])
        .await;
    assert!(!bad.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_with_the_cli_are_signed_cli_in_the_audit_trail() {
    let shared = Shared::new().await;
    let created = shared.create_with_cli("ops", "").await;
    let id = created["api_key"]["id"].as_str().unwrap();
    shared.run_json(&["keys", "suspend", id, "--json"]).await;
    let limited = shared
        .run_json(&["keys", "set-rate-limit", id, "5/60", "--json"])
        .await;
    assert_eq!(
        limited["rate_limit"],
        json!({"requests": 5, "per_seconds": 60})
    );
    let output = shared
        .run(&["keys", "set-rate-limit", id, "5 per minute"])
        .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("REQUESTS/SECONDS"));

    let page = shared
        .http("GET", "/api/admin/events", ADMIN_TOKEN, None)
        .await;
    let events = page["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "suspend", "set_rate_limit"]);
    assert!(
        events
            .iter()
            .all(|e| e["actor"] == json!({"type": "admin", "id": "cli"}) && e["user_id"] == "alice")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_edit_changes_what_it_is_given_and_verification_sees_it() {
    let shared = Shared::new().await;
    let created = shared
        .run_json(&[
            "keys",
            "create",
            "--user",
            "alice",
            "--name",
            "ops",
            "--metadata",
            r#"{"team":"ops"}"#,
            "--description",
            "d",
            "--json",
        ])
        .await;
    let id = created["api_key"]["id"].as_str().unwrap();
    let key = created["plain_text_key"].as_str().unwrap();
    let verdict = shared
        .http(
            "POST",
            "/api/api-keys/verify",
            ADMIN_TOKEN,
            Some(json!({"key": key})),
        )
        .await;
    assert_eq!(verdict["metadata"], json!({"team": "ops"}));

    let edited = shared
        .run_json(&[
            "keys",
            "edit",
            id,
            "--name",
            "renamed",
            "--clear-description",
            "--metadata",
            r#"{"team":"ci"}"#,
            "--json",
        ])
        .await;
    assert_eq!(edited["name"], "renamed");
    assert_eq!(edited["description"], Value::Null);
    assert_eq!(edited["metadata"], json!({"team": "ci"}));
    // The server notices the CLI's change before the next verification it serves.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let verdict = shared
            .http(
                "POST",
                "/api/api-keys/verify",
                ADMIN_TOKEN,
                Some(json!({"key": key})),
            )
            .await;
        if verdict["metadata"] == json!({"team": "ci"}) {
            break;
        }
        assert!(Instant::now() < deadline, "{verdict}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = shared.run(&["keys", "edit", id, "--metadata", "[1]"]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a JSON object"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_prints_the_new_key_and_the_old_one_ends_with_the_grace() {
    let shared = Shared::new().await;
    let created = shared.create_with_cli("ci", "READ_GRAPH").await;
    let id = created["api_key"]["id"].as_str().unwrap();
    let old_key = created["plain_text_key"].as_str().unwrap().to_owned();
    let rotated = shared
        .run_json(&["keys", "rotate", id, "--grace-seconds", "0", "--json"])
        .await;
    assert_eq!(rotated["api_key"]["rotated_from"], id);
    assert_eq!(rotated["api_key"]["permissions"], json!(["READ_GRAPH"]));
    assert_eq!(
        rotated["previous_key"]["rotated_to"],
        rotated["api_key"]["id"]
    );
    let new_key = rotated["plain_text_key"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.verify_code(&old_key).await != "EXPIRED" {
        assert!(
            Instant::now() < deadline,
            "the server never saw the rotation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shared.verify_code(new_key).await, "VALID");
    let output = shared.run(&["keys", "rotate", id]).await;
    assert!(!output.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_credits_are_set_topped_up_and_removed_with_the_cli() {
    let shared = Shared::new().await;
    let created = shared
        .run_json(&[
            "keys",
            "create",
            "--user",
            "alice",
            "--name",
            "metered",
            "--remaining",
            "1",
            "--json",
        ])
        .await;
    assert_eq!(created["api_key"]["remaining"], 1);
    let id = created["api_key"]["id"].as_str().unwrap();
    let key = created["plain_text_key"].as_str().unwrap();
    assert_eq!(shared.verify_code(key).await, "VALID");
    assert_eq!(shared.verify_code(key).await, "USAGE_EXCEEDED");
    let topped = shared
        .run_json(&["keys", "edit", id, "--remaining", "5", "--json"])
        .await;
    assert_eq!(topped["remaining"], 5);
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.verify_code(key).await != "VALID" {
        assert!(Instant::now() < deadline, "the top-up was not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unlimited = shared
        .run_json(&["keys", "edit", id, "--unlimited", "--json"])
        .await;
    assert_eq!(unlimited["remaining"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_shared_limits_are_set_shown_and_cleared_with_the_cli() {
    let shared = Shared::new().await;
    let created = shared
        .run_json(&["keys", "create", "--user", "ivy", "--name", "one", "--json"])
        .await;
    let key = created["plain_text_key"].as_str().unwrap();
    let set = shared
        .run_json(&[
            "users",
            "set-limits",
            "ivy",
            "--rate-limit",
            "100/60",
            "--credits",
            "2/day",
            "--json",
        ])
        .await;
    assert_eq!(set["source"], "user");
    assert_eq!(
        set["rate_limit"],
        json!({"requests": 100, "per_seconds": 60})
    );
    assert_eq!(set["credits"]["remaining"], 2);
    assert_eq!(
        set["credits"]["refill"],
        json!({"amount": 2, "interval": "day"})
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut codes = Vec::new();
    while codes.last().map(String::as_str) != Some("USAGE_EXCEEDED") {
        assert!(
            Instant::now() < deadline,
            "the limits were not seen: {codes:?}"
        );
        codes.push(shared.verify_code(key).await);
    }
    assert_eq!(
        codes.iter().filter(|c| *c == "VALID").count(),
        2,
        "{codes:?}"
    );

    let shown = shared.run(&["users", "limits", "ivy"]).await;
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("set for this user") && text.contains("2/day (next "),
        "{text}"
    );
    let cleared = shared
        .run_json(&["users", "clear-limits", "ivy", "--json"])
        .await;
    assert_eq!(cleared["source"], "default");
    let again = shared.run(&["users", "clear-limits", "ivy"]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no limits of their own"));
}
