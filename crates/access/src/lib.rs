//! IP allow/deny lists as a tower layer: CIDRs on the client IP resolved through trusted
//! proxies.
//!
//! An [`AccessList`] is built once from the `[access]` or `[routes.access]` table
//! ([`config::AccessConfig`]) or with [`AccessList::new`], and shared (an
//! [`Arc`](std::sync::Arc)) by every [`AccessLayer`] made from it.
//!
//! - Entries are IP addresses (`192.168.1.7`, `2001:db8::1`: a `/32` or `/128`) or CIDR
//!   networks (`10.0.0.0/8`, `2001:db8::/32`).
//! - **Deny wins**: a client in `deny` is refused even when `allow` lists it.
//! - A non-empty `allow` refuses every client not in it; an empty `allow` lets through every
//!   client not denied.
//! - The client IP is [`ClientIp::of`](gateway_core::ClientIp::of) the request: the
//!   [`ClientIp`](gateway_core::ClientIp) resolved by
//!   [`ResolveClientIpLayer`](gateway_core::ResolveClientIpLayer) through trusted proxies,
//!   else the connection's [`PeerAddr`](gateway_core::PeerAddr). An IPv4-mapped IPv6 address
//!   (`::ffff:10.1.2.3`) is checked as the IPv4 address it maps, so IPv4 networks match it.
//! - A request whose client IP is **unknown** (neither extension) is refused when `allow` is
//!   non-empty, and let through otherwise.
//!
//! A refused request never reaches the inner service: the layer answers `403 Forbidden`,
//! `application/problem+json` (detail: "the client address is not allowed on this route"),
//! with the [`AccessDenied`] marker in the response extensions. Refusals are responses, never
//! errors; the inner service's errors pass through unchanged.
//!
//! A check is a scan over a few integer (network, mask) pairs per address family, with
//! nothing allocated per request.
//!
//! ```
//! use std::convert::Infallible;
//! use std::net::SocketAddr;
//! use bytes::Bytes;
//! use gateway_access::{AccessDenied, AccessLayer, config::AccessConfig};
//! use gateway_core::{PeerAddr, ResolveClientIpLayer, TrustedProxies};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The `[routes.access]` table of the gateway config.
//! let config: AccessConfig = toml::from_str(r#"
//!     allow = ["192.168.1.0/24", "2001:db8:1::/48"]
//!     deny = ["192.168.1.13"]
//! "#).unwrap();
//! let list = config.build().unwrap();
//!
//! let upstream = tower::service_fn(|_: Request<()>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//! });
//! let trusted = TrustedProxies::parse(["127.0.0.1"]).unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(ResolveClientIpLayer::new(trusted))
//!     .layer(AccessLayer::new(list))
//!     .service(upstream);
//!
//! let from = |peer: &str, forwarded_for: Option<&str>| {
//!     let mut request = Request::builder();
//!     if let Some(client) = forwarded_for {
//!         request = request.header("x-forwarded-for", client);
//!     }
//!     let mut request = request.body(()).unwrap();
//!     let peer: SocketAddr = peer.parse().unwrap();
//!     request.extensions_mut().insert(PeerAddr(peer));
//!     request
//! };
//!
//! // Straight from an allowed address, and through the trusted proxy.
//! let response = service.clone().oneshot(from("192.168.1.7:50000", None)).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! let through_proxy = from("127.0.0.1:50000", Some("::ffff:192.168.1.8"));
//! let response = service.clone().oneshot(through_proxy).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // Denied (deny wins over allow), and not allowed.
//! for client in ["192.168.1.13", "203.0.113.9"] {
//!     let request = from("127.0.0.1:50000", Some(client));
//!     let response = service.clone().oneshot(request).await.unwrap();
//!     assert_eq!(response.status(), StatusCode::FORBIDDEN);
//!     assert_eq!(response.headers()["content-type"], "application/problem+json");
//!     assert_eq!(response.extensions().get::<AccessDenied>(), Some(&AccessDenied));
//! }
//! # }
//! ```

pub mod config;
mod error;
mod future;
mod layer;
mod list;
mod service;

pub use error::AccessError;
pub use future::{AccessDenied, ResponseFuture};
pub use layer::AccessLayer;
pub use list::AccessList;
pub use service::Access;
