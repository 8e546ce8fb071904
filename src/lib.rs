//! An API gateway made of reusable tower middleware.
//!
//! This umbrella crate re-exports the layer crates behind features (all on by default), so an
//! application can depend on one crate and pick what it needs:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `gateway-core` | client IP, identity extension, problem+json responses |
//! | `proxy` | `gateway-proxy` | reverse proxy service with load balancing (`proxy` feature) |
//! | `auth` | `gateway-auth` | JWT authentication and authorization layer (`auth` feature) |
//! | `ratelimit` | `gateway-ratelimit` | in-memory and Redis rate limiting (`ratelimit` feature) |
//! | `breaker` | `gateway-breaker` | circuit breaker layer (`breaker` feature) |
//! | `headers` | `gateway-headers` | request/response header transforms (`headers` feature) |
//! | `access` | `gateway-access` | IP allow/deny lists (`access` feature) |
//! | `cors` | `gateway-cors` | CORS, preflights answered at the edge (`cors` feature) |
//! | `compression` | `gateway-compression` | gzip/br/zstd response compression (`compression` feature) |
//! | `cache` | `gateway-cache` | RFC 9111 shared response cache with request coalescing (`cache` feature) |
//! | `bin` | `gateway-bin` | the config-driven gateway as a library (`bin` feature) |
//!
//! The `otlp` feature (off by default) adds OpenTelemetry span export to `bin` (the `[tracing]`
//! config section).
//!
//! ```
//! use gateway::core::Problem;
//! use http::StatusCode;
//!
//! let response = Problem::new(StatusCode::SERVICE_UNAVAILABLE).into_response();
//! assert_eq!(response.status(), 503);
//! ```

pub use gateway_core as core;

#[cfg(feature = "access")]
pub use gateway_access as access;
#[cfg(feature = "auth")]
pub use gateway_auth as auth;
#[cfg(feature = "bin")]
pub use gateway_bin as bin;
#[cfg(feature = "breaker")]
pub use gateway_breaker as breaker;
#[cfg(feature = "cache")]
pub use gateway_cache as cache;
#[cfg(feature = "compression")]
pub use gateway_compression as compression;
#[cfg(feature = "cors")]
pub use gateway_cors as cors;
#[cfg(feature = "headers")]
pub use gateway_headers as headers;
#[cfg(feature = "proxy")]
pub use gateway_proxy as proxy;
#[cfg(feature = "ratelimit")]
pub use gateway_ratelimit as ratelimit;
