//! Operating the embedded database (docs/OPERATIONS.md): `keyward backup` of a
//! database served under load, restored the way the restore drill says; `keyward
//! copy` of 100,000 keys to PostgreSQL, stopped by SIGKILL half-way and resumed,
//! then back to a fresh SQLite file, every key answering the same on each.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{Server, clean_command, cli_in, http, start_server_with};
use crate::load::{spawn_load, stop, wait_for};

/// Limits out of the way of a busy load.
const SETTINGS: [(&str, &str); 2] = [
    ("KEYWARD_MAX_KEYS_PER_USER", "100000"),
    ("KEYWARD_USER_WRITE_LIMIT", "100000"),
];

/// A key made with the CLI: (id, plaintext).
fn create_key(dir: &Path, user: &str, name: &str) -> (String, String) {
    let created: Value = serde_json::from_str(&cli_in(
        dir,
        &[
            "keys",
            "create",
            "--user",
            user,
            "--name",
            name,
            "-p",
            "READ_GRAPH",
            "--json",
        ],
    ))
    .unwrap();
    (
        created["api_key"]["id"].as_str().unwrap().to_owned(),
        created["plain_text_key"].as_str().unwrap().to_owned(),
    )
}

/// The verdict's code for `key` (as the service token of the server's settings).
fn code(server: &Server, admin: &str, key: &str) -> String {
    let (status, verdict) = http(
        &server.address,
        "POST",
        "/api/api-keys/verify",
        Some(admin),
        Some(&json!({"key": key, "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(status, 200, "{verdict}");
    verdict["code"].as_str().unwrap().to_owned()
}

/// The codes of `keys`' verifications, in order.
fn answers(server: &Server, admin: &str, keys: &[(String, String)]) -> Vec<String> {
    keys.iter()
        .map(|(_, key)| code(server, admin, key))
        .collect()
}

/// Puts `backup` where a server in `dir` finds it, with the secrets file beside it:
/// the restore drill of docs/OPERATIONS.md.
fn restore(backup: &Path, secrets: &Path, dir: &Path) {
    std::fs::copy(backup, dir.join("keyward.db")).unwrap();
    std::fs::copy(secrets, dir.join("keyward.db.secrets")).unwrap();
}

#[test]
fn a_backup_taken_under_load_is_whole_and_verifies_every_key_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _log) = start_server_with(dir.path(), &SETTINGS);
    let (_, verified) = create_key(dir.path(), "verifier", "verified");
    let stop_load = Arc::new(AtomicBool::new(false));
    let (seen, threads) = spawn_load(&server.address, dir.path(), &verified, (4, 4), &stop_load);
    wait_for("creates under load", Duration::from_secs(30), || {
        seen.lock().unwrap().acknowledged.len() >= 40
    });
    let before = seen.lock().unwrap().acknowledged.clone();
    let verifications_before = seen.lock().unwrap().verifications;

    let backup = dir.path().join("backups/keyward-1.db");
    std::fs::create_dir(backup.parent().unwrap()).unwrap();
    let started = Instant::now();
    let output = clean_command(dir.path())
        .args(["backup", "--to", backup.to_str().unwrap()])
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("integrity check ok"), "{said}");
    assert!(
        said.contains("keyward.db.secrets"),
        "says where the pepper is: {said}"
    );
    eprintln!("backup under load: {took:?}; {said}");

    // The load went on meanwhile, unrefused.
    wait_for("more verifications", Duration::from_secs(10), || {
        seen.lock().unwrap().verifications > verifications_before + 20
    });
    stop_load.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.refusals.is_empty(), "{:?}", seen.refusals);
    assert!(stop(server), "keyward did not stop cleanly");

    // Whole, owner-only, and no secrets beside it.
    let check: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", backup.display()))
                .await
                .unwrap();
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(check, ["ok"]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    let beside: Vec<String> = std::fs::read_dir(backup.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, ["keyward-1.db"], "no secrets, no partial file");

    // A second backup under the same name is refused unless --force.
    let again = clean_command(dir.path())
        .args(["backup", "--to", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // The restore drill: a server on the backup verifies every key acknowledged
    // before the backup began.
    let restored = tempfile::tempdir().unwrap();
    restore(
        &backup,
        &dir.path().join("keyward.db.secrets"),
        restored.path(),
    );
    let (server, _log) = start_server_with(restored.path(), &[]);
    let admin = cli_in(restored.path(), &["token", "--admin"]);
    for (id, key) in &before {
        assert_eq!(code(&server, &admin, key), "VALID", "{id}");
    }
    assert_eq!(code(&server, &admin, &verified), "VALID");
    assert!(stop(server));
}

#[test]
fn a_backup_of_postgresql_says_to_use_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let output = clean_command(dir.path())
        .args(["backup", "--to", "x.db"])
        .env(
            "KEYWARD_DATABASE_URL",
            "postgres://keyward@127.0.0.1:1/keyward",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
    assert!(!dir.path().join("x.db").exists());
}

#[test]
fn a_backup_of_a_database_that_does_not_exist_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = clean_command(dir.path())
        .args(["backup", "--to", "x.db"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no database"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Keys, events and hourly usage as a large deployment has them, written straight
/// into the file (the service would take minutes to create them one by one).
async fn seed(database: &Path, keys: u32) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    for statement in [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {keys}) \
             INSERT INTO api_keys (id, user_id, name, key_hash, pepper_version, prefix, postfix, \
                 status, permissions, created_at, updated_at, last_used_at, revoked_at, metadata, \
                 remaining, credits_granted, credits_set_at) \
             SELECT randomblob(16), 'user-' || (i % 5000), 'bulk-' || i, randomblob(32), 1, \
                 'agpt_', 'abcd', CASE WHEN i % 10 = 0 THEN 'REVOKED' ELSE 'ACTIVE' END, \
                 '[\"READ_GRAPH\"]', 1800000000000 + i, 1800000000000 + i, \
                 CASE WHEN i % 3 = 0 THEN 1800000100000 + i END, \
                 CASE WHEN i % 10 = 0 THEN 1800000200000 END, \
                 CASE WHEN i % 7 = 0 THEN '{{\"plan\":\"pro\"}}' END, \
                 CASE WHEN i % 4 = 0 THEN 1000 - i % 1000 END, \
                 CASE WHEN i % 4 = 0 THEN 1000 END, CASE WHEN i % 4 = 0 THEN 1800000000000 END \
             FROM n"
        ),
        "INSERT INTO key_events (at, actor_kind, actor_id, action, key_id, user_id, changes) \
         SELECT created_at, 'admin', 'seed', 'create', id, user_id, '{}' FROM api_keys \
         WHERE name LIKE 'bulk-%'"
            .to_owned(),
        "INSERT INTO key_usage_hourly (key_id, hour, valid, refused) \
         SELECT id, 1799996400000, 5, 1 FROM api_keys WHERE name LIKE 'bulk-%'"
            .to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
}

/// Rows of `api_keys` in the PostgreSQL database at `url`.
async fn keys_in(url: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(0);
    conn.close().await.ok();
    n
}

/// `keyward copy … --json` in `dir`; its report.
fn copy(dir: &Path, args: &[&str]) -> Value {
    let output = clean_command(dir)
        .arg("copy")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn digests(report: &Value, side: &str) -> Vec<(String, String)> {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_owned(),
                t[side].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "copy to PostgreSQL: set KEYWARD_TEST_POSTGRES_URL"
)]
fn a_hundred_thousand_keys_move_to_postgresql_through_a_sigkill_and_back() {
    const BULK: u32 = 100_000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    cli_in(dir.path(), &["migrate"]);
    let mut real: Vec<(String, String)> = (0..6)
        .map(|i| create_key(dir.path(), &format!("user-{i}"), &format!("real-{i}")))
        .collect();
    cli_in(dir.path(), &["keys", "suspend", &real[1].0]);
    cli_in(dir.path(), &["keys", "revoke", &real[2].0]);
    cli_in(
        dir.path(),
        &["keys", "edit", &real[3].0, "--remaining", "2"],
    );
    runtime.block_on(seed(&dir.path().join("keyward.db"), BULK));

    // The answers on SQLite (using up the credits, and writing usage and last use).
    let (server, _log) = start_server_with(dir.path(), &[]);
    let admin = cli_in(dir.path(), &["token", "--admin"]);
    for _ in 0..2 {
        answers(&server, &admin, &real);
    }
    let expected = answers(&server, &admin, &real);
    assert_eq!(
        expected,
        [
            "VALID",
            "SUSPENDED",
            "REVOKED",
            "USAGE_EXCEEDED",
            "VALID",
            "VALID"
        ],
        "the answers to carry over"
    );
    assert!(stop(server));
    // A key made after the server stopped, by the CLI.
    real.push(create_key(dir.path(), "user-late", "late"));

    let postgres = runtime.block_on(keyward_store::testing::postgres());
    let url = postgres.url_string();
    let total = i64::from(BULK) + 7;

    // Stopped dead half-way.
    let mut first = clean_command(dir.path())
        .args(["copy", "--to", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let copied = runtime.block_on(keys_in(&url));
        if copied >= total / 2 {
            break;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the copy ended before half-way"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{copied} keys"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = runtime.block_on(keys_in(&url));
    assert!(at_kill < total, "killed half-way: {at_kill} of {total}");

    // A server refuses the half-filled database.
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("keyward.db.secrets")).unwrap())
            .unwrap();
    let on_postgres = [
        ("KEYWARD_DATABASE_URL", url.as_str()),
        ("KEYWARD_PEPPER", secrets["pepper"].as_str().unwrap()),
        (
            "KEYWARD_JWT_SECRET",
            secrets["jwt_secret"].as_str().unwrap(),
        ),
        (
            "KEYWARD_ADMIN_TOKEN",
            secrets["admin_token"].as_str().unwrap(),
        ),
    ];
    let elsewhere = tempfile::tempdir().unwrap();
    let refused = {
        let mut command = clean_command(elsewhere.path());
        command.args(["serve", "--bind", "127.0.0.1:0"]);
        for (name, value) in on_postgres {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has not finished"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Resumed: the keys copied before the kill are only compared.
    let resumed = copy(dir.path(), &["--to", &url]);
    assert_eq!(resumed["equal"], true, "{resumed:#}");
    assert_eq!(resumed["resumed"], true);
    let keys = &resumed["tables"][0];
    assert_eq!(keys["rows"], total);
    assert!(
        keys["written"].as_i64().unwrap() <= total - at_kill + 1000,
        "resumed, not started over: {keys}"
    );
    eprintln!("resumed copy: {} s", resumed["seconds"]);

    // And back, into a fresh SQLite file: the same digests all along.
    let back = tempfile::tempdir().unwrap();
    let back_url = format!("sqlite://{}", back.path().join("keyward.db").display());
    let returned = copy(dir.path(), &["--from", &url, "--to", &back_url]);
    assert_eq!(returned["equal"], true, "{returned:#}");
    assert_eq!(
        digests(&returned, "source_digest"),
        digests(&resumed, "source_digest")
    );
    assert_eq!(
        digests(&returned, "target_digest"),
        digests(&resumed, "source_digest")
    );

    // Every key answers the same on PostgreSQL and on the copy back.
    let (server, _log) = start_server_with(elsewhere.path(), &on_postgres);
    let admin = secrets["admin_token"].as_str().unwrap();
    let mut on_target = answers(&server, admin, &real);
    assert_eq!(on_target.pop().as_deref(), Some("VALID"), "the late key");
    assert_eq!(on_target, expected);
    assert!(stop(server));
    std::fs::copy(
        dir.path().join("keyward.db.secrets"),
        back.path().join("keyward.db.secrets"),
    )
    .unwrap();
    let (server, _log) = start_server_with(back.path(), &[]);
    let mut on_back = answers(&server, admin, &real);
    on_back.pop();
    assert_eq!(on_back, expected);
    assert!(stop(server));
}

#[test]
fn a_backup_never_replaces_the_database_or_its_secrets_even_with_force() {
    let dir = tempfile::tempdir().unwrap();
    cli_in(dir.path(), &["migrate"]);
    let (_, key) = create_key(dir.path(), "alice", "kept");
    let secrets = std::fs::read(dir.path().join("keyward.db.secrets")).unwrap();
    for to in [
        "keyward.db",
        "./keyward.db",
        "keyward.db-wal",
        "keyward.db.secrets",
    ] {
        if !dir.path().join(to).exists() {
            continue;
        }
        let output = clean_command(dir.path())
            .args(["backup", "--to", to, "--force"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{to}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("choose another path"), "{to}: {said}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("keyward.db.secrets")).unwrap(),
        secrets
    );
    let (server, _log) = start_server_with(dir.path(), &[]);
    let admin = cli_in(dir.path(), &["token", "--admin"]);
    assert_eq!(code(&server, &admin, &key), "VALID");
    assert!(stop(server));
}
