//! End to end over real sockets: client → gateway (hyper server + header layers + a small
//! proxy) → upstream hyper server that echoes the request headers it received as JSON.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::client_ip::ResolveClientIpLayer;
use gateway_core::{Identity, PeerAddr, Problem, ResponseBody, TrustedProxies};
use gateway_headers::{HeaderRules, RequestHeadersLayer, ResponseHeadersLayer, SetRequestIdLayer};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tower::{ServiceBuilder, ServiceExt};

const LIMIT: Duration = Duration::from_secs(10);

/// Starts the echo upstream; returns its address.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let echo = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let headers: Vec<Value> = request
                        .headers()
                        .iter()
                        .map(|(name, value)| {
                            json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())])
                        })
                        .collect();
                    let body = json!({ "path": request.uri().path(), "headers": headers });
                    let response = Response::builder()
                        .header("server", "upstream/1.0")
                        .header("x-upstream", "yes")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), echo)
                    .await;
            });
        }
    });
    addr
}

/// Starts a gateway in front of `upstream`, trusting `trusted` (for client IPs and request
/// ids); returns its address.
async fn gateway(upstream: SocketAddr, trusted: TrustedProxies) -> SocketAddr {
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let proxy = tower::service_fn(move |mut request: Request<Incoming>| {
        let client = client.clone();
        async move {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = Uri::try_from(format!("http://{upstream}{path}")).unwrap();
            request.headers_mut().remove("host");
            let response = match client.request(request).await {
                Ok(response) => response.map(ResponseBody::inner),
                Err(_) => ResponseBody::problem(Problem::new(StatusCode::BAD_GATEWAY)),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let global_response = HeaderRules::builder()
        .set("X-Gateway", "gateway")
        .set("X-Echo", "{header.x-in}")
        .set("X-Path", "{path}")
        .remove("Server")
        .build()
        .unwrap();
    let route_request = HeaderRules::builder()
        .remove("Cookie")
        .set("X-Source", "gateway")
        .set("X-Client-IP", "{client_ip}")
        .set("X-Copy", "{header.x-in}")
        .set("X-User", "{claim.sub}")
        .add("Via", "1.1 gateway-{request_id}")
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new().trusted_proxies(trusted.clone()))
        .layer(ResponseHeadersLayer::new(global_response))
        .layer(ResolveClientIpLayer::new(trusted))
        .map_request(fake_auth)
        .layer(RequestHeadersLayer::new(route_request))
        .service(proxy);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let per_request =
                    hyper::service::service_fn(move |mut request: Request<Incoming>| {
                        request.extensions_mut().insert(PeerAddr(peer));
                        service.clone().oneshot(request)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), per_request)
                    .await;
            });
        }
    });
    addr
}

/// Stands in for the auth layer: claims come as JSON in `x-test-claims` (JSON escapes let a
/// claim hold a line break, as a JWT's can).
fn fake_auth(mut request: Request<Incoming>) -> Request<Incoming> {
    let claims = request
        .headers_mut()
        .remove("x-test-claims")
        .and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok());
    if let Some(Value::Object(claims)) = claims {
        request
            .extensions_mut()
            .insert(Identity::new(Arc::new(claims)));
    }
    request
}

struct Exchange {
    status: StatusCode,
    response: http::HeaderMap,
    upstream: Vec<(String, String)>,
}

