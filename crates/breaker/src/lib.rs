//! A circuit breaker as a tower layer: stop sending traffic to a failing service, and let it
//! recover.
//!
//! A [`CircuitBreaker`] is created once per upstream and shared (clone it) by every
//! [`BreakerLayer`] in front of that upstream. It is:
//!
//! - **closed**: requests flow; failures are counted. `failure_threshold` consecutive
//!   failures, or (optionally) a `failure_rate` over a sliding `window` of at least
//!   `min_calls` calls, open it.
//! - **open**: requests are refused at once with `503 Service Unavailable`
//!   (`application/problem+json`, `Retry-After` = seconds left); the inner service is not
//!   called. After `open_for` the next request moves it to half-open.
//! - **half-open**: at most `half_open_max_calls` probe requests are in flight at a time, others
//!   are refused; `success_threshold` successful probes close it, any failed probe reopens it
//!   (for longer each time, up to `max_open_for`, if configured).
//!
//! A failure is an error of the inner service, a response marked
//! [`UpstreamFailure`](gateway_core::UpstreamFailure) (the proxy could not reach the upstream or
//! timed out), or a response whose status is in `failure_status` (any 5xx by default); a
//! [`ClassifyResponse`] can decide instead for responses.
//!
//! The whole state is one atomic word: the closed-state check is one load, a success that
//! changes nothing writes nothing, and every transition is one compare-and-swap, made (and
//! logged) by exactly one caller. Refusals carry a [`BreakerRejected`] extension;
//! [`CircuitBreaker::state`] and [`CircuitBreaker::metrics`] feed readiness and metrics.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use gateway_breaker::{BreakerConfig, BreakerLayer, BreakerRejected, BreakerState, CircuitBreaker};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The `[upstreams.users.circuit_breaker]` table of the gateway config.
//! let config: BreakerConfig = toml::from_str(r#"
//!     failure_threshold = 2
//!     success_threshold = 1
//!     open_for = "10s"
//! "#).unwrap();
//! let breaker = CircuitBreaker::named("users", config).unwrap();
//!
//! let upstream = tower::service_fn(|_: Request<()>| async {
//!     let mut response = Response::new(Full::new(Bytes::from("down")));
//!     *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
//!     Ok::<_, Infallible>(response)
//! });
//! let service = ServiceBuilder::new()
//!     .layer(BreakerLayer::new(breaker.clone()))
//!     .service(upstream);
//!
//! for _ in 0..2 {
//!     let response = service.clone().oneshot(Request::new(())).await.unwrap();
//!     assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//!
//! // Open: refused without calling the upstream.
//! let response = service.clone().oneshot(Request::new(())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(response.headers()["retry-after"], "10");
//! assert!(response.extensions().get::<BreakerRejected>().is_some());
//! assert_eq!(breaker.metrics().rejected, 1);
//! # }
//! ```

mod breaker;
mod classify;
pub mod config;
mod future;
mod layer;
mod policy;
mod service;
mod state;
mod status;
mod striped;
mod window;

pub use breaker::{BreakerMetrics, BreakerRejected, CircuitBreaker, Permit};
pub use classify::ClassifyResponse;
pub use config::{BreakerConfig, ConfigError};
pub use future::ResponseFuture;
pub use layer::BreakerLayer;
pub use service::Breaker;
pub use state::BreakerState;
pub use status::{FailureStatus, NotAnErrorStatus};

/// The old name of [`BreakerLayer`].
#[deprecated(note = "renamed to `BreakerLayer`")]
pub type CircuitBreakerLayer<C = FailureStatus> = BreakerLayer<C>;

/// The old name of [`Breaker`], the service of [`BreakerLayer`].
#[deprecated(note = "renamed to `Breaker`")]
pub type CircuitBreakerService<S, C = FailureStatus> = Breaker<S, C>;
