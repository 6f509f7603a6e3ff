//! GitHub's secret scanning partner endpoint, against a local key server serving a
//! P-256 key made here in GitHub's documented JSON: a signed batch revokes the live
//! keys in it and labels every token; unsigned, mis-signed, unknown-key and oversized
//! requests change nothing, and unknown key identifiers do not make keyward fetch
//! the key list more than once a minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::TestApp;
use crate::common::{ADMIN_TOKEN, TestResponse};

const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

/// A key server in GitHub's shape, counting the fetches it answers.
struct KeyServer {
    url: String,
    key: SigningKey,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start() -> Self {
        let key = SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let list = json!({"public_keys": [
            {"key_identifier": KEY_ID, "key": pem, "is_current": true}
        ]})
        .to_string();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&fetches);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/meta/public_keys/secret_scanning",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let list = list.clone();
                tokio::spawn(async move {
                    let mut buffer = [0; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
                        list.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { url, key, fetches }
    }

    fn sign(&self, body: &[u8]) -> String {
        let signature: Signature = self.key.sign(body);
        STANDARD.encode(signature.to_der().as_bytes())
    }
}

async fn post(app: &TestApp, body: &[u8], headers: &[(&str, String)]) -> TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/secret-scanning/github")
        .header(header::CONTENT_TYPE, "application/json")
        // As GitHub sends it: the declared length is what an early refusal reads.
        .header(header::CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    app.send(request.body(Body::from(body.to_vec())).unwrap())
        .await
}

fn signed(server: &KeyServer, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
        ("Github-Public-Key-Signature", server.sign(body)),
    ]
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_signed_batch_revokes_the_live_keys_and_labels_every_token() {
    let keys = KeyServer::start().await;
    let app = TestApp::builder()
        .github_secret_scanning(keys.url.clone())
        .build()
        .await;
    // The platform listens for leaks.
    let hook = app
        .call(
            Method::POST,
            "/api/admin/webhooks",
            Some(ADMIN_TOKEN),
            Some(json!({"url": "https://hooks.example.com/in", "events": ["api_key.leaked"]})),
        )
        .await;
    let hook = hook.ok()["webhook"]["id"].as_str().unwrap().to_owned();
    let (live_id, live) = app.key_with("alice", &["READ_GRAPH"]).await;
    let (revoked_id, revoked) = app.key_with("bob", &[]).await;
    app.as_user(
        "bob",
        Method::DELETE,
        &format!("/api/api-keys/{revoked_id}"),
        None,
    )
    .await;
    let unknown = keyward_core::key::KeyFormat::default()
        .generate()
        .expose()
        .to_owned();
    let url = "https://github.com/octocat/Hello-World/blob/1234/foo/.env";
    let tokens = [
        live.as_str(),
        revoked.as_str(),
        unknown.as_str(),
        "agpt_junk",
    ];
    let batch: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "keyward_api_key", "url": url, "source": "content"}))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let answer = post(&app, &body, &signed(&keys, &body)).await;
    let labels = answer.ok().as_array().unwrap().clone();
    assert_eq!(labels.len(), 4);
    for (label, (token, want)) in labels.iter().zip(tokens.iter().zip([
        "true_positive",
        "false_positive",
        "false_positive",
        "false_positive",
    ])) {
        assert_eq!(label["token_hash"], sha256_hex(token));
        assert_eq!(label["token_type"], "keyward_api_key");
        assert_eq!(label["label"], want, "{token}");
    }
    // Never who owns it.
    assert!(!answer.text.contains("alice") && !answer.text.contains(&live_id));
    assert_eq!(app.verify_code(&live, &[]).await, "REVOKED");
    let leaked = app
        .key_events(&live_id)
        .await
        .iter()
        .find(|e| e["action"] == "leaked")
        .cloned()
        .unwrap();
    assert_eq!(leaked["changes"]["url"]["after"], url);
    assert_eq!(leaked["changes"]["source"]["after"], "github:content");
    assert_eq!(leaked["actor"]["id"], "github-secret-scanning");
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);
    // And the platform hears of it, once: only the live key was acted on.
    let log = app
        .call(
            Method::GET,
            &format!("/api/admin/webhooks/{hook}/deliveries"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    let announced: Vec<(String, String)> = log
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["event_type"].as_str().unwrap().to_owned(),
                d["key_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(announced, [("api_key.leaked".to_owned(), live_id.clone())]);
}

#[tokio::test]
async fn requests_not_signed_by_github_change_nothing() {
    let keys = KeyServer::start().await;
    let app = TestApp::builder()
        .github_secret_scanning(keys.url.clone())
        .build()
        .await;
    let (_, live) = app.key_with("alice", &[]).await;
    let body = serde_json::to_vec(&json!([{"token": live, "type": "keyward_api_key"}])).unwrap();
    let other = serde_json::to_vec(&json!([{"token": "x", "type": "keyward_api_key"}])).unwrap();
    let bad_signature = "MEUCIQDfLvT8/zM8F1aB3cM0ZwyeWF1m5YR6IhcUIv1OKQYL0wIgBZ5lVXB3gHK+dT8+xt0WgRVLqvsTPFiDO9QP/7eJ4yE=";
    let attempts: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("Github-Public-Key-Identifier", KEY_ID.to_owned())],
        // Another body's signature (a replay with a different payload).
        signed(&keys, &other),
        vec![
            ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
            ("Github-Public-Key-Signature", bad_signature.to_owned()),
        ],
        vec![
            ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
            ("Github-Public-Key-Signature", "not base64!".to_owned()),
        ],
        vec![
            ("Github-Public-Key-Identifier", "made-up".to_owned()),
            ("Github-Public-Key-Signature", keys.sign(&body)),
        ],
        vec![
            ("Github-Public-Key-Identifier", "made-up-too".to_owned()),
            ("Github-Public-Key-Signature", keys.sign(&body)),
        ],
    ];
    for headers in &attempts {
        let answer = post(&app, &body, headers).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{headers:?}: {answer:?}"
        );
    }
    // The body as signed, re-serialised differently, is not what was signed.
    let respaced = String::from_utf8(body.clone()).unwrap().replace(',', ", ");
    let answer = post(&app, respaced.as_bytes(), &signed(&keys, &body)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let huge = vec![b' '; 1024 * 1024 + 1];
    let answer = post(&app, &huge, &signed(&keys, &huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        answer.body["detail"],
        "request bodies are limited to 1024 KiB"
    );
    // Without a declared length, refused as it is read, in the same words.
    let mut undeclared = Request::builder()
        .method(Method::POST)
        .uri("/api/secret-scanning/github")
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in signed(&keys, &huge) {
        undeclared = undeclared.header(name, value);
    }
    let answer = app
        .send(undeclared.body(Body::from(huge.clone())).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        answer.body["detail"],
        "request bodies are limited to 1024 KiB"
    );
    assert_eq!(app.verify_code(&live, &[]).await, "VALID");
    // Made-up identifiers fetched the list once, not once per request.
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn the_endpoint_is_off_unless_enabled() {
    let app = TestApp::new().await;
    let answer = post(&app, b"[]", &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_batch_of_a_thousand_tokens_is_answered_whole() {
    let keys = KeyServer::start().await;
    let app = TestApp::builder()
        .github_secret_scanning(keys.url.clone())
        .build()
        .await;
    let mut live = Vec::new();
    for n in 0..10 {
        live.push(app.key_with(&format!("user{n}"), &[]).await.1);
    }
    let format = keyward_core::key::KeyFormat::default();
    let mut tokens: Vec<String> = (0..990)
        .map(|_| format.generate().expose().to_owned())
        .collect();
    tokens.extend(live.iter().cloned());
    let batch: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "keyward_api_key", "url": "https://github.com/x/y", "source": "commit"}))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let started = std::time::Instant::now();
    let answer = post(&app, &body, &signed(&keys, &body)).await;
    let elapsed = started.elapsed();
    let labels = answer.ok().as_array().unwrap().clone();
    assert_eq!(labels.len(), 1_000);
    let positives = labels
        .iter()
        .filter(|l| l["label"] == "true_positive")
        .count();
    assert_eq!(positives, 10);
    for key in &live {
        assert_eq!(app.verify_code(key, &[]).await, "REVOKED");
    }
    // A figure for the record (this build, this machine), not a requirement here.
    println!("1,000 tokens (10 live) answered in {elapsed:?}");
}

#[tokio::test]
async fn a_request_naming_no_github_key_is_refused_before_its_body_is_read() {
    let keys = KeyServer::start().await;
    let enabled = TestApp::builder()
        .github_secret_scanning(keys.url.clone())
        .build()
        .await;
    let disabled = TestApp::new().await;
    type Case<'a> = (&'a TestApp, &'a [(&'a str, &'a str)], StatusCode);
    let cases: [Case<'_>; 4] = [
        (&disabled, &[], StatusCode::NOT_FOUND),
        (&enabled, &[], StatusCode::UNAUTHORIZED),
        (
            &enabled,
            &[
                ("Github-Public-Key-Identifier", "made-up"),
                ("Github-Public-Key-Signature", "MEUCIQDf"),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            &enabled,
            &[
                ("Github-Public-Key-Identifier", "made-up"),
                (
                    "Github-Public-Key-Signature",
                    "MEUCIQDfLvT8/zM8F1aB3cM0ZwyeWF1m5YR6IhcUIv1OKQYL0wIgBZ5lVXB3gHK+dT8+xt0WgRVLqvsTPFiDO9QP/7eJ4yE=",
                ),
            ],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (app, headers, status) in cases {
        // The body never arrives: the answer must not wait for it.
        let (_sender, body) =
            http_body_util::channel::Channel::<axum::body::Bytes, std::io::Error>::new(1);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/api/secret-scanning/github")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, 1024 * 1024);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::new(body)).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), app.send(request))
            .await
            .expect("answered without the body");
        assert_eq!(answer.status, status, "{headers:?}");
    }
}
