//! End to end over real sockets: an axum server with the layer in front of a handler,
//! the client IP resolved through a trusted proxy, the counters in a real Redis.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use gateway_core::client_ip::ResolveClientIpLayer;
use gateway_core::{PeerAddr, TrustedProxies};
use gateway_ratelimit::{KeySource, Policy, RateLimitBackend, RateLimitLayer};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::RedisServer;
use tower::ServiceBuilder;

#[tokio::test]
async fn axum_route_behind_a_proxy_is_limited_per_client_ip() {
    let server = RedisServer::start();
    let backend = RateLimitBackend::redis(&server.config()).unwrap();
    assert!(backend.wait_connected(Duration::from_secs(10)).await);

    // A bucket of 2, refilled every 100 s: the third request in a row is refused.
    let limit = RateLimitLayer::new(
        &backend,
        "hello",
        Policy::token_bucket(2, 0.01).unwrap(),
        KeySource::Ip,
    );
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(
            ServiceBuilder::new()
                .map_request(|mut request: Request<Body>| {
                    if let Some(ConnectInfo(peer)) = request
                        .extensions()
                        .get::<ConnectInfo<SocketAddr>>()
                        .copied()
                    {
                        request.extensions_mut().insert(PeerAddr(peer));
                    }
                    request
                })
                .layer(ResolveClientIpLayer::new(
                    TrustedProxies::parse(["127.0.0.0/8"]).unwrap(),
                ))
                .layer(limit),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let get = |forwarded_for: &'static str| {
        let request = Request::get(format!("http://{addr}/hello"))
            .header("x-forwarded-for", forwarded_for)
            .body(Empty::new())
            .unwrap();
        client.request(request)
    };

    for remaining in ["1", "0"] {
        let response = get("203.0.113.5").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"default\";q=2;w=200"
        );
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "hello"
        );
    }
    let refused = get("203.0.113.5").await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 429);

    // The key is the client the trusted proxy reported, not the proxy.
    assert_eq!(get("203.0.113.6").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        server
            .cli(&["EXISTS", "gateway:rl:{hello:ip:203.0.113.5}:tb"])
            .trim(),
        "1"
    );

    serve.abort();
}
