//! An RFC 9111 shared HTTP response cache as a tower layer, with request coalescing.
//!
//! A [`CacheStore`] (the `[cache]` table: [`CacheConfig`]) holds responses for every route;
//! each route's [`CacheLayer`] applies its own [`CachePolicy`] (a `[routes.cache]` table:
//! [`config::RouteCacheConfig`]). The store is bounded in bytes and shared: cloning it, or
//! a layer, shares the entries.
//!
//! # What is stored
//!
//! Responses to GET with status 200, 203, 204, 300, 301, 308, 404, 405, 410, 414 or 501
//! that are explicitly fresh (`s-maxage`, else `max-age`, else `Expires`) or get the
//! route's `default_ttl`. Never stored: `no-store` (response or request), `private`,
//! `Set-Cookie` without `public` (and a `public` one is stored without its `Set-Cookie`),
//! `Vary: *`, bodies larger than `max_object` or that end in an error or with trailers.
//! `no-cache` responses are stored only to be revalidated each time.
//!
//! # The key
//!
//! The scope (the route), the method class (GET and HEAD share entries: a HEAD is answered
//! from a GET's response), scheme, host (case-insensitive), path, query, the route's
//! `key_headers`, and the request headers the response's `Vary` names. With
//! `authorized = "per_user"` the verified user ([`gateway_core::Identity::subject`], set by
//! the auth layer) is part of it, so an entry made for one user is only ever served to that
//! user (what RFC 9111 section 3.5 guards against, another user seeing it, cannot happen);
//! a request with credentials but no verified identity bypasses the cache. With `"never"` a
//! request carrying `Authorization` or a `Cookie` bypasses the cache entirely. The scheme is
//! the listener's when the policy names it ([`CachePolicy::scheme`]). Keys are compared
//! whole, never by a hash alone.
//!
//! # Serving
//!
//! A fresh entry answers with `Age` and `Cache-Status: gateway; hit`, or with 304 when the
//! client's `If-None-Match` / `If-Modified-Since` match it. A stale one is revalidated
//! upstream with its `ETag` / `Last-Modified`; a 304 refreshes it. Within
//! `stale_while_revalidate` the stale entry is served at once while one background request
//! refreshes it; within `stale_if_error` it stands in for an upstream failure (no answer,
//! 500, 502, 503, 504). `must-revalidate`, `proxy-revalidate` and `s-maxage` rule out both.
//! Requests' `no-cache` and `max-age=0` force a revalidation, `min-fresh` and `max-age`
//! narrow freshness, `only-if-cached` gets a 504 on a miss. Unsafe methods (POST, PUT,
//! PATCH, DELETE, …) that succeed invalidate the entries of their target URI (every route,
//! user and variant) and of the same-host URIs their `Location` and `Content-Location` name.
//!
//! # Coalescing
//!
//! Concurrent misses (and revalidations) of one key send one request upstream. Its body
//! streams to the request that started it (the leader) as it arrives, and is stored as it
//! streams; the others wait, at most [`CachePolicy::coalesce_timeout`], and are answered
//! from the stored entry, or, when nothing could be stored, go upstream themselves.
//!
//! The fetch runs in a task of its own, so neither a waiter's nor the leader's client
//! leaving cancels it for the others: it goes on while anyone (the leader or a waiter) is
//! left to serve, and is given up only when no one is. A background refresh
//! (`stale_while_revalidate`) runs to its end.
//!
//! # Results
//!
//! Each request counts once in its policy's [`CacheCounters`] as a [`CacheResult`]: `hit`,
//! `miss` (collapsed waiters included), `stale`, `bypass` or `revalidated`;
//! [`CacheStore::stats`] reports entries, bytes and evictions.
//!
//! # Example
//!
//! The layer alone in an axum app:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//! use axum::{Router, routing::get, http::header};
//! use gateway_cache::{CacheConfig, CacheLayer, CacheResult, config::RouteCacheConfig};
//! use http::Request;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The `[cache]` table and a route's `[routes.cache]` table of the gateway config.
//! let store = toml::from_str::<CacheConfig>(r#"max_size = "64MiB""#).unwrap().build().unwrap();
//! let route: RouteCacheConfig = toml::from_str(r#"default_ttl = "30s""#).unwrap();
//! let layer = CacheLayer::new(store, route.build().unwrap().scope("users"));
//!
//! let calls = Arc::new(AtomicUsize::new(0));
//! let app = Router::new()
//!     .route("/users/{id}", get({
//!         let calls = calls.clone();
//!         move || async move {
//!             calls.fetch_add(1, Ordering::SeqCst);
//!             ([(header::CACHE_CONTROL, "max-age=60")], "alice")
//!         }
//!     }))
//!     .layer(layer.clone());
//!
//! for expected in ["gateway; fwd=miss; stored", "gateway; hit"] {
//!     let request = Request::get("/users/1").header("host", "api.test").body(axum::body::Body::empty()).unwrap();
//!     let response = app.clone().oneshot(request).await.unwrap();
//!     assert_eq!(response.headers()["cache-status"], expected);
//!     assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "alice");
//! }
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! assert_eq!(layer.policy().get_counters().get(CacheResult::Hit), 1);
//! assert_eq!(layer.store().stats().entries, 1);
//! # }
//! ```

mod body;
pub mod config;
mod control;
mod entry;
mod error;
mod fetch;
mod freshness;
mod future;
mod key;
mod layer;
mod policy;
mod service;
mod status;
mod store;

pub use body::{CacheBody, CachedBody};
pub use config::CacheConfig;
pub use error::CacheError;
pub use future::ResponseFuture;
pub use layer::CacheLayer;
pub use policy::CachePolicy;
pub use service::Cache;
pub use status::{CACHE_STATUS, CacheCounters, CacheResult, StoreStats};
pub use store::CacheStore;
