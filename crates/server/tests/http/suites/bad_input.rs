//! Bad input everywhere, as one table: every case gets a clear 4xx JSON error (or,
//! for keys, a `MALFORMED` verdict), never a panic or a 5xx, and nothing is written.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use keyward_core::model::Scope;
use serde_json::{Value, json};

use super::TestApp;
use crate::common::ADMIN_TOKEN;

/// A request as raw as the router can take it: any bytes, any header value.
struct Case {
    what: &'static str,
    method: Method,
    uri: String,
    authorization: Option<HeaderValue>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    expect: StatusCode,
}

fn bearer(token: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&format!("Bearer {token}")).unwrap())
}

fn case(
    what: &'static str,
    method: Method,
    uri: &str,
    token: &str,
    body: impl Into<Vec<u8>>,
    expect: StatusCode,
) -> Case {
    Case {
        what,
        method,
        uri: uri.to_owned(),
        authorization: bearer(token),
        content_type: Some("application/json"),
        body: body.into(),
        expect,
    }
}

fn json_bytes(value: Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[tokio::test]
async fn bad_requests_get_a_clear_client_error_and_change_nothing() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &["READ_GRAPH"]).await;
    let user = app.token("alice");
    let before = app.engine.list_keys(Scope::Admin).await.unwrap();

    use StatusCode as S;
    let create = "/api/api-keys";
    let verify = "/api/api-keys/verify";
    let permissions = format!("/api/api-keys/{id}/permissions");
    let big = |n: usize| "a".repeat(n);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut cases = vec![
        // Bodies that are not JSON, or not the JSON asked for. Deep nesting stops at
        // the first value of the wrong type: no recursion to exhaust.
        case(
            "empty body",
            Method::POST,
            create,
            &user,
            "",
            S::BAD_REQUEST,
        ),
        case(
            "truncated JSON",
            Method::POST,
            create,
            &user,
            r#"{"name":"#,
            S::BAD_REQUEST,
        ),
        case(
            "trailing garbage",
            Method::POST,
            create,
            &user,
            r#"{"name":"a","permissions":[]} x"#,
            S::BAD_REQUEST,
        ),
        case(
            "nesting 10,000 deep",
            Method::POST,
            create,
            &user,
            deep.clone(),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "nesting in a field",
            Method::POST,
            verify,
            ADMIN_TOKEN,
            format!(r#"{{"key":"k","permissions":{deep}}}"#),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "invalid UTF-8 in a string",
            Method::POST,
            create,
            &user,
            b"{\"name\":\"\xff\xfe\",\"permissions\":[]}".to_vec(),
            S::BAD_REQUEST,
        ),
        case(
            "a lone surrogate escape",
            Method::POST,
            create,
            &user,
            r#"{"name":"\ud800","permissions":[]}"#,
            S::BAD_REQUEST,
        ),
        case(
            "null body",
            Method::POST,
            create,
            &user,
            "null",
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "array body",
            Method::POST,
            create,
            &user,
            "[]",
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "string body",
            Method::POST,
            verify,
            ADMIN_TOKEN,
            r#""agpt_x""#,
            S::UNPROCESSABLE_ENTITY,
        ),
        // Wrong types, missing, unknown and repeated fields.
        case(
            "name is a number",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": 5, "permissions": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "name is null",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": null, "permissions": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "permissions is a string",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a", "permissions": "READ_GRAPH"})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "permissions holds numbers",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a", "permissions": [1, 2]})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "permissions missing",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a"})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "unknown field",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a", "permissions": [], "scopes": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "repeated field",
            Method::POST,
            create,
            &user,
            r#"{"name":"a","name":"b","permissions":[]}"#,
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "huge number",
            Method::POST,
            create,
            &user,
            r#"{"name":1e999,"permissions":[]}"#,
            S::BAD_REQUEST,
        ),
        case(
            "key is a number",
            Method::POST,
            verify,
            ADMIN_TOKEN,
            json_bytes(json!({"key": 5})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "key missing",
            Method::POST,
            verify,
            ADMIN_TOKEN,
            json_bytes(json!({"permissions": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "unknown verify field",
            Method::POST,
            verify,
            ADMIN_TOKEN,
            json_bytes(json!({"key": "k", "scope": "x"})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "permissions object",
            Method::PUT,
            &permissions,
            &user,
            json_bytes(json!({"permissions": {"READ_GRAPH": true}})),
            S::UNPROCESSABLE_ENTITY,
        ),
        // Values the rules refuse.
        case(
            "empty name",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "  ", "permissions": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "name of 10,000 characters",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": big(10_000), "permissions": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "NUL in the name",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a\u{0}b", "permissions": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "bidi override in the name",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a\u{202e}b", "permissions": []})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "description of 5,000 characters",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a", "permissions": [], "description": big(5_000)})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "unknown permission",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a", "permissions": ["ADMIN"]})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "lower-case permission",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a", "permissions": ["read_graph"]})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "expiry not a time",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": "a", "permissions": [], "expires_at": "tomorrow"})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "expiry in the past",
            Method::POST,
            create,
            &user,
            json_bytes(
                json!({"name": "a", "permissions": [], "expires_at": "2001-01-01T00:00:00Z"}),
            ),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "expiry past year 9999",
            Method::POST,
            create,
            &user,
            json_bytes(
                json!({"name": "a", "permissions": [], "expires_at": "+10000-01-01T00:00:00Z"}),
            ),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "unknown permission to verify",
            Method::POST,
            verify,
            ADMIN_TOKEN,
            json_bytes(json!({"key": "k", "permissions": ["NOPE"]})),
            S::UNPROCESSABLE_ENTITY,
        ),
        case(
            "unknown permission to set",
            Method::PUT,
            &permissions,
            &user,
            json_bytes(json!({"permissions": ["NOPE"]})),
            S::UNPROCESSABLE_ENTITY,
        ),
        // Size limits.
        case(
            "create body over 64 KiB",
            Method::POST,
            create,
            &user,
            json_bytes(json!({"name": big(70_000), "permissions": []})),
            S::PAYLOAD_TOO_LARGE,
        ),
        case(
            "verify body over 64 KiB",
            Method::POST,
            verify,
            ADMIN_TOKEN,
            json_bytes(json!({"key": big(70_000)})),
            S::PAYLOAD_TOO_LARGE,
        ),
        case(
            "permissions body over 64 KiB",
            Method::PUT,
            &permissions,
            &user,
            json_bytes(json!({"permissions": vec!["READ_GRAPH"; 7_000]})),
            S::PAYLOAD_TOO_LARGE,
        ),
        // Paths and methods.
        case(
            "id that is not a UUID",
            Method::GET,
            "/api/api-keys/not-a-uuid",
            &user,
            "",
            S::NOT_FOUND,
        ),
        case(
            "id of 2,000 characters",
            Method::GET,
            &format!("/api/api-keys/{}", big(2_000)),
            &user,
            "",
            S::NOT_FOUND,
        ),
        case(
            "percent-encoded NUL id",
            Method::POST,
            "/api/api-keys/%00/suspend",
            &user,
            "",
            S::NOT_FOUND,
        ),
        case(
            "unknown route",
            Method::GET,
            "/api/api-keys/x/y/z",
            &user,
            "",
            S::NOT_FOUND,
        ),
        case(
            "wrong method",
            Method::PATCH,
            create,
            &user,
            "{}",
            S::METHOD_NOT_ALLOWED,
        ),
    ];
    // Headers.
    let mut add = |what, authorization: Option<HeaderValue>, content_type, expect| {
        cases.push(Case {
            what,
            method: Method::POST,
            uri: create.to_owned(),
            authorization,
            content_type,
            body: json_bytes(json!({"name": "a", "permissions": []})),
            expect,
        });
    };
    add(
        "no content type",
        bearer(&user),
        None,
        S::UNSUPPORTED_MEDIA_TYPE,
    );
    add(
        "text content type",
        bearer(&user),
        Some("text/plain"),
        S::UNSUPPORTED_MEDIA_TYPE,
    );
    add(
        "form content type",
        bearer(&user),
        Some("application/x-www-form-urlencoded"),
        S::UNSUPPORTED_MEDIA_TYPE,
    );
    add(
        "non-UTF-8 authorization",
        Some(HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").unwrap()),
        Some("application/json"),
        S::UNAUTHORIZED,
    );
    add(
        "authorization of 60,000 bytes",
        bearer(&big(60_000)),
        Some("application/json"),
        S::UNAUTHORIZED,
    );
    add(
        "basic authorization",
        Some(HeaderValue::from_static("Basic YWxpY2U6cHc=")),
        Some("application/json"),
        S::UNAUTHORIZED,
    );
    add(
        "bearer without a token",
        Some(HeaderValue::from_static("Bearer ")),
        Some("application/json"),
        S::UNAUTHORIZED,
    );

    for case in cases {
        let mut request = Request::builder()
            .method(case.method.clone())
            .uri(&case.uri);
        if let Some(value) = case.authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(content_type) = case.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = app.send(request.body(Body::from(case.body)).unwrap()).await;
        assert_eq!(
            response.status, case.expect,
            "{}: {}",
            case.what, response.text
        );
        assert!(
            response.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{}: not JSON",
            case.what
        );
        let error = response.error(case.expect);
        assert!(
            !error["detail"].as_str().unwrap_or("").is_empty() || case.expect == S::NOT_FOUND,
            "{}: no detail",
            case.what
        );
    }

    assert_eq!(
        app.engine.list_keys(Scope::Admin).await.unwrap(),
        before,
        "nothing was written"
    );
}

