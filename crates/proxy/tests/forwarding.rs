//! What reaches the upstream and what comes back: headers, paths, errors, HTTP versions.

mod common;

use std::time::Duration;

use common::*;
use gateway_core::{TrustedProxies, UpstreamFailure};
use gateway_proxy::{Proxy, Upstream};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::ServiceExt;

fn proxy_to(url: impl AsRef<str>) -> Proxy {
    Proxy::new(Upstream::builder("users", [url.as_ref()]).build().unwrap())
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_in_both_directions() {
    bounded(async {
        let upstream = upstream(|request: Request<Incoming>| async move {
            let echoed = format!("{:?}", request.headers());
            Response::builder()
                .header("connection", "X-Resp-Secret")
                .header("x-resp-secret", "1")
                .header("keep-alive", "timeout=5")
                .header("proxy-connection", "keep-alive")
                .header("trailer", "x-checksum")
                .header("upgrade", "h2c")
                .header("x-resp-kept", "1")
                .body(full(echoed))
                .unwrap()
        })
        .await;
        let gateway = gateway(proxy_to(upstream.url())).await;
        let request = Request::get("/")
            .header("host", "gateway.test")
            .header("connection", "keep-alive, X-Secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("te", "trailers")
            .header("trailer", "x-checksum")
            .header("upgrade", "websocket")
            .header("x-kept", "1")
            .body(empty())
            .unwrap();
        let response = send(gateway, request).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        for name in [
            "connection",
            "x-resp-secret",
            "keep-alive",
            "proxy-connection",
            "trailer",
            "upgrade",
        ] {
            assert!(
                !headers.contains_key(name),
                "response kept {name}: {headers:?}"
            );
        }
        assert_eq!(headers["x-resp-kept"], "1");

        let seen = text(response).await;
        for name in [
            "\"connection\"",
            "\"x-secret\"",
            "\"keep-alive\"",
            "\"proxy-connection\"",
            "\"te\"",
            "\"trailer\"",
            "\"upgrade\"",
        ] {
            assert!(!seen.contains(name), "upstream got {name}: {seen}");
        }
        assert!(seen.contains("\"x-kept\""), "{seen}");
    })
    .await;
}

#[tokio::test]
async fn untrusted_client_cannot_spoof_forwarding_headers() {
    bounded(async {
        let echo = echo().await;
        let gateway = gateway(proxy_to(echo.url())).await;
        let request = Request::get("/who")
            .header("host", "gateway.test")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-real-ip", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.test")
            .body(empty())
            .unwrap();
        let seen = Echoed::parse(&text(send(gateway, request).await).await);
        assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(seen.one("x-real-ip"), Some("127.0.0.1"));
        assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
        assert_eq!(seen.one("x-forwarded-host"), Some("gateway.test"));
        assert_eq!(seen.one("host"), Some(echo.addr.to_string().as_str()));
    })
    .await;
}

#[tokio::test]
async fn trusted_proxy_chain_is_extended() {
    bounded(async {
        let echo = echo().await;
        let upstream = Upstream::builder("users", [echo.url()])
            .trusted_proxies(TrustedProxies::parse(["127.0.0.0/8"]).unwrap())
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream)).await;
        let request = Request::get("/who")
            .header("host", "gateway.test")
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "shop.test")
            .body(empty())
            .unwrap();
        let seen = Echoed::parse(&text(send(gateway, request).await).await);
        assert_eq!(
            seen.one("x-forwarded-for"),
            Some("203.0.113.7, 10.0.0.1, 127.0.0.1")
        );
        // 10.0.0.1 is not trusted, so it is the client.
        assert_eq!(seen.one("x-real-ip"), Some("10.0.0.1"));
        assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
        assert_eq!(seen.one("x-forwarded-host"), Some("shop.test"));
    })
    .await;
}

#[tokio::test]
async fn query_is_preserved_and_base_path_joined() {
    bounded(async {
        let echo = echo().await;
        let gateway = gateway(proxy_to(format!("{}/base/", echo.url()))).await;
        for (path, expected) in [
            ("/a/b?x=%20y&&z=1&x", "GET /base/a/b?x=%20y&&z=1&x HTTP/1.1"),
            ("/", "GET /base/ HTTP/1.1"),
            ("/?q=%2F%zz", "GET /base/?q=%2F%zz HTTP/1.1"),
        ] {
            let seen = Echoed::parse(&text(send(gateway, get(path)).await).await);
            assert_eq!(seen.request_line, expected);
        }
    })
    .await;
}

