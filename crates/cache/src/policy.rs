//! How one route caches: its defaults, credentials handling, extra key headers, the scope
//! its entries are stored under and where its results are counted.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use crate::config::Authorized;
use crate::freshness::Defaults;
use crate::status::CacheCounters;

/// How one route (one [`CacheLayer`](crate::CacheLayer)) caches. Built from a
/// [`RouteCacheConfig`](crate::config::RouteCacheConfig) or with the builder methods;
/// the defaults cache only what the upstream marks cacheable, never for requests with
/// credentials.
#[derive(Clone, Debug)]
pub struct CachePolicy {
    pub(crate) defaults: Defaults,
    pub(crate) authorized: Authorized,
    pub(crate) key_headers: Arc<[HeaderName]>,
    pub(crate) scope: Arc<str>,
    pub(crate) scheme: Option<http::uri::Scheme>,
    pub(crate) coalesce_timeout: Duration,
    pub(crate) counters: Arc<CacheCounters>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl CachePolicy {
    /// The default policy: no `default_ttl`, no stale serving, `authorized = "never"`, no
    /// extra key headers, scope `""`, waiters wait up to 30 s.
    #[must_use]
    pub fn new() -> Self {
        Self {
            defaults: Defaults::default(),
            authorized: Authorized::Never,
            key_headers: Arc::new([]),
            scope: Arc::from(""),
            scheme: None,
            coalesce_timeout: Duration::from_secs(30),
            counters: Arc::default(),
        }
    }

    /// Freshness of responses without explicit freshness; zero: they are not stored.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.defaults.ttl = ttl;
        self
    }

    /// How long a stale entry is served while one background request refreshes it.
    #[must_use]
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.defaults.stale_while_revalidate = window;
        self
    }

    /// How long a stale entry is served instead of an upstream failure.
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.defaults.stale_if_error = window;
        self
    }

    /// Whether requests with credentials are cached, and keyed by user.
    #[must_use]
    pub fn authorized(mut self, authorized: Authorized) -> Self {
        self.authorized = authorized;
        self
    }

    /// Request headers whose values are part of the key.
    #[must_use]
    pub fn key_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.key_headers = names.into_iter().collect();
        self
    }

    /// The scope the route's entries are stored under (the gateway uses the route's name):
    /// two layers with different scopes never share entries, and
    /// [`CacheStore::purge`](crate::CacheStore::purge) purges by it.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<Arc<str>>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The scheme the requests arrive with, for the key. Without it the request URI's scheme
    /// is used, which HTTP/2 requests carry and HTTP/1.1 ones usually do not: a server that
    /// knows its listener's scheme (the gateway does) sets it so both share entries.
    #[must_use]
    pub fn scheme(mut self, scheme: http::uri::Scheme) -> Self {
        self.scheme = Some(scheme);
        self
    }

    /// How long a request waits for another request's fetch of the same key before it goes
    /// upstream itself (the gateway uses the request timeout).
    #[must_use]
    pub fn coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.coalesce_timeout = timeout;
        self
    }

    /// Where the route's results are counted (by default, counters of its own).
    #[must_use]
    pub fn counters(mut self, counters: Arc<CacheCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// The route's result counters.
    pub fn get_counters(&self) -> &Arc<CacheCounters> {
        &self.counters
    }

    /// The scope of the route's entries.
    pub fn get_scope(&self) -> &str {
        &self.scope
    }
}
