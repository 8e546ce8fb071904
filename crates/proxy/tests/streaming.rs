//! Bodies stream both ways, never buffered whole; upgraded connections are tunnelled.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use gateway_proxy::{Proxy, UpgradeProtocols, Upstream};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const LARGE: u64 = 64 << 20;

/// Reads a response head byte by byte (nothing after it is consumed), lower-cased.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "connection closed during the head"
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

fn proxy_to(url: String) -> Proxy {
    Proxy::new(Upstream::builder("files", [url]).build().unwrap())
}

#[tokio::test]
async fn large_upload_streams_through() {
    bounded(async {
        let sink = upstream(|request: Request<Incoming>| async move {
            let (len, frames) = verify_generated(request.into_body()).await;
            Response::new(full(format!("{len} {frames}")))
        })
        .await;
        let gateway = gateway(proxy_to(sink.url())).await;
        let request = Request::put("/upload")
            .header("host", "gateway.test")
            .body(Generated::new(LARGE, 256 << 10).boxed())
            .unwrap();
        let response = send(gateway, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let reply = text(response).await;
        let (len, frames) = reply.split_once(' ').unwrap();
        assert_eq!(len.parse::<u64>().unwrap(), LARGE);
        assert!(frames.parse::<usize>().unwrap() > 1, "{reply}");
    })
    .await;
}

#[tokio::test]
async fn large_download_streams_through() {
    bounded(async {
        let source =
            upstream(|_request| async { Response::new(Generated::new(LARGE, 256 << 10).boxed()) })
                .await;
        let gateway = gateway(proxy_to(source.url())).await;
        let response = send(gateway, get("/download")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-length"], LARGE.to_string());
        let (len, frames) = verify_generated(response.into_body()).await;
        assert_eq!(len, LARGE);
        assert!(frames > 1);
    })
    .await;
}

/// The upstream sends a first chunk and the rest only once the client confirmed receiving
/// it: a proxy that buffered the response would never deliver the first chunk.
#[tokio::test]
async fn response_chunks_arrive_before_the_response_ends() {
    bounded(async {
        let (confirm, confirmed) = oneshot::channel::<()>();
        let confirmed = Arc::new(Mutex::new(Some(confirmed)));
        let source = upstream(move |_request| {
            let confirmed = confirmed.lock().unwrap().take();
            async move {
                let (tx, body) = ChannelBody::new();
                tokio::spawn(async move {
                    tx.send(Bytes::from_static(b"first")).await.unwrap();
                    confirmed.unwrap().await.unwrap();
                    tx.send(Bytes::from_static(b"second")).await.unwrap();
                });
                Response::new(body.boxed())
            }
        })
        .await;
        let gateway = gateway(proxy_to(source.url())).await;
        let mut body = send(gateway, get("/")).await.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        confirm.send(()).unwrap();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "second");
    })
    .await;
}

/// The mirror image: the client sends its second chunk only after the upstream got the
/// first one.
#[tokio::test]
async fn request_chunks_arrive_before_the_request_ends() {
    bounded(async {
        let (got_first, first_arrived) = oneshot::channel::<Bytes>();
        let got_first = Arc::new(Mutex::new(Some(got_first)));
        let sink = upstream(move |request: Request<Incoming>| {
            let got_first = got_first.lock().unwrap().take();
            async move {
                let mut body = request.into_body();
                let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
                got_first.unwrap().send(first).unwrap();
                let rest = body.collect().await.unwrap().to_bytes();
                Response::new(full(rest))
            }
        })
        .await;
        let gateway = gateway(proxy_to(sink.url())).await;
        let (tx, body) = ChannelBody::new();
        let request = Request::post("/")
            .header("host", "gateway.test")
            .body(body.boxed())
            .unwrap();
        let response = tokio::spawn(async move { send(gateway, request).await });
        tx.send(Bytes::from_static(b"first")).await.unwrap();
        assert_eq!(first_arrived.await.unwrap(), "first");
        tx.send(Bytes::from_static(b"second")).await.unwrap();
        drop(tx);
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "second");
    })
    .await;
}

/// A body that fails after its first chunk.
struct Failing(bool);

impl http_body::Body for Failing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let first = !std::mem::replace(&mut self.0, true);
        std::task::Poll::Ready(Some(if first {
            Ok(http_body::Frame::data(Bytes::from_static(b"first")))
        } else {
            Err("client went away".into())
        }))
    }
}

