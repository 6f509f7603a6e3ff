//! The header and idle timeouts of one connection.
//!
//! Two halves share one [`Clock`]:
//!
//! - [`Watched`] wraps the socket that hyper reads and writes. It follows the bytes
//!   (a request's head coming in, an answer going out) and sets the running deadline:
//!   the header timeout while a head arrives, none while the request is handled, the
//!   idle timeout from the last byte of an answer.
//! - [`Guarded`] wraps the connection's future and owns the timer. After every poll of
//!   the connection it reads the deadline and registers the timer for it, and when
//!   the deadline has passed it ends the connection.
//!
//! The timer must not be left to the socket's own polls. hyper reads and writes in
//! an order of its own: a request that arrived whole with the connection was read
//! before any read came back pending, and the answer was written after the last
//! pending read. No poll of the timer was then made after the idle deadline was set,
//! nothing woke the connection, and an idle client held its place for ever (one
//! request, then silence). Polling the timer from the connection's future, after
//! each of its polls, arms the deadline whatever the order of reads and writes.

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
    /// Nothing: a request is being handled (its own deadline applies, see
    /// [`super::super::observe`]).
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
            Self::Handler => "request handling timed out",
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

    fn handling(&self) {
        self.waiting
            .store(Waiting::Handler as u8, Ordering::Relaxed);
    }

    pub fn waiting(&self) -> Waiting {
        Waiting::from_u8(self.waiting.load(Ordering::Relaxed))
    }

    /// When the running state times out; `None` while a request is handled.
    fn deadline(&self) -> Option<Instant> {
        match self.waiting() {
            Waiting::Handler => None,
            _ => Some(
                self.start + std::time::Duration::from_nanos(self.deadline.load(Ordering::Relaxed)),
            ),
        }
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
    head: HeadSoFar,
}

/// How far a request's head has come. `started` once a byte other than a line break
/// came (blank lines before a request line are skipped by HTTP parsers, so they must
/// not count as a head's end), `line_start` right after a line break.
#[derive(Clone, Copy, Debug, Default)]
struct HeadSoFar {
    started: bool,
    line_start: bool,
}

/// Starts watching a new connection: its socket for hyper, and its clock for
/// [`Guarded`].
pub fn watch<S>(stream: S, limits: ConnectionLimits) -> (Watched<S>, Arc<Clock>) {
    let clock = Arc::new(Clock::new(Instant::now(), limits.header_timeout));
    let watched = Watched {
        stream,
        limits,
        clock: Arc::clone(&clock),
        head: HeadSoFar::default(),
    };
    (watched, clock)
}

impl<S> Watched<S> {
    /// Bytes of a request came in.
    fn received(&mut self, bytes: &[u8]) {
        match self.clock.waiting() {
            Waiting::Handler => return,
            Waiting::NextRequest => {
                // The next request begins: its head has the header timeout.
                self.head = HeadSoFar::default();
                self.clock.set(Waiting::Head, self.limits.header_timeout);
            }
            Waiting::Head => {}
        }
        if head_ends(&mut self.head, bytes) {
            self.clock.handling();
        }
    }

    /// An answer is being written: the idle clock starts when the answer does, and
    /// moves with every byte that goes out, so it runs from the last byte written and
    /// also bounds a client that stops reading the answer. A write that cannot go out
    /// does not move it. An interim `100 Continue` is not an answer: the client is
    /// about to send its body.
    fn answering(&self, data: &[u8], written: bool) {
        let starts = self.clock.waiting() == Waiting::Handler;
        if (starts || written) && !data.starts_with(b"HTTP/1.1 1") {
            self.clock
                .set(Waiting::NextRequest, self.limits.idle_timeout);
        }
    }

    fn written(&self, data: &[u8], result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.answering(data, true);
        }
        result
    }
}

/// Follows the bytes of a request's head; true once the empty line that ends it is
/// read. Every byte of every request's head passes here: the bytes are searched a
/// line at a time, not looked at one by one.
fn head_ends(head: &mut HeadSoFar, bytes: &[u8]) -> bool {
    // Any byte but `\r` starts the head and leaves the line's start behind.
    let text = |part: &[u8]| part.iter().any(|&byte| byte != b'\r');
    let mut rest = bytes;
    loop {
        let line_end = memchr::memchr(b'\n', rest);
        if text(&rest[..line_end.unwrap_or(rest.len())]) {
            head.started = true;
            head.line_start = false;
        }
        let Some(at) = line_end else {
            return false;
        };
        if head.started && head.line_start {
            *head = HeadSoFar::default();
            return true;
        }
        head.line_start = true;
        rest = &rest[at + 1..];
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read
            && buf.filled().len() > before
        {
            this.received(&buf.filled()[before..]);
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
        self.answering(data, false);
        let result = Pin::new(&mut self.stream).poll_write(cx, data);
        self.written(data, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.first().map_or(&[][..], |b| &b[..]);
        self.answering(first, false);
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.written(first, result)
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
        let timer = Box::pin(tokio::time::sleep_until(
            clock.deadline().unwrap_or_else(Instant::now),
        ));
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
        let Some(deadline) = self.clock.deadline() else {
            return Poll::Pending;
        };
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
