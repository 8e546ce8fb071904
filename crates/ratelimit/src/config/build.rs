//! From config to limiters: the one place that makes a backend or a layer of the config's
//! data.

use super::redis::RedisConfig;
use super::route::RateLimitConfig;
use crate::backend::RateLimitBackend;
use crate::layer::RateLimitLayer;
use crate::redis::{ConnectError, RedisStore, StoreOptions};

impl RateLimitBackend {
    /// Counters in Redis, shared by every gateway using the same Redis.
    ///
    /// Returns at once: the pool connects (and reconnects, with exponential backoff from 25ms
    /// to 2s) in the background, and until Redis answers, requests get the `on_error`
    /// policy. Must be called inside a Tokio runtime. Dropping the last clone closes the pool.
    pub fn redis(config: &RedisConfig) -> Result<Self, ConnectError> {
        let store = RedisStore::connect(&StoreOptions {
            url: config.url.as_str(),
            cluster: config.cluster,
            timeout: config.timeout.0,
            connect_timeout: config.connect_timeout.0,
            pool_size: config.pool_size.0,
        })?;
        Ok(Self::with_store(
            store,
            config.on_error,
            config.key_prefix.clone(),
        ))
    }

    /// Redis when the `[redis]` section is present, else in memory.
    pub fn from_config(redis: Option<&RedisConfig>) -> Result<Self, ConnectError> {
        redis.map_or_else(|| Ok(Self::in_memory()), Self::redis)
    }
}

impl RateLimitLayer {
    /// The layer of a route's `[routes.rate_limit]` table (policy, key and header mode).
    pub fn from_config(backend: &RateLimitBackend, route: &str, config: &RateLimitConfig) -> Self {
        let layer = Self::new(backend, route, config.policy(), config.key().clone())
            .headers(config.headers());
        match config.lease() {
            Some(tokens) => layer.lease(tokens),
            None => layer,
        }
    }
}