#[tokio::test]
async fn broken_upload_is_the_clients_fault_not_the_upstreams() {
    bounded(async {
        let sink = upstream(|request: Request<Incoming>| async move {
            let _ = request.into_body().collect().await;
            Response::new(full("unreachable"))
        })
        .await;
        let request = Request::post("/")
            .header("host", "gateway.test")
            .body(Failing(false))
            .unwrap();
        let response = tower::ServiceExt::oneshot(proxy_to(sink.url()), request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(
            response
                .extensions()
                .get::<gateway_core::UpstreamFailure>()
                .is_none()
        );
    })
    .await;
}

/// A long upload does not count against the response timeout; the time after it does.
#[tokio::test(start_paused = true)]
async fn response_timeout_counts_from_the_end_of_the_upload() {
    bounded(async {
        let sink = upstream(|request: Request<Incoming>| async move {
            let len = request
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .len();
            Response::new(full(len.to_string()))
        })
        .await;
        let upstream = Upstream::builder("files", [sink.url()])
            .response_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let proxy = Proxy::new(upstream);
        let (tx, body) = ChannelBody::new();
        let request = Request::post("/")
            .header("host", "gateway.test")
            .body(body.boxed())
            .unwrap();
        let response = tokio::spawn(tower::Service::call(&mut proxy.clone(), request));
        for _ in 0..4 {
            tx.send(Bytes::from_static(b"12345")).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        drop(tx);
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "20"
        );
    })
    .await;
}

#[tokio::test]
async fn upgraded_connection_is_tunnelled_both_ways() {
    bounded(async {
        let echo_server = upstream(|mut request: Request<Incoming>| async move {
            if request.headers().get("upgrade").is_none_or(|v| v != "echo") {
                return Response::builder().status(400).body(empty()).unwrap();
            }
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let mut io = TokioIo::new(upgrade.await.unwrap());
                let mut buf = [0u8; 1024];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => io.write_all(&buf[..n]).await.unwrap(),
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "echo")
                .header("connection", "upgrade")
                .body(empty())
                .unwrap()
        })
        .await;
        let upstream = Upstream::builder("ws", [echo_server.url()])
            .upgrades(UpgradeProtocols::new(["echo"]).unwrap())
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream.clone())).await;

        let mut stream = TcpStream::connect(gateway).await.unwrap();
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: echo\r\n"), "{head}");
        assert!(head.contains("connection: upgrade\r\n"), "{head}");

        for message in [&b"ping"[..], b"hello through the tunnel"] {
            stream.write_all(message).await.unwrap();
            let mut echoed = vec![0u8; message.len()];
            stream.read_exact(&mut echoed).await.unwrap();
            assert_eq!(echoed, message);
        }
        assert_eq!(upstream.targets().next().unwrap().in_flight, 1);
        drop(stream);
        while upstream.targets().next().unwrap().in_flight > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn upgrade_refused_by_the_upstream_is_an_ordinary_response() {
    bounded(async {
        let echo = echo().await;
        let gateway = gateway(proxy_to(echo.url())).await;
        let request = Request::get("/ws")
            .header("host", "gateway.test")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(empty())
            .unwrap();
        let response = send(gateway, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let seen = Echoed::parse(&text(response).await);
        // The upstream was asked to upgrade, and chose not to.
        assert_eq!(seen.one("upgrade"), Some("websocket"));
        assert_eq!(seen.one("connection"), Some("upgrade"));
    })
    .await;
}

/// An upstream that accepts every upgrade it is offered and echoes the tunnel's bytes; it
/// answers an ordinary request with the `Upgrade` header it saw (none: `-`).
async fn accepts_any_upgrade() -> UpstreamServer {
    upstream(|mut request: Request<Incoming>| async move {
        let Some(protocol) = request.headers().get("upgrade").cloned() else {
            let settings = request.headers().contains_key("http2-settings");
            return Response::builder()
                .header("x-saw-http2-settings", if settings { "yes" } else { "no" })
                .body(full("no upgrade asked"))
                .unwrap();
        };
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = io.read(&mut buf).await {
                if io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", protocol)
            .header("connection", "upgrade")
            .body(empty())
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn h2c_upgrades_are_never_offered_to_the_upstream() {
    bounded(async {
        let any = accepts_any_upgrade().await;
        // Even a proxy that allows every other protocol name cannot be told to allow h2c.
        assert!(UpgradeProtocols::new(["websocket", "h2c"]).is_err());
        let upstream = Upstream::builder("any", [any.url()])
            .upgrades(UpgradeProtocols::new(["websocket", "echo"]).unwrap())
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream)).await;

        let mut stream = TcpStream::connect(gateway).await.unwrap();
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("x-saw-http2-settings: no\r\n"), "{head}");
        assert!(!head.contains("upgrade"), "{head}");
    })
    .await;
}

#[tokio::test]
async fn an_upstream_switching_to_a_protocol_not_offered_is_a_502() {
    bounded(async {
        // Offered websocket, the upstream answers 101 to h2c.
        let liar = upstream(|mut request: Request<Incoming>| async move {
            let _upgrade = hyper::upgrade::on(&mut request);
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "h2c")
                .header("connection", "upgrade")
                .body(empty())
                .unwrap()
        })
        .await;
        let gateway = gateway(proxy_to(liar.url())).await;
        let mut stream = TcpStream::connect(gateway).await.unwrap();
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("http/1.1 502"), "{head}");
    })
    .await;
}
