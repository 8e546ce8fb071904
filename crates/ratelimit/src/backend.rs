//! The shared backend (in memory or Redis) and the per-route limiters built from it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use crate::config::{OnError, RedisConfig};
use crate::decision::{RateLimitDecision, Verdict};
use crate::key::{ClientKey, KeyHasher};
use crate::lease::LeaseTable;
use crate::memory::{Clock, MemoryLimiter, Outcome};
use crate::policy::{Kind, Policy};
use crate::redis::{ConnectError, RedisStore, StoreError};

/// At most one warning per this interval while Redis fails.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

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

impl BackendInner {
    fn clock(&self) -> Clock {
        if self.tokio_clock.load(Ordering::Relaxed) {
            Clock::Tokio
        } else {
            Clock::Coarse
        }
    }
}

struct BackendInner {
    redis: Option<RedisBackend>,
    hasher: KeyHasher,
    routes: Mutex<HashMap<String, Arc<RouteMemory>>>,
    /// The in-memory stores' clock is Tokio's (else the coarse one).
    tokio_clock: AtomicBool,
    started: tokio::time::Instant,
    errors: AtomicU64,
    /// Errors since the last warning, and when it was logged (ms since `started`, +1 so that 0
    /// means never).
    errors_unlogged: AtomicU64,
    last_logged_ms: AtomicU64,
}

struct RedisBackend {
    store: RedisStore,
    on_error: OnError,
    key_prefix: String,
}

/// A route's in-memory counters: the store itself without Redis, the `on_error = "local"`
/// fallback with it.
struct RouteMemory {
    policy: Policy,
    limiter: MemoryLimiter,
    /// The route's leases, kept across reloads while the lease size is unchanged.
    leases: Mutex<Option<Arc<LeaseTable>>>,
}

