//! The timeouts of one connection, in every order of reads and writes, on Tokio's
//! paused clock: hyper serves a router over an in-memory stream, so the defaults
//! (10 s and 60 s) are tested as they are, and every close is timed exactly.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use super::super::{ConnectionLimits, http1};
use super::{Ended, Guarded, Waiting};

/// `/now` answers in the poll that reads the request; `/later` only after the
/// handler has waited once, so the answer is written from another poll; `/slow`
/// takes 5 s; `/big` answers 64 KiB.
fn router() -> Router {
    Router::new()
        .route("/now", get(|| async { "ok" }))
        .route(
            "/later",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                "ok"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "ok"
            }),
        )
        .route("/big", get(|| async { "x".repeat(64 * 1024) }))
}

const PEER: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// Serves one connection like `serve` does; the client's end is returned.
fn connect(limits: ConnectionLimits) -> (DuplexStream, tokio::task::JoinHandle<Waiting>) {
    connect_with_buffer(limits, 64 * 1024)
}

fn connect_with_buffer(
    limits: ConnectionLimits,
    buffer: usize,
) -> (DuplexStream, tokio::task::JoinHandle<Waiting>) {
    let (client, server) = tokio::io::duplex(buffer);
    let (connection, clock) = http1(server, router(), PEER, limits);
    let connection = Guarded::new(connection, clock);
    let served = tokio::spawn(async move {
        match connection.await {
            Ended::TimedOut(waiting) => waiting,
            Ended::Finished(result) => panic!("the connection ended by itself: {result:?}"),
        }
    });
    (client, served)
}

/// Reads `answers` whole answers (`Content-Length` bodies); each must be a 200.
async fn read_answers(client: &mut DuplexStream, answers: usize) {
    let mut received = Vec::new();
    let mut seen = 0;
    while seen < answers {
        let mut buffer = [0u8; 4096];
        let n = client.read(&mut buffer).await.unwrap();
        assert!(n > 0, "closed before {answers} answers");
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        seen = text.matches("HTTP/1.").count();
        if seen == answers && !text.ends_with("ok") {
            seen -= 1;
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert_eq!(text.matches(" 200 OK").count(), answers, "{text}");
}

/// How long after `since` the server closed the connection (an hour of the paused
/// clock at most: a connection that is never closed fails here, not by hanging).
async fn closed_after(client: &mut DuplexStream, since: Instant) -> Duration {
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3600), client.read(&mut buffer)).await;
    let n = read
        .expect("the connection is still open after an hour")
        .unwrap_or(0);
    assert_eq!(n, 0, "more bytes came instead of the close");
    since.elapsed()
}

#[derive(Clone, Copy, Debug)]
enum Order {
    /// The request is sent as the connection opens.
    Immediately,
    /// The request comes a moment after the connection opened.
    AfterDelay,
    /// Two requests in one write.
    Pipelined,
    /// A request, its answer, a pause, another request.
    TwoSequential,
    /// HTTP/1.0 asking to keep the connection alive.
    Http10KeepAlive,
}

const ORDERS: [Order; 5] = [
    Order::Immediately,
    Order::AfterDelay,
    Order::Pipelined,
    Order::TwoSequential,
    Order::Http10KeepAlive,
];

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: keyward\r\n\r\n")
}

/// Plays `order` on a new connection; returns when the last answer was read.
async fn play(client: &mut DuplexStream, order: Order, path: &str, header: Duration) -> Instant {
    match order {
        Order::Immediately => {
            client.write_all(request(path).as_bytes()).await.unwrap();
            read_answers(client, 1).await;
        }
        Order::AfterDelay => {
            tokio::time::sleep(header / 3).await;
            client.write_all(request(path).as_bytes()).await.unwrap();
            read_answers(client, 1).await;
        }
        Order::Pipelined => {
            let two = format!("{}{}", request(path), request(path));
            client.write_all(two.as_bytes()).await.unwrap();
            read_answers(client, 2).await;
        }
        Order::TwoSequential => {
            client.write_all(request(path).as_bytes()).await.unwrap();
            read_answers(client, 1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.write_all(request(path).as_bytes()).await.unwrap();
            read_answers(client, 1).await;
        }
        Order::Http10KeepAlive => {
            let head = format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            client.write_all(head.as_bytes()).await.unwrap();
            read_answers(client, 1).await;
        }
    }
    Instant::now()
}

const SECOND: Duration = Duration::from_secs(1);

/// One connection's limits (the cap plays no part here).
fn limits(header_timeout: Duration, idle_timeout: Duration) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout,
        idle_timeout,
        max_open: 1,
    }
}

/// Header timeout below, equal to and above the idle timeout, and the defaults.
fn timeouts() -> [(Duration, Duration); 4] {
    [
        (SECOND, 3 * SECOND),
        (2 * SECOND, 2 * SECOND),
        (3 * SECOND, SECOND),
        (
            ConnectionLimits::DEFAULT_HEADER_TIMEOUT,
            ConnectionLimits::DEFAULT_IDLE_TIMEOUT,
        ),
    ]
}

