//! The error messages a newcomer meets first: each says what is wrong, where, and why,
//! once.

use std::net::TcpListener;
use std::process::Output;

use crate::common::{ADMIN_TOKEN, JWT_SECRET, PEPPER, clean_command};

/// The one `error: …` line of a failed command, checked for a reason said twice
/// (`context: cause: cause`).
fn error_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    let line = errors[0].to_owned();
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} is said twice in: {line}"
        );
    }
    line
}

/// `keyward serve` with the three secrets configured and `env` on top.
fn serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let mut command = clean_command(dir);
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("KEYWARD_JWT_SECRET", JWT_SECRET)
        .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEYWARD_PEPPER", PEPPER);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn a_short_pepper_is_named_once_with_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&serve_with(dir.path(), &[("KEYWARD_PEPPER", "short")]));
    assert_eq!(
        line,
        "error: KEYWARD_PEPPER / KEYWARD_PEPPER_FILE: pepper version 1 is shorter than 32 bytes"
    );
}

#[test]
fn an_unsupported_database_url_is_named_once_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "mysql://kw:hunter2@db/keyward";
    let line = error_line(&serve_with(dir.path(), &[("KEYWARD_DATABASE_URL", url)]));
    assert!(
        line.starts_with("error: KEYWARD_DATABASE_URL: database URL "),
        "{line}"
    );
    assert!(line.contains("has no supported scheme"), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
fn an_unreadable_pepper_file_names_the_file_and_the_reason_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-pepper");
    let mut command = clean_command(dir.path());
    let output = command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("KEYWARD_JWT_SECRET", JWT_SECRET)
        .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEYWARD_PEPPER_FILE", &missing)
        .output()
        .unwrap();
    let line = error_line(&output);
    assert!(line.contains(&missing.display().to_string()), "{line}");
    assert!(line.contains("No such file or directory"), "{line}");
}

#[test]
fn a_postgresql_that_refuses_connections_is_named_with_its_address_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: taken, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://keyward:hunter2@127.0.0.1:{port}/keyward");
    let line = error_line(&serve_with(dir.path(), &[("KEYWARD_DATABASE_URL", &url)]));
    assert!(
        line.contains(&format!("PostgreSQL at 127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line.contains("Connection refused"), "{line}");
    assert!(!line.contains("pool timed out"), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
#[cfg_attr(
    not(keyward_postgres_tests),
    ignore = "PostgreSQL test: set KEYWARD_TEST_POSTGRES_URL to a server the tests may use"
)]
fn a_postgresql_without_the_database_or_the_role_says_so() {
    let base = std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap();
    // The query (sslmode, sslrootcert) holds slashes of its own: keep it aside.
    let (address, query) = base.split_once('?').unwrap_or((&base, ""));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let (server, _) = address.rsplit_once('/').unwrap();
    let dir = tempfile::tempdir().unwrap();

    let url = format!("{server}/keyward_no_such_database{query}");
    let line = error_line(&serve_with(dir.path(), &[("KEYWARD_DATABASE_URL", &url)]));
    assert!(
        line.contains("database \"keyward_no_such_database\" does not exist"),
        "{line}"
    );

    let url = base.replacen("://keyward@", "://keyward_no_such_role@", 1);
    let line = error_line(&serve_with(dir.path(), &[("KEYWARD_DATABASE_URL", &url)]));
    assert!(
        line.contains("role \"keyward_no_such_role\" does not exist"),
        "{line}"
    );
}

#[test]
fn a_taken_port_stops_serve_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = clean_command(dir.path())
        .args(["serve", "--bind", &address])
        .output()
        .unwrap();
    let line = error_line(&output);
    assert!(
        line.starts_with(&format!("error: cannot listen on {address}: ")),
        "{line}"
    );
    assert!(line.contains("KEYWARD_BIND"), "{line}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().count(),
        1,
        "nothing started before: {stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no database and no secrets file were created"
    );
}

#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    // `keyward openapi | head -c 100`: the document is far larger than a pipe holds, so
    // keyward is still writing when its reader goes away.
    let dir = tempfile::tempdir().unwrap();
    let mut child = clean_command(dir.path())
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(String::from_utf8_lossy(&head).starts_with('{'));
}
