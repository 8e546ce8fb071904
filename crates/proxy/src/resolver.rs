//! The DNS resolver discovery uses: hickory-resolver, asynchronous (no `getaddrinfo` on a
//! blocking thread), over UDP with TCP fallback, and without its answer cache, so that
//! every re-resolution asks the nameservers (the gateway's own schedule, `resolve_every`
//! bounded by the TTL, is the cache).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::error::ProxyError;

/// A DNS resolver for [`UpstreamBuilder::resolver`](crate::UpstreamBuilder::resolver).
///
/// Cheap to clone; share one between upstreams. Built by [`ResolverOptions`], or
/// [`Resolver::system`] for the system's configuration.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

/// How a [`Resolver`] is set up.
#[derive(Clone, Debug)]
#[must_use = "call `build` to get the resolver"]
pub struct ResolverOptions {
    nameservers: Option<Vec<SocketAddr>>,
    timeout: Duration,
    attempts: usize,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        Self {
            nameservers: None,
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }
}

impl ResolverOptions {
    /// The system's nameservers (`/etc/resolv.conf`), 2 s per query, 2 attempts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks these nameservers (UDP, and TCP for truncated answers) instead of the system's.
    pub fn nameservers(mut self, nameservers: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.nameservers = Some(nameservers.into_iter().collect());
        self
    }

    /// Time allowed for one query (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Queries sent before a lookup fails (default 2).
    pub fn attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Builds the resolver; reads the system's configuration unless nameservers are given.
    pub fn build(self) -> Result<Resolver, ProxyError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match &self.nameservers {
            None => TokioResolver::builder(provider).map_err(|error| {
                ProxyError::Resolver(format!("reading the system's DNS configuration: {error}"))
            })?,
            Some(nameservers) => {
                let servers = nameservers
                    .iter()
                    .map(|addr| {
                        let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                            .into_iter()
                            .map(|mut connection| {
                                connection.port = addr.port();
                                connection
                            })
                            .collect();
                        NameServerConfig::new(addr.ip(), true, connections)
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(servers),
                    provider,
                )
            }
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = self.timeout;
        // hickory counts retries after the first query.
        options.attempts = self.attempts - 1;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = 0;
        let inner = builder
            .build()
            .map_err(|error| ProxyError::Resolver(error.to_string()))?;
        Ok(Resolver { inner })
    }
}

impl Resolver {
    /// A resolver with the system's configuration (see [`ResolverOptions::new`]).
    pub fn system() -> Result<Self, ProxyError> {
        ResolverOptions::new().build()
    }

    /// Every address of `host` (A and AAAA).
    pub(crate) async fn addresses(&self, host: &str) -> Result<Answer<Vec<IpAddr>>, ResolveError> {
        match self.inner.lookup_ip(host).await {
            Ok(lookup) => {
                let ttl = min_ttl(lookup.as_lookup().answers().iter().filter_map(|record| {
                    matches!(record.data, RData::A(_) | RData::AAAA(_)).then_some(record.ttl)
                }));
                let mut records: Vec<IpAddr> = lookup.iter().collect();
                records.sort_unstable();
                records.dedup();
                Ok(Answer { records, ttl })
            }
            Err(error) if error.is_no_records_found() => Ok(Answer {
                records: Vec::new(),
                ttl: Duration::ZERO,
            }),
            Err(error) => Err(ResolveError(error.to_string())),
        }
    }

    /// The SRV records of `name`.
    pub(crate) async fn services(&self, name: &str) -> Result<Answer<Vec<Service>>, ResolveError> {
        match self.inner.srv_lookup(name).await {
            Ok(lookup) => {
                let mut ttls = Vec::new();
                let records = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::SRV(srv) => {
                            ttls.push(record.ttl);
                            Some(Service {
                                priority: srv.priority,
                                weight: srv.weight,
                                port: srv.port,
                                target: srv.target.to_utf8(),
                            })
                        }
                        _ => None,
                    })
                    .collect();
                Ok(Answer {
                    records,
                    ttl: min_ttl(ttls),
                })
            }
            Err(error) if error.is_no_records_found() => Ok(Answer {
                records: Vec::new(),
                ttl: Duration::ZERO,
            }),
            Err(error) => Err(ResolveError(error.to_string())),
        }
    }
}

fn min_ttl(ttls: impl IntoIterator<Item = u32>) -> Duration {
    Duration::from_secs(u64::from(ttls.into_iter().min().unwrap_or(0)))
}

/// Records of one answer, and how long they may be kept.
#[derive(Debug)]
pub(crate) struct Answer<T> {
    pub(crate) records: T,
    pub(crate) ttl: Duration,
}

impl<T> Answer<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        Answer {
            records: f(self.records),
            ttl: self.ttl,
        }
    }
}

/// One SRV record.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    pub(crate) target: String,
}

/// A lookup that got no usable answer (timeout, SERVFAIL, refused).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ResolveError(String);
