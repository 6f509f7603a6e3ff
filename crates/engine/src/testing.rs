//! A throw-away Redis server for tests (feature `testing`): Debian's `redis-server`,
//! named by `KEYWARD_TEST_REDIS`, started on a free loopback port with nothing
//! written to disk, and stopped (SIGTERM, as it expects) when the value is dropped.
//! It can be stopped and started again on the same port, for outage tests.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the `redis-server` binary tests may start.
pub const REDIS_ENV: &str = "KEYWARD_TEST_REDIS";

/// Why Redis tests are skipped when the variable is not set.
pub const REDIS_SKIP_REASON: &str =
    "shared rate limits: set KEYWARD_TEST_REDIS to a redis-server binary (Debian's redis-server)";

pub struct RedisServer {
    port: u16,
    /// With TLS: the TLS port, and the certificate and key files.
    tls: Option<(u16, String, String)>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    ///
    /// # Panics
    /// If `KEYWARD_TEST_REDIS` is not set or the server does not start: a test that
    /// asked for Redis must not pass without it.
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            tls: None,
            child: None,
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        server.resume();
        server
    }

    /// [`RedisServer::start`], also accepting TLS on a second port with this
    /// certificate and key (PEM files); the plain port stays for [`RedisServer::command`].
    pub fn start_tls(certificate: &str, key: &str) -> Self {
        let mut server = Self {
            port: free_port(),
            tls: Some((free_port(), certificate.to_owned(), key.to_owned())),
            child: None,
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        server.resume();
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `rediss://127.0.0.1:TLS_PORT/0`, for a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        let (port, _, _) = self.tls.as_ref()?;
        Some(format!("rediss://127.0.0.1:{port}/0"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server again on its port (after [`RedisServer::stop`]), empty.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let binary = std::env::var(REDIS_ENV).unwrap_or_else(|_| panic!("{REDIS_SKIP_REASON}"));
        let mut command = Command::new(&binary);
        if let Some((port, certificate, key)) = &self.tls {
            command
                .args(["--tls-port", &port.to_string()])
                .args(["--tls-cert-file", certificate, "--tls-key-file", key])
                .args(["--tls-auth-clients", "no"]);
        }
        let child = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("{binary}: {err}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).is_none() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM; it exits without saving, having nothing to save).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Runs one command over a plain RESP connection and returns the reply's text
    /// (simple strings, integers and bulk strings; arrays as their elements, one per
    /// line), or `None` when the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        read_reply(&mut reader)
    }

    /// One statistic from `INFO commandstats`, e.g. `("evalsha", "calls")`.
    pub fn command_stat(&self, command: &str, field: &str) -> u64 {
        let info = self.command(&["INFO", "commandstats"]).unwrap_or_default();
        let prefix = format!("cmdstat_{command}:");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|stats| {
                stats.split(',').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    (name == field).then(|| value.parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    }
}

fn read_reply(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let line = line.trim_end();
    let (kind, rest) = line.split_at_checked(1)?;
    match kind {
        "+" | ":" => Some(rest.to_owned()),
        "-" => Some(format!("ERROR {rest}")),
        "$" => {
            let Ok(len) = rest.parse::<usize>() else {
                return Some(String::new()); // $-1: nil
            };
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).ok()?;
            body.truncate(len);
            Some(String::from_utf8_lossy(&body).into_owned())
        }
        "*" => {
            let count = rest.parse::<i64>().ok()?.max(0);
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(read_reply(reader)?);
            }
            Some(items.join("\n"))
        }
        _ => None,
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
