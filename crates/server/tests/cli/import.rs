//! `keyward import autogpt` against PostgreSQL databases shaped by AutoGPT's
//! migrations (2024 and 2025 flavours), holding keys made the way AutoGPT makes
//! them; imported into SQLite and into PostgreSQL, then verified through the HTTP
//! API. Needs `KEYWARD_TEST_POSTGRES_URL`.

use std::process::Output;

use keyward::app::App;
use keyward::secrets::Secret;
use keyward::settings::{JwtSettings, Settings};
use keyward_core::hash::Peppers;
use keyward_core::model::Scope;
use keyward_engine::EngineConfig;
use keyward_store::testing::{self, TestDatabase};
use keyward_store::{DatabaseUrl, KeyStore};
use serde_json::{Value, json};
use sha2::Digest;
use sqlx::{Connection, Executor};

use crate::common::{ADMIN_TOKEN, JWT_SECRET, PEPPER, clean_command};

/// AutoGPT's 2024 schema for API keys (PR #8597), as its Prisma migration made it.
const AUTOGPT_2024: &str = r#"
CREATE TYPE "APIKeyStatus" AS ENUM ('ACTIVE', 'REVOKED', 'SUSPENDED');
CREATE TYPE "APIKeyPermission" AS ENUM ('EXECUTE_GRAPH', 'READ_GRAPH', 'EXECUTE_BLOCK', 'READ_BLOCK');
CREATE TABLE "User" ("id" TEXT NOT NULL PRIMARY KEY, "email" TEXT NOT NULL);
CREATE TABLE "APIKey" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "postfix" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "status" "APIKeyStatus" NOT NULL DEFAULT 'ACTIVE',
    "permissions" "APIKeyPermission"[],
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),
    "description" TEXT,
    "userId" TEXT NOT NULL,
    CONSTRAINT "APIKey_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "APIKey_key_key" ON "APIKey"("key");
CREATE INDEX "APIKey_prefix_idx" ON "APIKey"("prefix");
CREATE INDEX "APIKey_userId_idx" ON "APIKey"("userId");
ALTER TABLE "APIKey" ADD CONSTRAINT "APIKey_userId_fkey" FOREIGN KEY ("userId")
    REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
"#;

/// AutoGPT's 2025 migration: salted scrypt, columns renamed.
const AUTOGPT_2025: &str = r#"
ALTER TABLE "APIKey" RENAME COLUMN "key" TO "hash";
ALTER TABLE "APIKey" RENAME COLUMN "prefix" TO "head";
ALTER TABLE "APIKey" RENAME COLUMN "postfix" TO "tail";
ALTER TABLE "APIKey" ADD COLUMN "salt" TEXT;
"#;

/// `secrets.token_urlsafe(32)`: 32 random bytes, base64url without padding.
fn token_urlsafe_32() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 33];
    getrandom::fill(&mut bytes[..32]).unwrap();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
        }
    }
    out.truncate(43);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key as AutoGPT makes it, and its row's hash columns for a shape.
struct AutogptKey {
    id: String,
    plain: String,
}

