//! Attacks that need a real socket (docs/RELIABILITY.md, "Hostile input"): slow and
//! idle connections, too many of them, `Expect: 100-continue` with a huge body, and
//! forward authentication's client address taken from the socket peer.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{clean_command, cli_in, http, start_server_with};

/// Reads until the server closes the connection (or `limit` passes); returns what it
/// sent and how long it took to close, `None` if it did not within `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => {
                let text = String::from_utf8_lossy(&received).into_owned();
                return (text, Some(started.elapsed()));
            }
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                let text = String::from_utf8_lossy(&received).into_owned();
                return (text, Some(started.elapsed()));
            }
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), None)
}

/// One response on a kept-alive connection: its status line and body.
fn exchange(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: keyward\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).expect("an answer");
        assert!(n > 0, "the connection closed before the answer");
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = content_length(head);
            if body.len() >= length {
                return head.lines().next().unwrap().to_owned();
            }
        }
    }
}

fn connect(address: &str) -> TcpStream {
    TcpStream::connect(address).unwrap()
}

#[test]
fn a_client_that_sends_nothing_or_trickles_its_headers_is_cut_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_server_with(dir.path(), &[("KEYWARD_HEADER_TIMEOUT", "1")]);

    let mut silent = connect(&server.address);
    let (sent, closed) = read_until_closed(&mut silent, Duration::from_secs(10));
    let closed = closed.expect("a silent connection is closed");
    assert!(closed < Duration::from_secs(4), "{closed:?}");
    assert_eq!(sent, "", "nothing is answered");

    // A header line every 300 ms never completes a request: still cut after ~1 s.
    let mut trickle = connect(&server.address);
    trickle.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut cut = false;
    for i in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        if trickle
            .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
            .is_err()
        {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        trickle
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        if matches!(trickle.read(&mut probe), Ok(0)) {
            cut = true;
            break;
        }
    }
    assert!(cut, "the trickling connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Blank lines are skipped before a request line: they are not a request's head.
    let mut blank = connect(&server.address);
    blank.write_all(b"\r\n\r\n\n\n").unwrap();
    let (_, closed) = read_until_closed(&mut blank, Duration::from_secs(10));
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(4)),
        "blank lines held the connection: {closed:?}"
    );
    // Nor on a kept-alive connection, after an answer.
    let mut kept = connect(&server.address);
    assert_eq!(exchange(&mut kept, "/healthz"), "HTTP/1.1 200 OK");
    kept.write_all(b"\r\n\r\n").unwrap();
    let (_, closed) = read_until_closed(&mut kept, Duration::from_secs(10));
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(4)),
        "blank lines held the kept-alive connection: {closed:?}"
    );
}

/// The orders in which a client may talk before it falls silent.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// One request sent as the connection opens.
    Immediately,
    /// One request, a moment after the connection opened.
    AfterDelay,
    /// Two requests in one write.
    Pipelined,
    /// A request, its answer, a pause, another request.
    TwoSequential,
    /// HTTP/1.0 asking to keep the connection alive.
    Http10KeepAlive,
}

/// Plays `order` on a new connection to `address` (a mix of routes: health, a 404,
/// the management API without a token), then waits in silence; returns how long
/// after the last answer the server closed the connection, if it did within `limit`.
fn silence_after(address: &str, order: Order, limit: Duration) -> Option<Duration> {
    let mut stream = connect(address);
    let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: keyward\r\n\r\n");
    let answers = match order {
        Order::Immediately => {
            stream.write_all(request("/healthz").as_bytes()).unwrap();
            1
        }
        Order::AfterDelay => {
            std::thread::sleep(Duration::from_millis(300));
            stream
                .write_all(request("/no-such-route").as_bytes())
                .unwrap();
            1
        }
        Order::Pipelined => {
            let two = request("/readyz") + &request("/api/api-keys");
            stream.write_all(two.as_bytes()).unwrap();
            2
        }
        Order::TwoSequential => {
            assert_eq!(exchange(&mut stream, "/healthz"), "HTTP/1.1 200 OK");
            std::thread::sleep(Duration::from_millis(300));
            stream.write_all(request("/healthz").as_bytes()).unwrap();
            1
        }
        Order::Http10KeepAlive => {
            stream
                .write_all(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap();
            1
        }
    };
    read_answers(&mut stream, answers);
    let (_, closed) = read_until_closed(&mut stream, limit);
    closed
}

/// Reads `count` whole answers (bodies by `Content-Length`).
fn read_answers(stream: &mut TcpStream, count: usize) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        let mut rest = text.as_str();
        let mut complete = 0;
        while let Some((head, after)) = rest.split_once("\r\n\r\n") {
            let length = content_length(head);
            if after.len() < length {
                break;
            }
            complete += 1;
            rest = &after[length..];
        }
        if complete >= count {
            return;
        }
        let n = stream.read(&mut buffer).expect("an answer");
        assert!(n > 0, "closed before {count} answers: {text}");
        received.extend_from_slice(&buffer[..n]);
    }
}

