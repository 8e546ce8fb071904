//! One built config generation: what the connections serve with, and what `/ready` and
//! `/metrics` read of it.

use gateway_breaker::CircuitBreaker;
use gateway_cache::CacheStore;
use gateway_proxy::Proxy;
use gateway_ratelimit::RateLimitBackend;

use super::front::FrontService;
use super::shared::{BREAKER_STATES, Retired};
use crate::serve::connection::{Current, RequestIdSource};

/// One built config generation.
pub(crate) struct Generation {
    pub(super) front: FrontService,
    pub(super) access_log: bool,
    pub(super) keep_path: bool,
    pub(super) request_id: RequestIdSource,
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(super) upstreams: Vec<(String, Proxy, Option<CircuitBreaker>)>,
    pub(super) ratelimit: RateLimitBackend,
    pub(super) redis_required: bool,
    pub(super) retired: Retired,
    /// The response store (`[cache]`).
    pub(super) cache: Option<CacheStore>,
    /// What `POST /cache/purge` needs of each route with a cache: its name, prefix and
    /// whether the prefix is stripped before the layer sees the path.
    pub(super) cached_routes: Vec<CachedRoute>,
}

/// A route with a cache, as a purge finds it.
pub(crate) struct CachedRoute {
    pub(super) name: String,
    pub(super) prefix: String,
    pub(super) strip_prefix: bool,
}

/// Why a purge could not be done.
#[derive(Debug)]
pub(crate) enum PurgeError {
    /// There is no `[cache]`.
    NoCache,
    /// No route with a cache has that name.
    UnknownRoute,
    /// The path is not one the route serves.
    BadPath(String),
}

