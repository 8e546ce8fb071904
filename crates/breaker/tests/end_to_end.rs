//! Real HTTP over real sockets: hyper upstreams, an axum 0.8 router with one breaker per
//! upstream, and a hyper client. The clock is tokio's paused one, moved by hand; nothing here
//! sets a tokio timer, so the clock never jumps on its own.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use common::Watchdog;
use gateway_breaker::{BreakerConfig, BreakerLayer, BreakerState, CircuitBreaker};
use gateway_core::UpstreamFailure;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::advance;
use tower::Layer;

/// An HTTP upstream that answers 200 while healthy and 500 otherwise, counting requests.
struct Upstream {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicUsize::new(0));
        let (state_healthy, state_hits) = (healthy.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (healthy, hits) = (state_healthy.clone(), state_hits.clone());
                let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let status = if healthy.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    let mut response = Response::new(Full::new(Bytes::from(name)));
                    *response.status_mut() = status;
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self {
            addr,
            healthy,
            hits,
        }
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn http_client<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connector = HttpConnector::new();
    // No fallback timer: the paused clock must only move when the test says so.
    connector.set_happy_eyeballs_timeout(None);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A minimal reverse proxy: forwards to `upstream`, and answers 502 marked
/// [`UpstreamFailure`] when it cannot, as the gateway's proxy does.
async fn forward(
    client: Client<HttpConnector, Body>,
    upstream: SocketAddr,
    mut request: Request<Body>,
) -> Response<Body> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = format!("http://{upstream}{path}").parse().unwrap();
    match client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(_) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
                .extensions_mut()
                .insert(UpstreamFailure::Unreachable);
            response
        }
    }
}

/// Serves `router` on a loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Client2Gateway {
    client: Client<HttpConnector, Empty<Bytes>>,
    gateway: SocketAddr,
}

impl Client2Gateway {
    async fn get(&self, path: &str) -> (StatusCode, Option<String>, Bytes) {
        let uri = format!("http://{}{path}", self.gateway).parse().unwrap();
        let response = self.client.get(uri).await.unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, retry_after, body)
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_upstream_is_cut_off_while_open_and_back_once_healed() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    let (users, orders) = (
        Upstream::start("users").await,
        Upstream::start("orders").await,
    );
    let config = BreakerConfig::default()
        .failure_threshold(3)
        .success_threshold(2)
        .open_for(Duration::from_secs(10));
    let users_breaker = CircuitBreaker::named("users", config.clone()).unwrap();
    let orders_breaker = CircuitBreaker::named("orders", config).unwrap();

    let proxy_client = http_client::<Body>();
    // Two routes share the users breaker (a breaker per upstream, not per route); orders has its own.
    let users_route = {
        let client = proxy_client.clone();
        let addr = users.addr;
        tower::service_fn(move |request| {
            let client = client.clone();
            async move { Ok::<_, Infallible>(forward(client, addr, request).await) }
        })
    };
    // The orders route is an axum handler with the layer applied through `route_layer`.
    let orders_router = Router::new()
        .route(
            "/orders",
            get(
                |State((client, addr)): State<(Client<HttpConnector, Body>, SocketAddr)>,
                 request: Request<Body>| { forward(client, addr, request) },
            ),
        )
        .route_layer(BreakerLayer::new(orders_breaker.clone()))
        .with_state((proxy_client, orders.addr));
    let router = Router::new()
        .route_service(
            "/users",
            BreakerLayer::new(users_breaker.clone()).layer(users_route.clone()),
        )
        .route_service(
            "/users/me",
            BreakerLayer::new(users_breaker.clone()).layer(users_route),
        )
        .merge(orders_router);
    let client = Client2Gateway {
        client: http_client(),
        gateway: serve(router).await,
    };

    let (status, _, body) = client.get("/users").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"users"[..]));

    users.set_healthy(false);
    for path in ["/users", "/users/me", "/users"] {
        assert_eq!(client.get(path).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(users_breaker.state(), BreakerState::Open);
    assert_eq!(users.hits(), 4);

    for path in ["/users", "/users/me", "/users", "/users/me", "/users"] {
        let (status, retry_after, body) = client.get(path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("10"));
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["status"], 503);
    }
    assert_eq!(
        users.hits(),
        4,
        "no request reaches the upstream while the circuit is open"
    );
    assert_eq!(users_breaker.metrics().rejected, 5);

    // Another upstream's route is unaffected.
    let (status, _, body) = client.get("/orders").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"orders"[..]));
    assert_eq!(orders_breaker.state(), BreakerState::Closed);

    // Healed, but still within open_for: still cut off.
    users.set_healthy(true);
    advance(Duration::from_secs(9)).await;
    let (status, retry_after, _) = client.get("/users").await;
    assert_eq!(
        (status, retry_after.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
    );
    assert_eq!(users.hits(), 4);

    advance(Duration::from_secs(1)).await;
    assert_eq!(client.get("/users").await.0, StatusCode::OK);
    assert_eq!(users_breaker.state(), BreakerState::HalfOpen);
    assert_eq!(client.get("/users/me").await.0, StatusCode::OK);
    assert_eq!(users_breaker.state(), BreakerState::Closed);
    for _ in 0..3 {
        assert_eq!(client.get("/users").await.0, StatusCode::OK);
    }
    assert_eq!(users.hits(), 9);
    let metrics = users_breaker.metrics();
    assert_eq!(
        (metrics.opened, metrics.half_opened, metrics.closed),
        (1, 1, 1)
    );
    assert_eq!(orders_breaker.metrics().opened, 0);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_upstream_trips_the_breaker_even_when_no_status_counts() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    // A port that was just free: connections to it are refused.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let breaker = CircuitBreaker::new(
        BreakerConfig::default()
            .failure_threshold(2)
            .failure_status([]),
    )
    .unwrap();
    let proxy_client = http_client::<Body>();
    let router = Router::new()
        .route(
            "/",
            get(move |request: Request<Body>| forward(proxy_client.clone(), dead, request)),
        )
        .route_layer(BreakerLayer::new(breaker.clone()));
    let client = Client2Gateway {
        client: http_client(),
        gateway: serve(router).await,
    };

    for _ in 0..2 {
        assert_eq!(client.get("/").await.0, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(client.get("/").await.0, StatusCode::SERVICE_UNAVAILABLE);
}
