//! Serving connections: how long a client may take, how many may be open, and who the
//! peer is.
//!
//! `axum::serve` holds a connection for as long as the client keeps it: a socket that
//! sends nothing, one that trickles a header line every few seconds, and an idle
//! keep-alive connection were never closed, and a thousand of them exhausted the
//! process's file descriptors. Here each connection has:
//!
//! - a **header timeout**: from the connection's start, or from the first byte of a
//!   request after an idle spell, the request's head must be complete within
//!   `header_timeout`, however it trickles in;
//! - an **idle timeout**: after the last byte of an answer, a keep-alive connection
//!   that sends nothing (or a client that stops reading the answer) is closed after
//!   `idle_timeout`;
//! - a place among at most `max_open` connections: past it, new connections wait in
//!   the kernel's backlog until one closes, and established ones are not touched.
//!
//! While a request is being handled, the request deadline of [`super::observe`]
//! applies instead. How the two timeouts are kept is in [`watched`]. Errors accepting
//! a connection (the descriptor limit, say) are logged at most once a second and
//! followed by a short pause, never a busy loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use self::watched::{Ended, Guarded};
use super::listener::{Listener, UNIX_PEER};

mod watched;

/// The bounds every connection is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_open: usize,
}

impl ConnectionLimits {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

    /// Three quarters of the process's open-file limit (the rest is for the database,
    /// the listener and logs), between 64 and 10,000; 1,024 where the limit is unknown.
    pub fn default_max_open() -> usize {
        let soft = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|n| n.parse::<usize>().ok())
            });
        soft.map_or(1024, |n| (n / 4 * 3).clamp(64, 10_000))
    }
}

impl ConnectionLimits {
    /// The longest a connection may stay with a request being handled: the request's
    /// own deadline, then the time its answer may take to go out. Only a state out of
    /// step with hyper's would reach it.
    pub fn handler_ceiling(&self) -> Duration {
        super::observe::REQUEST_TIMEOUT + self.idle_timeout
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_open: Self::default_max_open(),
        }
    }
}

/// A pause after a failed accept: the error (most often "too many open files") lasts
/// until connections close, and retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests
/// finish for at most `grace`. Each request carries its peer as `ConnectInfo` (over a
/// Unix socket, [`UNIX_PEER`]).
pub async fn serve(
    listener: Listener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let places = Arc::new(Semaphore::new(limits.max_open));
    let graceful = GracefulShutdown::new();
    let mut last_warning: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => place.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = accept(&listener) => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %err, "accepting a connection failed; pausing");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match accepted {
            Accepted::Tcp(stream, peer) => {
                let _ = stream.set_nodelay(true);
                spawn(stream, peer, &router, limits, &graceful, place);
            }
            Accepted::Unix(stream) => spawn(stream, UNIX_PEER, &router, limits, &graceful, place),
        }
    }
    // A Unix socket's file goes with it: no new client finds it.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!(
            "requests still running {} s after the signal; stopping without them",
            grace.as_secs()
        ),
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) => listener
            .accept()
            .await
            .map(|(stream, peer)| Accepted::Tcp(stream, peer)),
        Listener::Unix(listener, _) => listener
            .accept()
            .await
            .map(|(stream, _)| Accepted::Unix(stream)),
    }
}

/// Serves one connection on a task of its own, holding its `place` until it ends.
fn spawn<S>(
    stream: S,
    peer: SocketAddr,
    router: &Router,
    limits: ConnectionLimits,
    graceful: &GracefulShutdown,
    place: tokio::sync::OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (connection, clock) = http1(stream, router.clone(), peer, limits);
    let connection = Guarded::new(graceful.watch(connection), clock);
    tokio::spawn(async move {
        match connection.await {
            Ended::Finished(Ok(())) => {}
            Ended::Finished(Err(err)) => {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
            Ended::TimedOut(waiting) => {
                tracing::debug!(%peer, "{}; closed", waiting.timed_out());
            }
        }
        drop(place);
    });
}

/// HTTP/1 over a watched stream, for one client at `peer`: each request carries the
/// peer as `ConnectInfo`, and tells the connection's clock it is being handled. The
/// header and idle timeouts are the clock's: hyper's own header timer would also run
/// through idle keep-alive time.
fn http1<S>(
    stream: S,
    router: Router,
    peer: SocketAddr,
    limits: ConnectionLimits,
) -> (
    impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error>,
    Arc<watched::Clock>,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (stream, clock) = watched::watch(stream, limits);
    let started = Arc::clone(&clock);
    let service = router.map_request(move |mut request: Request<Incoming>| {
        watched::request_started(&started, &limits);
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    (connection, clock)
}
