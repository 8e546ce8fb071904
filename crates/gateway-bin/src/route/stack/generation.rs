//! One built config generation: what the connections serve with, and what `/ready` and
//! `/metrics` read of it.

use gateway_breaker::CircuitBreaker;
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
            let targets: Vec<serde_json::Value> = proxy
                .upstream()
                .targets()
                .map(|t| serde_json::json!({ "url": t.url.to_string(), "in_flight": t.in_flight, "ejected": t.ejected }))
                .collect();
            upstreams.insert(
                name.clone(),
                serde_json::json!({
                    "targets": targets,
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
        (
            ready,
            serde_json::json!({ "upstreams": upstreams, "redis": redis }),
        )
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

    /// Failed calls to the rate-limit stores of the process, replaced ones included.
    pub(crate) fn ratelimit_backend_errors(&self) -> u64 {
        self.retired.backend_errors + self.ratelimit.backend_errors_total()
    }
}
