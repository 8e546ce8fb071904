//! Each upstream built from its section: the proxy, timed, behind its circuit breaker when it
//! has one.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_breaker::{BreakerLayer, CircuitBreaker};
use gateway_cache::CacheBody;
use gateway_compression::{Compression, CompressionBody, CompressionLayer};
use gateway_core::ResponseBody;
use gateway_proxy::{Balance, Proxy, ProxyBody, Resolver, UpgradeProtocols, Upstream};
use http::Response;
use tower::util::MapResponse;

use super::error::BuildError;
use super::shared::Shared;
use crate::config::{BalanceSection, Config, ResolverSection, UpstreamSection};
use crate::observe::metrics::{Registry, UpstreamMetrics};
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

/// Builds every upstream, reusing the upstreams (with their resolved addresses, health
/// state and pooled connections) and the breakers whose settings are unchanged.
pub(super) async fn build_all(
    config: &Config,
    shared: &mut Shared,
    registry: &Arc<Registry>,
) -> Result<HashMap<String, BuiltUpstream>, BuildError> {
    let mut built = HashMap::with_capacity(config.upstreams.len());
    let mut breakers = HashMap::new();
    let mut kept = HashMap::with_capacity(config.upstreams.len());
    for (name, section) in &config.upstreams {
        let key = UpstreamKey::of(name, section, config);
        let proxy = match shared.take_upstream(name, &key) {
            Some(proxy) => proxy,
            None => {
                let resolver = match needs_resolver(section) {
                    true => resolver_for(name, section, config, shared)?,
                    false => None,
                };
                build_upstream(name, section, config, registry.upstream(name), resolver)?
            }
        };
        kept.insert(name.clone(), (key, proxy.clone()));
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
    shared.keep_upstreams(kept);
    wait_for_discovery(&built).await;
    Ok(built)
}

/// The resolver of an upstream with names. Without `[resolver]`, a system whose DNS
/// configuration cannot be read still serves hostname targets, looked up per connection as
/// before discovery existed (an SRV name cannot do without).
fn resolver_for(
    name: &str,
    section: &UpstreamSection,
    config: &Config,
    shared: &mut Shared,
) -> Result<Option<Resolver>, BuildError> {
    match shared.resolver(config.resolver.as_ref()) {
        Ok(resolver) => Ok(Some(resolver)),
        Err(error) if config.resolver.is_none() && section.srv.is_none() => {
            tracing::warn!(upstream = %name, %error, "no DNS resolver: hostnames are looked up per connection");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Gives discovery a bounded time to resolve every name, so that a generation starts on
/// resolved addresses; names still unresolved then are looked up per connection until
/// their first answer.
async fn wait_for_discovery(built: &HashMap<String, BuiltUpstream>) {
    let deadline = tokio::time::Instant::now() + DISCOVERY_WAIT;
    for (name, upstream) in built {
        if tokio::time::timeout_at(deadline, upstream.proxy.upstream().resolved())
            .await
            .is_err()
        {
            tracing::warn!(upstream = %name, "names not resolved yet: serving while discovery goes on");
        }
    }
}

/// How long a new generation waits for its first DNS answers.
const DISCOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether an upstream has names to resolve: an SRV name, or a target whose host is not an
/// IP address.
fn needs_resolver(section: &UpstreamSection) -> bool {
    section.srv.is_some()
        || section.targets.get_ref().iter().any(|target| {
            target
                .url
                .parse::<gateway_proxy::TargetUrl>()
                .is_ok_and(|url| url.ip().is_none())
        })
}

/// Everything an upstream is built from: an upstream whose key is unchanged by a reload is
/// kept as it is.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct UpstreamKey {
    section: UpstreamSection,
    upgrades: UpgradeProtocols,
    trusted: gateway_core::TrustedProxies,
    resolver: Option<ResolverSection>,
}

impl UpstreamKey {
    fn of(name: &str, section: &UpstreamSection, config: &Config) -> Self {
        Self {
            section: section.clone(),
            upgrades: upstream_upgrades(name, config),
            trusted: config.server.trusted_proxies.clone(),
            resolver: needs_resolver(section)
                .then(|| config.resolver.as_ref().map(|r| r.get_ref().clone()))
                .flatten(),
        }
    }
}

/// The `Upgrade` protocols a route lets through (`upgrades`, validated when loading).
pub(super) fn route_upgrades(route: &crate::config::RouteSection) -> UpgradeProtocols {
    UpgradeProtocols::new(route.upgrades.get_ref()).unwrap_or_else(|_| UpgradeProtocols::none())
}

/// The proxy tunnels what any of its routes allows; each route narrows it to its own.
fn upstream_upgrades(name: &str, config: &Config) -> UpgradeProtocols {
    config
        .routes
        .iter()
        .filter(|route| route.upstream.get_ref() == name)
        .fold(UpgradeProtocols::none(), |all, route| {
            all.union(&route_upgrades(route))
        })
}

pub(crate) fn build_upstream(
    name: &str,
    section: &UpstreamSection,
    config: &Config,
    metrics: &UpstreamMetrics,
    resolver: Option<Resolver>,
) -> Result<Proxy, BuildError> {
    let balance = match section.balance {
        BalanceSection::RoundRobin => Balance::RoundRobin,
        BalanceSection::LeastRequest => Balance::LeastRequest,
    };
    let targets = section
        .targets
        .get_ref()
        .iter()
        .map(|target| (target.url.as_str(), target.weight));
    let mut builder = Upstream::builder(name, targets)
        .balance(balance)
        .connect_timeout(section.connect_timeout.get())
        .response_timeout(section.timeout.get())
        .idle_timeout(section.idle_timeout.get())
        .body_timeout(section.body_timeout.get())
        .body_timeouts(metrics.body_timeouts.clone())
        .discovery_counters(metrics.discovery.clone())
        .resolve_every(section.resolve_every.get())
        .h2c(section.h2c)
        .preserve_host(section.preserve_host)
        .eject_for(section.eject_for.get())
        .upgrades(upstream_upgrades(name, config))
        .max_response_head(
            usize::try_from(section.max_response_header_size.bytes()).unwrap_or(usize::MAX),
        )
        .trusted_proxies(config.server.trusted_proxies.clone())
        .tls_roots(match &section.tls_ca {
            Some(path) => gateway_proxy::UpstreamRoots::CaFile(path.clone()),
            None => gateway_proxy::UpstreamRoots::System,
        });
    if let Some(resolver) = resolver {
        builder = builder.resolver(resolver);
    }
    if let Some(srv) = &section.srv {
        builder = builder.srv(srv.get_ref().clone());
    }
    if let Some(check) = &section.health_check {
        builder = builder.health_check(check.get_ref().health_check());
    }
    let upstream = builder.build().map_err(|source| BuildError::Upstream {
        upstream: name.to_owned(),
        source,
    })?;
    Ok(Proxy::new(upstream))
}
