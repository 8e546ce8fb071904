//! Discovery: hostname targets expanded to every address they resolve to, and SRV names to
//! their servers, re-resolved in the background; the upstream's set of targets is swapped
//! when an answer changes it.
//!
//! Targets that stay keep their state (load, ejection, health, pooled connections). Removed
//! ones drain: requests on them finish (they hold the target), and their idle pooled
//! connections close once the last request lets go of it. A failed or empty answer keeps
//! the last good set.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::resolver::{Resolver, Service};
use crate::set::TargetSet;
use crate::target::{PoolSettings, Target, TargetSource, TargetSpec, TargetUrl};
use crate::upstream::{Inner, NEXT_TARGET_ID};

/// The shortest wait a TTL can impose before the next lookup of a name (a TTL of 0 would
/// otherwise mean a lookup per loop); `resolve_every` itself may be shorter.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Where some of an upstream's targets come from.
#[derive(Debug)]
pub(crate) enum Origin {
    /// A configured target with an IP address: never looked up.
    Fixed(TargetSpec),
    /// A configured target with a hostname: one target per address.
    Host { url: TargetUrl, weight: u32 },
    /// An SRV name: one target per server and address.
    Srv { name: String, tls: bool },
}

#[derive(Debug)]
struct Source {
    origin: Origin,
    /// The targets of the last good answer (for a hostname, before any: the hostname
    /// itself, looked up per connection).
    specs: Vec<TargetSpec>,
    due: Instant,
}

/// How new targets are built.
#[derive(Clone, Debug)]
pub(crate) struct Factory {
    pub(crate) tls: Option<crate::tls::UpstreamTls>,
    pub(crate) pool: PoolSettings,
    pub(crate) epoch: Instant,
}

impl Factory {
    pub(crate) fn target(&self, spec: TargetSpec) -> Arc<Target> {
        let id = NEXT_TARGET_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tls = if spec.url.is_tls() {
            self.tls.clone()
        } else {
            None
        };
        Arc::new(Target::new(id, spec, tls, self.pool.clone(), self.epoch))
    }
}

/// The background work of one upstream's discovery.
#[derive(Debug)]
pub(crate) struct Discovery {
    sources: Vec<Source>,
    resolver: Resolver,
    every: Duration,
    factory: Factory,
}

impl Discovery {
    pub(crate) fn new(
        origins: Vec<Origin>,
        resolver: Resolver,
        every: Duration,
        factory: Factory,
    ) -> Self {
        let now = Instant::now();
        let sources = origins
            .into_iter()
            .map(|origin| Source {
                specs: match &origin {
                    Origin::Fixed(spec) => vec![spec.clone()],
                    Origin::Host { url, weight } => {
                        vec![TargetSpec::configured(url.clone(), *weight)]
                    }
                    Origin::Srv { .. } => Vec::new(),
                },
                origin,
                due: now,
            })
            .collect();
        Self {
            sources,
            resolver,
            every,
            factory,
        }
    }

    /// The targets before any answer: what [`run`] starts from.
    pub(crate) fn initial(&self) -> TargetSet {
        TargetSet::new(
            self.specs()
                .map(|spec| self.factory.target(spec.clone()))
                .collect(),
        )
    }

    fn specs(&self) -> impl Iterator<Item = &TargetSpec> {
        self.sources.iter().flat_map(|source| source.specs.iter())
    }

    /// Looks up every name that is due; gives whether any answer changed the targets.
    async fn refresh(&mut self, name: &str, counters: &DiscoveryCounters) -> bool {
        let now = Instant::now();
        let mut changed = false;
        for source in &mut self.sources {
            if source.due > now {
                continue;
            }
            let looked_up = match &source.origin {
                Origin::Fixed(_) => {
                    source.due = far_future();
                    continue;
                }
                Origin::Host { url, weight } => {
                    self.resolver.addresses(url.host()).await.map(|answer| {
                        answer.map(|ips| address_specs(url, &ips, *weight, TargetSource::Dns))
                    })
                }
                Origin::Srv { name, tls } => resolve_srv(&self.resolver, name, *tls).await,
            };
            let wait = match looked_up {
                Ok(answer) if answer.records.is_empty() => {
                    counters.count_resolution(Resolution::Empty);
                    tracing::warn!(upstream = %name, name = %source.origin.name(), "DNS answer has no address: keeping the last targets");
                    self.every
                }
                Ok(answer) => {
                    counters.count_resolution(Resolution::Ok);
                    let mut specs = answer.records;
                    specs.sort_by(|a, b| (a.url.as_str(), a.addr).cmp(&(b.url.as_str(), b.addr)));
                    specs.dedup_by(|a, b| a.url == b.url && a.addr == b.addr);
                    if specs.len() != source.specs.len()
                        || specs.iter().zip(&source.specs).any(|(new, old)| {
                            new.url != old.url || new.addr != old.addr || new.weight != old.weight
                        })
                    {
                        tracing::info!(upstream = %name, name = %source.origin.name(), addresses = ?specs.iter().filter_map(|s| s.addr).collect::<Vec<_>>(), "targets changed");
                        source.specs = specs;
                        changed = true;
                    }
                    self.every.min(answer.ttl.max(MIN_REFRESH))
                }
                Err(error) => {
                    counters.count_resolution(Resolution::Failed);
                    tracing::warn!(upstream = %name, name = %source.origin.name(), %error, "DNS lookup failed: keeping the last targets");
                    self.every
                }
            };
            source.due = Instant::now() + wait;
        }
        changed
    }

