//! `gateway-proxy`: a reverse proxy as a tower [`Service`](tower_service::Service).
//!
//! [`Proxy`] forwards each request to one target of an [`Upstream`] and streams the response
//! back. It is the innermost service of a gateway stack, usable as a hyper `service_fn`
//! body or an axum `Router::fallback_service`.
//!
//! - **Connections**: HTTP/1.1 keep-alive connections pooled per thread and target (no lock,
//!   no task per request; a connection goes back to the pool when its response body ends),
//!   or one multiplexed HTTP/2 connection per thread and target with
//!   [`h2c`](UpstreamBuilder::h2c). Bodies stream both ways and are never buffered whole.
//! - **Headers**: RFC 9110 hop-by-hop headers (and those named in `Connection`) are removed
//!   from requests and responses; `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are set, believing only [trusted proxies](UpstreamBuilder::trusted_proxies).
//!   `Host` is the target's authority unless [`preserve_host`](UpstreamBuilder::preserve_host).
//! - **Paths**: the request's path and query are appended to the target's base path, the
//!   query byte for byte.
//! - **Balancing**: round robin or least request (power of two choices), both following
//!   [target weights](WeightedTarget) (smooth weighted round robin; weighted draws); a target
//!   refusing connections is [ejected](UpstreamBuilder::eject_for) for a while.
//! - **Discovery**: with a [`Resolver`] (hickory, asynchronous), a hostname target stands for
//!   every address it resolves to and an [SRV name](UpstreamBuilder::srv) for its servers,
//!   re-resolved in the background; removed addresses drain, a failed lookup keeps the last
//!   good set.
//! - **Health checks**: [active probes](HealthCheck) of every target take failing ones out of
//!   rotation (failing open when none is left). The balancer reads a target's health with one
//!   relaxed atomic load.
//! - **Failures**: a refused connection is retried once on another target; a connection that
//!   breaks after sending is retried once when the request is idempotent and bodiless.
//!   Unreachable is `502`, no response headers in time `504`, both problem+json with a
//!   [`gateway_core::UpstreamFailure`] in the response extensions.
//! - **TLS**: `https://` targets are reached over rustls, checked against the system's roots or
//!   a [CA file](UpstreamRoots::CaFile), with SNI and ALPN (`h2` when [`h2c`](UpstreamBuilder::h2c)
//!   is set, else `http/1.1`).
//! - **Upgrades**: HTTP/1.1 `Upgrade` requests to an [allowed protocol](UpgradeProtocols)
//!   (WebSocket by default) are tunnelled after a `101`; other `Upgrade` offers are removed and
//!   the request is forwarded as an ordinary one. `h2c` and other upgrades to HTTP are never
//!   allowed: the tunnel would carry requests past every layer. The server must serve
//!   connections with upgrades enabled.
//!
//! # Example
//!
//! A gateway in front of one upstream, served with hyper:
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use gateway_core::PeerAddr;
//! use gateway_proxy::{Balance, Proxy, Upstream};
//! use hyper::service::service_fn;
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::server::conn::auto;
//!
//! # async fn upstream_server() -> std::net::SocketAddr {
//! #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #     let addr = listener.local_addr().unwrap();
//! #     tokio::spawn(async move {
//! #         loop {
//! #             let (stream, _) = listener.accept().await.unwrap();
//! #             let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
//! #                 let text = format!("{} {}", req.uri(), req.headers()["x-forwarded-for"].to_str().unwrap());
//! #                 Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from(text))))
//! #             });
//! #             tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
//! #         }
//! #     });
//! #     addr
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let upstream_addr = upstream_server().await;
//! let upstream = Upstream::builder("users", [format!("http://{upstream_addr}/users")])
//!     .balance(Balance::RoundRobin)
//!     .connect_timeout(Duration::from_secs(2))
//!     .response_timeout(Duration::from_secs(30))
//!     .build()?;
//! let proxy = Proxy::new(upstream);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let gateway_addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((stream, peer)) = listener.accept().await {
//!         let proxy = proxy.clone();
//!         let service = service_fn(move |mut request| {
//!             // X-Forwarded-For and X-Real-IP come from the peer address.
//!             request.extensions_mut().insert(PeerAddr(peer));
//!             proxy.forward(request)
//!         });
//!         tokio::spawn(async move {
//!             let builder = auto::Builder::new(TokioExecutor::new());
//!             // With upgrades, so that WebSocket requests can be tunnelled.
//!             let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
//!         });
//!     }
//! });
//! # let stream = tokio::net::TcpStream::connect(gateway_addr).await?;
//! # let (mut client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
//! # tokio::spawn(conn);
//! # let request = http::Request::get("/42?full=1").header("host", "gw").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! # let response = client.send_request(request).await?;
//! # let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
//! # assert_eq!(body, "/users/42?full=1 127.0.0.1");
//! # Ok(())
//! # }
//! ```

mod balance;
mod body;
mod deadline;
mod discovery;
mod error;
mod forward;
pub mod headers;
mod health;
mod pool;
mod protocols;
mod replay;
mod request_body;
mod resolver;
mod service;
mod set;
mod target;
mod tls;
mod upgrade;
mod upstream;
mod uri;

pub use balance::Balance;
pub use body::{BodyError, ProxyBody};
pub use discovery::DiscoveryCounters;
pub use error::ProxyError;
pub use health::{HealthCheck, Probe};
pub use pool::sweep_idle_connections;
pub use protocols::{UpgradeProtocols, retain_upgrades};
pub use resolver::{Resolver, ResolverOptions};
pub use service::{Proxy, ResponseFuture};
pub use target::{TargetSource, TargetUrl};
pub use tls::UpstreamRoots;
pub use upstream::{Health, TargetStatus, Upstream, UpstreamBuilder, WeightedTarget};
