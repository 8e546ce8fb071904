//! The gateway's `[redis]` section and per-route `[routes.rate_limit]` table.
//!
//! ```toml
//! [redis]
//! url = "redis://127.0.0.1:6379"   # redis-cluster://h1:7000?node=h2:7001 for a cluster
//! on_error = "allow"                # "allow" | "deny" (503) | "local"
//! timeout = "50ms"                  # bound of every rate-limit call to Redis
//!
//! [[routes]]
//! [routes.rate_limit]
//! algorithm = "token_bucket"        # or "fixed_window" (limit, window)
//! capacity = 100
//! refill_per_second = 10
//! key = "header:X-Api-Key"          # "ip" | "user" | "header:NAME" | "global"
//! ```
//!
//! Values are validated while deserializing, so a loader reports a bad value with its file,
//! line and field.
//!
//! The structs here are data: they know policies and key sources, not the limiters. The one
//! place that makes a backend or a layer of them is `RateLimitBackend::redis`,
//! `RateLimitBackend::from_config` and `RateLimitLayer::from_config`.

mod build;
mod redis;
mod route;

pub use redis::{PoolSize, PositiveDuration, RedisConfig, RedisUrl};
pub use route::{Algorithm, RateLimitConfig, RateLimitConfigError};

pub use crate::on_error::OnError;
