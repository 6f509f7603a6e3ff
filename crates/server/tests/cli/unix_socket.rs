//! `keyward serve` on a Unix domain socket (`KEYWARD_BIND=unix:/path`): its file's
//! mode, one server per file, what a killed server leaves, and the file going with the
//! server.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{clean_command, cli_in, exchange};

/// One HTTP/1.1 request over the socket at `socket`: the status and the JSON body.
pub fn unix_http(
    socket: &Path,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    exchange(stream, "localhost", method, path, bearer, body).unwrap()
}

/// A `keyward serve` on a Unix socket; killed if a test ends without stopping it.
#[derive(Debug)]
pub struct UnixServer(Option<Child>);

impl UnixServer {
    /// Sends `signal` (`-TERM`, `-KILL`) and waits; after SIGTERM it must exit 0.
    pub fn stop(mut self, signal: &str) {
        let mut child = self.0.take().unwrap();
        let pid = child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        if signal == "-TERM" {
            assert!(status.success(), "{status:?}");
        }
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `keyward serve --bind unix:SOCKET` in `cwd`; returns once it says it listens, or
/// with its log when it exits first.
pub fn serve(cwd: &Path, socket: &Path) -> Result<UnixServer, String> {
    let mut child = clean_command(cwd)
        .args(["serve", "--bind", &format!("unix:{}", socket.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let listening = line.contains("keyward is listening");
                log.push_str(&line);
                log.push('\n');
                if listening {
                    let server = UnixServer(Some(child));
                    assert!(log.contains(&format!("unix:{}", socket.display())), "{log}");
                    return Ok(server);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // The log ended: the server exited.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "exited 0 without listening: {log}");
    Err(log)
}

#[test]
fn a_unix_socket_serves_with_mode_0660_one_server_at_a_time_and_goes_with_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("keyward.sock");
    let server = serve(dir.path(), &socket).unwrap();

    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let others: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(".keyward-"))
        .collect();
    assert!(others.is_empty(), "temporary names left: {others:?}");

    // The whole API answers over it.
    assert_eq!(unix_http(&socket, "GET", "/healthz", None, None).0, 200);
    let alice = cli_in(dir.path(), &["token", "--user", "alice"]);
    let (status, created) = unix_http(
        &socket,
        "POST",
        "/api/api-keys",
        Some(&alice),
        Some(&json!({"name": "over the socket", "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(status, 200, "{created}");
    let admin = cli_in(dir.path(), &["token", "--admin"]);
    let key = created["plain_text_key"].as_str().unwrap();
    let (_, verdict) = unix_http(
        &socket,
        "POST",
        "/api/api-keys/verify",
        Some(&admin),
        Some(&json!({"key": key, "permissions": ["READ_GRAPH"]})),
    );
    assert_eq!(verdict["code"], "VALID", "{verdict}");

    // The health check finds it where KEYWARD_BIND says.
    let bind = format!("unix:{}", socket.display());
    let checked = cli_in(dir.path(), &["healthcheck", "--bind", &bind]);
    assert_eq!(checked, format!("ready: {bind} /readyz"));

    // A second server is refused while the first holds the file, which keeps serving.
    let refused = serve(dir.path(), &socket).unwrap_err();
    assert!(refused.contains("another server"), "{refused}");
    assert_eq!(unix_http(&socket, "GET", "/healthz", None, None).0, 200);

    // Stopped, it takes its file with it.
    server.stop("-TERM");
    assert!(!socket.exists(), "the socket file outlived the server");
    let output = clean_command(dir.path())
        .args(["healthcheck", "--bind", &bind])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[test]
fn a_file_left_by_a_killed_server_is_replaced_and_anything_else_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("k.sock");
    let server = serve(dir.path(), &socket).unwrap();
    server.stop("-KILL");
    assert!(socket.exists(), "SIGKILL leaves the file");
    let server = serve(dir.path(), &socket).unwrap();
    assert_eq!(unix_http(&socket, "GET", "/healthz", None, None).0, 200);
    server.stop("-TERM");

    // Not a socket: refused, and the file is as it was.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let refused = serve(dir.path(), &file).unwrap_err();
    assert!(refused.contains("not a socket"), "{refused}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");

    // A directory every user may write to (as /tmp): another user could put their own
    // socket there once keyward stops, so it is refused.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let refused = serve(dir.path(), &shared.join("k.sock")).unwrap_err();
    assert!(refused.contains("writable by every user"), "{refused}");

    // A relative path is refused before anything starts.
    let output = clean_command(dir.path())
        .args(["serve", "--bind", "unix:k.sock"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("absolute path"));

    // A directory that does not exist: said plainly.
    let missing = dir.path().join("no/such/dir/k.sock");
    let refused = serve(dir.path(), &missing).unwrap_err();
    assert!(refused.contains("cannot listen on unix:"), "{refused}");

    // A path too long for a socket address is refused before anything starts.
    let long = dir.path().join("x".repeat(120));
    let output = clean_command(dir.path())
        .args(["serve", "--bind", &format!("unix:{}", long.display())])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("at most 107 bytes"), "{said}");
}

#[test]
fn servers_starting_at_once_on_a_left_socket_leave_one_listening_and_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("k.sock");
    serve(dir.path(), &socket).unwrap().stop("-KILL");
    assert!(socket.exists());
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (cwd, socket) = (dir.path().to_owned(), socket.clone());
            std::thread::spawn(move || serve(&cwd, &socket))
        })
        .collect();
    let mut listening = Vec::new();
    for start in starts {
        match start.join().unwrap() {
            Ok(server) => listening.push(server),
            Err(refused) => assert!(refused.contains("another server"), "{refused}"),
        }
    }
    assert_eq!(listening.len(), 1, "exactly one server holds the socket");
    assert_eq!(unix_http(&socket, "GET", "/healthz", None, None).0, 200);
    listening.pop().unwrap().stop("-TERM");
    assert!(!socket.exists());
}
