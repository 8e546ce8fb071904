//! The fault matrix on the wire: an upstream that resets mid-response, cuts a chunked body
//! short, stalls in the middle of a body, answers with a broken status line or refuses
//! connections, and a client that asks for `100 Continue`. Each fault gets its documented answer within a bounded time, and the
//! next normal request through the same gateway is served.

mod support;

use std::time::{Duration, Instant};

use support::raw::RawUpstream;
use support::upstream::Upstream;
use support::{TestGateway, config, get, metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any fault may hold a client (far under the default 30 s request timeout).
const BOUND: Duration = Duration::from_secs(5);

/// An upstream that misbehaves as the request path says, and answers `/ok` normally.
async fn faulty_upstream() -> RawUpstream {
    RawUpstream::start(|head, mut stream, _| async move {
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        match path.as_str() {
            "/f/reset" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial")
                    .await;
                // A reset rather than a close: SO_LINGER 0 sends RST.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                None
            }
            "/f/chunked" => {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n8\r\nwor",
                    )
                    .await;
                None
            }
            "/f/status" => {
                let _ = stream.write_all(b"HTTP/1.1 two hundred OK\r\n\r\n").await;
                None
            }
            "/f/stall" => {
                // Half the body, then silence with the connection open.
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                None
            }
            "/f/garbage" => {
                let _ = stream.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
                None
            }
            _ => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                Some(stream)
            }
        }
    })
    .await
}

fn gateway_for(url: &str) -> TestGateway {
    TestGateway::start(&config(&format!(
        "[upstreams.app]\ntargets = [\"{url}\"]\n[[routes]]\npath = \"/f\"\nupstream = \"app\"\n"
    )))
}

/// A gateway whose `/f` route strips its prefix, for the echoing test upstream's own paths.
fn stripping_gateway_for(url: &str) -> TestGateway {
    TestGateway::start(&config(&format!(
        "[upstreams.app]\ntargets = [\"{url}\"]\n[[routes]]\npath = \"/f\"\nupstream = \"app\"\nstrip_prefix = true\n"
    )))
}

/// What a client got for one request on a new connection: the response bytes until the
/// gateway closed or the bound passed, and how long that took.
async fn exchange(gw: &TestGateway, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(BOUND * 2, stream.read_to_end(&mut response)).await;
    (
        String::from_utf8_lossy(&response).to_ascii_lowercase(),
        started.elapsed(),
    )
}

