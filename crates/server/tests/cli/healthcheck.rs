//! `keyward healthcheck` as a container's health check runs it: a real process asking
//! a real server, or a socket that answers badly or not at all.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{clean_command, start_server};

/// The exit code and what it said: "ready" on stdout, "not ready" on stderr.
fn healthcheck(cwd: &std::path::Path, args: &[&str]) -> (Option<i32>, String, Output) {
    let output = clean_command(cwd)
        .arg("healthcheck")
        .args(args)
        .output()
        .unwrap();
    let said = if output.status.success() {
        assert!(output.stderr.is_empty(), "{output:?}");
        &output.stdout
    } else {
        assert!(output.stdout.is_empty(), "{output:?}");
        &output.stderr
    };
    let said = String::from_utf8_lossy(said).trim().to_owned();
    (output.status.code(), said, output)
}

/// A socket that answers every connection with `answer` (or never, for `None`).
fn fake_server(answer: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            match answer {
                Some(answer) => {
                    let _ = stream.write_all(answer.as_bytes());
                }
                // Held open, silent, until the process ends.
                None => std::mem::forget(stream),
            }
        }
    });
    address
}

#[test]
fn healthcheck_exits_0_for_a_ready_server_and_1_where_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    // Ready once its cache's warm-up at start has ended (a moment; longer on a busy
    // machine).
    let started = std::time::Instant::now();
    while crate::common::try_http(&server.address, "GET", "/readyz", None, None)
        .map(|(status, _)| status)
        .unwrap_or(0)
        != 200
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "never ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (code, stdout, _) = healthcheck(dir.path(), &["--bind", &server.address]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(stdout, format!("ready: http://{}/readyz", server.address));

    // As Docker users write it: the address alone asks /readyz there.
    for url in [
        format!("http://{}", server.address),
        format!("http://{}/", server.address),
    ] {
        let (code, stdout, _) = healthcheck(dir.path(), &["--url", &url]);
        assert_eq!(code, Some(0), "{url}: {stdout}");
        assert_eq!(stdout, format!("ready: http://{}/readyz", server.address));
    }

    let url = format!("http://{}/readyz", server.address);
    drop(server);
    let (code, stdout, _) = healthcheck(dir.path(), &["--url", &url]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with(&format!("not ready: {url} ")),
        "{stdout}"
    );
}

#[test]
fn healthcheck_reports_an_unready_answer_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let address = fake_server(Some(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Connection: close\r\n\r\n{\"status\":\"unavailable\",\"detail\":\"database unavailable\"}",
    ));
    let (code, stdout, _) = healthcheck(dir.path(), &["--bind", &address]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("answered 503"), "{stdout}");
    assert!(stdout.contains("database unavailable"), "{stdout}");
}

#[test]
fn healthcheck_gives_up_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let address = fake_server(None);
    let started = Instant::now();
    let (code, stdout, _) = healthcheck(dir.path(), &["--bind", &address, "--timeout", "1"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.ends_with("no answer within 1 s"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn healthcheck_needs_no_secret_and_touches_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let address = fake_server(Some("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}"));
    let (code, stdout, _) = healthcheck(dir.path(), &["--bind", &address]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file made"
    );

    let (code, _, output) = healthcheck(dir.path(), &["--url", "https://keyward.example/readyz"]);
    assert_eq!(code, Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("only http:// URLs"));
}
