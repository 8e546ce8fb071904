//! CORS as a tower layer: preflights answered by the gateway, exact and wildcard-subdomain
//! origins.
//!
//! A [`CorsPolicy`] is built once from the `[cors]` or `[routes.cors]` table
//! ([`config::CorsConfig`]) or with [`CorsPolicy::builder`], with every header value it will
//! send computed up front, and shared (an [`Arc`](std::sync::Arc)) by every [`CorsLayer`]
//! made from it.
//!
//! - **Preflights** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) never reach
//!   the inner service. From an allowed origin, asking an allowed method and only allowed
//!   headers (every name in `Access-Control-Request-Headers` must be in `allow_headers`,
//!   case-insensitively), the answer is `204` with `Access-Control-Allow-Origin`,
//!   `-Allow-Methods`, `-Allow-Headers` (when any), `-Max-Age` (when set),
//!   `-Allow-Credentials: true` (when set) and
//!   `Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers`. Anything
//!   else is refused with `403` `application/problem+json`, no CORS headers, and the
//!   [`CorsRejected`] extension.
//! - **Actual requests** are always forwarded. From an allowed origin, the response gets
//!   `Access-Control-Allow-Origin`, `-Allow-Credentials: true` (when set) and `-Expose-Headers`
//!   (when set); from any other origin, no CORS headers. The policy owns these headers: it
//!   replaces or removes whatever the inner service sent. Unless the policy is `["*"]`,
//!   `Origin` is added to `Vary` (to an existing `Vary` once, on the same line); with `*`
//!   every origin gets the same answer, so `Vary` is left alone.
//! - **Requests without `Origin`** are forwarded and their responses left untouched: one
//!   header lookup.
//!
//! `Access-Control-Allow-Origin` is the request's own origin, or `*` when the policy is
//! `["*"]` (which cannot be combined with credentials). Origins match on scheme, host and port:
//! scheme and host case-insensitively, a default port the same as none.
//! `https://*.example.com` matches `https://a.example.com` and `https://a.b.example.com`, but
//! not `https://example.com`, `https://evil-example.com`, `http://a.example.com` or another
//! port. `null` matches no exact origin or pattern (and cannot be listed); `["*"]` allows it,
//! since the answer `*` names no origin.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use gateway_cors::{CorsLayer, CorsRejected, config::CorsConfig};
//! use http::{Method, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The `[cors]` table of the gateway config.
//! let config: CorsConfig = toml::from_str(r#"
//!     allow_origins = ["https://app.example.com", "https://*.example.org"]
//!     allow_methods = ["GET", "PUT"]
//!     allow_headers = ["content-type"]
//!     allow_credentials = true
//!     max_age = "10m"
//! "#).unwrap();
//! let policy = config.build().unwrap();
//!
//! let upstream = tower::service_fn(|_: Request<()>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(CorsLayer::new(policy))
//!     .service(upstream);
//!
//! // A preflight, answered by the layer.
//! let preflight = Request::options("/items/1")
//!     .header("origin", "https://shop.example.org")
//!     .header("access-control-request-method", "PUT")
//!     .header("access-control-request-headers", "Content-Type")
//!     .body(())
//!     .unwrap();
//! let response = service.clone().oneshot(preflight).await.unwrap();
//! assert_eq!(response.status(), StatusCode::NO_CONTENT);
//! let headers = response.headers();
//! assert_eq!(headers["access-control-allow-origin"], "https://shop.example.org");
//! assert_eq!(headers["access-control-allow-methods"], "GET, PUT");
//! assert_eq!(headers["access-control-allow-credentials"], "true");
//! assert_eq!(headers["access-control-max-age"], "600");
//!
//! // A method not allowed: refused.
//! let preflight = Request::options("/items/1")
//!     .header("origin", "https://app.example.com")
//!     .header("access-control-request-method", "DELETE")
//!     .body(())
//!     .unwrap();
//! let response = service.clone().oneshot(preflight).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert!(response.extensions().get::<CorsRejected>().is_some());
//! assert!(response.headers().get("access-control-allow-origin").is_none());
//!
//! // An actual request from an allowed origin: forwarded, with the CORS headers.
//! let request = Request::builder()
//!     .method(Method::GET)
//!     .uri("/items/1")
//!     .header("origin", "https://app.example.com")
//!     .body(())
//!     .unwrap();
//! let response = service.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
//! assert_eq!(response.headers()["vary"], "Origin");
//! # }
//! ```

// Why not tower-http's `CorsLayer`: it answers every preflight itself, allowed or not, and
// never refuses one with a 403 (a refused preflight gets a 200 without CORS headers, so
// neither the client's developer nor our metrics and access log can tell a refusal from an
// answer), and its origin predicate is a closure we would have to write anyway (exact origins
// with default ports, wildcard subdomains that reject look-alikes, config errors naming the
// field). What remains is a few header inserts, so we keep the whole policy here, with our
// problem+json refusals and the `CorsRejected` marker the gateway counts.

pub mod config;
mod error;
mod future;
mod layer;
mod origin;
mod policy;
mod service;

pub use config::CorsConfig;
pub use error::CorsError;
pub use future::ResponseFuture;
pub use layer::CorsLayer;
pub use policy::{CorsPolicy, CorsPolicyBuilder, CorsRejected};
pub use service::Cors;