#[tokio::test]
async fn host_is_the_target_unless_preserved() {
    bounded(async {
        let echo = echo().await;
        let upstream = Upstream::builder("users", [echo.url()])
            .preserve_host(true)
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream)).await;
        let seen = Echoed::parse(&text(send(gateway, get("/")).await).await);
        assert_eq!(seen.one("host"), Some("gateway.test"));
    })
    .await;
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_problem() {
    bounded(async {
        let dead = closed_port().await;
        let proxy = proxy_to(format!("http://{dead}"));
        let request = Request::get("/").body(empty()).unwrap();
        let response = proxy.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(
            response.extensions().get::<UpstreamFailure>(),
            Some(&UpstreamFailure::Unreachable)
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], 502);
        assert_eq!(json["title"], "Bad Gateway");
        assert!(json["detail"].as_str().unwrap().contains("users"), "{json}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("127.0.0.1") && !text.contains(&dead.port().to_string()),
            "{text}"
        );

        // The same over the wire.
        let gateway = gateway(proxy).await;
        assert_eq!(
            send(gateway, get("/")).await.status(),
            StatusCode::BAD_GATEWAY
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn slow_upstream_is_a_504_problem() {
    bounded(async {
        let slow = upstream(|_request| async {
            std::future::pending::<()>().await;
            Response::new(empty())
        })
        .await;
        let upstream = Upstream::builder("slow", [slow.url()])
            .connect_timeout(Duration::from_secs(30))
            .response_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let response = Proxy::new(upstream)
            .oneshot(Request::get("/").body(empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(
            response.extensions().get::<UpstreamFailure>(),
            Some(&UpstreamFailure::Timeout)
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("slow"));
    })
    .await;
}

#[tokio::test]
async fn http2_client_reaches_an_http1_upstream() {
    bounded(async {
        let echo = echo().await;
        let gateway = gateway(proxy_to(echo.url())).await;
        let stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
        let (mut client, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = Request::get("http://gateway.test/h2/path?q=1")
            .body(empty())
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.headers()["x-upstream"], "echo");
        let seen = Echoed::parse(&text(response).await);
        assert_eq!(seen.request_line, "GET /h2/path?q=1 HTTP/1.1");
        assert_eq!(seen.one("host"), Some(echo.addr.to_string().as_str()));
        assert_eq!(seen.one("x-forwarded-host"), Some("gateway.test"));
        assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
    })
    .await;
}

#[tokio::test]
async fn h2c_upstream_multiplexes_one_connection() {
    bounded(async {
        let echo = echo().await;
        let upstream = Upstream::builder("grpc", [format!("{}/svc", echo.url())])
            .h2c(true)
            .build()
            .unwrap();
        let proxy = Proxy::new(upstream);
        let request = Request::get("/m?x=1")
            .header("host", "gateway.test")
            .header("te", "trailers")
            .body(empty())
            .unwrap();
        let response = proxy.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let seen = Echoed::parse(std::str::from_utf8(&body).unwrap());
        assert_eq!(
            seen.request_line,
            format!("GET http://{}/svc/m?x=1 HTTP/2.0", echo.addr)
        );
        assert_eq!(seen.one("te"), Some("trailers"));
        assert!(!seen.has("host"));

        let requests = (0..20).map(|_| {
            // Called outside the task: the future type is then concrete (a spawned
            // `Oneshot<Proxy, _>` trips rustc's higher-ranked `Send` check on `BoxError`).
            let response = tower::Service::call(&mut proxy.clone(), get("/"));
            tokio::spawn(async move {
                let response = response.await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            })
        });
        for request in requests.collect::<Vec<_>>() {
            request.await.unwrap();
        }
        assert_eq!(echo.requests(), 21);
        assert_eq!(echo.connections(), 1);
    })
    .await;
}

#[tokio::test]
async fn h2c_upstream_gets_the_client_host_as_authority_when_preserved() {
    bounded(async {
        let echo = echo().await;
        let upstream = Upstream::builder("grpc", [echo.url()])
            .h2c(true)
            .preserve_host(true)
            .build()
            .unwrap();
        let proxy = Proxy::new(upstream);
        let response = proxy.clone().oneshot(get("/m")).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let seen = Echoed::parse(std::str::from_utf8(&body).unwrap());
        assert_eq!(seen.request_line, "GET http://gateway.test/m HTTP/2.0");

        // A Host that cannot be an authority is the client's mistake, not the upstream's.
        let request = Request::get("/m")
            .header("host", "not a host")
            .body(empty())
            .unwrap();
        let response = proxy.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.extensions().get::<UpstreamFailure>().is_none());
    })
    .await;
}

#[tokio::test]
async fn proxy_is_an_axum_fallback() {
    bounded(async {
        let echo = echo().await;
        let app = axum::Router::new()
            .route("/local", axum::routing::get(|| async { "local" }))
            .fallback_service(proxy_to(echo.url()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        assert_eq!(text(send(addr, get("/local")).await).await, "local");
        let seen = Echoed::parse(&text(send(addr, get("/users/7?x")).await).await);
        assert_eq!(seen.request_line, "GET /users/7?x HTTP/1.1");
        // No peer address was recorded: nothing is vouched for.
        assert!(!seen.has("x-forwarded-for"));
    })
    .await;
}
