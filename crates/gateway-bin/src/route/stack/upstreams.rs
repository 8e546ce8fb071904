//! Each upstream built from its section: the proxy, timed, behind its circuit breaker when it
//! has one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use gateway_breaker::{BreakerLayer, CircuitBreaker};
use gateway_cache::CacheBody;
use gateway_compression::{Compression, CompressionBody, CompressionLayer};
use gateway_core::ResponseBody;
use gateway_proxy::{Balance, Proxy, ProxyBody, UpgradeProtocols, Upstream};
use http::Response;
use tower::util::MapResponse;

use super::error::BuildError;
use super::shared::Shared;
use crate::config::{BalanceSection, Config};
use crate::observe::metrics::Registry;
use crate::observe::timed::Timed;

/// A route's response body: the upstream's (compressed or not, or served by the cache), or
/// a response a layer made itself.
pub(crate) type RouteBody = ResponseBody<UpstreamBody>;

/// The upstream's body as a route forwards it: compressed on routes with compression, as
/// the upstream sent it otherwise, or one the route's cache serves.
pub(crate) type UpstreamBody = CacheBody<CompressionBody<ProxyBody>>;

/// An upstream's proxy, timed for `gateway_upstream_duration_seconds`.
pub(crate) type TimedProxy = Timed<Proxy>;

/// The timed proxy with its body in a route's body type: what a route with no layer calls.
pub(crate) type Bare = MapResponse<TimedProxy, fn(Response<ProxyBody>) -> Response<RouteBody>>;

pub(super) fn bare(proxy: TimedProxy) -> Bare {
    fn wrap(response: Response<ProxyBody>) -> Response<RouteBody> {
        response.map(|body| ResponseBody::inner(CacheBody::inner(CompressionBody::identity(body))))
    }
    MapResponse::new(
        proxy,
        wrap as fn(Response<ProxyBody>) -> Response<RouteBody>,
    )
}

/// The timed proxy behind a route's response compression, in a route's body type.
pub(crate) type CompressedProxy = MapResponse<
    Compression<TimedProxy>,
    fn(Response<CompressionBody<ProxyBody>>) -> Response<RouteBody>,
>;

/// One upstream as the routes use it.
pub(super) struct BuiltUpstream {
    /// The proxy, for readiness.
    pub(super) proxy: Proxy,
    /// The timed proxy (a route with no layer calls it directly when there is no breaker).
    pub(super) timed: TimedProxy,
    pub(super) breaker: Option<CircuitBreaker>,
}

impl BuiltUpstream {
    /// The proxy as a layered route calls it, in a route's body type.
    pub(super) fn proxy(&self) -> Bare {
        bare(self.timed.clone())
    }

    /// The proxy behind `compression`, in a route's body type.
    pub(super) fn compressed(&self, compression: &CompressionLayer) -> CompressedProxy {
        use tower_layer::Layer;
        fn wrap(response: Response<CompressionBody<ProxyBody>>) -> Response<RouteBody> {
            response.map(|body| ResponseBody::inner(CacheBody::inner(body)))
        }
        MapResponse::new(
            compression.layer(self.timed.clone()),
            wrap as fn(Response<CompressionBody<ProxyBody>>) -> Response<RouteBody>,
        )
    }

    /// The upstream's circuit breaker, as a layer, when it has one.
    pub(super) fn breaker_layer(&self) -> Option<BreakerLayer> {
        self.breaker.clone().map(BreakerLayer::new)
    }
}

/// Builds every upstream, reusing the breakers whose settings are unchanged.
pub(super) fn build_all(
    config: &Config,
    shared: &mut Shared,
    registry: &Arc<Registry>,
) -> Result<HashMap<String, BuiltUpstream>, BuildError> {
    let mut built = HashMap::with_capacity(config.upstreams.len());
    let mut breakers = HashMap::new();
    for (name, section) in &config.upstreams {
        let proxy = build_upstream(
            name,
            section,
            config,
            registry.upstream(name).body_timeouts.clone(),
        )?;
        let breaker = match &section.circuit_breaker {
            None => None,
            Some(settings) => {
                let breaker = shared.breaker(name, settings)?;
                breakers.insert(name.clone(), (settings.clone(), breaker.clone()));
                Some(breaker)
            }
        };
        let timed = Timed::new(proxy.clone(), registry.upstream(name));
        built.insert(
            name.clone(),
            BuiltUpstream {
                proxy,
                timed,
                breaker,
            },
        );
    }
    shared.keep_breakers(breakers);
    Ok(built)
}

/// The `Upgrade` protocols a route lets through (`upgrades`, validated when loading).
pub(super) fn route_upgrades(route: &crate::config::RouteSection) -> UpgradeProtocols {
    UpgradeProtocols::new(route.upgrades.get_ref()).unwrap_or_else(|_| UpgradeProtocols::none())
}

pub(crate) fn build_upstream(
    name: &str,
    section: &crate::config::UpstreamSection,
    config: &Config,
    body_timeouts: Arc<AtomicU64>,
) -> Result<Proxy, BuildError> {
    // The proxy tunnels what any of its routes allows; each route narrows it to its own.
    let upgrades = config
        .routes
        .iter()
        .filter(|route| route.upstream.get_ref() == name)
        .fold(UpgradeProtocols::none(), |all, route| {
            all.union(&route_upgrades(route))
        });
    let balance = match section.balance {
        BalanceSection::RoundRobin => Balance::RoundRobin,
        BalanceSection::LeastRequest => Balance::LeastRequest,
    };
    let upstream = Upstream::builder(name, section.targets.get_ref().iter().map(String::as_str))
        .balance(balance)
        .connect_timeout(section.connect_timeout.get())
        .response_timeout(section.timeout.get())
        .idle_timeout(section.idle_timeout.get())
        .body_timeout(section.body_timeout.get())
        .body_timeouts(body_timeouts)
        .h2c(section.h2c)
        .preserve_host(section.preserve_host)
        .eject_for(section.eject_for.get())
        .upgrades(upgrades)
        .max_response_head(
            usize::try_from(section.max_response_header_size.bytes()).unwrap_or(usize::MAX),
        )
        .trusted_proxies(config.server.trusted_proxies.clone())
        .tls_roots(match &section.tls_ca {
            Some(path) => gateway_proxy::UpstreamRoots::CaFile(path.clone()),
            None => gateway_proxy::UpstreamRoots::System,
        })
        .build()
        .map_err(|source| BuildError::Upstream {
            upstream: name.to_owned(),
            source,
        })?;
    Ok(Proxy::new(upstream))
}