#[test]
fn after_its_last_answer_a_connection_closes_at_the_idle_timeout_in_any_order() {
    // Header timeout below, equal to and above the idle timeout, and the defaults'
    // ratio (10 s and 60 s) scaled down; each server plays every order at once.
    let cases = [("1", "3"), ("2", "2"), ("3", "1"), ("1", "6")];
    let dir = tempfile::tempdir().unwrap();
    let servers: Vec<_> = cases
        .iter()
        .map(|(header, idle)| {
            let home = dir.path().join(format!("{header}-{idle}"));
            std::fs::create_dir(&home).unwrap();
            let env = [
                ("KEYWARD_HEADER_TIMEOUT", *header),
                ("KEYWARD_IDLE_TIMEOUT", *idle),
            ];
            start_server_with(&home, &env).0
        })
        .collect();
    let orders = [
        Order::Immediately,
        Order::AfterDelay,
        Order::Pipelined,
        Order::TwoSequential,
        Order::Http10KeepAlive,
    ];
    let players: Vec<_> = servers
        .iter()
        .zip(cases)
        .flat_map(|(server, (header, idle))| {
            orders.map(|order| {
                let address = server.address.clone();
                let idle = Duration::from_secs(idle.parse().unwrap());
                let case = format!("{order:?}, header {header} s, idle {idle:?}");
                let player = std::thread::spawn(move || {
                    silence_after(&address, order, idle + Duration::from_secs(5))
                });
                (case, idle, player)
            })
        })
        .collect();
    for (case, idle, player) in players {
        let closed = player.join().unwrap();
        let closed = closed.unwrap_or_else(|| panic!("{case}: still open"));
        // Not before the idle timeout (less the socket's 100 ms read slices), and
        // within a small margin after it.
        assert!(
            closed + Duration::from_millis(150) >= idle
                && closed <= idle + Duration::from_millis(1500),
            "{case}: closed {closed:?} after the last answer"
        );
    }
}

#[test]
fn a_client_holding_every_place_with_idle_connections_cannot_lock_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_server_with(
        dir.path(),
        &[
            ("KEYWARD_MAX_OPEN_CONNECTIONS", "50"),
            ("KEYWARD_HEADER_TIMEOUT", "1"),
            ("KEYWARD_IDLE_TIMEOUT", "3"),
        ],
    );
    // The attack: every place taken by a connection that sent one request as it
    // opened, read the answer, and then keeps silent.
    let request = b"GET /healthz HTTP/1.1\r\nHost: keyward\r\n\r\n";
    let mut attackers: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = connect(&server.address);
            stream.write_all(request).unwrap();
            stream
        })
        .collect();
    for stream in &mut attackers {
        read_answers(stream, 1);
    }
    let started = Instant::now();
    let mut newcomer = connect(&server.address);
    newcomer.write_all(request).unwrap();
    newcomer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buffer = [0u8; 256];
    let n = newcomer
        .read(&mut buffer)
        .expect("the newcomer is answered");
    let waited = started.elapsed();
    assert!(
        String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buffer[..n])
    );
    assert!(
        waited <= Duration::from_millis(4500),
        "answered only after {waited:?}: the idle timeout is 3 s"
    );
    // The attacker's connections were closed by then, not answered again.
    for mut stream in attackers {
        let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(2));
        assert!(
            closed.is_some(),
            "an idle attacker connection is still open"
        );
    }
}

#[test]
fn past_the_connection_cap_new_connections_wait_and_established_ones_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_server_with(
        dir.path(),
        &[
            ("KEYWARD_MAX_OPEN_CONNECTIONS", "4"),
            ("KEYWARD_HEADER_TIMEOUT", "60"),
        ],
    );
    let mut established = connect(&server.address);
    assert_eq!(exchange(&mut established, "/healthz"), "HTTP/1.1 200 OK");
    let mut idle: Vec<TcpStream> = (0..3).map(|_| connect(&server.address)).collect();
    std::thread::sleep(Duration::from_millis(300));

    // The fifth waits in the backlog: no answer yet.
    let mut waiting = connect(&server.address);
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: keyward\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let mut buffer = [0u8; 256];
    assert!(waiting.read(&mut buffer).is_err(), "answered past the cap");

    // The established connection is served all the same.
    assert_eq!(exchange(&mut established, "/healthz"), "HTTP/1.1 200 OK");

    // One place frees up: the waiting connection is answered.
    drop(idle.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = waiting.read(&mut buffer).unwrap();
    assert!(
        String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buffer[..n])
    );
}