#[tokio::test]
async fn near_miss_keys_are_malformed_and_never_looked_up() {
    let app = TestApp::new().await;
    let (_, key) = app.key_with("alice", &[]).await;
    let before = app.engine.list_keys(Scope::Admin).await.unwrap();
    let swap = |at: usize, with: &str| {
        let mut k = key.clone();
        let replacement = if &key[at..at + 1] == with { "b" } else { with };
        k.replace_range(at..at + 1, replacement);
        k
    };
    let near_misses = [
        ("one body character changed", swap(10, "a")),
        ("one checksum character changed", swap(key.len() - 1, "a")),
        ("two characters swapped", {
            let mut chars: Vec<char> = key.chars().collect();
            let i = (6..40).find(|&i| chars[i] != chars[i + 1]).unwrap();
            chars.swap(i, i + 1);
            chars.into_iter().collect()
        }),
        ("last character missing", key[..key.len() - 1].to_owned()),
        ("one character extra", format!("{key}a")),
        ("upper-case prefix", key.replacen("agpt_", "AGPT_", 1)),
        ("other prefix", key.replacen("agpt_", "sk_l_", 1)),
        (
            "dash instead of underscore",
            key.replacen("agpt_", "agpt-", 1),
        ),
        ("no prefix", key["agpt_".len()..].to_owned()),
        ("leading space", format!(" {key}")),
        ("trailing newline", format!("{key}\n")),
        ("pasted with Bearer", format!("Bearer {key}")),
        ("quoted", format!("\"{key}\"")),
        ("twice", format!("{key}{key}")),
        ("Cyrillic a in the body", swap(10, "а")),
        (
            "zero-width space inside",
            format!("{}\u{200b}{}", &key[..20], &key[20..]),
        ),
        ("NUL inside", format!("{}\u{0}{}", &key[..20], &key[21..])),
        ("percent-encoded", key.replacen('_', "%5F", 1)),
        ("base64url characters", swap(10, "-")),
        ("only the prefix", "agpt_".to_owned()),
        ("empty", String::new()),
        ("60,000 characters", "a".repeat(60_000)),
        ("emoji", format!("agpt_{}", "🔑".repeat(49))),
    ];
    for (what, presented) in near_misses {
        let verdict = app.verify(&presented, &[]).await;
        assert_eq!(
            verdict,
            json!({"valid": false, "code": "MALFORMED"}),
            "{what}"
        );
    }
    // A well-formed key nobody issued is looked up, and not found; so is a key of
    // AutoGPT's own shape (no checksum), which may have been imported.
    let legacy = format!("agpt_{}", "A".repeat(43));
    assert_eq!(app.verify_code(&legacy, &[]).await, "NOT_FOUND");
    let forged = keyward_core::key::KeyFormat::default().generate();
    assert_eq!(app.verify_code(forged.expose(), &[]).await, "NOT_FOUND");
    assert_eq!(app.verify_code(&key, &[]).await, "VALID");
    let after = app.engine.list_keys(Scope::Admin).await.unwrap();
    assert_eq!(after.len(), before.len());
}

