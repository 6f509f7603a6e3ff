//! The rules of `docs/secret-scanning` (gitleaks, trufflehog, GitHub custom patterns and
//! the detect-secrets plugin) against keys made by keyward's own code: this test writes
//! a corpus of real keys and credentials, where keys leak from, and of lookalikes;
//! `tests/secret_scanning/check_rules.py` applies every rule to it and runs the real
//! detect-secrets with the plugin. Needs `KEYWARD_TEST_PYTHON` (a Python with
//! `tests/secret_scanning/requirements.txt` installed; `.ci/run` makes it).

use std::path::Path;
use std::process::Command;

use keyward_core::credential::{CREDENTIAL_PREFIX, credential_format};
use keyward_core::key::{KeyFormat, KeyFormatError, KeyPrefix};
use serde_json::{Value, json};

use crate::common::run_python;

/// A file of the corpus: the lines before and after, and one line holding a token,
/// from its number and the token.
struct Context {
    file: &'static str,
    head: &'static [&'static str],
    line: fn(usize, &str) -> String,
    tail: &'static [&'static str],
}

/// Where keys are found: settings, JSON, code, prose, URLs, headers, CSV, YAML, and
/// alone on a line (the first token of `bare.txt` starts the file).
const CONTEXTS: [Context; 9] = [
    Context {
        file: "settings.env",
        head: &["# the service's settings"],
        line: |n, token| format!("API_KEY_{n}={token}"),
        tail: &[],
    },
    Context {
        file: "config.json",
        head: &["{"],
        line: |n, token| format!("  \"api_key_{n}\": \"{token}\","),
        tail: &["  \"end\": null", "}"],
    },
    Context {
        file: "client.py",
        head: &["import os", ""],
        line: |n, token| format!("KEY_{n} = '{token}'"),
        tail: &[],
    },
    Context {
        file: "notes.md",
        head: &["# Keys", ""],
        line: |n, token| format!("Key {n} is {token}"),
        tail: &[],
    },
    Context {
        file: "urls.txt",
        head: &[],
        line: |n, token| format!("https://api.example.com/v1/graphs?key={token}&page={n}"),
        tail: &[],
    },
    Context {
        file: "requests.http",
        head: &["GET https://api.example.com/v1/graphs"],
        line: |_, token| format!("Authorization: Bearer {token}"),
        tail: &[],
    },
    Context {
        file: "keys.csv",
        head: &["n,key,state"],
        line: |n, token| format!("{n},{token},active"),
        tail: &[],
    },
    Context {
        file: "values.yaml",
        head: &["keys:"],
        line: |n, token| format!("  key_{n}: \"{token}\""),
        tail: &[],
    },
    Context {
        file: "bare.txt",
        head: &[],
        line: |_, token| token.to_owned(),
        tail: &[],
    },
];

/// A lookalike made from a real key (`head` is the length of its `prefix_`): its kind
/// for the check, what was done, and how. `bad-checksum`: the right shape, which only a
/// checksum check tells from a key. `glued`: the real key with other word characters
/// against it, which a `\b` rule misses and a checksum check finds (as `keyward scan`
/// does). `lookalike`: nothing finds it.
type Lookalike = (&'static str, &'static str, fn(&str, usize) -> String);

const LOOKALIKES: [Lookalike; 13] = [
    ("bad-checksum", "a checksum character changed", |key, _| {
        change(key, key.len() - 1)
    }),
    ("bad-checksum", "a random character changed", |key, head| {
        change(key, head + 20)
    }),
    ("bad-checksum", "a checksum above 2^32 - 1", |key, _| {
        format!("{}zzzzzz", &key[..key.len() - 6])
    }),
    ("lookalike", "a character short", |key, head| {
        format!("{}{}", &key[..head + 10], &key[head + 11..])
    }),
    ("lookalike", "a character too many", |key, head| {
        format!("{}a{}", &key[..head + 10], &key[head + 10..])
    }),
    ("lookalike", "another prefix", |key, head| {
        change(key, head - 2)
    }),
    ("lookalike", "the prefix in capitals", |key, head| {
        format!("{}{}", key[..head].to_uppercase(), &key[head..])
    }),
    ("glued", "a letter before", |key, _| format!("x{key}")),
    ("glued", "a letter after", |key, _| format!("{key}Z")),
    ("glued", "an underscore before", |key, _| format!("_{key}")),
    ("glued", "an underscore after", |key, _| {
        format!("{key}_old")
    }),
    ("glued", "after an escaped newline", |key, _| {
        format!("\\n{key}")
    }),
    ("glued", "URL-encoded after =", |key, _| {
        format!("key%3D{key}")
    }),
];