#[test]
fn with_no_descriptors_left_the_accept_loop_waits_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let keyward = env!("CARGO_BIN_EXE_keyward");
    // A low open-file limit and a cap above it: accepting fails with EMFILE.
    let mut child = clean_command(dir.path())
        .env("KEYWARD_MAX_OPEN_CONNECTIONS", "5000")
        .env("KEYWARD_HEADER_TIMEOUT", "3")
        .env("KEYWARD_BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn_with_limit(keyward, 128);
    let stderr = child.stderr.take().unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = address_tx.send(format!("127.0.0.1:{port}"));
            }
        }
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server reports its address");
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(&address).ok())
        .collect();
    assert!(flood.len() > 150, "{}", flood.len());
    std::thread::sleep(Duration::from_millis(500));
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let ticks = cpu(child.id()) - before;
    // 100 ticks a second: a spinning loop would use about 200 in 2 s.
    assert!(
        ticks < 40,
        "{ticks} ticks of CPU in 2 s while out of descriptors"
    );
    drop(flood);
    // Once the flood is gone (or timed out), the service answers again.
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = crate::common::try_http(&address, "GET", "/healthz", None, None) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no answer after the flood"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Spawning `keyward serve` with a soft open-file limit, through the shell's
/// `ulimit` (no unsafe code for setrlimit here).
trait SpawnWithLimit {
    fn spawn_with_limit(&mut self, binary: &str, files: u32) -> std::process::Child;
}

impl SpawnWithLimit for Command {
    fn spawn_with_limit(&mut self, binary: &str, files: u32) -> std::process::Child {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" serve"))
            .arg(binary);
        for (name, value) in self.get_envs() {
            match value {
                Some(value) => shell.env(name, value),
                None => shell.env_remove(name),
            };
        }
        if let Some(dir) = self.get_current_dir() {
            shell.current_dir(dir);
        }
        shell
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

#[test]
fn a_huge_declared_body_is_refused_at_once_and_before_100_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_server_with(dir.path(), &[]);
    for (length, expect) in [("70000", true), ("99999999999", false)] {
        let mut stream = connect(&server.address);
        let expectation = if expect {
            "Expect: 100-continue\r\n"
        } else {
            ""
        };
        write!(
            stream,
            "POST /api/api-keys/verify HTTP/1.1\r\nHost: keyward\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n{expectation}\r\n"
        )
        .unwrap();
        let started = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).expect("answered without the body");
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{length}: {answer}");
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[test]
fn forward_auth_counts_failures_by_the_socket_peer_or_the_forwarded_client() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_server_with(dir.path(), &[("KEYWARD_FAILED_VERIFY_LIMIT", "3")]);
    let admin = cli_in(dir.path(), &["token", "--admin"]);
    let forged = keyward_core::key::KeyFormat::default().generate();
    let ask = |forwarded: Option<&str>| -> u16 {
        let mut stream = connect(&server.address);
        let header = forwarded
            .map(|f| format!("X-Forwarded-For: {f}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /api/auth HTTP/1.1\r\nHost: keyward\r\nX-Keyward-Proxy-Token: {admin}\r\n\
             X-API-Key: {}\r\n{header}Connection: close\r\n\r\n",
            forged.expose()
        )
        .unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
        answer[9..12].parse().unwrap()
    };
    // No header at all: the peer (this test, on loopback) is the client, and limited.
    let codes: Vec<u16> = (0..5).map(|_| ask(None)).collect();
    assert_eq!(codes, [401, 401, 401, 429, 429]);
    // Entries that are not addresses count as the peer: still limited.
    for entry in ["foo", "unknown", ""] {
        assert_eq!(ask(Some(entry)), 429, "{entry:?}");
    }
    // A client named by the trusted (loopback) proxy, in any spelling, has its own count.
    let codes: Vec<u16> = ["7.7.7.7:1234", "7.7.7.7", "7.7.7.7", "7.7.7.7"]
        .iter()
        .map(|f| ask(Some(f)))
        .collect();
    assert_eq!(codes, [401, 401, 401, 429]);
    assert_eq!(ask(Some("[2001:db8::1]:443")), 401);
    // Entries a client put before the proxy's own are not the client.
    assert_eq!(ask(Some("2001:db8::1, 7.7.7.7")), 429);

    let (status, _) = http(&server.address, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
    let _ = json!({});
}

#[test]
fn with_no_trusted_proxies_forwarded_addresses_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_server_with(
        dir.path(),
        &[
            ("KEYWARD_FAILED_VERIFY_LIMIT", "2"),
            ("KEYWARD_TRUSTED_PROXIES", ""),
        ],
    );
    let admin = cli_in(dir.path(), &["token", "--admin"]);
    let mut codes = Vec::new();
    for i in 0..4 {
        let mut stream = connect(&server.address);
        write!(
            stream,
            "GET /api/auth HTTP/1.1\r\nHost: keyward\r\nX-Keyward-Proxy-Token: {admin}\r\n\
             X-API-Key: agpt_forged\r\nX-Forwarded-For: 198.51.100.{i}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
        codes.push(answer[9..12].parse::<u16>().unwrap());
    }
    assert_eq!(codes, [401, 401, 429, 429], "one client: the peer");
}

/// An answer head's `Content-Length`, 0 without one.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
