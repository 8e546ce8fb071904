//! End to end through the gateway over real sockets: routing, forwarding, streaming,
//! X-Forwarded-*, errors, limits, upgrades, HTTP/2 and load balancing.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use support::upstream::{Upstream, checksum};
use support::{TestGateway, config, get, json, send};

fn one_route(upstream: &Upstream, route_extra: &str) -> String {
    config(&format!(
        "[upstreams.app]\ntargets = [\"{}\"]\nconnect_timeout = \"500ms\"\ntimeout = \"2s\"\n\n[[routes]]\npath = \"/api\"\nupstream = \"app\"\n{route_extra}\n",
        upstream.url()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_prefix_keeps_the_query_byte_for_byte() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "strip_prefix = true"));
    let (parts, body) = get(&gw.url("/api/users/42?b=%2F&a=1&&x=%zz+y")).await;
    assert_eq!(parts.status, StatusCode::OK);
    let echo = json(&body);
    assert_eq!(echo["uri"], "/users/42?b=%2F&a=1&&x=%zz+y");
    let (_, body) = get(&gw.url("/api")).await;
    assert_eq!(json(&body)["uri"], "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_prefix_wins_on_segment_boundaries() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.a]\ntargets = [\"{}\"]\n[upstreams.b]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/api\"\nupstream = \"a\"\n[[routes]]\npath = \"/api/v1/users\"\nupstream = \"b\"\n",
        a.url(),
        b.url()
    )));
    for (path, expected) in [
        ("/api/v1/users/7", "b"),
        ("/api/v1/users", "b"),
        ("/api/v1/usersx", "a"),
        ("/api/v2", "a"),
    ] {
        let (parts, body) = get(&gw.url(path)).await;
        assert_eq!(parts.status, StatusCode::OK, "{path}");
        assert_eq!(json(&body)["upstream"], expected, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_cannot_escape_the_matched_route() {
    let public = Upstream::start("public").await;
    let admin = Upstream::start("admin").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.public]\ntargets = [\"{}\"]\n[upstreams.admin]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/public\"\nupstream = \"public\"\n[[routes]]\npath = \"/admin\"\nupstream = \"admin\"\nmethods = [\"POST\"]\n",
        public.url(),
        admin.url()
    )));
    // Normalized before routing, and the normalized path is what the upstream sees.
    let (parts, body) = get(&gw.url("/public/../public/%2e%2e/public//x")).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(json(&body)["uri"], "/public/x");
    let (parts, _) = get(&gw.url("/public/..%2Fadmin")).await;
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    let (parts, _) = get(&gw.url("/public/../admin")).await;
    assert_eq!(
        parts.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "resolved to /admin, which takes only POST"
    );
    let (parts, _) = get(&gw.url("/../../etc/passwd")).await;
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_method_not_allowed_are_problem_json() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "methods = [\"GET\", \"POST\"]"));
    let (parts, body) = get(&gw.url("/nothing/here")).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert_eq!(parts.headers["content-type"], "application/problem+json");
    assert_eq!(json(&body)["status"], 404);
    let (parts, body) = send(
        Request::delete(gw.url("/api/x"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(parts.headers["allow"], "GET, POST, HEAD");
    assert_eq!(json(&body)["status"], 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, ""));
    let request = Request::get(gw.url("/api/echo"))
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("x-end-to-end", "passes")
        .body(Full::default())
        .unwrap();
    let (parts, body) = send(request).await;
    let echo = json(&body);
    let headers = echo["headers"].as_object().unwrap();
    for hop in [
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "trailer",
    ] {
        assert!(
            !headers.contains_key(hop),
            "{hop} reached the upstream: {headers:?}"
        );
    }
    assert_eq!(headers["x-end-to-end"][0], "passes");
    // The upstream sent `keep-alive: timeout=5`; it is the gateway's connection's business.
    assert!(parts.headers.get("keep-alive").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_from_an_untrusted_client_are_not_believed() {
    let upstream = Upstream::start("a").await;
    // The test client connects from 127.0.0.1; trust nothing.
    let gw = TestGateway::start(&one_route(&upstream, "").replace(
        "access_log = false",
        "access_log = false\ntrusted_proxies = []",
    ));
    let request = Request::get(gw.url("/api/x"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-user-id", "admin")
        .header("x-user-role", "admin")
        .header("host", "shop.example")
        .body(Full::default())
        .unwrap();
    let (_, body) = send(request).await;
    let headers = &json(&body)["headers"];
    assert_eq!(headers["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(headers["x-real-ip"][0], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"][0], "http");
    assert_eq!(headers["x-forwarded-host"][0], "shop.example");
    assert_eq!(headers["host"][0], upstream.addr.to_string());
    // No [jwt]: nobody vouches for an identity, so none reaches the upstream.
    assert!(
        headers.get("x-user-id").is_none() && headers.get("x-user-role").is_none(),
        "{headers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_a_trusted_proxy_is_appended() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "").replace(
        "access_log = false",
        "access_log = false\ntrusted_proxies = [\"127.0.0.0/8\"]",
    ));
    let request = Request::get(gw.url("/api/x"))
        .header("x-forwarded-for", "203.0.113.7, 10.9.8.7")
        .body(Full::default())
        .unwrap();
    let (_, body) = send(request).await;
    let headers = &json(&body)["headers"];
    assert_eq!(
        headers["x-forwarded-for"][0],
        "203.0.113.7, 10.9.8.7, 127.0.0.1"
    );
    // 10.9.8.7 is not trusted, so it is the client.
    assert_eq!(headers["x-real-ip"][0], "10.9.8.7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "strip_prefix = true").replace(
        "access_log = false",
        "access_log = false\nmax_body = \"1GiB\"",
    ));
    // Upload 48 MiB in chunks, without a content length.
    let chunk = Bytes::from(vec![7u8; 256 * 1024]);
    let count = 192;
    let expected = (0..count).fold(0, |sum, _| checksum(&chunk, sum));
    let frames =
        futures_util::stream::iter((0..count).map(move |_| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone()))
        }));
    let request = Request::post(gw.url("/api/upload"))
        .body(http_body_util::StreamBody::new(frames))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo = json(&response.into_body().collect().await.unwrap().to_bytes());
    assert_eq!(echo["body_length"], 192 * 256 * 1024);
    assert_eq!(echo["body_checksum"], expected);

    // Download 64 MiB, counting it as it arrives.
    let response = support::client()
        .request(
            Request::get(gw.url("/api/stream/64"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, Bytes::len);
    }
    assert_eq!(received, 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_gets_413() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "").replace(
        "access_log = false",
        "access_log = false\nmax_body = \"64KiB\"",
    ));
    // Declared length over the limit: refused before the upstream sees anything.
    let (parts, body) = send(
        Request::post(gw.url("/api/x"))
            .body(Full::new(Bytes::from(vec![0u8; 100_000])))
            .unwrap(),
    )
    .await;
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(&body)["status"], 413);
    // Streamed without a length: refused when it crosses the limit.
    let frames = futures_util::stream::iter((0..8).map(|_| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(vec![
            1u8;
            16 * 1024
        ])))
    }));
    let request = Request::post(gw.url("/api/x"))
        .body(http_body_util::StreamBody::new(frames))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Within the limit passes.
    let (parts, _) = send(
        Request::post(gw.url("/api/x"))
            .body(Full::new(Bytes::from(vec![0u8; 60_000])))
            .unwrap(),
    )
    .await;
    assert_eq!(parts.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_502_and_slow_upstream_is_504() {
    let upstream = Upstream::start("a").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.dead]\ntargets = [\"http://{dead}\"]\nconnect_timeout = \"500ms\"\n\
         [upstreams.slow]\ntargets = [\"{}\"]\ntimeout = \"300ms\"\n\
         [[routes]]\npath = \"/dead\"\nupstream = \"dead\"\n[[routes]]\npath = \"/slow\"\nupstream = \"slow\"\n",
        upstream.url()
    )));
    let (parts, body) = get(&gw.url("/dead/x")).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert_eq!(parts.headers["content-type"], "application/problem+json");
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(&dead.port().to_string()),
        "the address leaked: {text}"
    );
    let (parts, body) = get(&gw.url("/slow/slow/2000")).await;
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json(&body)["status"], 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_bounds_the_whole_request() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "strip_prefix = true").replace(
        "access_log = false",
        "access_log = false\nrequest_timeout = \"200ms\"",
    ));
    let started = std::time::Instant::now();
    let (parts, _) = get(&gw.url("/api/slow/3000")).await;
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_holds_when_the_upstream_timeout_is_as_long() {
    // With equal timeouts the dispatcher leaves a bodiless request to the proxy's timer, but
    // an upload (which pushes the proxy's timer back) must still end at the request timeout.
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(
        &one_route(&upstream, "strip_prefix = true")
            .replace("timeout = \"2s\"", "timeout = \"300ms\"")
            .replace(
                "access_log = false",
                "access_log = false\nrequest_timeout = \"300ms\"",
            ),
    );
    let started = std::time::Instant::now();
    let (parts, body) = get(&gw.url("/api/slow/3000")).await;
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json(&body)["status"], 504);
    assert!(started.elapsed() < Duration::from_secs(2));

    // One chunk every 100 ms for 3 s, without a content length.
    let frames = futures_util::stream::unfold(0, |sent| async move {
        if sent == 30 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let frame = hyper::body::Frame::data(Bytes::from_static(b"chunk"));
        Some((Ok::<_, std::convert::Infallible>(frame), sent + 1))
    });
    let request = Request::post(gw.url("/api/upload"))
        .body(http_body_util::StreamBody::new(Box::pin(frames)))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let started = std::time::Instant::now();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_requests_over_targets() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.app]\ntargets = [\"{}\", \"{}\", \"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        a.url(),
        b.url(),
        c.url()
    )));
    for _ in 0..30 {
        let (parts, _) = get(&gw.url("/x")).await;
        assert_eq!(parts.status, StatusCode::OK);
    }
    for upstream in [&a, &b, &c] {
        assert_eq!(
            upstream.requests(),
            10,
            "upstream {} got an uneven share",
            upstream.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_tunnelled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "strip_prefix = true"));
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /api/ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let head = support::read_head(&mut stream).await;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in [&b"hello"[..], b"through the gateway", &[0u8, 255, 13, 10]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_reaches_an_http1_upstream() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, ""));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let response = client
        .request(
            Request::get(gw.url("/api/h2?q=1"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let echo = json(&response.into_body().collect().await.unwrap().to_bytes());
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["uri"], "/api/h2?q=1");
    assert_eq!(echo["headers"]["x-forwarded-host"][0], gw.addr.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_an_in_flight_request() {
    let upstream = Upstream::start("a").await;
    let gw = TestGateway::start(&one_route(&upstream, "strip_prefix = true"));
    let url = gw.url("/api/slow/700");
    let in_flight = tokio::spawn(async move { get(&url).await });
    // Let the request reach the upstream before shutting down.
    while upstream.requests() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = gw.addr;
    tokio::task::spawn_blocking(move || gw.shutdown())
        .await
        .unwrap();
    let (parts, body) = in_flight.await.unwrap();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "slow");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