/// `text` with its (ASCII) character at `at` replaced by another of the same class.
fn change(text: &str, at: usize) -> String {
    let replacement = match text.as_bytes()[at] {
        b'0' => '1',
        b'1'..=b'9' => '0',
        b'x' => 'y',
        b'X' => 'Y',
        c if c.is_ascii_lowercase() => 'x',
        _ => 'X',
    };
    format!("{}{replacement}{}", &text[..at], &text[at + 1..])
}

/// One occurrence in the corpus, for the manifest: `token` as written, `key` the real
/// key in it if there is one.
fn occurrence(
    (file, line): (&str, usize),
    token: &str,
    key: Option<&str>,
    (prefix, kind, what): (&str, &str, &str),
) -> Value {
    json!({
        "file": file, "line": line, "token": token, "key": key,
        "prefix": prefix, "kind": kind, "what": what,
    })
}

/// Writes the corpus into `dir` and returns its manifest: in every context, for each
/// format, a real key then every lookalike of a fresh one, one a line; and a real key
/// that ends a file without a newline.
fn write_corpus(dir: &Path, formats: &[&KeyFormat]) -> Value {
    let mut occurrences = Vec::new();
    for context in &CONTEXTS {
        let mut lines: Vec<String> = context.head.iter().map(|l| l.to_string()).collect();
        for format in formats {
            let prefix = format.prefix().as_str();
            let real = format.generate();
            assert!(format.parse(real.expose()).is_ok());
            lines.push((context.line)(lines.len(), real.expose()));
            occurrences.push(occurrence(
                (context.file, lines.len()),
                real.expose(),
                Some(real.expose()),
                (prefix, "real", "made by keyward"),
            ));
            for (kind, what, make) in LOOKALIKES {
                let key = format.generate();
                let token = make(key.expose(), prefix.len() + 1);
                // Not a key, and the bad-checksum ones fail on the checksum alone.
                match format.parse(&token) {
                    Err(KeyFormatError::InvalidChecksum) => {
                        assert_eq!(kind, "bad-checksum", "{what}")
                    }
                    Err(_) => assert!(kind == "glued" || kind == "lookalike", "{what}"),
                    Ok(_) => panic!("{what}: {token} is a key"),
                }
                let glued = (kind == "glued").then(|| key.expose());
                assert!(glued.is_none_or(|key| token.contains(key)), "{what}");
                lines.push((context.line)(lines.len(), &token));
                occurrences.push(occurrence(
                    (context.file, lines.len()),
                    &token,
                    glued,
                    (prefix, kind, what),
                ));
            }
        }
        lines.extend(context.tail.iter().map(|l| l.to_string()));
        std::fs::write(dir.join(context.file), lines.join("\n") + "\n").unwrap();
    }
    for format in formats {
        let prefix = format.prefix().as_str();
        let file = format!("end-{prefix}.txt");
        let real = format.generate();
        std::fs::write(dir.join(&file), format!("token={}", real.expose())).unwrap();
        occurrences.push(occurrence(
            (&file, 1),
            real.expose(),
            Some(real.expose()),
            (prefix, "real", "at the end of a file"),
        ));
    }
    json!({
        "key_prefixes": formats
            .iter()
            .map(|f| f.prefix().as_str())
            .filter(|p| *p != CREDENTIAL_PREFIX)
            .collect::<Vec<_>>(),
        "credential_prefix": CREDENTIAL_PREFIX,
        "occurrences": occurrences,
    })
}

#[test]
#[cfg_attr(
    not(keyward_python_tests),
    ignore = "secret scanning rules test: set KEYWARD_TEST_PYTHON to a Python with \
              crates/server/tests/secret_scanning/requirements.txt installed"
)]
fn the_secret_scanning_rules_find_real_keys_and_only_the_documented_lookalikes() {
    let python = std::env::var("KEYWARD_TEST_PYTHON")
        .expect("KEYWARD_TEST_PYTHON names a Python with detect-secrets installed");
    let acme = KeyFormat::new(KeyPrefix::parse("acme").unwrap());
    let formats = [&KeyFormat::default(), &acme, credential_format()];
    let scratch = tempfile::tempdir().unwrap();
    let corpus = scratch.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let manifest = scratch.path().join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::to_vec(&write_corpus(&corpus, &formats)).unwrap(),
    )
    .unwrap();

    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let mut command = Command::new(&python);
    command
        .arg(format!(
            "{manifest_dir}/tests/secret_scanning/check_rules.py"
        ))
        .arg("--docs")
        .arg(format!("{manifest_dir}/../../docs/secret-scanning"))
        .arg("--corpus")
        .arg(&corpus)
        .arg("--manifest")
        .arg(&manifest)
        .env_remove("KEYWARD_KEY_PREFIX");
    print!("{}", run_python(command, "check_rules.py"));
}
