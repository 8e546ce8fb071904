//! What a backend's clones and its routes' limiters share: the Redis store, each route's
//! in-memory counters, and the error accounting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::key::KeyHasher;
use crate::lease::LeaseTable;
use crate::memory::{Clock, MemoryLimiter};
use crate::on_error::OnError;
use crate::policy::Policy;
use crate::redis::{RedisStore, StoreError};

/// At most one warning per this interval while Redis fails.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the backend's clones and its routes' limiters share.
pub(crate) struct BackendInner {
    pub(crate) redis: Option<RedisBackend>,
    pub(crate) hasher: KeyHasher,
    pub(crate) routes: Mutex<HashMap<String, Arc<RouteMemory>>>,
    /// The in-memory stores' clock is Tokio's (else the coarse one).
    pub(crate) tokio_clock: AtomicBool,
    started: tokio::time::Instant,
    pub(crate) errors: AtomicU64,
    /// Errors since the last warning, and when it was logged (ms since `started`, +1 so that 0
    /// means never).
    errors_unlogged: AtomicU64,
    last_logged_ms: AtomicU64,
}

/// The Redis store and how routes use it.
pub(crate) struct RedisBackend {
    pub(crate) store: RedisStore,
    pub(crate) on_error: OnError,
    pub(crate) key_prefix: String,
}

/// A route's in-memory counters: the store itself without Redis, the `on_error = "local"`
/// fallback with it.
pub(crate) struct RouteMemory {
    policy: Policy,
    pub(crate) limiter: MemoryLimiter,
    /// The route's leases, kept across reloads while the lease size is unchanged.
    leases: Mutex<Option<Arc<LeaseTable>>>,
}

impl RouteMemory {
    pub(crate) fn new(policy: Policy, clock: Clock) -> Self {
        Self {
            policy,
            limiter: MemoryLimiter::new(&policy, clock),
            leases: Mutex::new(None),
        }
    }

    /// The policy the counters count under.
    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    /// The route's lease table for leases of `tokens`, kept while the size is unchanged.
    pub(crate) fn leases(&self, tokens: u32, clock: Clock) -> Arc<LeaseTable> {
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

impl BackendInner {
    pub(crate) fn new(redis: Option<RedisBackend>) -> Self {
        Self {
            redis,
            hasher: KeyHasher::new(),
            routes: Mutex::default(),
            tokio_clock: AtomicBool::new(false),
            started: tokio::time::Instant::now(),
            errors: AtomicU64::new(0),
            errors_unlogged: AtomicU64::new(0),
            last_logged_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn clock(&self) -> Clock {
        if self.tokio_clock.load(Ordering::Relaxed) {
            Clock::Tokio
        } else {
            Clock::Coarse
        }
    }

    /// Counts a failed check and logs it, at most once per [`ERROR_LOG_INTERVAL`].
    pub(crate) fn record_error(&self, route: &str, error: &StoreError, on_error: OnError) {
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
