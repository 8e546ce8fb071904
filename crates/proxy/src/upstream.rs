//! An upstream: named targets and how to reach them.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arc_swap::ArcSwap;
use gateway_core::TrustedProxies;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::balance::{Balance, Balancer};
use crate::discovery::{Discovery, DiscoveryCounters, Factory, Origin};
use crate::error::ProxyError;
use crate::health::{HealthCheck, Probe, ValidCheck};
use crate::protocols::UpgradeProtocols;
use crate::resolver::Resolver;
use crate::set::{TargetSet, Targets};
use crate::target::{PoolSettings, TargetSource, TargetSpec, TargetUrl};

/// The default [`UpstreamBuilder::max_response_head`].
const DEFAULT_MAX_RESPONSE_HEAD: usize = 64 << 10;

/// The default [`UpstreamBuilder::resolve_every`].
const DEFAULT_RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// Keys of the thread-local pools: unique per target per process.
pub(crate) static NEXT_TARGET_ID: AtomicU64 = AtomicU64::new(1);

/// A group of interchangeable servers (targets) and the settings to reach them.
///
/// Cheap to clone: clones share the targets' state (load, ejection) and their connection
/// pools. Build one per configured upstream and share it between the routes that use it.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) name: Arc<str>,
    pub(crate) targets: Targets,
    pub(crate) balancer: Balancer,
    /// Active health checks, when configured.
    pub(crate) health: Option<Arc<ValidCheck>>,
    pub(crate) counters: Arc<DiscoveryCounters>,
    /// Turns `true` once discovery's first round of lookups is done (at once without one).
    pub(crate) resolved: watch::Receiver<bool>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) h2c: bool,
    pub(crate) preserve_host: bool,
    pub(crate) trusted: TrustedProxies,
    pub(crate) eject_for: Duration,
    pub(crate) upgrades: UpgradeProtocols,
    pub(crate) epoch: Instant,
}

