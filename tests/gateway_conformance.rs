//! HTTP conformance at the front door: what a client may not make the gateway forward
//! (h2c upgrades, CONNECT, a `Connection` list naming the gateway's own headers, a missing or
//! contradicting `Host`), header limits both ways, an upstream that breaks off its body, and
//! counters that survive reloads.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::raw::{RawUpstream, record_rest};
use support::upstream::Upstream;
use support::{TestGateway, config, get, json, metric, read_head};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn route_to(url: &str, route_extra: &str) -> String {
    config(&format!(
        "[upstreams.app]\ntargets = [\"{url}\"]\n[[routes]]\npath = \"/pub\"\nupstream = \"app\"\n{route_extra}\n"
    ))
}

/// Sends raw bytes on a new connection and returns the response head.
async fn raw_head(gw: &TestGateway, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    String::from_utf8_lossy(&read_head(&mut stream).await).to_ascii_lowercase()
}

/// An upstream that switches protocols whenever it is asked to (any protocol), then records
/// every byte of the tunnel; an ordinary request gets a 200 saying whether it saw
/// `HTTP2-Settings`.
async fn upgrade_happy_upstream() -> RawUpstream {
    RawUpstream::start(|head, mut stream, received| async move {
        let lower = head.to_ascii_lowercase();
        if let Some(line) = lower.lines().find(|l| l.starts_with("upgrade:")) {
            let protocol = line["upgrade:".len()..].trim().to_owned();
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {protocol}\r\n\r\n"
            );
            stream.write_all(reply.as_bytes()).await.ok()?;
            record_rest(stream, received).await;
            return None;
        }
        let settings = if lower.contains("http2-settings") {
            "yes"
        } else {
            "no"
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-saw-http2-settings: {settings}\r\n\r\nok"
        );
        stream.write_all(reply.as_bytes()).await.ok()?;
        Some(stream)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_never_opens_a_tunnel_past_the_layers() {
    let upstream = upgrade_happy_upstream().await;
    let gw = TestGateway::start(&route_to(&upstream.url(), "methods = [\"GET\"]"));
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /pub/x HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&read_head(&mut stream).await).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-saw-http2-settings: no"), "{head}");
    let mut body = [0u8; 2];
    stream.read_exact(&mut body).await.unwrap();

    // What a client would send through an h2c tunnel: it must not reach the upstream.
    let _ = stream
        .write_all(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00DELETE /admin",
        )
        .await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    let seen = upstream.received.text().to_ascii_lowercase();
    assert!(!seen.contains("upgrade"), "{seen}");
    assert!(!seen.contains("pri * http/2.0"), "{seen}");
    assert!(!seen.contains("/admin"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_routes_upgrade_protocols_are_tunnelled() {
    let upstream = upgrade_happy_upstream().await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/pub\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/echo\"\nupstream = \"app\"\nupgrades = [\"echo\"]\n\
         [[routes]]\npath = \"/closed\"\nupstream = \"app\"\nupgrades = []\n",
        upstream.url()
    )));
    let offer = |path: &str, protocol: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: upgrade\r\nUpgrade: {protocol}\r\n\r\n"
        )
    };
    // WebSocket by default; `echo` only where the route opts in; nothing on `upgrades = []`.
    for (path, protocol, tunnelled) in [
        ("/pub", "websocket", true),
        ("/pub", "echo", false),
        ("/echo", "echo", true),
        ("/echo", "websocket", false),
        ("/closed", "websocket", false),
    ] {
        let head = raw_head(&gw, offer(path, protocol).as_bytes()).await;
        let expected = if tunnelled {
            "http/1.1 101"
        } else {
            "http/1.1 200"
        };
        assert!(head.starts_with(expected), "{path} {protocol}: {head}");
    }
    // The upstream saw an offer only where one was allowed.
    let seen = upstream.received.text().to_ascii_lowercase();
    assert_eq!(seen.matches("upgrade: websocket").count(), 1, "{seen}");
    assert_eq!(seen.matches("upgrade: echo").count(), 1, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_answered_by_the_gateway() {
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/pub\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/get\"\nupstream = \"app\"\nmethods = [\"GET\"]\n",
        upstream.url()
    )));
    let head = raw_head(&gw, b"CONNECT /pub/x HTTP/1.1\r\nHost: gw\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 405"), "{head}");
    assert!(head.contains("\r\nallow: get, head, post"), "{head}");
    assert!(!head.contains("connect"), "{head}");
    let head = raw_head(&gw, b"CONNECT /get HTTP/1.1\r\nHost: gw\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 405"), "{head}");
    assert!(head.contains("\r\nallow: get, head\r\n"), "{head}");
    let head = raw_head(
        &gw,
        b"CONNECT upstream.internal:443 HTTP/1.1\r\nHost: upstream.internal:443\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_name_away_the_headers_the_gateway_adds() {
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&route_to(&upstream.url(), ""));
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /pub HTTP/1.1\r\nHost: gw\r\nConnection: X-Request-Id, traceparent, X-Forwarded-For, X-Real-IP, close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let echo = json(body.as_bytes());
    let headers = &echo["headers"];
    let id = headers["x-request-id"][0]
        .as_str()
        .expect("the upstream got a request id");
    assert!(!id.is_empty());
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-request-id: {}", id.to_ascii_lowercase())),
        "{head}"
    );
    for name in ["traceparent", "x-forwarded-for", "x-real-ip"] {
        assert!(headers[name].is_array(), "{name} missing: {headers}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_must_be_present_once_and_agree_with_the_authority() {
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&route_to(&upstream.url(), ""));
    for request in [
        &b"GET /pub HTTP/1.1\r\n\r\n"[..],
        b"GET /pub HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET http://a.example/pub HTTP/1.1\r\nHost: b.example\r\n\r\n",
    ] {
        let head = raw_head(&gw, request).await;
        assert!(
            head.starts_with("http/1.1 400"),
            "{}: {head}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(upstream.requests(), 0);
    // HTTP/1.0 needs no Host; an absolute-form target may name the Host's authority.
    let head = raw_head(&gw, b"GET /pub HTTP/1.0\r\n\r\n").await;
    assert!(head.starts_with("http/1.0 200"), "{head}");
    let head = raw_head(
        &gw,
        b"GET http://a.example/pub HTTP/1.1\r\nHost: A.example\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    // HTTP/2: a `host` that differs from `:authority` would become X-Forwarded-Host.
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (host, status) in [("evil.example", 400), ("gw.example", 200)] {
        let request = http::Request::get("http://gw.example/pub")
            .header("host", host)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "host {host}");
    }
}

/// A request head with `count` header fields (Host included).
fn head_with_fields(count: usize) -> Vec<u8> {
    let mut head = String::from("GET /pub HTTP/1.1\r\nHost: gw\r\n");
    for i in 1..count {
        head.push_str(&format!("x-field-{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_header_count_is_a_setting() {
    // Any number of headers is fine with this upstream (hyper's own server takes 100).
    let upstream = upgrade_happy_upstream().await;
    let gw = TestGateway::start(&route_to(&upstream.url(), ""));
    let head = raw_head(&gw, &head_with_fields(100)).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        raw_head(&gw, &head_with_fields(101))
            .await
            .starts_with("http/1.1 431")
    );

    let limited = route_to(&upstream.url(), "").replace(
        "access_log = false\n",
        "access_log = false\nmax_headers = 20\n",
    );
    let gw = TestGateway::start(&limited);
    assert!(
        raw_head(&gw, &head_with_fields(20))
            .await
            .starts_with("http/1.1 200")
    );
    assert!(
        raw_head(&gw, &head_with_fields(21))
            .await
            .starts_with("http/1.1 431")
    );
    let roomy = limited.replace("max_headers = 20", "max_headers = 300");
    let gw = TestGateway::start(&roomy);
    assert!(
        raw_head(&gw, &head_with_fields(300))
            .await
            .starts_with("http/1.1 200")
    );
    assert!(
        raw_head(&gw, &head_with_fields(301))
            .await
            .starts_with("http/1.1 431")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_head_is_a_502() {
    // A 100 KiB response header.
    let upstream = RawUpstream::start(|_head, mut stream, _| async move {
        let big = "b".repeat(100 << 10);
        let reply = format!("HTTP/1.1 200 OK\r\nx-big: {big}\r\ncontent-length: 2\r\n\r\nok");
        stream.write_all(reply.as_bytes()).await.ok()?;
        Some(stream)
    })
    .await;
    let gw = TestGateway::start(&route_to(&upstream.url(), ""));
    let (parts, _) = get(&gw.url("/pub")).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);

    let roomy = route_to(&upstream.url(), "").replace(
        "[[routes]]",
        "max_response_header_size = \"256KiB\"\n[[routes]]",
    );
    let gw = TestGateway::start(&roomy);
    let (parts, body) = get(&gw.url("/pub")).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["x-big"].len(), 100 << 10);
    assert_eq!(body, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_after_its_head_never_leaves_the_client_without_a_status() {
    // Promises 100 bytes, sends none, closes.
    let upstream = RawUpstream::start(|_head, mut stream, _| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
            .await;
        None
    })
    .await;
    let gw = TestGateway::start(&route_to(&upstream.url(), ""));
    for attempt in 0..20 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream
            .write_all(b"GET /pub HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .expect("the gateway closes the connection")
            .ok();
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("attempt {attempt}: no response head in {text:?}"));
        if head.starts_with("http/1.1 200") {
            // The head was sent: the body is cut off by closing the connection.
            assert!(head.contains("content-length: 100"), "{head}");
            assert!(body.len() < 100, "attempt {attempt}: {text}");
        } else {
            assert!(
                head.starts_with("http/1.1 502"),
                "attempt {attempt}: {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_never_go_down_when_a_reload_replaces_their_source() {
    let upstream = Upstream::start("app").await;
    // A Redis that is not there: every check fails and `on_error = "allow"` lets it pass.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_redis = closed.local_addr().unwrap();
    drop(closed);
    let config_with = |redis_db: u8, threshold: u32| {
        config(&format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\
             [redis]\nurl = \"redis://{dead_redis}/{redis_db}\"\non_error = \"allow\"\ntimeout = \"50ms\"\n\
             [upstreams.app]\ntargets = [\"{}\"]\n\
             [upstreams.app.circuit_breaker]\nfailure_threshold = {threshold}\nopen_for = \"1h\"\n\
             [[routes]]\npath = \"/pub\"\nupstream = \"app\"\nstrip_prefix = true\n\
             [routes.rate_limit]\nlimit = 100\nwindow = \"1m\"\nkey = \"global\"\n",
            upstream.url()
        ))
    };
    let gw = TestGateway::start(&config_with(0, 2));
    let scrape = || async {
        let (_, body) = get(&format!("http://{}/metrics", gw.admin.unwrap())).await;
        String::from_utf8(body.to_vec()).unwrap()
    };
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/pub/x")).await.0.status, StatusCode::OK);
    }
    // Two 500s open the circuit.
    for _ in 0..2 {
        get(&gw.url("/pub/status/500")).await;
    }
    let before = scrape().await;
    let errors = metric(&before, "gateway_ratelimit_backend_errors_total").unwrap();
    let opened_series = "gateway_circuit_transitions_total{upstream=\"app\",to=\"open\"}";
    let opened = metric(&before, opened_series).unwrap();
    assert!(errors >= 5.0, "{before}");
    assert_eq!(opened, 1.0, "{before}");

    // Another `[redis]` and other breaker settings: both are built anew.
    std::fs::write(&gw.config_path, config_with(1, 3)).unwrap();
    assert_eq!(gw.reload(), Ok(2));
    let after = scrape().await;
    let errors_after = metric(&after, "gateway_ratelimit_backend_errors_total").unwrap();
    assert!(errors_after >= errors, "{errors_after} < {errors}: {after}");
    assert_eq!(metric(&after, opened_series), Some(opened), "{after}");
    get(&gw.url("/pub/x")).await;
    let later = scrape().await;
    let errors_later = metric(&later, "gateway_ratelimit_backend_errors_total").unwrap();
    assert!(errors_later > errors_after, "{later}");
}
