//! Connections over real loopback sockets: released while idle, served again on their next
//! byte, closed at their head deadline or when the worker drains.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Connection, Serving};
use crate::serve::drain::Drain;
use crate::serve::listener::{ConnectionGauge, ConnectionLimits};

const RELEASE_AFTER: Duration = Duration::from_millis(50);

struct Server {
    addr: std::net::SocketAddr,
    gauge: Arc<ConnectionGauge>,
    drain: Drain,
}

/// Serves connections whose heads are due `header_read_timeout` after they start; every
/// response says the request's path, `/slow` after 300 ms.
async fn server(header_read_timeout: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gauge = Arc::new(ConnectionGauge::default());
    let limits = ConnectionLimits {
        header_read_timeout,
        max_header_size: 64 << 10,
        max_headers: 100,
        release_idle_after: RELEASE_AFTER,
    };
    let serving = Arc::new(Serving::new(limits, gauge.clone()));
    let drain = Drain::default();
    tokio::spawn({
        let drain = drain.clone();
        async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    if request.uri().path() == "/slow" {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let path = Bytes::copy_from_slice(request.uri().path().as_bytes());
                    Ok::<_, Infallible>(Response::new(Full::new(path)))
                });
                let connection = drain.watch(Connection::new(stream, service, serving.clone()));
                tokio::spawn(connection);
            }
        }
    });
    Server { addr, gauge, drain }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes()
}

/// Reads one response with a body of at most 64 bytes and returns its body.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut text = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {text:?}");
        text.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&text);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .expect("a content-length")
                .parse()
                .unwrap();
            if body.len() >= length {
                return body.to_owned();
            }
        }
    }
}

/// Waits until `gauge` counts `expected` released connections.
async fn released(gauge: &ConnectionGauge, expected: i64) {
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while gauge.released_count() != expected {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "released connections: {}, expected {expected}",
        gauge.released_count()
    );
}

/// The client's end of the connection reaches end of file.
async fn closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the connection was not closed");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
}

/// A client connection to `server` that has had one request answered.
async fn answered_once(server: &Server) -> TcpStream {
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client.write_all(&get("/one")).await.unwrap();
    assert_eq!(read_response(&mut client).await, "/one");
    client
}

#[tokio::test]
async fn an_idle_connection_gives_its_buffers_back_and_serves_its_next_request() {
    let server = server(Duration::from_secs(10)).await;
    let mut client = answered_once(&server).await;
    released(&server.gauge, 1).await;

    client.write_all(&get("/two")).await.unwrap();
    assert_eq!(read_response(&mut client).await, "/two");
    // Idle again after the second request: released again.
    released(&server.gauge, 1).await;
    client.write_all(&get("/three")).await.unwrap();
    assert_eq!(read_response(&mut client).await, "/three");
}

#[tokio::test]
async fn a_request_in_flight_keeps_its_connection() {
    let server = server(Duration::from_secs(10)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client.write_all(&get("/slow")).await.unwrap();
    // Far beyond the release time, the request is still being answered.
    tokio::time::sleep(RELEASE_AFTER * 4).await;
    assert_eq!(server.gauge.released_count(), 0);
    assert_eq!(read_response(&mut client).await, "/slow");
    released(&server.gauge, 1).await;
}

#[tokio::test]
async fn a_head_begun_before_the_release_is_read_on_after_it() {
    let server = server(Duration::from_secs(10)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // The first request and the start of the second in one write: hyper reads both, answers
    // the first and holds the start of the second while the connection is released.
    let mut bytes = get("/first");
    bytes.extend_from_slice(b"GET /second HTTP/1.1\r\nho");
    client.write_all(&bytes).await.unwrap();
    assert_eq!(read_response(&mut client).await, "/first");
    released(&server.gauge, 1).await;
    client.write_all(b"st: x\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut client).await, "/second");
}

#[tokio::test]
async fn a_head_arriving_byte_by_byte_keeps_its_deadline() {
    let header_read_timeout = Duration::from_millis(600);
    let server = server(header_read_timeout).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 20 ms would take 0.7 s for this head; the deadline ends it first.
    for byte in get("/slowloris") {
        if client.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > Duration::from_secs(3) {
            panic!("the head was never cut off");
        }
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("/slowloris"),
        "the slow head was served"
    );
    assert!(started.elapsed() >= header_read_timeout);
}

#[tokio::test]
async fn a_released_connection_closes_at_its_head_deadline() {
    let header_read_timeout = Duration::from_millis(400);
    let server = server(header_read_timeout).await;
    let mut client = answered_once(&server).await;
    let answered = std::time::Instant::now();
    released(&server.gauge, 1).await;
    closed(&mut client).await;
    assert!(answered.elapsed() >= header_read_timeout - RELEASE_AFTER);
    released(&server.gauge, 0).await;
}

#[tokio::test]
async fn a_connection_that_never_sends_closes_at_its_head_deadline() {
    let server = server(Duration::from_millis(300)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    closed(&mut client).await;
}

#[tokio::test]
async fn draining_closes_released_connections_at_once() {
    let server = server(Duration::from_secs(10)).await;
    let mut client = answered_once(&server).await;
    released(&server.gauge, 1).await;
    tokio::time::timeout(Duration::from_secs(2), server.drain.shutdown())
        .await
        .expect("a released connection held the drain");
    closed(&mut client).await;
    assert_eq!(server.gauge.released_count(), 0);
}

#[tokio::test]
async fn draining_closes_a_released_connection_whose_next_request_is_on_its_way() {
    let server = server(Duration::from_secs(10)).await;
    let mut client = answered_once(&server).await;
    released(&server.gauge, 1).await;
    // The request and the drain reach the connection's task at the same poll (this test's
    // runtime runs one task at a time): the drain wins, as for an idle hyper connection.
    client.write_all(&get("/late")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), server.drain.shutdown())
        .await
        .expect("the released connection was served on and held the drain");
    // Closed with the request unread: end of file, or a reset.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("the connection was not closed");
    match read {
        Ok(_) => assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest)),
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
    }
}
