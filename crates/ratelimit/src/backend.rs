//! The shared backend (in memory or Redis), which builds the per-route limiters.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::limiter::{RedisKeyParts, RouteLimiter};
use crate::memory::Clock;
use crate::on_error::OnError;
use crate::policy::Policy;
use crate::redis::RedisStore;
use crate::state::{BackendInner, RedisBackend, RouteMemory};

/// The rate-limit state of a gateway: create one per process and share it by cloning.
///
/// It holds the in-memory counters of every route (keyed by route name, so route layers can be
/// rebuilt on a config reload without resetting them) and, with Redis, the connection pool.
/// Get a route's limiter with [`route`](Self::route), or pass the backend to
/// [`RateLimitLayer::new`](crate::RateLimitLayer::new).
#[derive(Clone)]
pub struct RateLimitBackend {
    inner: Arc<BackendInner>,
}

impl fmt::Debug for RateLimitBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RateLimitBackend");
        match &self.inner.redis {
            Some(redis) => debug
                .field("store", &redis.store)
                .field("on_error", &redis.on_error),
            None => debug.field("store", &"memory"),
        };
        debug.finish_non_exhaustive()
    }
}

impl RateLimitBackend {
    /// Counters in this process's memory.
    pub fn in_memory() -> Self {
        Self::with_redis(None)
    }

    /// Where the in-memory stores (and the `local` fallback) read the time, for the routes
    /// made after this call; default [`Clock::Coarse`]. [`Clock::Tokio`] lets tests drive
    /// windows and refills with `tokio::time::pause` and `advance`.
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        self.inner
            .tokio_clock
            .store(clock == Clock::Tokio, Ordering::Relaxed);
        self
    }

    /// Counters in Redis through `store`, with the route keys under `key_prefix`.
    pub(crate) fn with_store(store: RedisStore, on_error: OnError, key_prefix: String) -> Self {
        Self::with_redis(Some(RedisBackend {
            store,
            on_error,
            key_prefix,
        }))
    }

    fn with_redis(redis: Option<RedisBackend>) -> Self {
        Self {
            inner: Arc::new(BackendInner::new(redis)),
        }
    }

    fn clock(&self) -> Clock {
        self.inner.clock()
    }

    /// The limiter of route `name` with `policy`.
    ///
    /// Calling it again with the same name and policy (a config reload) returns a limiter
    /// sharing the same in-memory counters; a changed policy starts from fresh counters.
    pub fn route(&self, name: &str, policy: Policy) -> RouteLimiter {
        let memory = {
            let mut routes = self
                .inner
                .routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match routes.get(name) {
                Some(memory) if memory.policy() == policy => Arc::clone(memory),
                _ => {
                    let memory = Arc::new(RouteMemory::new(policy, self.clock()));
                    routes.insert(name.to_owned(), Arc::clone(&memory));
                    memory
                }
            }
        };
        let redis_key = self
            .inner
            .redis
            .as_ref()
            .map(|redis| RedisKeyParts::new(redis, name, policy));
        RouteLimiter::new(Arc::clone(&self.inner), name, policy, memory, redis_key)
    }

    /// Forgets the in-memory counters of routes for which `keep` returns false (routes removed
    /// by a config reload). Limiters already built keep working on their own counters.
    pub fn retain_routes(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut routes = self
            .inner
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        routes.retain(|name, _| keep(name));
    }

    /// Checks that failed for want of an answer from Redis (disconnected, timed out, error):
    /// `gateway_ratelimit_backend_errors_total`.
    pub fn backend_errors_total(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Whether this backend uses Redis.
    pub fn is_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Whether Redis is connected (`true` for the in-memory backend), e.g. for a health page.
    pub fn is_connected(&self) -> bool {
        self.inner
            .redis
            .as_ref()
            .is_none_or(|redis| redis.store.is_connected())
    }

    /// Waits until Redis is connected, at most `timeout`; returns whether it is. Useful at
    /// startup for a gateway that prefers to wait a little, and in tests.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        match &self.inner.redis {
            Some(redis) => redis.store.wait_connected(timeout).await,
            None => true,
        }
    }

    /// The `on_error` policy (`allow` for the in-memory backend, which cannot fail).
    pub fn on_error(&self) -> OnError {
        self.inner
            .redis
            .as_ref()
            .map_or(OnError::Allow, |redis| redis.on_error)
    }
}