impl Exchange {
    fn upstream(&self, name: &str) -> Vec<&str> {
        self.upstream
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

async fn send(gateway: SocketAddr, request: http::request::Builder) -> Exchange {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = request
        .uri(format!("http://{gateway}/orders?id=3"))
        .body(Empty::new())
        .unwrap();
    let response = timeout(LIMIT, client.request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = timeout(LIMIT, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let upstream = if status == StatusCode::OK {
        let json: Value = serde_json::from_slice(&body).unwrap();
        json["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Exchange {
        status,
        response: headers,
        upstream,
    }
}

#[tokio::test]
async fn headers_are_transformed_both_ways_through_real_sockets() {
    let gateway = gateway(upstream().await, TrustedProxies::none()).await;
    let exchange = send(
        gateway,
        Request::get("/")
            .header("cookie", "session=secret")
            .header("x-request-id", "forged-by-client")
            .header("x-user", "admin")
            .header("x-in", "hello")
            .header("x-test-claims", r#"{"sub":"alice"}"#),
    )
    .await;
    assert_eq!(exchange.status, StatusCode::OK);

    // Upstream received the edited request.
    assert!(exchange.upstream("cookie").is_empty());
    assert_eq!(exchange.upstream("x-source"), ["gateway"]);
    assert_eq!(exchange.upstream("x-client-ip"), ["127.0.0.1"]);
    assert_eq!(exchange.upstream("x-copy"), ["hello"]);
    assert_eq!(exchange.upstream("x-user"), ["alice"]);
    let ids = exchange.upstream("x-request-id");
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], "forged-by-client");
    assert_eq!(ids[0].len(), 32);
    assert_eq!(
        exchange.upstream("via"),
        [format!("1.1 gateway-{}", ids[0])]
    );

    // The client got the edited response and the same id.
    let h = &exchange.response;
    assert_eq!(h["x-request-id"], ids[0]);
    assert_eq!(h["x-gateway"], "gateway");
    assert_eq!(h["x-echo"], "hello");
    assert_eq!(h["x-path"], "/orders");
    assert_eq!(h["x-upstream"], "yes");
    assert!(h.get("server").is_none());
}

#[tokio::test]
async fn anonymous_requests_cannot_fill_gateway_headers() {
    let gateway = gateway(upstream().await, TrustedProxies::none()).await;
    let exchange = send(gateway, Request::get("/").header("x-user", "admin")).await;
    assert_eq!(exchange.status, StatusCode::OK);
    assert!(exchange.upstream("x-user").is_empty());
    assert!(exchange.upstream("x-copy").is_empty());
    assert!(exchange.response.get("x-echo").is_none());
}

#[tokio::test]
async fn a_trusted_proxy_s_request_id_is_kept_end_to_end() {
    let trusted = TrustedProxies::parse(["127.0.0.0/8"]).unwrap();
    let gateway = gateway(upstream().await, trusted).await;
    let exchange = send(
        gateway,
        Request::get("/").header("x-request-id", "edge-7f3a"),
    )
    .await;
    assert_eq!(exchange.upstream("x-request-id"), ["edge-7f3a"]);
    assert_eq!(exchange.response["x-request-id"], "edge-7f3a");
}

#[tokio::test]
async fn the_gateway_s_own_502_gets_the_response_rules() {
    // A port that was free a moment ago: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let gateway = gateway(closed, TrustedProxies::none()).await;
    let exchange = send(gateway, Request::get("/").header("x-in", "still-echoed")).await;
    assert_eq!(exchange.status, StatusCode::BAD_GATEWAY);
    assert_eq!(exchange.response["x-gateway"], "gateway");
    assert_eq!(exchange.response["x-echo"], "still-echoed");
    assert_eq!(exchange.response["x-request-id"].len(), 32);
    assert_eq!(
        exchange.response["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_claim_with_crlf_never_splits_a_header() {
    let gateway = gateway(upstream().await, TrustedProxies::none()).await;
    let exchange = send(
        gateway,
        Request::get("/").header("x-test-claims", r#"{"sub":"bob\r\nX-Evil: 1"}"#),
    )
    .await;
    assert_eq!(exchange.status, StatusCode::OK);
    assert!(exchange.upstream("x-user").is_empty());
    assert!(exchange.upstream("x-evil").is_empty());
}

/// Sends raw bytes, returns the status and the response head's lines.
async fn raw(gateway: SocketAddr, request: &[u8]) -> (u16, Vec<String>) {
    let mut stream = TcpStream::connect(gateway).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    timeout(LIMIT, stream.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n").map(str::to_owned);
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    (status, lines.collect())
}

/// CRLF injection attempts aimed at `{header.x-in}` (copied into a request header and into
/// a response header) and `{path}`: hyper refuses the malformed ones, the rest arrive as
/// harmless text; no attempt yields an injected header upstream or in the response.
#[tokio::test]
async fn crlf_injection_through_templates_is_impossible() {
    let gateway = gateway(upstream().await, TrustedProxies::none()).await;
    let attempts: [(&[u8], u16); 5] = [
        // Obsolete line folding: a continuation line.
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-In: a\r\n X-Evil: 1\r\nConnection: close\r\n\r\n",
            400,
        ),
        // A bare CR inside the value.
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-In: a\rX-Evil: 1\r\nConnection: close\r\n\r\n",
            400,
        ),
        // NUL inside the value.
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-In: a\0X-Evil: 1\r\nConnection: close\r\n\r\n",
            400,
        ),
        // Percent-encoded CRLF in the path stays percent-encoded.
        (
            b"GET /p%0d%0aX-Evil:%201 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            200,
        ),
        // Encoded CRLF in the header stays literal text.
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-In: a%0d%0aX-Evil: 1\r\nConnection: close\r\n\r\n",
            200,
        ),
    ];
    for (request, expected) in attempts {
        let (status, lines) = raw(gateway, request).await;
        let shown = String::from_utf8_lossy(request);
        assert_eq!(status, expected, "{shown:?}");
        assert!(
            !lines
                .iter()
                .any(|l| l.to_ascii_lowercase().starts_with("x-evil")),
            "{shown:?} injected a response header: {lines:?}"
        );
        if status == 200 {
            let echoed: Vec<_> = lines
                .iter()
                .filter(|l| {
                    l.to_ascii_lowercase().starts_with("x-echo:")
                        || l.to_ascii_lowercase().starts_with("x-path:")
                })
                .collect();
            assert!(!echoed.is_empty(), "{lines:?}");
        }
    }
    let (_, lines) = raw(
        gateway,
        b"GET /p%0d%0aX-Evil:%201 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        lines.contains(&"x-path: /p%0d%0aX-Evil:%201".to_owned()),
        "{lines:?}"
    );
    let (_, lines) = raw(
        gateway,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-In: a%0d%0aX-Evil: 1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        lines.contains(&"x-echo: a%0d%0aX-Evil: 1".to_owned()),
        "{lines:?}"
    );
}
