//! `keyward peppers status` through a pepper rotation.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, JWT_SECRET, clean_command};

const OLD: &str = "old-pepper-0123456789abcdefghijklmnopq";
const NEW: &str = "new-pepper-0123456789abcdefghijklmnopq";

fn keyward(dir: &std::path::Path, pepper: &str) -> Command {
    let mut command = clean_command(dir);
    command
        .env("KEYWARD_DATABASE_URL", "sqlite://keyward.db")
        .env("KEYWARD_JWT_SECRET", JWT_SECRET)
        .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEYWARD_PEPPER", pepper);
    command
}

fn json_of(mut command: Command, args: &[&str]) -> Value {
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_status_follows_keys_moving_to_the_new_pepper() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let output = keyward(path, OLD).arg("migrate").output().unwrap();
    assert!(output.status.success());
    let create = |name: &str| {
        json_of(
            keyward(path, OLD),
            &[
                "keys", "create", "--user", "alice", "--name", name, "--json",
            ],
        )
    };
    let kept = create("kept");
    let revoked = create("revoked");
    json_of(
        keyward(path, OLD),
        &[
            "keys",
            "revoke",
            revoked["api_key"]["id"].as_str().unwrap(),
            "--json",
        ],
    );

    let rotating = format!("v1:{OLD},v2:{NEW}");
    let status = json_of(keyward(path, &rotating), &["peppers", "status", "--json"]);
    assert_eq!(
        status,
        json!([
            {"version": 1, "role": "retired", "live_keys": 1, "revoked_keys": 1, "can_drop": false},
            {"version": 2, "role": "current", "live_keys": 0, "revoked_keys": 0, "can_drop": false},
        ])
    );
    let table = keyward(path, &rotating)
        .args(["peppers", "status"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("version 1 is still needed: 1 live key(s)"),
        "{table}"
    );

    // Verifying the live key once re-hashes it with the current pepper.
    let mut verify = keyward(path, &rotating)
        .args(["keys", "verify", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let key = kept["plain_text_key"].as_str().unwrap();
    writeln!(verify.stdin.take().unwrap(), "{key}").unwrap();
    assert!(verify.wait().unwrap().success());

    let status = json_of(keyward(path, &rotating), &["peppers", "status", "--json"]);
    assert_eq!(status[0]["live_keys"], 0);
    assert_eq!(status[0]["can_drop"], true);
    assert_eq!(status[1]["live_keys"], 1);
    // With only the new pepper configured, the old version's rows are reported as
    // missing; the revoked key among them could never verify again anyway.
    let dropped = format!("v2:{NEW}");
    let status = json_of(keyward(path, &dropped), &["peppers", "status", "--json"]);
    assert_eq!(status[0]["role"], "missing");
    assert_eq!(status[0]["live_keys"], 0);
}