impl Upstream {
    /// Starts building an upstream named `name` (used in logs and error responses) over
    /// targets such as `http://10.0.0.7:8080` or `http://users.internal/api`.
    ///
    /// A target is a URL, or a `(URL, weight)` pair for weighted balancing (see
    /// [`WeightedTarget`]).
    pub fn builder<I>(name: impl Into<String>, targets: I) -> UpstreamBuilder
    where
        I: IntoIterator,
        I::Item: Into<WeightedTarget>,
    {
        UpstreamBuilder {
            name: name.into(),
            targets: targets.into_iter().map(Into::into).collect(),
            srv: None,
            resolver: None,
            resolve_every: DEFAULT_RESOLVE_EVERY,
            health_check: None,
            counters: Arc::default(),
            balance: Balance::default(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_target: 128,
            h2c: false,
            preserve_host: false,
            trusted: TrustedProxies::none(),
            eject_for: Duration::from_secs(10),
            roots: crate::tls::UpstreamRoots::System,
            upgrades: UpgradeProtocols::default(),
            max_response_head: DEFAULT_MAX_RESPONSE_HEAD,
            body_timeout: None,
            body_timeouts: Arc::default(),
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The state of each target (every address of a resolved name), in configuration
    /// order, for readiness and metrics.
    pub fn targets(&self) -> impl ExactSizeIterator<Item = TargetStatus> + use<> {
        let checked = self.inner.health.is_some();
        self.inner
            .targets
            .snapshot()
            .targets
            .iter()
            .map(|target| TargetStatus {
                url: target.url.clone(),
                address: target.addr,
                source: target.source,
                weight: target.weight,
                in_flight: target.in_flight(),
                ejected: target.is_ejected(),
                health: match (checked, target.is_healthy()) {
                    (false, _) => Health::Unchecked,
                    (true, true) => Health::Healthy,
                    (true, false) => Health::Unhealthy,
                },
                last_probe: target.probes.last(),
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Whether at least one target can take requests: not ejected, passing its health
    /// checks, with a weight (a readiness check). When none can, requests still go to
    /// them (fail open), but the upstream is reported unavailable.
    pub fn is_available(&self) -> bool {
        self.inner.targets.with(|set| {
            set.targets
                .iter()
                .any(|target| target.weight > 0 && target.is_usable())
        })
    }

    /// Whether the upstream has active health checks.
    pub fn is_health_checked(&self) -> bool {
        self.inner.health.is_some()
    }

    /// Counts of the upstream's DNS lookups and health probes.
    pub fn discovery_counters(&self) -> &DiscoveryCounters {
        &self.inner.counters
    }

    /// Waits until discovery has looked up every hostname and SRV name once (whether the
    /// lookups succeeded or not); at once for an upstream without names to resolve. Await
    /// it (with a timeout) before serving, so that the first requests go to resolved
    /// addresses.
    pub async fn resolved(&self) {
        let mut resolved = self.inner.resolved.clone();
        // An error means the task is gone: nothing more will be resolved.
        let _ = resolved.wait_for(|done| *done).await;
    }
}

/// A target URL with its weight: what [`Upstream::builder`] takes. Built from a URL
/// (weight 1) or a `(URL, weight)` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedTarget {
    /// The target URL.
    pub url: String,
    /// Its relative share of requests; 0 keeps it out of rotation while other targets can
    /// serve.
    pub weight: u32,
}

impl From<&str> for WeightedTarget {
    fn from(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            weight: 1,
        }
    }
}

impl From<String> for WeightedTarget {
    fn from(url: String) -> Self {
        Self { url, weight: 1 }
    }
}

impl From<&String> for WeightedTarget {
    fn from(url: &String) -> Self {
        url.as_str().into()
    }
}

impl<S: Into<String>> From<(S, u32)> for WeightedTarget {
    fn from((url, weight): (S, u32)) -> Self {
        Self {
            url: url.into(),
            weight,
        }
    }
}

/// What active health checks say of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// The upstream has no health checks.
    Unchecked,
    /// Passing (or not failing enough yet).
    Healthy,
    /// Out of rotation after failing its probes.
    Unhealthy,
}

impl Health {
    /// `"unchecked"`, `"healthy"` or `"unhealthy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchecked => "unchecked",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// A snapshot of one target's state.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TargetStatus {
    /// The target's URL (for a resolved name, the name's URL).
    pub url: TargetUrl,
    /// The address connected to; `None` for a hostname not resolved yet (looked up per
    /// connection).
    pub address: Option<std::net::SocketAddr>,
    /// Where the target came from.
    pub source: TargetSource,
    /// Its relative share of requests.
    pub weight: u32,
    /// Requests sent to the target whose responses have not ended yet (tunnels included).
    pub in_flight: usize,
    /// Whether the target is skipped after refusing connections.
    pub ejected: bool,
    /// What active health checks say.
    pub health: Health,
    /// The last health probe's outcome.
    pub last_probe: Option<Probe>,
}

impl TargetStatus {
    /// Whether the balancer picks the target while another one is left: not ejected and not
    /// failing its health checks (as the target itself decides at each pick).
    pub fn is_usable(&self) -> bool {
        self.health != Health::Unhealthy && !self.ejected
    }
}

/// Builds an [`Upstream`]; see [`Upstream::builder`].
#[derive(Clone, Debug)]
#[must_use = "call `build` to get the upstream"]
pub struct UpstreamBuilder {
    name: String,
    targets: Vec<WeightedTarget>,
    srv: Option<(String, bool)>,
    resolver: Option<Resolver>,
    resolve_every: Duration,
    health_check: Option<HealthCheck>,
    counters: Arc<DiscoveryCounters>,
    balance: Balance,
    connect_timeout: Duration,
    response_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_target: usize,
    h2c: bool,
    preserve_host: bool,
    trusted: TrustedProxies,
    eject_for: Duration,
    roots: crate::tls::UpstreamRoots,
    upgrades: UpgradeProtocols,
    max_response_head: usize,
    body_timeout: Option<Duration>,
    body_timeouts: Arc<AtomicU64>,
}

impl UpstreamBuilder {
    /// Looks hostname targets up with `resolver` in the background: every address (A and
    /// AAAA) of a name becomes a target, re-resolved every
    /// [`resolve_every`](Self::resolve_every) or when the answer's TTL runs out, whichever
    /// comes first (default: no resolver; hostnames are looked up per new connection, and a
    /// name counts as one target whatever it resolves to).
    ///
    /// Needs a Tokio runtime when [`build`](Self::build) is called: the lookups run on a
    /// task spawned there, which ends when the upstream is dropped.
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The longest time between two lookups of a name (default 10 s); a shorter TTL in the
    /// answer wins (down to 1 s). Values below 100 ms are taken as 100 ms.
    pub fn resolve_every(mut self, every: Duration) -> Self {
        self.resolve_every = every.max(Duration::from_millis(100));
        self
    }

    /// Takes targets from the SRV records of `name` (such as
    /// `_http._tcp.users.service.consul`): host, port and weight from DNS, `https://` when
    /// the name starts with `_https.`, in addition to any target URLs given. Needs a
    /// [`resolver`](Self::resolver).
    pub fn srv(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        let tls = name.starts_with("_https.");
        self.srv = Some((name, tls));
        self
    }

    /// Probes every target actively (see [`HealthCheck`]). Needs a Tokio runtime when
    /// [`build`](Self::build) is called.
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.health_check = Some(check);
        self
    }

    /// Where DNS lookups and health probes are counted (by default counters of this
    /// upstream's own): pass one that outlives the upstream to keep totals across
    /// rebuilds.
    pub fn discovery_counters(mut self, counters: Arc<DiscoveryCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// The longest a response body may go without sending anything once its head has
    /// arrived (default: no limit). A body idle that long is aborted (the client sees the
    /// connection close before the body's end), its upstream connection closed, and the
    /// abort counted in [`body_timeouts`](Self::body_timeouts)' counter. `Duration::ZERO`
    /// turns the limit off. Raise it, or leave it off, for event streams and long polls.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Where the bodies aborted by [`body_timeout`](Self::body_timeout) are counted (by
    /// default a counter of this upstream's own): pass one that outlives the upstream to
    /// keep the total across rebuilds.
    pub fn body_timeouts(mut self, counter: Arc<AtomicU64>) -> Self {
        self.body_timeouts = counter;
        self
    }

    /// The certificate authorities `https://` targets are checked against (default: the
    /// system's trust store).
    pub fn tls_roots(mut self, roots: crate::tls::UpstreamRoots) -> Self {
        self.roots = roots;
        self
    }

    /// How requests are spread over the targets (default: round robin).
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }

    /// Time allowed to open a connection (default 2 s). On expiry the target counts as
    /// unreachable: ejected, and the request tried on another target, else 502.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed until the response headers arrive, counted from the request (or from
    /// the end of its body, for uploads that take longer); 504 on expiry (default 30 s).
    /// `Duration::MAX` sets no timer at all, for stacks whose outer timeout suffices.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long an idle pooled connection may be reused (default 90 s). Keep it below the
    /// upstream's own keep-alive timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Idle HTTP/1.1 connections kept per target and thread (default 128; 0 disables
    /// reuse).
    pub fn max_idle_per_target(mut self, max: usize) -> Self {
        self.max_idle_per_target = max;
        self
    }

    /// Speak HTTP/2 with prior knowledge (h2c) to the targets: one multiplexed connection
    /// per target and thread (default: HTTP/1.1). Upgrades still use HTTP/1.1.
    pub fn h2c(mut self, enabled: bool) -> Self {
        self.h2c = enabled;
        self
    }

    /// Forward the client's `Host` instead of the target's authority (default: off).
    pub fn preserve_host(mut self, enabled: bool) -> Self {
        self.preserve_host = enabled;
        self
    }

    /// Peers whose `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are
    /// believed and extended (default: none).
    pub fn trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted = trusted;
        self
    }

    /// How long a target that refuses connections is skipped (default 10 s; zero never
    /// skips).
    pub fn eject_for(mut self, duration: Duration) -> Self {
        self.eject_for = duration;
        self
    }

    /// The protocols clients may upgrade to (default: WebSocket only). Other `Upgrade`
    /// offers are removed and the request is forwarded as an ordinary one.
    pub fn upgrades(mut self, protocols: UpgradeProtocols) -> Self {
        self.upgrades = protocols;
        self
    }

    /// Largest response head (status line and headers) accepted from a target (default
    /// 64 KiB); a larger one is a `502`.
    pub fn max_response_head(mut self, bytes: usize) -> Self {
        self.max_response_head = bytes;
        self
    }

    /// Validates the targets and builds the upstream. With a [`resolver`](Self::resolver)
    /// or [health checks](Self::health_check), spawns their task on the current Tokio
    /// runtime.
    pub fn build(self) -> Result<Upstream, ProxyError> {
        if self.targets.is_empty() && self.srv.is_none() {
            return Err(ProxyError::NoTargets(self.name));
        }
        if self.srv.is_some() && self.resolver.is_none() {
            return Err(ProxyError::NoResolver(self.name));
        }
        let pool = PoolSettings {
            idle_timeout: self.idle_timeout,
            max_idle: self.max_idle_per_target,
            max_response_head: self.max_response_head,
            body_timeout: self.body_timeout,
            body_timeouts: self.body_timeouts,
        };
        let epoch = Instant::now();
        let targets = self
            .targets
            .iter()
            .map(|target| Ok((target.url.parse::<TargetUrl>()?, target.weight)))
            .collect::<Result<Vec<_>, ProxyError>>()?;
        let health = self
            .health_check
            .as_ref()
            .map(|check| check.validate(&self.name).map(Arc::new))
            .transpose()?;
        // Trust roots are loaded once per upstream, and only when a target needs them.
        let needs_tls =
            targets.iter().any(|(url, _)| url.is_tls()) || self.srv.as_ref().is_some_and(|s| s.1);
        let tls = match needs_tls {
            true => Some(crate::tls::UpstreamTls::new(&self.roots)?),
            false => None,
        };
        let factory = Factory { tls, pool, epoch };

        let mut origins: Vec<Origin> = targets
            .into_iter()
            .map(|(url, weight)| {
                let spec = TargetSpec::configured(url, weight);
                match (&self.resolver, spec.addr) {
                    (Some(_), None) => Origin::Host {
                        url: spec.url,
                        weight,
                    },
                    _ => Origin::Fixed(spec),
                }
            })
            .collect();
        if let Some((name, tls)) = self.srv.clone() {
            origins.push(Origin::Srv { name, tls });
        }
        let discovered = origins.iter().any(|o| !matches!(o, Origin::Fixed(_)));
        let runtime = match discovered || health.is_some() {
            true => Some(
                tokio::runtime::Handle::try_current()
                    .map_err(|_| ProxyError::NoRuntime(self.name.clone()))?,
            ),
            false => None,
        };
        let (resolved_tx, resolved) = watch::channel(!discovered);
        let (targets, discovery) = match (discovered, self.resolver) {
            (true, Some(resolver)) => {
                let discovery = Discovery::new(origins, resolver, self.resolve_every, factory);
                let set = discovery.initial();
                (
                    Targets::Discovered(ArcSwap::from_pointee(set)),
                    Some(discovery),
                )
            }
            (false, _) | (true, None) => {
                let discovery_free = origins
                    .into_iter()
                    .filter_map(|origin| match origin {
                        Origin::Fixed(spec) => Some(factory.target(spec)),
                        _ => None,
                    })
                    .collect();
                (Targets::Fixed(TargetSet::new(discovery_free)), None)
            }
        };
        let inner = Arc::new(Inner {
            name: self.name.into(),
            targets,
            balancer: Balancer::new(self.balance),
            health: health.clone(),
            counters: self.counters,
            resolved,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            h2c: self.h2c,
            preserve_host: self.preserve_host,
            trusted: self.trusted,
            eject_for: self.eject_for,
            upgrades: self.upgrades,
            epoch,
        });
        if let Some(runtime) = runtime {
            if let Some(discovery) = discovery {
                runtime.spawn(crate::discovery::run(
                    Arc::downgrade(&inner),
                    discovery,
                    resolved_tx,
                ));
            }
            if let Some(check) = health {
                runtime.spawn(crate::health::run(Arc::downgrade(&inner), check));
            }
        }
        Ok(Upstream { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_validates_targets() {
        let err = Upstream::builder("users", ["http://127.0.0.1:1", "ftp://x"])
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("ftp://x"), "{err}");
        let err = Upstream::builder("users", ["https://x"])
            .tls_roots(crate::UpstreamRoots::CaFile("/nonexistent/ca.pem".into()))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let err = Upstream::builder("users", Vec::<String>::new())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("users"), "{err}");
    }

    #[test]
    fn status_lists_targets_in_order() {
        let upstream = Upstream::builder("users", ["http://127.0.0.1:1", "http://127.0.0.1:2/x"])
            .build()
            .unwrap();
        let urls: Vec<String> = upstream.targets().map(|t| t.url.to_string()).collect();
        assert_eq!(urls, ["http://127.0.0.1:1", "http://127.0.0.1:2/x"]);
        assert!(
            upstream
                .targets()
                .all(|t| t.in_flight == 0 && !t.ejected && t.health == Health::Unchecked)
        );
        assert!(upstream.is_available());
        assert_eq!(upstream.name(), "users");
    }
}