    /// The set after a change: targets that stay are the same `Arc`s, keeping their state.
    fn rebuild(&self, current: &TargetSet) -> TargetSet {
        let targets = self
            .specs()
            .map(|spec| {
                current
                    .targets
                    .iter()
                    .find(|target| spec.matches(target))
                    .cloned()
                    .unwrap_or_else(|| self.factory.target(spec.clone()))
            })
            .collect();
        TargetSet::new(targets)
    }

    fn next_due(&self) -> Instant {
        self.sources
            .iter()
            .map(|source| source.due)
            .min()
            .unwrap_or_else(far_future)
    }
}

impl Origin {
    fn name(&self) -> &str {
        match self {
            Self::Fixed(spec) => spec.url.host(),
            Self::Host { url, .. } => url.host(),
            Self::Srv { name, .. } => name,
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn address_specs(
    url: &TargetUrl,
    ips: &[IpAddr],
    weight: u32,
    source: TargetSource,
) -> Vec<TargetSpec> {
    ips.iter()
        .map(|&ip| TargetSpec {
            url: url.clone(),
            addr: Some(SocketAddr::new(ip, url.port())),
            source,
            weight,
        })
        .collect()
}

/// The servers of an SRV name, each expanded to its addresses. Only the records of the
/// best (lowest) priority are used. Weights are the records'; when every record has
/// weight 0 (no preference, RFC 2782) they share equally.
async fn resolve_srv(
    resolver: &Resolver,
    name: &str,
    tls: bool,
) -> Result<crate::resolver::Answer<Vec<TargetSpec>>, crate::resolver::ResolveError> {
    let answer = resolver.services(name).await?;
    let best = answer.records.iter().map(|s| s.priority).min();
    let chosen: Vec<&Service> = answer
        .records
        .iter()
        .filter(|s| Some(s.priority) == best && s.port != 0)
        .collect();
    let no_preference = chosen.iter().all(|s| s.weight == 0);
    let mut ttl = answer.ttl;
    let mut specs = Vec::new();
    let scheme = if tls { "https" } else { "http" };
    for service in chosen {
        let host = service.target.trim_end_matches('.');
        let Ok(url) = format!("{scheme}://{}:{}", bracket(host), service.port).parse::<TargetUrl>()
        else {
            tracing::warn!(srv = %name, target = %service.target, "SRV record names no usable host");
            continue;
        };
        let weight = if no_preference {
            1
        } else {
            u32::from(service.weight)
        };
        let ips = match url.ip() {
            Some(ip) => vec![ip],
            None => match resolver.addresses(host).await {
                Ok(addresses) => {
                    ttl = ttl.min(addresses.ttl);
                    addresses.records
                }
                Err(error) => {
                    tracing::warn!(srv = %name, host, %error, "SRV target does not resolve");
                    continue;
                }
            },
        };
        specs.extend(address_specs(&url, &ips, weight, TargetSource::Srv));
    }
    Ok(crate::resolver::Answer {
        records: specs,
        ttl,
    })
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Resolves the upstream's names until it is dropped; says when the first round is done.
pub(crate) async fn run(
    upstream: Weak<Inner>,
    mut discovery: Discovery,
    first: watch::Sender<bool>,
) {
    loop {
        let Some((name, counters)) = upstream
            .upgrade()
            .map(|inner| (inner.name.clone(), inner.counters.clone()))
        else {
            return;
        };
        if discovery.refresh(&name, &counters).await {
            let Some(inner) = upstream.upgrade() else {
                return;
            };
            let set = discovery.rebuild(&inner.targets.snapshot());
            inner.targets.replace(set);
        }
        first.send_replace(true);
        tokio::time::sleep_until(discovery.next_due()).await;
    }
}

/// How a lookup went, for `gateway_dns_resolutions_total`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Resolution {
    Ok,
    Empty,
    Failed,
}

/// Counts of lookups and probes, shared with whoever reports them.
///
/// Pass one that outlives an upstream to
/// [`UpstreamBuilder::discovery_counters`](crate::UpstreamBuilder::discovery_counters) to
/// keep totals across rebuilds.
#[derive(Debug, Default)]
pub struct DiscoveryCounters {
    resolved: std::sync::atomic::AtomicU64,
    empty: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    passed: std::sync::atomic::AtomicU64,
    probe_failed: std::sync::atomic::AtomicU64,
}

impl DiscoveryCounters {
    pub(crate) fn count_resolution(&self, result: Resolution) {
        let counter = match result {
            Resolution::Ok => &self.resolved,
            Resolution::Empty => &self.empty,
            Resolution::Failed => &self.failed,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn count_probe(&self, passed: bool) {
        let counter = if passed {
            &self.passed
        } else {
            &self.probe_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Lookups that gave addresses.
    pub fn resolutions_ok(&self) -> u64 {
        self.resolved.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lookups that gave no address (the last targets were kept).
    pub fn resolutions_empty(&self) -> u64 {
        self.empty.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lookups that failed: no answer, or an error (the last targets were kept).
    pub fn resolutions_failed(&self) -> u64 {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Health probes that passed.
    pub fn probes_passed(&self) -> u64 {
        self.passed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Health probes that failed.
    pub fn probes_failed(&self) -> u64 {
        self.probe_failed.load(std::sync::atomic::Ordering::Relaxed)
    }
}