/// The next normal request is served.
async fn still_serves(gw: &TestGateway) {
    let (parts, body) = get(&gw.url("/f/ok")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_before_the_head_are_502_and_after_it_cut_the_body() {
    let upstream = faulty_upstream().await;
    let gw = gateway_for(&upstream.url());
    still_serves(&gw).await;

    // Nothing valid arrived before the fault: the gateway answers 502 itself.
    for path in ["/f/status", "/f/garbage"] {
        let (response, took) = exchange(&gw, path).await;
        assert!(response.starts_with("http/1.1 502"), "{path}: {response}");
        assert!(response.contains("application/problem+json"), "{path}");
        assert!(took < BOUND, "{path} took {took:?}");
        still_serves(&gw).await;
    }

    // The head went out: the client sees the body end early (the connection closes before
    // the promised length or without the last chunk), never a made-up complete body.
    // A reset may also discard the head before the gateway reads it: then it is a 502.
    let (response, took) = exchange(&gw, "/f/reset").await;
    if response.starts_with("http/1.1 200") {
        let body = response.split_once("\r\n\r\n").unwrap().1;
        assert!(
            body.len() < 100_000,
            "a reset body was completed: {}",
            body.len()
        );
    } else {
        assert!(response.starts_with("http/1.1 502"), "{response}");
    }
    assert!(took < BOUND, "reset took {took:?}");
    still_serves(&gw).await;

    let (response, took) = exchange(&gw, "/f/chunked").await;
    assert!(response.starts_with("http/1.1 200"), "{response}");
    // The client's copy is chunked too and must not end with the last-chunk marker.
    assert!(!response.ends_with("0\r\n\r\n"), "{response:?}");
    assert!(response.contains("hello"), "{response:?}");
    assert!(took < BOUND, "truncated chunked took {took:?}");
    still_serves(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_refuses_connections_is_a_quick_502() {
    // A port with nothing listening: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let gw = gateway_for(&format!("http://127.0.0.1:{port}"));
    for _ in 0..3 {
        let (response, took) = exchange(&gw, "/f/ok").await;
        assert!(response.starts_with("http/1.1 502"), "{response}");
        assert!(took < BOUND, "refused took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_its_interim_answer_and_the_body_arrives() {
    let upstream = Upstream::start("app").await;
    let gw = gateway_for(&upstream.url());
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let body = "x".repeat(10_000);
    let head = format!(
        "POST /f/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A client that waits for `100 Continue` before sending must get it, not a timeout.
    let mut interim = [0u8; 25];
    tokio::time::timeout(BOUND, stream.read_exact(&mut interim))
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut response))
        .await
        .expect("no final response")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"body_length\":10000"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_aborted_after_body_timeout_and_counted() {
    let upstream = faulty_upstream().await;
    let gw = TestGateway::start(&config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[upstreams.app]\ntargets = [\"{}\"]\nbody_timeout = \"300ms\"\n[[routes]]\npath = \"/f\"\nupstream = \"app\"\n",
        upstream.url()
    )));
    let (response, took) = exchange(&gw, "/f/stall").await;
    assert!(response.starts_with("http/1.1 200"), "{response}");
    let body = response.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(body, "hello", "the half that arrived, then the abort");
    assert!(
        took >= Duration::from_millis(300) && took < BOUND,
        "aborted after {took:?}"
    );
    still_serves(&gw).await;
    let admin = gw.gateway().admin_addr().expect("admin listener");
    let (_, text) = get(&format!("http://{admin}/metrics")).await;
    let text = String::from_utf8_lossy(&text);
    assert_eq!(
        metric(
            &text,
            "gateway_upstream_body_timeouts_total{upstream=\"app\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

/// Resident memory of this process (the gateway runs in it), from `/proc`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Reads from `stream` until `at_least` bytes arrived (head included).
async fn read_at_least(stream: &mut TcpStream, at_least: usize) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    while total < at_least {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("the download stalled")
            .unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_download_closes_the_upstream_connection() {
    let upstream = Upstream::start("app").await;
    let gw = stripping_gateway_for(&upstream.url());
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /f/stream/64 HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    read_at_least(&mut stream, 1 << 20).await;
    drop(stream);
    // The half-read upstream connection is closed, never pooled: the next request opens a
    // new one and is served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (parts, _) = get(&gw.url("/f/after")).await;
    assert_eq!(parts.status, 200);
    let connections = upstream
        .seen
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(connections, 2, "the cut-off connection was reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_upload_cancels_the_upstream_request() {
    let upstream = Upstream::start("app").await;
    let gw = stripping_gateway_for(&upstream.url());
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST /f/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 10485760\r\n\r\n")
        .await
        .unwrap();
    stream.write_all(&vec![b'x'; 1 << 20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The upstream saw its request's body break off (its connection closed with it); the
    // next request gets a fresh connection and a whole answer.
    let (parts, body) = get(&gw.url("/f/after")).await;
    assert_eq!(parts.status, 200);
    let echo = support::json(&body);
    assert_eq!(echo["method"], "GET");
    let connections = upstream
        .seen
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(connections, 2, "the broken upload's connection was reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_of_a_large_body_holds_little_memory() {
    let upstream = Upstream::start("app").await;
    let gw = stripping_gateway_for(&upstream.url());
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /f/stream/64 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let first = read_at_least(&mut stream, 1 << 20).await;
    let before = rss_bytes();
    // The client stops reading: the gateway must stop pulling from the upstream rather than
    // buffer the 63 MiB that are left.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "grew {grown} bytes while the client paused"
    );
    // Then it reads the rest: all of it arrives.
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("the download stalled")
            .unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    // Everything arrived (the head and any chunk framing come on top of the 64 MiB).
    assert!(first + total >= 64 << 20, "only {} bytes", first + total);
}