#[tokio::test(start_paused = true)]
async fn after_its_last_answer_every_connection_closes_at_the_idle_timeout_in_any_order() {
    for (header_timeout, idle_timeout) in timeouts() {
        for order in ORDERS {
            for path in ["/now", "/later"] {
                let limits = limits(header_timeout, idle_timeout);
                let (mut client, served) = connect(limits);
                let answered = play(&mut client, order, path, header_timeout).await;
                let closed = closed_after(&mut client, answered).await;
                let case =
                    format!("{order:?} {path}, header {header_timeout:?}, idle {idle_timeout:?}");
                assert!(
                    closed >= idle_timeout && closed <= idle_timeout + Duration::from_millis(50),
                    "{case}: closed {closed:?} after the last answer"
                );
                assert_eq!(served.await.unwrap(), Waiting::NextRequest, "{case}");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_or_trickling_connection_closes_at_the_header_timeout() {
    for (header_timeout, idle_timeout) in timeouts() {
        let limits = limits(header_timeout, idle_timeout);
        let (mut silent, served) = connect(limits);
        let opened = Instant::now();
        let closed = closed_after(&mut silent, opened).await;
        assert_eq!(closed, header_timeout);
        assert_eq!(served.await.unwrap(), Waiting::Head);

        // A header line every tenth of the timeout never completes a head.
        let (mut trickle, served) = connect(limits);
        let opened = Instant::now();
        trickle.write_all(b"GET /now HTTP/1.1\r\n").await.unwrap();
        let trickling = tokio::spawn(async move {
            for i in 0.. {
                tokio::time::sleep(header_timeout / 10).await;
                let line = format!("X-Slow-{i}: a\r\n");
                if trickle.write_all(line.as_bytes()).await.is_err() {
                    return trickle;
                }
            }
            unreachable!()
        });
        assert_eq!(served.await.unwrap(), Waiting::Head);
        assert!(opened.elapsed() <= header_timeout + Duration::from_millis(1));
        drop(trickling.await.unwrap());

        // After an answer, the next head has the header timeout from its first byte.
        let (mut kept, served) = connect(limits);
        kept.write_all(request("/now").as_bytes()).await.unwrap();
        read_answers(&mut kept, 1).await;
        kept.write_all(b"GET /now HTTP/1.1\r\n").await.unwrap();
        let started = Instant::now();
        let closed = closed_after(&mut kept, started).await;
        assert_eq!(closed, header_timeout);
        assert_eq!(served.await.unwrap(), Waiting::Head);
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_the_answer_is_closed_at_the_idle_timeout() {
    // An answer bigger than the stream's buffer piles up unread.
    let limits = limits(SECOND, 3 * SECOND);
    let (mut client, served) = connect_with_buffer(limits, 1024);
    client.write_all(request("/big").as_bytes()).await.unwrap();
    let started = Instant::now();
    assert_eq!(served.await.unwrap(), Waiting::NextRequest);
    let closed = started.elapsed();
    // From the last byte that went out (at once), not earlier and not later.
    assert!(
        (3 * SECOND..=3 * SECOND + Duration::from_millis(1)).contains(&closed),
        "{closed:?}"
    );
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn blank_lines_before_a_request_line_do_not_hold_the_connection() {
    let limits = limits(SECOND, 3 * SECOND);
    let (mut client, served) = connect(limits);
    client.write_all(b"\r\n\r\n\n\n").await.unwrap();
    let opened = Instant::now();
    assert_eq!(closed_after(&mut client, opened).await, SECOND);
    assert_eq!(served.await.unwrap(), Waiting::Head);
}

/// Sends `sent` on a new connection, reads `answers` answers, then keeps silent:
/// how long after the last answer the connection closed, and what it waited for.
async fn silence_after(
    limits: ConnectionLimits,
    sent: &str,
    answers: usize,
) -> (Duration, Waiting) {
    let (mut client, served) = connect(limits);
    client.write_all(sent.as_bytes()).await.unwrap();
    read_answers(&mut client, answers).await;
    let answered = Instant::now();
    let closed = closed_after(&mut client, answered).await;
    (closed, served.await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_body_the_handler_did_not_read_cannot_pass_for_a_request() {
    // The answer goes out before the body is read; hyper then drains the rest of the
    // body, blank lines and all. That is not a request: the connection still closes.
    let body = "a\n\n".repeat(4000);
    let sent = format!(
        "GET /now HTTP/1.1\r\nHost: keyward\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (closed, _) = silence_after(limits(SECOND, 3 * SECOND), &sent, 1).await;
    assert!(closed <= 3 * SECOND, "{closed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_behind_another_is_not_cut_while_it_is_handled() {
    // The second request is in hyper's buffer when the first is answered: it runs for
    // 5 s, longer than the idle timeout, and is still answered.
    let two = format!("{}{}", request("/now"), request("/slow"));
    let closed = silence_after(limits(SECOND, SECOND), &two, 2).await;
    assert_eq!(closed, (SECOND, Waiting::NextRequest));
}

#[tokio::test(start_paused = true)]
async fn an_answer_sent_with_its_100_continue_still_starts_the_idle_timeout() {
    // The body follows at once, without waiting for the interim answer.
    let sent =
        "GET /now HTTP/1.1\r\nHost: keyward\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
    let closed = silence_after(limits(SECOND, 2 * SECOND), sent, 1).await;
    assert_eq!(closed, (2 * SECOND, Waiting::NextRequest));
}
