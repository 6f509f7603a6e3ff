//! Who may call what: user JWTs for management, the service token for verify.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use keyward::secrets::Secret;
use keyward::settings::JwtSettings;
use serde_json::{Value, json};

use super::TestApp;
use crate::common::{ADMIN_TOKEN, JWT_SECRET, hs256_token, key_routes, now_secs};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

async fn list_with(app: &TestApp, authorization: Option<&str>) -> crate::common::TestResponse {
    let mut request = Request::get("/api/api-keys");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

/// What a refused token is told, whatever check failed (signature, algorithm, claims):
/// only a matter of time is named.
const NOT_VALID: &str = "the token is not valid";

#[track_caller]
fn assert_unauthorized(response: &crate::common::TestResponse, detail_part: &str) {
    let error = response.error(StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
    let detail = error["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_part),
        "{detail:?} should mention {detail_part:?}"
    );
}

#[tokio::test]
async fn a_missing_or_malformed_authorization_header_is_refused() {
    let app = TestApp::new().await;
    assert_unauthorized(&list_with(&app, None).await, "Authorization: Bearer");
    insta::assert_json_snapshot!(list_with(&app, None).await.body);
    let token = app.token("alice");
    assert_unauthorized(
        &list_with(&app, Some(&format!("Basic {token}"))).await,
        "must be: Bearer",
    );
    assert_unauthorized(&list_with(&app, Some("Bearer")).await, "must be: Bearer");
    assert_unauthorized(&list_with(&app, Some("Bearer not.a.jwt")).await, NOT_VALID);
    assert_unauthorized(&list_with(&app, Some("Bearer garbage")).await, NOT_VALID);
    // The scheme is case-insensitive.
    assert_eq!(
        list_with(&app, Some(&format!("bearer {token}")))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let app = TestApp::new().await;
    let forged = hs256_token(
        "some-other-secret-0123456789abcdefghijk",
        json!({"sub": "alice", "exp": now_secs() + 3600}),
    );
    assert_unauthorized(
        &list_with(&app, Some(&format!("Bearer {forged}"))).await,
        NOT_VALID,
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::new().await;
    let expired = hs256_token(JWT_SECRET, json!({"sub": "alice", "exp": now_secs() - 300}));
    assert_unauthorized(
        &list_with(&app, Some(&format!("Bearer {expired}"))).await,
        "expired",
    );
    let no_exp = hs256_token(JWT_SECRET, json!({"sub": "alice"}));
    assert_unauthorized(
        &list_with(&app, Some(&format!("Bearer {no_exp}"))).await,
        NOT_VALID,
    );
}

#[tokio::test]
async fn a_token_without_a_usable_subject_is_refused() {
    let app = TestApp::new().await;
    let exp = now_secs() + 3600;
    for claims in [
        json!({"exp": exp}),
        json!({"sub": "", "exp": exp}),
        json!({"sub": 42, "exp": exp}),
    ] {
        let token = hs256_token(JWT_SECRET, claims.clone());
        let response = list_with(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{claims}");
    }
}

#[tokio::test]
async fn an_unsigned_token_is_refused() {
    let app = TestApp::new().await;
    use base64_url as b64;
    let header = b64::encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims =
        b64::encode(format!(r#"{{"sub":"alice","exp":{}}}"#, now_secs() + 3600).as_bytes());
    let token = format!("{header}.{claims}.");
    let response = list_with(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

/// Minimal base64url without padding, to hand-craft tokens.
mod base64_url {
    pub fn encode(bytes: &[u8]) -> String {
        const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = TestApp::builder()
        .jwt(JwtSettings {
            hs256_secret: Some(Secret::new(JWT_SECRET)),
            issuer: Some("https://id.example".into()),
            audience: Some("keyward".into()),
            ..Default::default()
        })
        .build()
        .await;
    let exp = now_secs() + 3600;
    let good = json!({"sub": "alice", "exp": exp, "iss": "https://id.example", "aud": "keyward"});
    let token = hs256_token(JWT_SECRET, good.clone());
    assert_eq!(
        list_with(&app, Some(&format!("Bearer {token}")))
            .await
            .status,
        StatusCode::OK
    );

    let cases: [(Value, &str); 4] = [
        (
            json!({"sub": "alice", "exp": exp, "iss": "https://evil.example", "aud": "keyward"}),
            NOT_VALID,
        ),
        (
            json!({"sub": "alice", "exp": exp, "iss": "https://id.example", "aud": "other"}),
            NOT_VALID,
        ),
        (
            json!({"sub": "alice", "exp": exp, "aud": "keyward"}),
            NOT_VALID,
        ),
        (
            json!({"sub": "alice", "exp": exp, "iss": "https://id.example"}),
            NOT_VALID,
        ),
    ];
    for (claims, reason) in cases {
        let token = hs256_token(JWT_SECRET, claims);
        assert_unauthorized(
            &list_with(&app, Some(&format!("Bearer {token}"))).await,
            reason,
        );
    }
}

#[tokio::test]
async fn a_token_with_an_audience_is_accepted_when_none_is_configured() {
    let app = TestApp::new().await;
    let token = hs256_token(
        JWT_SECRET,
        json!({"sub": "alice", "exp": now_secs() + 3600, "aud": "anything"}),
    );
    assert_eq!(
        list_with(&app, Some(&format!("Bearer {token}")))
            .await
            .status,
        StatusCode::OK
    );
}

fn signed(algorithm: jsonwebtoken::Algorithm, key: jsonwebtoken::EncodingKey) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &json!({"sub": "carol", "exp": now_secs() + 3600}),
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_configured_public_key() {
    let app = TestApp::builder()
        .jwt(JwtSettings {
            public_key_pem: Some(fixture("rsa_public.pem")),
            ..Default::default()
        })
        .build()
        .await;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap();
    let token = signed(jsonwebtoken::Algorithm::RS256, key);
    let response = list_with(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);

    // With no HS256 secret configured, HMAC tokens are not accepted at all, even
    // one "signed" with the public key itself (the classic algorithm confusion).
    let confused = hs256_token(
        std::str::from_utf8(&fixture("rsa_public.pem")).unwrap(),
        json!({"sub": "carol", "exp": now_secs() + 3600}),
    );
    assert_unauthorized(
        &list_with(&app, Some(&format!("Bearer {confused}"))).await,
        NOT_VALID,
    );
}

#[tokio::test]
async fn es256_tokens_verify_against_the_configured_public_key() {
    let app = TestApp::builder()
        .jwt(JwtSettings {
            hs256_secret: Some(Secret::new(JWT_SECRET)),
            public_key_pem: Some(fixture("ec_public.pem")),
            ..Default::default()
        })
        .build()
        .await;
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&fixture("ec_private.pem")).unwrap();
    let token = signed(jsonwebtoken::Algorithm::ES256, key);
    assert_eq!(
        list_with(&app, Some(&format!("Bearer {token}")))
            .await
            .status,
        StatusCode::OK
    );
    // Both kinds are accepted when both are configured.
    let hs = app.token("alice");
    assert_eq!(
        list_with(&app, Some(&format!("Bearer {hs}"))).await.status,
        StatusCode::OK
    );
    // A token signed with a key that is not configured is refused.
    let other = jsonwebtoken::EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap();
    let token = signed(jsonwebtoken::Algorithm::RS256, other);
    assert_eq!(
        list_with(&app, Some(&format!("Bearer {token}")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_service_token_and_user_tokens_are_not_interchangeable() {
    let app = TestApp::new().await;
    let as_admin = app
        .call(Method::GET, "/api/api-keys", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(as_admin.status, StatusCode::UNAUTHORIZED);
    let user = app.token("alice");
    let verify_as_user = app
        .call(
            Method::POST,
            "/api/api-keys/verify",
            Some(&user),
            Some(json!({"key": "agpt_x"})),
        )
        .await;
    assert_unauthorized(&verify_as_user, "service token");
}

#[tokio::test]
async fn authentication_is_checked_before_the_body() {
    let app = TestApp::new().await;
    let response = app
        .call(
            Method::POST,
            "/api/api-keys",
            None,
            Some(json!({"bogus": true})),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_management_route_refuses_missing_expired_and_forged_tokens() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let expired = hs256_token(JWT_SECRET, json!({"sub": "alice", "exp": now_secs() - 300}));
    let forged = hs256_token(
        "not-the-secret-but-long-enough-0123456789",
        json!({"sub": "alice", "exp": now_secs() + 3600}),
    );
    let routes = key_routes(&id);
    for (method, uri, body) in routes {
        for token in [None, Some(expired.as_str()), Some(forged.as_str())] {
            let response = app.call(method.clone(), &uri, token, body.clone()).await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
    // Nothing happened to the key.
    let key = app
        .as_user("alice", Method::GET, &format!("/api/api-keys/{id}"), None)
        .await;
    assert_eq!(key.ok()["status"], "ACTIVE");
    let list = app
        .as_user("alice", Method::GET, "/api/api-keys", None)
        .await;
    assert_eq!(list.ok().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_token_that_is_not_valid_yet_is_refused() {
    let app = TestApp::new().await;
    let early = hs256_token(
        JWT_SECRET,
        json!({"sub": "alice", "exp": now_secs() + 7200, "nbf": now_secs() + 3600}),
    );
    assert_unauthorized(
        &list_with(&app, Some(&format!("Bearer {early}"))).await,
        "not valid yet",
    );
}

#[tokio::test]
async fn a_refused_request_with_a_body_tells_the_client_to_open_a_new_connection() {
    let app = TestApp::new().await;
    let verify = |token: &str| {
        let body = r#"{"key":"agpt_not_a_key"}"#;
        Request::post("/api/api-keys/verify")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap()
    };
    // Refused before its body is read: the connection must not be reused.
    let refused = app.send(verify("not-the-service-token")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers[header::CONNECTION], "close");
    // Answered normally, or refused without a body: the connection stays open.
    let answered = app.send(verify(ADMIN_TOKEN)).await;
    assert_eq!(answered.status, StatusCode::OK);
    assert!(answered.headers.get(header::CONNECTION).is_none());
    let without_body = list_with(&app, Some("Bearer nope")).await;
    assert_eq!(without_body.status, StatusCode::UNAUTHORIZED);
    assert!(without_body.headers.get(header::CONNECTION).is_none());
}
