//! User JWTs checked against an identity provider's JWKS (`KEYWARD_JWT_JWKS_URL`),
//! served by a stand-in provider on 127.0.0.1: key types, rotation, outages, made-up
//! kids, and the shapes Keycloak and Supabase publish. SQLite only: the database plays
//! no part here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyward::http::jwks::{JwksSettings, JwksUrl};
use keyward::secrets::Secret;
use keyward::settings::JwtSettings;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{JWT_SECRET, TestResponse, hs256_token, now_secs};

type TestApp = crate::common::TestApp<crate::common::Sqlite>;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/fixtures");
const NOT_VALID: &str = "the token is not valid";
const UNKNOWN_KEY: &str = "the token's signing key (kid) is not known";
/// Where the stand-in provider serves its set; any other path serves it too.
const JWKS_PATH: &str = "/.well-known/jwks.json";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

/// A test-only signing key: the private half signs tokens, the public half is published.
struct TestKey {
    kid: &'static str,
    algorithm: Algorithm,
    private: EncodingKey,
}

impl TestKey {
    fn rsa(kid: &'static str) -> Self {
        let private = EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap();
        Self::new(kid, Algorithm::RS256, private)
    }

    fn other_rsa(kid: &'static str) -> Self {
        let private = EncodingKey::from_rsa_pem(&fixture("rsa2_private.pem")).unwrap();
        Self::new(kid, Algorithm::RS256, private)
    }

    fn ec(kid: &'static str) -> Self {
        let private = EncodingKey::from_ec_pem(&fixture("ec_private.pem")).unwrap();
        Self::new(kid, Algorithm::ES256, private)
    }

    fn ed25519(kid: &'static str) -> Self {
        let private = EncodingKey::from_ed_pem(&fixture("ed25519_private.pem")).unwrap();
        Self::new(kid, Algorithm::EdDSA, private)
    }

    fn new(kid: &'static str, algorithm: Algorithm, private: EncodingKey) -> Self {
        Self {
            kid,
            algorithm,
            private,
        }
    }

    /// The public key as a JWK set lists it.
    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.private, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(jwk).unwrap()
    }

    /// A token with these claims, its header naming this key's kid and `algorithm`.
    fn sign_as(&self, algorithm: Algorithm, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.private).unwrap()
    }

    fn token(&self, claims: &Value) -> String {
        self.sign_as(self.algorithm, self.kid, claims)
    }

    fn token_for(&self, user: &str) -> String {
        self.token(&json!({"sub": user, "exp": now_secs() + 3600}))
    }
}

/// A stand-in identity provider serving one JWK set at every path.
struct Provider {
    address: SocketAddr,
    served: Arc<Served>,
    server: Option<tokio::task::JoinHandle<()>>,
}

struct Served {
    answer: Mutex<Answer>,
    fetches: AtomicUsize,
}

#[derive(Clone)]
struct Answer {
    body: String,
    cache_control: Option<&'static str>,
    /// How long the provider takes to answer.
    delay: Duration,
    /// Answers requests for [`JWKS_PATH`] with `302 Found` to this URL instead.
    redirect: Option<String>,
}

impl Provider {
    async fn start(keys: Vec<Value>) -> Self {
        let mut provider = Self::unreachable().await;
        provider.publish(keys);
        provider.resume().await;
        provider
    }