async fn autogpt_database(shape: &str) -> (TestDatabase, Vec<AutogptKey>) {
    let db = testing::postgres().await;
    let mut conn = sqlx::PgConnection::connect(&db.url_string()).await.unwrap();
    conn.execute(AUTOGPT_2024).await.unwrap();
    if shape == "2025" {
        conn.execute(AUTOGPT_2025).await.unwrap();
    }
    conn.execute(r#"INSERT INTO "User" VALUES ('alice', 'a@x'), ('bob', 'b@x')"#)
        .await
        .unwrap();
    let rows = [
        ("ci", "alice", "ACTIVE", "{EXECUTE_GRAPH,READ_GRAPH}", true),
        ("old", "alice", "REVOKED", "{READ_GRAPH}", true),
        ("paused", "bob", "SUSPENDED", "{}", false),
        ("bob's", "bob", "ACTIVE", "{READ_BLOCK}", false),
    ];
    let mut keys = Vec::new();
    for (i, (name, user, status, permissions, salted)) in rows.into_iter().enumerate() {
        let plain = format!("agpt_{}", token_urlsafe_32());
        // Prisma's uuid(): a random (v4) UUID.
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).unwrap();
        let id = uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .to_string();
        let (hash, salt) = if shape == "2025" && salted {
            let salt: [u8; 32] = std::array::from_fn(|j| (i * 32 + j) as u8);
            let parsed = keyward_core::legacy::parse(&plain).unwrap();
            (
                hex(&keyward_core::legacy::scrypt(parsed, &salt)),
                Some(hex(&salt)),
            )
        } else {
            (hex(&sha2::Sha256::digest(plain.as_bytes())), None)
        };
        let (head_col, tail_col, hash_col) = if shape == "2025" {
            ("head", "tail", "hash")
        } else {
            ("prefix", "postfix", "key")
        };
        let salt_col = if shape == "2025" { r#", "salt""# } else { "" };
        let salt_val = if shape == "2025" { ", $9" } else { "" };
        let sql = format!(
            r#"INSERT INTO "APIKey" ("id", "name", "{head_col}", "{tail_col}", "{hash_col}", "status",
               "permissions", "userId", "description", "revokedAt", "lastUsedAt"{salt_col})
               VALUES ($1, $2, $3, $4, $5, $6::"APIKeyStatus", $7::"APIKeyPermission"[], $8,
               'made by AutoGPT', CASE WHEN $6 = 'REVOKED' THEN now() END, now(){salt_val})"#
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .bind(name)
            .bind(&plain[..8])
            .bind(&plain[plain.len() - 8..])
            .bind(hash)
            .bind(status)
            .bind(permissions)
            .bind(user);
        if shape == "2025" {
            query = query.bind(salt);
        }
        query.execute(&mut conn).await.unwrap();
        keys.push(AutogptKey { id, plain });
    }
    conn.close().await.unwrap();
    (db, keys)
}

/// keyward's database (SQLite or PostgreSQL) and a way to run the CLI on it.
struct Keyward {
    url: String,
    _db: TestDatabase,
}

impl Keyward {
    async fn sqlite() -> Self {
        let db = testing::sqlite();
        Self::migrated(db).await
    }

    async fn postgres() -> Self {
        Self::migrated(testing::postgres().await).await
    }

    async fn migrated(db: TestDatabase) -> Self {
        let keyward = Self {
            url: db.url_string(),
            _db: db,
        };
        let output = keyward.cli(&["migrate"]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        keyward
    }

    async fn cli(&self, args: &[&str]) -> Output {
        let mut command = clean_command(std::path::Path::new("/"));
        command
            .env("KEYWARD_DATABASE_URL", &self.url)
            .env("KEYWARD_JWT_SECRET", JWT_SECRET)
            .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("KEYWARD_PEPPER", PEPPER)
            .args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    async fn import(&self, from: &str, extra: &[&str]) -> Value {
        let mut args = vec!["import", "autogpt", "--from", from, "--json"];
        args.extend(extra);
        let output = self.cli(&args).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// The server, in-process, on this database.
    async fn app(&self) -> App {
        let url = if let Some(path) = self.url.strip_prefix("sqlite://") {
            DatabaseUrl::Sqlite(path.into())
        } else {
            DatabaseUrl::Postgres(self.url.clone())
        };
        App::start(&Settings {
            http: Default::default(),
            database_url: url,
            connect: Default::default(),
            engine: EngineConfig::new(Peppers::parse(PEPPER).unwrap()),
            jwt: JwtSettings {
                hs256_secret: Some(Secret::new(JWT_SECRET)),
                ..Default::default()
            },
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            local_secrets: None,
        })
        .await
        .unwrap()
    }
}

async fn verify(app: &App, key: &str, permissions: &[&str]) -> Value {
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = Request::post("/api/api-keys/verify")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"key": key, "permissions": permissions}).to_string(),
        ))
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn imported_keys_keep_working(shape: &str, keyward: Keyward) {
    let (autogpt, keys) = autogpt_database(shape).await;
    let from = autogpt.url_string();

    let dry = keyward.import(&from, &["--dry-run"]).await;
    assert_eq!(
        (&dry["found"], &dry["imported"], &dry["dry_run"]),
        (&json!(4), &json!(4), &json!(true))
    );
    let report = keyward.import(&from, &[]).await;
    assert_eq!(report["shape"], shape);
    assert_eq!(
        (&report["found"], &report["imported"]),
        (&json!(4), &json!(4)),
        "{report}"
    );
    let again = keyward.import(&from, &[]).await;
    assert_eq!(
        (&again["imported"], &again["already_present"]),
        (&json!(0), &json!(4)),
        "idempotent"
    );

    let app = keyward.app().await;
    let ci = verify(&app, &keys[0].plain, &["EXECUTE_GRAPH"]).await;
    assert_eq!(ci["code"], "VALID", "{ci}");
    assert_eq!(ci["key_id"], keys[0].id);
    assert_eq!(ci["user_id"], "alice");
    assert_eq!(verify(&app, &keys[1].plain, &[]).await["code"], "REVOKED");
    assert_eq!(verify(&app, &keys[2].plain, &[]).await["code"], "SUSPENDED");
    let bobs = verify(&app, &keys[3].plain, &["EXECUTE_GRAPH"]).await;
    assert_eq!(bobs["code"], "INSUFFICIENT_PERMISSIONS");
    // A key of the same head that AutoGPT never issued.
    let forged = format!("{}{}", &keys[0].plain[..8], &token_urlsafe_32()[..40]);
    assert_eq!(verify(&app, &forged, &[]).await["code"], "NOT_FOUND");

    // Verified keys were re-hashed with the pepper: no AutoGPT hash is left for them,
    // and they keep verifying (now by the ordinary lookup).
    let store = app.engine.store();
    for key in &keys {
        let parsed = keyward_core::legacy::parse(&key.plain).unwrap();
        let left = store
            .legacy_candidates(&keyward_core::legacy::sha256(parsed), &key.plain[..8])
            .await
            .unwrap();
        assert!(
            left.iter().all(|c| c.record.id.to_string() != key.id),
            "{}",
            key.id
        );
    }
    assert_eq!(verify(&app, &keys[0].plain, &[]).await["code"], "VALID");
    let listed = store
        .list_keys(Scope::User(
            &keyward_core::model::UserId::parse("alice").unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|k| k.description.as_deref() == Some("made by AutoGPT"))
    );
    let revoked = listed.iter().find(|k| k.name == "old").unwrap();
    assert!(revoked.revoked_at.is_some());
    app.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
async fn keys_from_the_2024_shape_keep_working_on_sqlite() {
    imported_keys_keep_working("2024", Keyward::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
async fn keys_from_the_2025_shape_keep_working_on_sqlite() {
    imported_keys_keep_working("2025", Keyward::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
async fn keys_from_the_2025_shape_keep_working_on_postgres() {
    imported_keys_keep_working("2025", Keyward::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
async fn permissions_outside_the_catalogue_stop_the_import_unless_added() {
    let (autogpt, _) = autogpt_database("2024").await;
    let from = autogpt.url_string();
    let keyward = Keyward::sqlite().await;
    // A deployment whose catalogue lacks two of AutoGPT's names.
    let narrow = ["--permission-catalogue", "EXECUTE_GRAPH,READ_GRAPH"];
    let mut args = vec!["import", "autogpt", "--from", from.as_str()];
    args.extend(narrow);
    let refused = keyward.cli(&args).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("READ_BLOCK"), "{stderr}");
    assert!(
        !stderr.contains(&from),
        "the URL (and its password) is not printed"
    );
    let report = keyward
        .import(&from, &[narrow[0], narrow[1], "--add-permissions"])
        .await;
    assert_eq!(report["imported"], 4);
    assert_eq!(report["unknown_permissions"], json!(["READ_BLOCK"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL suite: set KEYWARD_TEST_POSTGRES_URL"
)]
async fn failed_legacy_attempts_on_one_head_are_limited_before_any_scrypt() {
    let (autogpt, keys) = autogpt_database("2025").await;
    let keyward = Keyward::sqlite().await;
    keyward.import(&autogpt.url_string(), &[]).await;
    let app = keyward.app().await;
    let head = &keys[0].plain[..8];
    // 60 failures a minute: the refusals start after at least 60 (a few more, as
    // the quota refills by one a second while the scrypts run).
    let mut codes: Vec<String> = Vec::new();
    while codes.last().is_none_or(|c| c != "RATE_LIMITED") {
        assert!(codes.len() < 100, "never limited: {codes:?}");
        let guess = format!("{head}{}", &token_urlsafe_32()[..40]);
        let code = verify(&app, &guess, &[]).await["code"].clone();
        codes.push(code.as_str().unwrap().to_owned());
    }
    assert!(codes.len() > 60, "{}", codes.len());
    assert!(
        codes[..codes.len() - 1].iter().all(|c| c == "NOT_FOUND"),
        "{codes:?}"
    );
    // The limit is per head: the real key of another head still verifies.
    assert_eq!(verify(&app, &keys[1].plain, &[]).await["code"], "REVOKED");
    app.engine.shutdown().await;
}
