//! The header and idle timeouts of one connection.
//!
//! Three parts share one [`Clock`]:
//!
//! - [`Watched`] wraps the socket that hyper reads and writes. The first byte after
//!   an answer starts the next request's header timeout; the answer's bytes going out
//!   start (and move) the idle timeout.
//! - The service wrapper made by [`request_started`] marks the request as being
//!   handled when hyper hands it over: hyper knows where a head ends (blank lines
//!   before a request line, a body's bytes, a request already in its buffer behind
//!   another); the bytes alone did not tell, and a body drained after the answer once
//!   passed for a finished head and left the connection without a deadline.
//! - [`Guarded`] wraps the connection's future and owns the timer. After every poll
//!   of the connection it reads the deadline and registers the timer for it, and when
//!   the deadline has passed it ends the connection.
//!
//! The timer must not be left to the socket's own polls. hyper reads and writes in
//! an order of its own: a request that arrived whole with the connection was read
//! before any read came back pending, and the answer was written after the last
//! pending read. No poll of the timer was then made after the idle deadline was set,
//! nothing woke the connection, and an idle client held its place for ever (one
//! request, then silence). Polling the timer from the connection's future, after
//! each of its polls, arms the deadline whatever the order of reads and writes.
//!
//! While a request is handled, the request deadline of [`crate::http::observe`]
//! applies; the connection's own deadline is then that plus the idle timeout, a
//! ceiling that only a desynchronised state could reach.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::ConnectionLimits;

/// What a connection waits for, as far as its bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// A request's head: the header timeout runs.
    Head,
    /// The handler: a request is being handled (its own deadline applies, see
    /// [`crate::http::observe`]; this one is only a ceiling).
    Handler,
    /// The next request, after an answer: the idle timeout runs (from the last byte
    /// written, so it also bounds a client that stops reading the answer).
    NextRequest,
}

impl Waiting {
    fn from_u8(n: u8) -> Self {
        match n {
            0 => Self::Head,
            1 => Self::Handler,
            _ => Self::NextRequest,
        }
    }

    /// Why a connection in this state was closed.
    pub fn timed_out(self) -> &'static str {
        match self {
            Self::Head => "request headers not received in time",
            Self::Handler => "request handling passed its ceiling",
            Self::NextRequest => "idle connection timed out",
        }
    }
}

/// The running deadline, set by the socket, read by the connection's guard. Both are
/// polled by the one task that serves the connection: relaxed atomics suffice.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    /// Nanoseconds from `start` at which the running state times out.
    deadline: AtomicU64,
    waiting: AtomicU8,
}

impl Clock {
    fn new(start: Instant, header_timeout: std::time::Duration) -> Self {
        Self {
            start,
            deadline: AtomicU64::new(nanos(header_timeout)),
            waiting: AtomicU8::new(Waiting::Head as u8),
        }
    }

    fn set(&self, waiting: Waiting, within: std::time::Duration) {
        let from_start = nanos(self.start.elapsed()).saturating_add(nanos(within));
        self.deadline.store(from_start, Ordering::Relaxed);
        self.waiting.store(waiting as u8, Ordering::Relaxed);
    }

    pub fn waiting(&self) -> Waiting {
        Waiting::from_u8(self.waiting.load(Ordering::Relaxed))
    }

    /// When the running state times out.
    fn deadline(&self) -> Instant {
        self.start + std::time::Duration::from_nanos(self.deadline.load(Ordering::Relaxed))
    }
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A socket that tells its connection's [`Clock`] what the client is doing.
pub struct Watched<S> {
    stream: S,
    limits: ConnectionLimits,
    clock: Arc<Clock>,
}

/// What hyper writes before a request's body when the client asked for
/// `Expect: 100-continue`: not an answer.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Starts watching a new connection: its socket for hyper, and its clock for
/// [`Guarded`] and [`request_started`].
pub fn watch<S>(stream: S, limits: ConnectionLimits) -> (Watched<S>, Arc<Clock>) {
    let clock = Arc::new(Clock::new(Instant::now(), limits.header_timeout));
    let watched = Watched {
        stream,
        limits,
        clock: Arc::clone(&clock),
    };
    (watched, clock)
}

/// Called as hyper hands a request to the service: its head is complete, and it is
/// handled from now on (however it came: read just now, or waiting in hyper's buffer
/// behind the one before).
pub fn request_started(clock: &Clock, limits: &ConnectionLimits) {
    clock.set(Waiting::Handler, limits.handler_ceiling());
}

impl<S> Watched<S> {
    /// Bytes came in. After an answer, they begin the next request: its head must be
    /// complete within the header timeout (from its first byte, however it trickles
    /// in, blank lines included). Bytes of a head already begun, or of a body, change
    /// nothing.
    fn received(&self) {
        if self.clock.waiting() == Waiting::NextRequest {
            self.clock.set(Waiting::Head, self.limits.header_timeout);
        }
    }

    /// An answer is being written: the idle clock starts when the answer does, and
    /// moves with every byte that goes out, so it runs from the last byte written and
    /// also bounds a client that stops reading the answer. A write that cannot go out
    /// does not move it. An interim `100 Continue` alone is not an answer: the client
    /// is about to send its body.
    fn answering(&self, first: &[u8], total: usize, written: bool) {
        let interim = total == CONTINUE.len() && first == CONTINUE;
        let starts = self.clock.waiting() == Waiting::Handler;
        if (starts || written) && !interim {
            self.clock
                .set(Waiting::NextRequest, self.limits.idle_timeout);
        }
    }

    fn written(
        &self,
        first: &[u8],
        total: usize,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.answering(first, total, true);
        }
        result
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read
            && buf.filled().len() > before
        {
            self.received();
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.answering(data, data.len(), false);
        let result = Pin::new(&mut self.stream).poll_write(cx, data);
        self.written(data, data.len(), result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.first().map_or(&[][..], |b| &b[..]);
        let total = bufs.iter().map(|b| b.len()).sum();
        self.answering(first, total, false);
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.written(first, total, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A connection's future that ends when its [`Clock`]'s deadline passes.
pub struct Guarded<F> {
    connection: Pin<Box<F>>,
    clock: Arc<Clock>,
    /// Set to the clock's deadline after every poll of the connection; moving it
    /// later (an answer's idle deadline) is a compare-and-swap in Tokio's timer.
    timer: Pin<Box<Sleep>>,
}

/// How a guarded connection ended.
#[derive(Debug)]
pub enum Ended<E> {
    /// The connection's own end: closed, or an error.
    Finished(Result<(), E>),
    /// Its deadline passed while it waited for what `Waiting` says.
    TimedOut(Waiting),
}

impl<F> Guarded<F> {
    pub fn new(connection: F, clock: Arc<Clock>) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(clock.deadline()));
        Self {
            connection: Box::pin(connection),
            clock,
            timer,
        }
    }
}

impl<F, E> Future for Guarded<F>
where
    F: Future<Output = Result<(), E>>,
{
    type Output = Ended<E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(result) = self.connection.as_mut().poll(cx) {
            return Poll::Ready(Ended::Finished(result));
        }
        // The connection's poll may have moved the deadline: read it after the poll.
        let deadline = self.clock.deadline();
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ended::TimedOut(self.clock.waiting())),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