#[tokio::test]
async fn a_query_parameter_a_route_does_not_take_is_refused_on_every_route() {
    let app = TestApp::new().await;
    let (id, _) = app.key_with("alice", &[]).await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    let doc: Value = serde_json::from_str(&doc.text).unwrap();
    let mut routes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{id}", &id).replace("{user_id}", "alice");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            // Every caller alike, before any credential is looked at: the request is
            // malformed whoever sends it.
            for token in [None, Some(ADMIN_TOKEN)] {
                let response = app
                    .call(method.clone(), &format!("{uri}?bogus=1"), token, None)
                    .await;
                let error = response.error(StatusCode::BAD_REQUEST);
                assert_eq!(
                    error["message"], "Unknown query parameter",
                    "{method} {path}"
                );
                assert!(
                    error["detail"].as_str().unwrap().contains(r#""bogus""#),
                    "{method} {path}: {error}"
                );
            }
            routes += 1;
        }
    }
    assert!(routes > 25, "{routes} routes");
    // The console's pages and the forms a route's parameters are misspelt in.
    let token = app.token("alice");
    for uri in [
        "/console?v=2".to_owned(),
        format!("/api/api-keys/{id}/usage?limit=100000000"),
        format!("/api/api-keys/{id}/usage?From=2026-01-01T00:00:00Z"),
        "/api/auth?permission=READ_GRAPH".to_owned(),
    ] {
        let response = app.call(Method::GET, &uri, Some(&token), None).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            response.text
        );
    }
    // What a route takes is still taken, percent-encoded names included.
    for uri in [
        format!("/api/api-keys/{id}/usage?granularity=day"),
        format!("/api/api-keys/{id}/usage?%67ranularity=day"),
        format!("/api/api-keys/{id}/events?limit=5"),
    ] {
        let response = app.call(Method::GET, &uri, Some(&token), None).await;
        assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.text);
    }
}