impl Generation {
    /// The front service and settings the connections use.
    pub(crate) fn current(&self) -> Current<FrontService> {
        Current {
            front: self.front.clone(),
            access_log: self.access_log,
            keep_path: self.keep_path,
            request_id: self.request_id.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Whether the generation can serve, with detail for `/ready`.
    pub(crate) fn readiness(&self) -> (bool, serde_json::Value) {
        let mut upstreams = serde_json::Map::new();
        for (name, proxy, breaker) in &self.upstreams {
            let upstream = proxy.upstream();
            let targets: Vec<serde_json::Value> = upstream
                .targets()
                .map(|t| {
                    serde_json::json!({
                        "url": t.url.to_string(),
                        "address": t.address.map(|a| a.to_string()),
                        "source": t.source.as_str(),
                        "weight": t.weight,
                        "health": t.health.as_str(),
                        "last_probe": t.last_probe.map(|p| p.to_string()),
                        "in_flight": t.in_flight,
                        "ejected": t.ejected,
                    })
                })
                .collect();
            upstreams.insert(
                name.clone(),
                serde_json::json!({
                    "targets": targets,
                    // Every target ejected or unhealthy: requests still go to them.
                    "fail_open": !targets.is_empty() && !upstream.is_available(),
                    "circuit_breaker": breaker.as_ref().map(|b| b.state().as_str()),
                }),
            );
        }
        let redis = if self.ratelimit.is_redis() {
            serde_json::json!({ "configured": true, "connected": self.ratelimit.is_connected(), "required": self.redis_required })
        } else {
            serde_json::json!({ "configured": false })
        };
        let ready = !self.redis_required || self.ratelimit.is_connected();
        let mut detail = serde_json::json!({ "upstreams": upstreams, "redis": redis });
        if let Some(store) = &self.cache {
            let stats = store.stats();
            detail["cache"] = serde_json::json!({
                "entries": stats.entries,
                "bytes": stats.bytes,
                "max_size": store.max_size(),
            });
        }
        (ready, detail)
    }

    /// Every upstream by name, with its circuit breaker, for the dashboard's status.
    pub(crate) fn upstreams(
        &self,
    ) -> impl Iterator<Item = (&str, &Proxy, Option<&CircuitBreaker>)> {
        self.upstreams
            .iter()
            .map(|(name, proxy, breaker)| (name.as_str(), proxy, breaker.as_ref()))
    }

    /// The rate-limit store: `None` in memory, else whether Redis is connected and whether
    /// readiness waits for it.
    pub(crate) fn redis_state(&self) -> Option<(bool, bool)> {
        self.ratelimit
            .is_redis()
            .then(|| (self.ratelimit.is_connected(), self.redis_required))
    }

    /// Whether each target takes requests, for `/metrics`.
    pub(crate) fn target_health(&self) -> Vec<crate::observe::metrics::TargetHealth> {
        let mut all = Vec::new();
        for (name, proxy, _) in &self.upstreams {
            for target in proxy.upstream().targets() {
                all.push(crate::observe::metrics::TargetHealth {
                    upstream: name.clone(),
                    target: target
                        .address
                        .map_or_else(|| target.url.authority().to_string(), |a| a.to_string()),
                    healthy: target.is_usable(),
                });
            }
        }
        all
    }

    /// Circuit state and transitions per upstream with a breaker, for `/metrics`.
    pub(crate) fn circuits(&self) -> Vec<crate::observe::metrics::Circuit> {
        use gateway_breaker::BreakerState;
        self.upstreams
            .iter()
            .filter_map(|(name, _, breaker)| {
                let breaker = breaker.as_ref()?;
                let state = match breaker.state() {
                    BreakerState::Closed => 0,
                    BreakerState::HalfOpen => 1,
                    BreakerState::Open => 2,
                };
                let metrics = breaker.metrics();
                let retired = self.retired.transitions.get(name).copied();
                let transitions = BREAKER_STATES
                    .into_iter()
                    .zip(retired.unwrap_or_default())
                    .map(|(to, before)| (to.as_str(), before + metrics.transitions_to(to)))
                    .collect();
                Some(crate::observe::metrics::Circuit {
                    upstream: name.clone(),
                    state,
                    transitions,
                })
            })
            .collect()
    }

    /// The store's bytes (`None` without `[cache]`) and its evictions, replaced stores'
    /// included, for `/metrics`.
    pub(crate) fn cache_stats(&self) -> (Option<u64>, u64) {
        let stats = self.cache.as_ref().map(CacheStore::stats);
        (
            stats.map(|s| s.bytes),
            self.retired.cache_evictions + stats.map_or(0, |s| s.evictions),
        )
    }

    /// `POST /cache/purge`: every entry (`route` `None`), or those of one route's path,
    /// given as clients send it. Returns how many entries went.
    pub(crate) fn purge(&self, route: Option<(&str, &str)>) -> Result<u64, PurgeError> {
        let store = self.cache.as_ref().ok_or(PurgeError::NoCache)?;
        let Some((name, path)) = route else {
            let entries = store.stats().entries;
            store.purge_all();
            return Ok(entries);
        };
        let route = self
            .cached_routes
            .iter()
            .find(|r| r.name == name)
            .ok_or(PurgeError::UnknownRoute)?;
        let path = crate::route::path::normalize_path(path)
            .map_err(|error| PurgeError::BadPath(error.to_string()))?;
        // The layer sees the path the dispatcher forwards.
        let prefix = route.prefix.as_str();
        let under = prefix == "/"
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        if !under {
            return Err(PurgeError::BadPath(format!(
                "`{path}` is not under the route's path `{prefix}`"
            )));
        }
        let seen = if route.strip_prefix {
            crate::route::path::strip_prefix(&path, prefix.len())
        } else {
            &path
        };
        Ok(store.purge(name, seen) as u64)
    }

    /// Failed calls to the rate-limit stores of the process, replaced ones included.
    pub(crate) fn ratelimit_backend_errors(&self) -> u64 {
        self.retired.backend_errors + self.ratelimit.backend_errors_total()
    }
}