    /// A provider whose address refuses connections until [`Provider::resume`].
    async fn unreachable() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        Self {
            address,
            served: Arc::new(Served {
                answer: Mutex::new(Answer {
                    body: json!({"keys": []}).to_string(),
                    cache_control: None,
                    delay: Duration::ZERO,
                    redirect: None,
                }),
                fetches: AtomicUsize::new(0),
            }),
            server: None,
        }
    }

    async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.address).await.unwrap();
        let router = axum::Router::new()
            .fallback(serve_jwks)
            .with_state(Arc::clone(&self.served));
        self.server = Some(tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        }));
    }

    /// Stops answering: connections are refused.
    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    fn publish(&self, keys: Vec<Value>) {
        self.served.answer.lock().unwrap().body = json!({ "keys": keys }).to_string();
    }

    fn publish_body(&self, body: String) {
        self.served.answer.lock().unwrap().body = body;
    }

    fn cache_control(&self, value: &'static str) {
        self.served.answer.lock().unwrap().cache_control = Some(value);
    }

    fn delay(&self, delay: Duration) {
        self.served.answer.lock().unwrap().delay = delay;
    }

    fn redirect(&self, to: String) {
        self.served.answer.lock().unwrap().redirect = Some(to);
    }

    fn fetches(&self) -> usize {
        self.served.fetches.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> JwksUrl {
        JwksUrl::parse(&format!("http://{}{path}", self.address)).unwrap()
    }

    fn jwks(&self, min_refresh_seconds: u64) -> JwtSettings {
        JwtSettings {
            jwks: Some(JwksSettings {
                url: self.url(JWKS_PATH),
                min_refresh: Duration::from_secs(min_refresh_seconds),
            }),
            ..Default::default()
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_jwks(State(served): State<Arc<Served>>, uri: axum::http::Uri) -> Response {
    served.fetches.fetch_add(1, Ordering::SeqCst);
    let answer = served.answer.lock().unwrap().clone();
    tokio::time::sleep(answer.delay).await;
    if let Some(to) = answer.redirect
        && uri.path() == JWKS_PATH
    {
        return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
    }
    let mut response = ([(header::CONTENT_TYPE, "application/json")], answer.body).into_response();
    if let Some(value) = answer.cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}

async fn app(jwt: JwtSettings) -> TestApp {
    TestApp::builder().jwt(jwt).build().await
}

async fn readiness(app: &TestApp) -> TestResponse {
    app.call(Method::GET, "/readyz", None, None).await
}

/// Waits (at most 10 s) until `/readyz` answers 200.
async fn wait_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = readiness(app).await;
        if response.status == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {}", response.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lists the caller's keys with `token`.
async fn list(app: &TestApp, token: &str) -> TestResponse {
    app.call(Method::GET, "/api/api-keys", Some(token), None)
        .await
}

#[track_caller]
fn assert_refused(response: &TestResponse) {
    let error = response.error(StatusCode::UNAUTHORIZED);
    assert_eq!(error["detail"], NOT_VALID, "{}", response.text);
    assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
}

/// Refused because the set has no key of the token's kid.
#[track_caller]
fn assert_unknown_key(response: &TestResponse) {
    let error = response.error(StatusCode::UNAUTHORIZED);
    assert_eq!(error["detail"], UNKNOWN_KEY, "{}", response.text);
    assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn tokens_signed_with_rs256_es256_and_eddsa_keys_of_the_set_are_accepted() {
    let (rsa, ec, ed) = (
        TestKey::rsa("rsa-1"),
        TestKey::ec("ec-1"),
        TestKey::ed25519("ed-1"),
    );
    // The EC key without `alg`: its algorithm follows from `kty` and `crv`.
    let mut ec_jwk = ec.jwk();
    ec_jwk.as_object_mut().unwrap().remove("alg");
    let provider = Provider::start(vec![rsa.jwk(), ec_jwk, ed.jwk()]).await;
    let app = app(provider.jwks(30)).await;
    wait_ready(&app).await;

    for key in [&rsa, &ec, &ed] {
        let response = list(&app, &key.token_for("alice")).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    // The key decides the algorithm: the same RSA key under another algorithm is
    // refused, and so is a token naming another key's kid.
    let claims = json!({"sub": "alice", "exp": now_secs() + 3600});
    assert_refused(&list(&app, &rsa.sign_as(Algorithm::PS256, "rsa-1", &claims)).await);
    assert_refused(&list(&app, &rsa.sign_as(Algorithm::RS256, "ec-1", &claims)).await);
    assert_refused(&list(&app, &ed.sign_as(Algorithm::EdDSA, "rsa-1", &claims)).await);
}

#[tokio::test]
async fn an_hs256_token_made_with_a_published_key_is_refused() {
    let rsa = TestKey::rsa("rsa-1");
    // A symmetric key in a published set is a mistake; it must not verify anything.
    let shared_secret = "a-shared-secret-that-was-published-0123456789";
    let oct = json!({"kty": "oct", "kid": "shared", "alg": "HS256",
                     "k": URL_SAFE_NO_PAD.encode(shared_secret)});
    let provider = Provider::start(vec![rsa.jwk(), oct]).await;
    let mut jwt = provider.jwks(30);
    jwt.hs256_secret = Some(Secret::new(JWT_SECRET));
    let app = app(jwt).await;
    wait_ready(&app).await;

    let claims = json!({"sub": "mallory", "exp": now_secs() + 3600});
    let hmac = |secret: &[u8], kid: &str| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    // The classic confusion: HS256 "signed" with the RSA public key, as PEM or as the
    // JWK's modulus, naming that key's kid.
    let rsa_jwk = rsa.jwk();
    for secret in [
        fixture("rsa_public.pem"),
        rsa_jwk["n"].as_str().unwrap().as_bytes().to_vec(),
        rsa_jwk.to_string().into_bytes(),
    ] {
        assert_refused(&list(&app, &hmac(&secret, "rsa-1")).await);
    }
    assert_refused(&list(&app, &hmac(shared_secret.as_bytes(), "shared")).await);

    // Both ways in still work side by side.
    assert_eq!(
        list(&app, &rsa.token_for("alice")).await.status,
        StatusCode::OK
    );
    let from_secret = hs256_token(JWT_SECRET, json!({"sub": "bob", "exp": now_secs() + 60}));
    assert_eq!(list(&app, &from_secret).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_rotation_is_followed_without_a_restart() {
    let (old, new) = (TestKey::rsa("2025-old"), TestKey::other_rsa("2026-new"));
    let provider = Provider::start(vec![old.jwk()]).await;
    provider.cache_control("public, max-age=1");
    let app = app(provider.jwks(1)).await;
    wait_ready(&app).await;
    assert_eq!(
        list(&app, &old.token_for("alice")).await.status,
        StatusCode::OK
    );

    // The provider publishes the next key: its first token makes keyward look again.
    provider.publish(vec![old.jwk(), new.jwk()]);
    let response = list(&app, &new.token_for("alice")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        list(&app, &old.token_for("alice")).await.status,
        StatusCode::OK
    );

    // Then retires the old one: once the set's lifetime is over, its tokens are refused.
    provider.publish(vec![new.jwk()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while list(&app, &old.token_for("alice")).await.status == StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the retired key is still accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_unknown_key(&list(&app, &old.token_for("alice")).await);
    assert_eq!(
        list(&app, &new.token_for("alice")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_storm_of_unknown_kids_fetches_the_set_at_most_once_per_min_refresh() {
    let (known, stranger) = (TestKey::rsa("known"), TestKey::other_rsa("unused"));
    let provider = Provider::start(vec![known.jwk()]).await;
    let app = app(provider.jwks(30)).await;
    wait_ready(&app).await;
    assert_eq!(provider.fetches(), 1);

    // 300 tokens, each with a kid of its own, sent at once.
    let claims = json!({"sub": "mallory", "exp": now_secs() + 3600});
    let mut storm = tokio::task::JoinSet::new();
    for n in 0..300 {
        let token = stranger.sign_as(Algorithm::RS256, &format!("forged-{n}"), &claims);
        let router = app.router.clone();
        storm.spawn(async move {
            let request = Request::get("/api/api-keys")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        });
    }
    while let Some(status) = storm.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED);
    }
    // One early fetch for the whole storm, then none until 30 s have passed.
    assert_eq!(provider.fetches(), 2);
    let forged = stranger.sign_as(Algorithm::RS256, "forged-again", &claims);
    assert_unknown_key(&list(&app, &forged).await);
    assert_eq!(provider.fetches(), 2);
    // Tokens whose kid is known are served all along.
    assert_eq!(
        list(&app, &known.token_for("alice")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn readiness_waits_for_the_first_key_set_and_says_why() {
    let key = TestKey::ec("ec-1");
    let mut provider = Provider::unreachable().await;
    provider.publish(vec![key.jwk()]);
    let app = app(provider.jwks(1)).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let detail = loop {
        let response = readiness(&app).await;
        let detail = response.error(StatusCode::SERVICE_UNAVAILABLE)["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains("KEYWARD_JWT_JWKS_URL"), "{detail}");
        if !detail.contains("not finished") {
            break detail;
        }
        assert!(Instant::now() < deadline, "{detail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(detail.to_lowercase().contains("connect"), "{detail}");
    assert_unknown_key(&list(&app, &key.token_for("alice")).await);

    // The provider comes up: keyward retries by itself.
    provider.resume().await;
    wait_ready(&app).await;
    assert_eq!(
        list(&app, &key.token_for("alice")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn when_the_provider_goes_down_the_last_good_set_keeps_serving() {
    let key = TestKey::ed25519("ed-1");
    let mut provider = Provider::start(vec![key.jwk()]).await;
    provider.cache_control("max-age=1");
    let app = app(provider.jwks(1)).await;
    wait_ready(&app).await;

    provider.stop();
    // The set's one-second lifetime runs out several times over; every refresh fails.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        list(&app, &key.token_for("alice")).await.status,
        StatusCode::OK
    );
    assert_eq!(readiness(&app).await.status, StatusCode::OK);
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .contains("keyward_jwks_fetches_total{outcome=\"error\"}"),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn an_oversized_answer_is_not_loaded() {
    let provider = Provider::start(vec![]).await;
    provider.publish_body(json!({"keys": [], "padding": "x".repeat(300 * 1024)}).to_string());
    let app = app(provider.jwks(1)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = readiness(&app).await;
        let detail = response.error(StatusCode::SERVICE_UNAVAILABLE)["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        if detail.contains("larger than 256 KiB") {
            break;
        }
        assert!(Instant::now() < deadline, "{detail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_keycloak_shaped_set_serves_its_signing_key_and_skips_the_rest() {
    let (signing, encryption) = (
        TestKey::rsa("kc-sig-7Yh2"),
        TestKey::other_rsa("kc-enc-Qx9d"),
    );
    let realm = "https://sso.example.com/realms/acme";
    // As Keycloak lists a realm's keys: an RS256 signing key and an RSA-OAEP key for
    // encryption, both with certificates; plus key types keyward does not know.
    let certificate = |mut jwk: Value, key_use: &str, alg: &str| {
        jwk["use"] = json!(key_use);
        jwk["alg"] = json!(alg);
        jwk["x5c"] = json!(["MIICnTCCAYUCBgGVexample"]);
        jwk["x5t"] = json!("c2hhMS10aHVtYnByaW50");
        jwk["x5t#S256"] = json!("c2hhMjU2LXRodW1icHJpbnQ");
        jwk
    };
    let provider = Provider::start(vec![
        certificate(encryption.jwk(), "enc", "RSA-OAEP"),
        certificate(signing.jwk(), "sig", "RS256"),
        json!({"kid": "pq-1", "kty": "AKP", "alg": "ML-DSA-65", "pub": "AAAA"}),
        json!({"kid": "p521", "kty": "EC", "crv": "P-521", "alg": "ES512", "x": "AA", "y": "AA"}),
    ])
    .await;
    let mut jwt = provider.jwks(30);
    jwt.issuer = Some(realm.to_owned());
    let app = app(jwt).await;
    wait_ready(&app).await;

    let claims = |sub: &str| {
        json!({"sub": sub, "exp": now_secs() + 300, "iat": now_secs(), "iss": realm,
               "aud": "account", "typ": "Bearer", "azp": "web", "scope": "openid email"})
    };
    let response = list(
        &app,
        &signing.token(&claims("3b241101-e2bb-4255-8caf-4136c566a962")),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    // The encryption key does not verify signatures, even its own owner's.
    assert_unknown_key(&list(&app, &encryption.token(&claims("eve"))).await);
}

#[tokio::test]
async fn supabase_tokens_verify_with_the_projects_jwks_issuer_and_audience() {
    let key = TestKey::ec("7b0c4f3e-2f4b-4f8e-9c59-1f7bd0a1c2d3");
    let project = "https://abcdefghijklmnopqrst.supabase.co/auth/v1";
    let provider = Provider::start(vec![key.jwk()]).await;
    provider.cache_control("public, max-age=600");
    let app = app(JwtSettings {
        jwks: Some(JwksSettings {
            url: provider.url("/auth/v1/.well-known/jwks.json"),
            min_refresh: Duration::from_secs(30),
        }),
        issuer: Some(project.to_owned()),
        audience: Some("authenticated".to_owned()),
        ..Default::default()
    })
    .await;
    wait_ready(&app).await;

    let user = "8c3f2a56-1d2e-4c8b-a0f1-2b3c4d5e6f70";
    let claims = |iss: &str, aud: &str| {
        json!({
            "iss": iss, "sub": user, "aud": aud, "exp": now_secs() + 3600, "iat": now_secs(),
            "email": "alice@example.com", "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"email_verified": true},
            "role": aud, "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now_secs()}],
            "session_id": "0d6f6c1e-5a7b-4f0e-8f43-9b3c2d1e0f11", "is_anonymous": false
        })
    };
    let token = key.token(&claims(project, "authenticated"));
    let response = app
        .call(
            Method::POST,
            "/api/api-keys",
            Some(&token),
            Some(json!({"name": "from supabase", "permissions": []})),
        )
        .await;
    let created = &response.ok()["api_key"];
    assert_eq!(created["user_id"], user);
    assert_eq!(provider.fetches(), 1);

    let other_project = "https://zyxwvutsrqponmlkjihg.supabase.co/auth/v1";
    assert_refused(&list(&app, &key.token(&claims(other_project, "authenticated"))).await);
    assert_refused(&list(&app, &key.token(&claims(project, "anon"))).await);
}

#[tokio::test]
async fn a_configured_public_key_verifies_tokens_the_set_does_not_name() {
    let (in_set, static_key) = (TestKey::ec("ec-1"), TestKey::rsa("not-in-the-set"));
    let provider = Provider::start(vec![in_set.jwk()]).await;
    let mut jwt = provider.jwks(30);
    jwt.public_key_pem = Some(fixture("rsa_public.pem"));
    let app = app(jwt).await;
    wait_ready(&app).await;

    assert_eq!(
        list(&app, &in_set.token_for("alice")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        list(&app, &static_key.token_for("alice")).await.status,
        StatusCode::OK
    );
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "alice", "exp": now_secs() + 60}),
        &static_key.private,
    )
    .unwrap();
    assert_eq!(list(&app, &no_kid).await.status, StatusCode::OK);
}

#[tokio::test]
async fn dropping_the_service_stops_its_key_refresher() {
    let provider = Provider::start(vec![TestKey::rsa("rsa-1").jwk()]).await;
    provider.cache_control("max-age=1");
    let app = app(provider.jwks(1)).await;
    wait_ready(&app).await;
    drop(app);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fetched = provider.fetches();
    // Refreshing every second, it would have fetched at least twice more by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(provider.fetches(), fetched);
}

/// An HTTPS server on 127.0.0.1 whose certificate no public authority signed: the
/// handshake is all it offers.
async fn https_with_a_self_signed_certificate() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certificate = CertificateDer::from_pem_slice(&fixture("self_signed_cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(&fixture("ec_private.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = acceptor.accept(stream).await;
        }
    });
    (address, server)
}

#[tokio::test]
async fn an_https_provider_with_a_certificate_no_authority_signed_is_not_trusted() {
    let (address, server) = https_with_a_self_signed_certificate().await;
    let url = JwksUrl::parse(&format!("https://{address}/.well-known/jwks.json")).unwrap();
    let app = app(JwtSettings {
        jwks: Some(JwksSettings {
            url,
            min_refresh: Duration::from_secs(1),
        }),
        ..Default::default()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = readiness(&app).await;
        let detail = response.error(StatusCode::SERVICE_UNAVAILABLE)["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        if detail.contains("UnknownIssuer") {
            break;
        }
        assert!(Instant::now() < deadline, "{detail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    // The keys at the other origin would sign tokens for anyone who controls it.
    let (theirs, ours) = (TestKey::rsa("theirs"), TestKey::ec("ours"));
    let elsewhere = Provider::start(vec![theirs.jwk()]).await;
    let provider = Provider::start(vec![ours.jwk()]).await;
    provider.redirect(format!("http://{}{JWKS_PATH}", elsewhere.address));
    let redirected = app(provider.jwks(1)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = readiness(&redirected).await;
        let detail = response.error(StatusCode::SERVICE_UNAVAILABLE)["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        if detail.contains("another origin") {
            assert!(detail.contains(&elsewhere.address.to_string()), "{detail}");
            break;
        }
        assert!(Instant::now() < deadline, "{detail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(elsewhere.fetches(), 0, "the other origin was asked");
    assert_unknown_key(&list(&redirected, &theirs.token_for("mallory")).await);

    // Within the provider's origin, a redirect is followed.
    let same = Provider::start(vec![ours.jwk()]).await;
    same.redirect(format!("http://{}/keys/current", same.address));
    let followed = app(same.jwks(1)).await;
    wait_ready(&followed).await;
    assert_eq!(
        list(&followed, &ours.token_for("alice")).await.status,
        StatusCode::OK
    );
    assert_eq!(same.fetches(), 2, "the redirect, then the keys");
}

#[tokio::test]
async fn a_slow_provider_holds_a_token_with_an_unknown_kid_half_a_second_at_most() {
    let (known, rotated_in) = (TestKey::rsa("known"), TestKey::ec("rotated-in"));
    let provider = Provider::start(vec![known.jwk()]).await;
    let app = app(provider.jwks(1)).await;
    wait_ready(&app).await;
    // The provider now takes 4.5 s; a token names a key it is about to publish.
    provider.delay(Duration::from_millis(4500));
    provider.publish(vec![known.jwk(), rotated_in.jwk()]);
    let started = Instant::now();
    assert_unknown_key(&list(&app, &rotated_in.token_for("alice")).await);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(1000),
        "an unknown kid waited {waited:?} for a slow provider"
    );
    // Tokens whose kid is known are not held by the fetch in flight.
    let started = Instant::now();
    assert_eq!(
        list(&app, &known.token_for("alice")).await.status,
        StatusCode::OK
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    // Once the slow fetch ends, the new key serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    while list(&app, &rotated_in.token_for("alice")).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "the new key never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