impl RouteMemory {
    fn leases(&self, tokens: u32, clock: Clock) -> Arc<LeaseTable> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        match &*leases {
            Some(table) if table.tokens() == tokens => Arc::clone(table),
            _ => {
                let table = Arc::new(LeaseTable::new(tokens, self.policy.limit(), clock));
                *leases = Some(Arc::clone(&table));
                table
            }
        }
    }
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

    /// Counters in Redis, shared by every gateway using the same Redis.
    ///
    /// Returns at once: the pool connects (and reconnects, with exponential backoff from 25ms
    /// to 2s) in the background, and until Redis answers, requests get the `on_error`
    /// policy. Must be called inside a Tokio runtime. Dropping the last clone closes the pool.
    pub fn redis(config: &RedisConfig) -> Result<Self, ConnectError> {
        let store = RedisStore::connect(config)?;
        Ok(Self::with_redis(Some(RedisBackend {
            store,
            on_error: config.on_error,
            key_prefix: config.key_prefix.clone(),
        })))
    }

    /// Redis when the `[redis]` section is present, else in memory.
    pub fn from_config(redis: Option<&RedisConfig>) -> Result<Self, ConnectError> {
        redis.map_or_else(|| Ok(Self::in_memory()), Self::redis)
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

    fn with_redis(redis: Option<RedisBackend>) -> Self {
        Self {
            inner: Arc::new(BackendInner {
                redis,
                hasher: KeyHasher::new(),
                routes: Mutex::default(),
                tokio_clock: AtomicBool::new(false),
                started: tokio::time::Instant::now(),
                errors: AtomicU64::new(0),
                errors_unlogged: AtomicU64::new(0),
                last_logged_ms: AtomicU64::new(0),
            }),
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
                Some(memory) if memory.policy == policy => Arc::clone(memory),
                _ => {
                    let memory = Arc::new(RouteMemory {
                        policy,
                        limiter: MemoryLimiter::new(&policy, self.clock()),
                        leases: Mutex::new(None),
                    });
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
        RouteLimiter {
            inner: Arc::new(RouteInner {
                backend: Arc::clone(&self.inner),
                name: name.into(),
                policy,
                memory,
                redis_key,
                lease: None,
            }),
        }
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

impl BackendInner {
    /// Counts a failed check and logs it, at most once per [`ERROR_LOG_INTERVAL`].
    fn record_error(&self, route: &str, error: &StoreError, on_error: OnError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.errors_unlogged.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_logged_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= ERROR_LOG_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let failed = self.errors_unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                route,
                %error,
                on_error = on_error.as_str(),
                failed_checks = failed,
                "rate limiting cannot reach Redis; applying on_error to requests until it answers \
                 (logged at most every {ERROR_LOG_INTERVAL:?})"
            );
        }
    }
}

/// The fixed parts of a route's Redis keys: `<prefix>{<route>:` and `}:<algorithm>`.
///
/// The braces make the route and client key the Redis Cluster hash tag: each client's key
/// lives in one slot, and different clients spread over the cluster.
#[derive(Clone)]
struct RedisKeyParts {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl RedisKeyParts {
    fn new(redis: &RedisBackend, route: &str, policy: Policy) -> Self {
        let mut head = Vec::with_capacity(redis.key_prefix.len() + route.len() + 2);
        head.extend_from_slice(redis.key_prefix.as_bytes());
        head.push(b'{');
        head.extend_from_slice(route.as_bytes());
        head.push(b':');
        // The window is part of the key: after a reload that changes it, old counters (and
        // their old expiry) are not reused.
        let tail = match policy.kind() {
            Kind::FixedWindow { window_ms, .. } => format!("}}:fw:{window_ms}"),
            Kind::TokenBucket { .. } => "}:tb".to_owned(),
        };
        Self {
            head,
            tail: tail.into_bytes(),
        }
    }

    fn key(&self, client: &ClientKey<'_>) -> Bytes {
        let mut key = Vec::with_capacity(self.head.len() + 48 + self.tail.len());
        key.extend_from_slice(&self.head);
        client.write_redis(&mut key);
        key.extend_from_slice(&self.tail);
        Bytes::from(key)
    }
}

/// One route's limiter: a policy applied to the backend's store, under the route's name.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct RouteLimiter {
    inner: Arc<RouteInner>,
}

struct RouteInner {
    backend: Arc<BackendInner>,
    name: Box<str>,
    policy: Policy,
    memory: Arc<RouteMemory>,
    redis_key: Option<RedisKeyParts>,
    lease: Option<Arc<LeaseTable>>,
}

impl fmt::Debug for RouteLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteLimiter")
            .field("route", &self.inner.name)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// A check that is either decided already (in memory) or waits for Redis.
pub(crate) enum Check {
    Ready(Verdict),
    Pending(PendingCheck),
}

/// A check waiting for Redis. Boxed: the Redis round trip costs far more than the allocation.
pub(crate) type PendingCheck = Pin<Box<dyn Future<Output = Verdict> + Send>>;

impl RouteLimiter {
    /// The route name.
    pub fn route(&self) -> &str {
        &self.inner.name
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// Counts one request against `key` and says whether it may pass.
    pub async fn check(&self, key: ClientKey<'_>) -> Verdict {
        match self.start_check(key) {
            Check::Ready(verdict) => verdict,
            Check::Pending(pending) => pending.await,
        }
    }

    /// Takes up to `tokens` tokens from Redis per call and spends them in this instance
    /// before asking again, so Redis sees about 1/`tokens` of the checks, refused ones
    /// included (a key Redis refused is refused locally until its retry time).
    ///
    /// Redis grants no more than the limit has left, so instances together never admit more
    /// than the limit. The price: tokens one instance holds are not available to the others,
    /// so each call can leave up to `tokens - 1` unused in its window (a burst that finds the
    /// lease empty sends a call per check in flight). Without Redis, or with `tokens` below
    /// 2, there is no lease. Local decisions carry the lease's own remaining count and end in
    /// their headers.
    #[must_use]
    pub fn with_lease(self, tokens: u32) -> Self {
        let inner = &self.inner;
        let lease = (tokens >= 2 && inner.backend.redis.is_some())
            .then(|| inner.memory.leases(tokens, inner.backend.clock()));
        Self {
            inner: Arc::new(RouteInner {
                backend: Arc::clone(&inner.backend),
                name: inner.name.clone(),
                policy: inner.policy,
                memory: Arc::clone(&inner.memory),
                redis_key: inner.redis_key.clone(),
                lease,
            }),
        }
    }

    /// The number of keys in this route's in-memory store (live or not yet evicted).
    pub fn memory_keys(&self) -> usize {
        self.inner.memory.limiter.len()
    }

    /// Starts a check: decided synchronously in memory, or a future for the Redis call.
    pub(crate) fn start_check(&self, key: ClientKey<'_>) -> Check {
        let inner = &self.inner;
        let Some(redis) = &inner.backend.redis else {
            return Check::Ready(self.check_memory(&key, false));
        };
        // A live lease decides without Redis, also while Redis is down.
        let lease_key = inner.lease.as_ref().map(|lease| {
            let hash = key.hash_with(&inner.backend.hasher);
            (lease, hash)
        });
        if let Some((lease, hash)) = lease_key
            && let Some(outcome) = lease.take(hash)
        {
            return Check::Ready(verdict(
                outcome,
                RateLimitDecision::Allowed,
                RateLimitDecision::Limited,
            ));
        }
        if !redis.store.is_connected() {
            // Fail fast while the pool reconnects rather than wait out the timeout.
            return Check::Ready(self.fallback(&key, &StoreError::Disconnected));
        }
        let redis_key = inner
            .redis_key
            .as_ref()
            .map(|parts| parts.key(&key))
            .unwrap_or_default();
        // Hashed now, while the key's borrow is alive, in case the local fallback needs it.
        let hash = lease_key.map(|(_, hash)| hash);
        let local_key = (redis.on_error == OnError::Local)
            .then(|| hash.unwrap_or_else(|| key.hash_with(&inner.backend.hasher)));
        let limiter = self.clone();
        Check::Pending(Box::pin(async move {
            let inner = &limiter.inner;
            let (cost, lease) = match &inner.lease {
                Some(lease) => (lease.tokens(), true),
                None => (1, false),
            };
            let result = match &inner.backend.redis {
                Some(redis) => {
                    redis
                        .store
                        .check(redis_key, inner.policy.kind(), cost, lease)
                        .await
                }
                None => Err(StoreError::Disconnected),
            };
            match result {
                Ok(granted) => {
                    if let (Some(lease), Some(hash)) = (&inner.lease, hash) {
                        let quota = &granted.outcome.quota;
                        match granted.hits {
                            // Refused: refused here too, until Redis would allow again.
                            0 => lease.keep(hash, 0, quota.retry_after.unwrap_or(quota.reset)),
                            // This request took the only token: nothing to keep.
                            1 => {}
                            // This request takes one; the rest last until the window ends
                            // (a bucket: until it would be full again).
                            hits => lease.keep(hash, hits - 1, quota.reset),
                        }
                    }
                    verdict(
                        granted.outcome,
                        RateLimitDecision::Allowed,
                        RateLimitDecision::Limited,
                    )
                }
                Err(error) => limiter.fallback_hashed(local_key, &error),
            }
        }))
    }

    fn check_memory(&self, key: &ClientKey<'_>, local: bool) -> Verdict {
        let hash = key.hash_with(&self.inner.backend.hasher);
        self.check_memory_hashed(hash, local)
    }

    fn check_memory_hashed(&self, hash: u64, local: bool) -> Verdict {
        let outcome = self.inner.memory.limiter.check(hash);
        if local {
            verdict(
                outcome,
                RateLimitDecision::LocalAllowed,
                RateLimitDecision::LocalLimited,
            )
        } else {
            verdict(
                outcome,
                RateLimitDecision::Allowed,
                RateLimitDecision::Limited,
            )
        }
    }

    fn fallback(&self, key: &ClientKey<'_>, error: &StoreError) -> Verdict {
        let local_key = (self.backend_on_error() == OnError::Local)
            .then(|| key.hash_with(&self.inner.backend.hasher));
        self.fallback_hashed(local_key, error)
    }

    fn fallback_hashed(&self, local_key: Option<u64>, error: &StoreError) -> Verdict {
        let on_error = self.backend_on_error();
        self.inner
            .backend
            .record_error(&self.inner.name, error, on_error);
        match (on_error, local_key) {
            (OnError::Local, Some(hash)) => self.check_memory_hashed(hash, true),
            (OnError::Deny, _) => Verdict::without_quota(RateLimitDecision::FailClosed),
            _ => Verdict::without_quota(RateLimitDecision::FailOpen),
        }
    }

    fn backend_on_error(&self) -> OnError {
        self.inner
            .backend
            .redis
            .as_ref()
            .map_or(OnError::Allow, |redis| redis.on_error)
    }
}

fn verdict(outcome: Outcome, allowed: RateLimitDecision, limited: RateLimitDecision) -> Verdict {
    Verdict::new(
        if outcome.allowed { allowed } else { limited },
        outcome.quota,
    )
}
