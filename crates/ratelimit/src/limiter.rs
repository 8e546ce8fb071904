//! One route's limiter: its policy applied to the backend's store, with the `on_error`
//! fallback and leases.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::decision::{RateLimitDecision, Verdict};
use crate::key::ClientKey;
use crate::lease::LeaseTable;
use crate::memory::Outcome;
use crate::on_error::OnError;
use crate::policy::{Kind, Policy};
use crate::redis::StoreError;
use crate::state::{BackendInner, RedisBackend, RouteMemory};

/// The fixed parts of a route's Redis keys: `<prefix>{<route>:` and `}:<algorithm>`.
///
/// The braces make the route and client key the Redis Cluster hash tag: each client's key
/// lives in one slot, and different clients spread over the cluster.
#[derive(Clone)]
pub(crate) struct RedisKeyParts {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl RedisKeyParts {
    pub(crate) fn new(redis: &RedisBackend, route: &str, policy: Policy) -> Self {
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
    pub(crate) fn new(
        backend: Arc<BackendInner>,
        name: &str,
        policy: Policy,
        memory: Arc<RouteMemory>,
        redis_key: Option<RedisKeyParts>,
    ) -> Self {
        Self {
            inner: Arc::new(RouteInner {
                backend,
                name: name.into(),
                policy,
                memory,
                redis_key,
                lease: None,
            }),
        }
    }

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
