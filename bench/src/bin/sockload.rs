//! A closed-loop HTTP/1.1 load generator that speaks over TCP or a Unix socket (wrk
//! cannot use a Unix socket), so the two are compared with one client: `--connections`
//! keep-alive connections on one thread, each sending the next request as soon as the
//! answer to the last has come, for `--seconds`. Requests are `POST
//! /api/api-keys/verify` cycling through the keys of `--keys` (one per line), built
//! before the run. Prints requests a second, the mean and p99 latency, and the
//! statuses that were not 200.
//!
//!   sockload --unix /run/keyward.sock --keys keys.txt --token T --connections 32 --seconds 8
//!   sockload --tcp 127.0.0.1:8080 …

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Parser)]
struct Args {
    /// A Unix socket to connect to.
    #[arg(long, conflicts_with = "tcp", required_unless_present = "tcp")]
    unix: Option<PathBuf>,
    /// A TCP address to connect to.
    #[arg(long)]
    tcp: Option<String>,
    /// Keys to verify, one per line.
    #[arg(long)]
    keys: PathBuf,
    /// The service token (bearer).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 8)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys = std::fs::read_to_string(&args.keys).context("reading --keys")?;
    let requests: Vec<Vec<u8>> = keys
        .lines()
        .filter(|line| !line.is_empty())
        .map(|key| {
            let body = format!(r#"{{"key":"{key}","permissions":["READ_GRAPH"]}}"#);
            format!(
                "POST /api/api-keys/verify HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                args.token,
                body.len()
            )
            .into_bytes()
        })
        .collect();
    if requests.is_empty() {
        bail!("--keys has no keys");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..args.connections {
            let requests = requests.clone();
            let unix = args.unix.clone();
            let tcp = args.tcp.clone();
            tasks.push(tokio::spawn(async move {
                match (unix, tcp) {
                    (Some(path), _) => {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        run(stream, &requests, i, until).await
                    }
                    (None, Some(address)) => {
                        let stream = tokio::net::TcpStream::connect(address).await?;
                        stream.set_nodelay(true)?;
                        run(stream, &requests, i, until).await
                    }
                    (None, None) => bail!("--unix or --tcp"),
                }
            }));
        }
        let mut all = Outcome::default();
        for task in tasks {
            let outcome = task.await??;
            all.latencies.extend(outcome.latencies);
            all.not_ok += outcome.not_ok;
        }
        anyhow::Ok(all)
    })?;
    let mut latencies = results.latencies;
    latencies.sort_unstable();
    let n = latencies.len().max(1);
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(u32::MAX);
    let p99 = latencies[(n * 99 / 100).min(n - 1)];
    println!(
        "req/s={:.0} mean={:.0}us p99={:.0}us not_200={}",
        latencies.len() as f64 / args.seconds as f64,
        mean.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        results.not_ok
    );
    Ok(())
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    not_ok: usize,
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    requests: &[Vec<u8>],
    first: usize,
    until: Instant,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut buffer = Vec::with_capacity(4096);
    let mut next = first;
    while Instant::now() < until {
        let started = Instant::now();
        stream.write_all(&requests[next % requests.len()]).await?;
        next += 1;
        let status = read_answer(&mut stream, &mut buffer).await?;
        outcome.latencies.push(started.elapsed());
        if status != 200 {
            outcome.not_ok += 1;
        }
    }
    Ok(outcome)
}

/// Reads one answer (head and `Content-Length` body); its status.
async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    buffer.clear();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end])?;
            let status: u16 = head.get(9..12).context("no status")?.parse()?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    bail!("the server closed the connection");
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            return Ok(status);
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
