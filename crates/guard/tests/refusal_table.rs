//! The TypeScript client's guards answer refusals from a table
//! (clients/typescript/src/refusals.ts): it must say what `Refusal` says, for every
//! verdict code, as keyward-guard and the Python client do. One source of truth,
//! rendered there; this test fails when the two part.

use keyward_core::verify::{Refusal, VerifyCode};
use serde_json::{Map, Value, json};

/// The table's name for a refusal.
fn kind(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::MissingKey => "MISSING_KEY",
        Refusal::Invalid => "INVALID",
        Refusal::MissingPermissions(_) => "MISSING_PERMISSIONS",
        Refusal::RateLimited { .. } => "RATE_LIMITED",
        Refusal::UsageExceeded => "USAGE_EXCEEDED",
        Refusal::IpNotAllowed => "IP_NOT_ALLOWED",
        Refusal::Unavailable => "UNAVAILABLE",
        Refusal::Unrecognized(_) => "UNRECOGNIZED",
    }
}

/// The JSON between the file's markers.
fn typescript_table() -> Value {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../clients/typescript/src/refusals.ts"
    ))
    .unwrap();
    let start = source.find("// refusals: begin").unwrap();
    let end = source.find("// refusals: end").unwrap();
    let block = &source[start..end];
    let json = &block[block.find('{').unwrap()..block.rfind('}').unwrap() + 1];
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_typescript_guards_answer_every_verdict_as_refusal_says() {
    let every = [
        Refusal::MissingKey,
        Refusal::Invalid,
        // Placeholders, filled in by the client.
        Refusal::MissingPermissions(vec!["{missing}".into()]),
        Refusal::RateLimited {
            retry_after_seconds: 1,
        },
        Refusal::UsageExceeded,
        Refusal::IpNotAllowed,
        Refusal::Unavailable,
        Refusal::Unrecognized("{code}".into()),
    ];
    let refusals: Map<String, Value> = every
        .iter()
        .map(|r| {
            (
                kind(r).to_owned(),
                json!({"status": r.status(), "detail": r.message()}),
            )
        })
        .collect();
    let codes: Map<String, Value> = VerifyCode::all()
        .map(|code| {
            let refusal = Refusal::for_verdict::<&str>(code, &[], &[], None);
            (
                code.as_str().to_owned(),
                refusal.as_ref().map_or(Value::Null, |r| json!(kind(r))),
            )
        })
        .collect();
    assert_eq!(
        typescript_table(),
        json!({"refusals": refusals, "codes": codes}),
        "clients/typescript/src/refusals.ts no longer says what keyward_core::verify::Refusal says"
    );
}
