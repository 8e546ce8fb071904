//! Rate limiting for the gateway, as a tower layer usable alone in axum 0.8 or hyper 1.
//!
//! - **Algorithms** ([`Policy`]): a fixed window (`limit` requests per `window`) or a token
//!   bucket (`capacity` tokens refilled at `refill_per_second`, fractional rates exact).
//! - **Stores** ([`RateLimitBackend`]): in memory (a sharded map of atomic words, no lock on
//!   the hot path, expired keys evicted so memory stays bounded, the kernel's coarse clock or
//!   Tokio's as [`Clock`] says) or Redis through `fred` (at most one round trip per request:
//!   a Lua script run with EVALSHA, reloaded on `NOSCRIPT`; the checks a thread has waiting
//!   go in one script call; server `TIME` for buckets; Redis Cluster with hash-tagged keys; a
//!   pool of connections that reconnect with backoff).
//! - **Leases** ([`RouteLimiter::with_lease`], `lease = B`): an instance takes up to B tokens
//!   per Redis call and spends them locally, so Redis sees about 1/B of the checks. Redis
//!   grants no more than the limit has left, so instances together never admit more than the
//!   limit; instead, each lease call can leave up to B − 1 tokens unused in its window.
//! - **Redis failures** ([`OnError`]): let traffic through, answer 503, or
//!   keep limiting with this instance's in-memory limiter until Redis answers again. A Redis
//!   call never waits longer than `[redis].timeout`.
//! - **Keys** ([`KeySource`]): client IP (through trusted proxies), authenticated user
//!   (`gateway_core::Identity`), a header, or one key for the whole route; namespaced per
//!   route.
//! - **Responses**: allowed responses carry `X-RateLimit-Limit/Remaining/Reset` and the
//!   `RateLimit-Policy` / `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers
//!   ([`HeaderMode`] selects them); refused requests get a 429 problem+json with
//!   `Retry-After`. Every response carries a [`RateLimitDecision`] extension for metrics.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use gateway_core::PeerAddr;
//! use gateway_ratelimit::{KeySource, Policy, RateLimitBackend, RateLimitDecision, RateLimitLayer};
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // One backend per process; `RateLimitBackend::redis(&config)` shares limits between gateways.
//! let backend = RateLimitBackend::in_memory();
//! let policy = Policy::fixed_window(2, Duration::from_secs(60)).unwrap();
//! let mut service = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(&backend, "users", policy, KeySource::Ip))
//!     .service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! let request = || {
//!     let mut request = Request::new(());
//!     request.extensions_mut().insert(PeerAddr("192.0.2.1:5000".parse().unwrap()));
//!     request
//! };
//! for remaining in ["1", "0"] {
//!     let response = service.ready().await.unwrap().call(request()).await.unwrap();
//!     assert_eq!(response.status(), StatusCode::OK);
//!     assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
//!     assert_eq!(response.extensions().get(), Some(&RateLimitDecision::Allowed));
//! }
//! let refused = service.ready().await.unwrap().call(request()).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert!(refused.headers().contains_key("retry-after"));
//! assert_eq!(refused.extensions().get(), Some(&RateLimitDecision::Limited));
//! # }
//! ```

mod backend;
pub mod config;
mod decision;
mod future;
mod header_mode;
mod headers;
mod key;
mod key_source;
mod layer;
mod lease;
mod limiter;
mod memory;
mod on_error;
mod policy;
mod redis;
mod service;
mod shared;
mod state;

pub use backend::RateLimitBackend;
pub use config::{RateLimitConfig, RedisConfig};
pub use decision::{Quota, RateLimitDecision, Verdict};
pub use future::ResponseFuture;
pub use header_mode::HeaderMode;
pub use key::ClientKey;
pub use key_source::{InvalidKeySource, KeySource};
pub use layer::RateLimitLayer;
pub use limiter::RouteLimiter;
pub use memory::Clock;
pub use on_error::OnError;
pub use policy::{Policy, PolicyError};
pub use redis::ConnectError;
pub use service::RateLimit;
