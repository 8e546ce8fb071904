//! Request and response header transforms for tower services, with per-request templates
//! and request ids.
//!
//! - [`HeaderRules`]: `set`, `add`, `set_if_absent`, `remove`, `rename`, applied in a
//!   documented order (see [`HeaderRules`]), with values that are [`Template`]s
//!   (`{client_ip}`, `{request_id}`, `{method}`, `{path}`, `{host}`, `{claim.NAME}`,
//!   `{header.NAME}`) parsed once; static values are built once and only cloned per request.
//! - [`RequestHeadersLayer`] edits requests before the inner service; [`ResponseHeadersLayer`]
//!   edits every response of the inner service, including the ones inner layers generate
//!   (401, 404, 429, 502); [`HeadersLayer`] does both. None of them wraps the body.
//! - [`SetRequestIdLayer`] keeps a trusted client's `X-Request-Id` or generates one, stores it
//!   as [`gateway_core::RequestId`], forwards it upstream and returns it.
//! - [`config`]: the `serde` structs of `[routes.request_headers]`,
//!   `[routes.response_headers]` and `[headers]`, validated while deserializing.
//!
//! A rendered value that is not a valid header value (a claim holding `\r\n`) drops that
//! header: no panic, no response splitting.
//!
//! # Where the layers go
//!
//! Request templates need what inner layers know (`{claim.NAME}` needs the auth layer's
//! [`Identity`](gateway_core::Identity)), and response rules must see every response,
//! including the 401/404/429/502 other layers generate; so a gateway splits them:
//!
//! ```text
//! SetRequestIdLayer                       outermost: every request gets an id, every response echoes it
//!   ResponseHeadersLayer(global response) every response, the router's 404 included
//!     router → per route:
//!       ResponseHeadersLayer(route response)
//!         auth, rate limit, ...
//!           RequestHeadersLayer(global request)   after auth: claims are known
//!             RequestHeadersLayer(route request)  the route has the last word on requests
//!               proxy
//! ```
//!
//! So requests get the global rules, then the route's; responses get the route's rules, then
//! the global ones (the gateway-wide policy, such as security headers, has the last word; a
//! global `set_if_absent` lets routes and upstreams override it). Response templates render
//! from the request as their layer receives it: a response layer outside the auth layer sees
//! no claims, so its `{claim.NAME}` renders nothing.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use gateway_headers::{HeaderRules, HeadersLayer, SetRequestIdLayer};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let request_rules = HeaderRules::builder()
//!     .remove("Cookie")
//!     .set("X-Forwarded-Method", "{method}")
//!     .set("X-Correlation", "req-{request_id}")
//!     .build()
//!     .unwrap();
//! let response_rules = HeaderRules::builder().set("X-Gateway", "gateway").build().unwrap();
//!
//! let service = ServiceBuilder::new()
//!     .layer(SetRequestIdLayer::new())
//!     .layer(HeadersLayer::new().request(request_rules).response(response_rules))
//!     .service(service_fn(|request: Request<String>| async move {
//!         assert!(request.headers().get("cookie").is_none());
//!         assert_eq!(request.headers()["x-forwarded-method"], "DELETE");
//!         let correlation = request.headers()["x-correlation"].to_str().unwrap();
//!         assert_eq!(correlation, format!("req-{}", request.headers()["x-request-id"].to_str().unwrap()));
//!         Ok::<_, Infallible>(Response::builder().status(StatusCode::NO_CONTENT).body(String::new()).unwrap())
//!     }));
//!
//! let request = Request::delete("/items/7").header("cookie", "session=1").body(String::new()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["x-gateway"], "gateway");
//! assert_eq!(response.headers()["x-request-id"].len(), 32);
//! # }
//! ```

mod builder;
pub mod config;
mod error;
mod future;
mod intern;
mod layer;
mod render;
mod request_id;
mod rules;
mod service;
mod slots;
mod spec;
pub mod template;

pub use builder::HeaderRulesBuilder;
pub use config::{GlobalHeaders, GlobalHeadersConfig, HeaderRulesConfig, RequestIdConfig};
pub use error::HeaderRulesError;
pub use future::ResponseFuture;
pub use layer::{HeadersLayer, RequestHeadersLayer, ResponseHeadersLayer};
pub use request_id::{
    DEFAULT_HEADER, DEFAULT_MAX_LENGTH, RequestIdFuture, RequestIdStats, SetRequestId,
    SetRequestIdLayer, TrustIncoming,
};
pub use rules::HeaderRules;
pub use service::{Headers, RequestHeaders, ResponseHeaders};
pub use template::{Template, TemplateError};

/// The old name of [`SetRequestIdLayer`].
#[deprecated(note = "renamed to `SetRequestIdLayer`")]
pub type RequestIdLayer = SetRequestIdLayer;

/// The old name of [`SetRequestId`].
#[deprecated(note = "renamed to `SetRequestId`")]
pub type RequestIdService<S> = SetRequestId<S>;
