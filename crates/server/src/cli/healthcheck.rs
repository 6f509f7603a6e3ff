//! `keyward healthcheck`: asks a running keyward whether it is ready, and answers with
//! the exit status, for health checks where no curl is at hand (a distroless image's
//! `HEALTHCHECK`, a service manager). It needs no secret and no database: only the
//! address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::output::say;
use crate::flags::Flags;
use crate::http::listener::Bind;

/// What is asked when no path is given.
const READYZ: &str = "/readyz";

/// The most of an answer that is read: a status line, headers and a short body.
const MAX_ANSWER: u64 = 16 * 1024;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The keyward to ask: `http://host:port` asks its `/readyz`; a URL with a path
    /// (`http://host:port/path`) asks that path. Default: `/readyz` on the address
    /// `KEYWARD_BIND` names (its Unix socket, for unix:/path), on loopback when that is
    /// a wildcard (0.0.0.0, ::).
    #[arg(long)]
    url: Option<String>,
    /// Seconds to wait for the whole answer.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
}

/// Where to ask: the address to connect to, the `Host` header, the path; over a Unix
/// socket, its path.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    path: String,
    socket: Option<PathBuf>,
}

impl Target {
    /// `/readyz` where the server listens.
    fn local(bind: &Bind) -> Self {
        match bind {
            Bind::Tcp(address) => Self::on_address(*address),
            Bind::Unix(socket) => Self {
                host: "localhost".into(),
                port: 80,
                path: READYZ.into(),
                socket: Some(socket.clone()),
            },
        }
    }

    /// `/readyz` on a TCP address.
    fn on_address(bind: SocketAddr) -> Self {
        let ip = match bind.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let host = match ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Self {
            host,
            port: bind.port(),
            path: READYZ.into(),
            socket: None,
        }
    }

    fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("{url:?}: only http:// URLs (keyward serves plain HTTP behind its proxy)")
        })?;
        // `http://host:port` (or with a bare `/`), as Docker health checks are
        // written: the server's readiness, not its root page.
        let (authority, path) = match rest.find('/') {
            Some(i) if rest.len() > i + 1 => (&rest[..i], &rest[i..]),
            Some(i) => (&rest[..i], READYZ),
            None => (rest, READYZ),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("{url:?}: the port is not a number from 1 to 65535"))?;
                (host, port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() || host.contains(['@', ' ']) || path.contains([' ', '\r', '\n']) {
            return Err(format!("{url:?}: not an http://host:port/path URL"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            socket: None,
        })
    }

    fn connect_to(&self) -> (String, u16) {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host.to_owned(), self.port)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.socket {
            Some(socket) => write!(f, "unix:{} {}", socket.display(), self.path),
            None => write!(f, "http://{}:{}{}", self.host, self.port, self.path),
        }
    }
}

pub async fn run(flags: &Flags, args: &HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let target = match &args.url {
        Some(url) => Target::parse(url).map_err(|e| anyhow::anyhow!("--url: {e}"))?,
        None => Target::local(&flags.bind),
    };
    let limit = Duration::from_secs(args.timeout);
    let verdict = match tokio::time::timeout(limit, ask(&target)).await {
        Ok(Ok((200, _))) => return ready(&target),
        Ok(Ok((status, body))) => format!("answered {status}: {body}"),
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer within {} s", args.timeout),
    };
    // On stderr, where a container runtime keeps a failed check's output.
    eprintln!("not ready: {target} {verdict}");
    Ok(ExitCode::FAILURE)
}

fn ready(target: &Target) -> anyhow::Result<ExitCode> {
    say!("ready: {target}");
    Ok(ExitCode::SUCCESS)
}

/// One GET; the status and the start of the body, on one line.
async fn ask(target: &Target) -> std::io::Result<(u16, String)> {
    match &target.socket {
        Some(socket) => exchange(UnixStream::connect(socket).await?, target).await,
        None => exchange(TcpStream::connect(target.connect_to()).await?, target).await,
    }
}

async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    target: &Target,
) -> std::io::Result<(u16, String)> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: keyward-healthcheck\r\n\
         Connection: close\r\n\r\n",
        target.path, target.host, target.port
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("the answer is not HTTP"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((status, body.chars().take(300).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_asks_readyz_on_loopback_for_a_wildcard_bind() {
        let local = |bind: &str| Target::local(&bind.parse().unwrap()).to_string();
        assert_eq!(local("0.0.0.0:8080"), "http://127.0.0.1:8080/readyz");
        assert_eq!(local("[::]:9000"), "http://[::1]:9000/readyz");
        assert_eq!(local("10.0.0.5:8081"), "http://10.0.0.5:8081/readyz");
        assert_eq!(local("unix:/run/k.sock"), "unix:/run/k.sock /readyz");
    }

    #[test]
    fn a_url_is_taken_apart_or_refused_with_the_reason() {
        let target = Target::parse("http://[::1]:8080/readyz").unwrap();
        assert_eq!(target.connect_to(), ("::1".to_owned(), 8080));
        for url in ["http://localhost", "http://localhost/"] {
            assert_eq!(
                Target::parse(url).unwrap().to_string(),
                "http://localhost:80/readyz",
                "{url}: no path asks readiness"
            );
        }
        assert_eq!(
            Target::parse("http://k:8080/healthz").unwrap().path,
            "/healthz"
        );
        assert!(
            Target::parse("https://k.example/readyz")
                .unwrap_err()
                .contains("plain HTTP")
        );
        assert!(
            Target::parse("http://k:99999/")
                .unwrap_err()
                .contains("port")
        );
        assert!(Target::parse("http://u@k/").is_err());
        assert!(Target::parse("http://k/a b").is_err());
    }
}
