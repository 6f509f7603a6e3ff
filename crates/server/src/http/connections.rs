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
//! applies instead. Errors accepting a connection (the descriptor limit, say) are
//! logged at most once a second and followed by a short pause, never a busy loop.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

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
/// finish for at most `grace`. Each request carries its peer as `ConnectInfo`.
pub async fn serve(
    listener: TcpListener,
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
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
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
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // The header and idle timeouts are the stream's (hyper's own header
            // timer would also run through idle keep-alive time).
            .header_read_timeout(None)
            .serve_connection(
                TokioIo::new(Watched::new(stream, limits)),
                TowerToHyperService::new(service),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
            drop(place);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!(
            "requests still running {} s after the signal; stopping without them",
            grace.as_secs()
        ),
    }
}

/// Where a connection is in its exchange, as far as the bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a request's head: the header timeout runs. `started` once a byte other
    /// than a line break came (blank lines before a request line are skipped by HTTP
    /// parsers, so they must not count as a head's end), `line_start` right after a
    /// line break.
    Head { started: bool, line_start: bool },
    /// The head is in; the request is being handled (the request deadline applies).
    Request,
    /// An answer was written; waiting for the next request: the idle timeout runs.
    Idle,
}

/// A TCP stream that ends itself when a client takes too long (see the module docs).
struct Watched {
    stream: TcpStream,
    limits: ConnectionLimits,
    phase: Phase,
    /// When the running phase times out.
    deadline: tokio::time::Instant,
    /// Wakes the connection at or before `deadline`. Resetting a timer on every read
    /// and write costs on the verification path, so it is moved only to make it
    /// earlier; when it fires early, it is set again to the real deadline.
    timer: Pin<Box<Sleep>>,
}

impl Watched {
    fn new(stream: TcpStream, limits: ConnectionLimits) -> Self {
        let deadline = tokio::time::Instant::now() + limits.header_timeout;
        Self {
            stream,
            limits,
            phase: Phase::Head {
                started: false,
                line_start: false,
            },
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn restart(&mut self, phase: Phase, within: Duration) {
        self.phase = phase;
        self.deadline = tokio::time::Instant::now() + within;
        if self.deadline < self.timer.deadline() {
            self.timer.as_mut().reset(self.deadline);
        }
    }

    /// Part of an answer was written: the idle clock restarts (it runs from the last
    /// byte written, and so also bounds a client that stops reading). An interim
    /// `100 Continue` is not an answer: the client is about to send its body.
    fn answered(&mut self, data: &[u8]) {
        if !data.starts_with(b"HTTP/1.1 1") {
            let within = self.limits.idle_timeout;
            self.restart(Phase::Idle, within);
        }
    }

    /// Follows the bytes of a request's head; true once the empty line that ends it
    /// is read.
    /// Every byte of every request's head passes here: the bytes are searched a line
    /// at a time, not looked at one by one.
    fn head_ends(started: &mut bool, line_start: &mut bool, bytes: &[u8]) -> bool {
        // Any byte but `\r` starts the head and leaves the line's start behind.
        let text = |part: &[u8]| part.iter().any(|&byte| byte != b'\r');
        let mut rest = bytes;
        loop {
            let line_end = memchr::memchr(b'\n', rest);
            if text(&rest[..line_end.unwrap_or(rest.len())]) {
                *started = true;
                *line_start = false;
            }
            let Some(at) = line_end else {
                return false;
            };
            if *started && *line_start {
                return true;
            }
            *line_start = true;
            rest = &rest[at + 1..];
        }
    }

    /// `Err(TimedOut)` once the running deadline has passed (none while a request is
    /// being handled); registers the waker otherwise.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.phase == Phase::Request {
            return Poll::Pending;
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            if tokio::time::Instant::now() >= self.deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    match self.phase {
                        Phase::Idle => "idle connection timed out",
                        _ => "request headers not received in time",
                    },
                ));
            }
            // Fired for an earlier deadline since moved on: wait for the real one.
            let deadline = self.deadline;
            self.timer.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    if this.phase == Phase::Idle {
                        let within = this.limits.header_timeout;
                        let head = Phase::Head {
                            started: false,
                            line_start: false,
                        };
                        this.restart(head, within);
                    }
                    if let Phase::Head {
                        mut started,
                        mut line_start,
                    } = this.phase
                    {
                        this.phase = if Self::head_ends(&mut started, &mut line_start, read) {
                            Phase::Request
                        } else {
                            Phase::Head {
                                started,
                                line_start,
                            }
                        };
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => this.poll_deadline(cx).map(Err),
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            Poll::Ready(Ok(written)) => {
                this.answered(data);
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => this.poll_deadline(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(written)) => {
                this.answered(bufs.first().map_or(&[][..], |b| &b[..]));
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => this.poll_deadline(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::Watched;

    fn ends(chunks: &[&[u8]]) -> bool {
        let (mut started, mut line_start) = (false, false);
        chunks
            .iter()
            .any(|chunk| Watched::head_ends(&mut started, &mut line_start, chunk))
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads_and_line_endings() {
        assert!(ends(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r\n"]));
        assert!(!ends(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n"]));
        assert!(ends(&[b"GET / HTTP/1.1\nHost: a\n\n"]));
        assert!(!ends(&[b"GET / HTTP/1.1\r\nX: \r\r\n"]));
    }

    #[test]
    fn blank_lines_before_a_request_line_do_not_end_a_head() {
        assert!(!ends(&[b"\r\n\r\n"]));
        assert!(!ends(&[b"\n\n\n\n", b"\r\n"]));
        assert!(ends(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]));
    }
}
