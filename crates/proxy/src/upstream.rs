//! An upstream: named targets and how to reach them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_core::TrustedProxies;
use tokio::time::Instant;

use crate::balance::{Balance, Balancer};
use crate::error::ProxyError;
use crate::protocols::UpgradeProtocols;
use crate::target::{PoolSettings, Target, TargetUrl};

/// The default [`UpstreamBuilder::max_response_head`].
const DEFAULT_MAX_RESPONSE_HEAD: usize = 64 << 10;

/// Keys of the thread-local pools: unique per target per process.
static NEXT_TARGET_ID: AtomicU64 = AtomicU64::new(1);

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
    pub(crate) name: Box<str>,
    pub(crate) targets: Box<[Arc<Target>]>,
    pub(crate) balancer: Balancer,
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
    pub fn builder<I>(name: impl Into<String>, targets: I) -> UpstreamBuilder
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        UpstreamBuilder {
            name: name.into(),
            targets: targets.into_iter().map(|t| t.as_ref().to_owned()).collect(),
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

    /// The state of each target, in configuration order (for readiness and metrics).
    pub fn targets(&self) -> impl ExactSizeIterator<Item = TargetStatus<'_>> + '_ {
        self.inner.targets.iter().map(|target| TargetStatus {
            url: &target.url,
            in_flight: target.in_flight(),
            ejected: target.is_ejected(),
        })
    }

    /// Whether at least one target is not ejected (a readiness check).
    pub fn is_available(&self) -> bool {
        self.inner.targets.iter().any(|target| !target.is_ejected())
    }
}

/// A snapshot of one target's state.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TargetStatus<'a> {
    /// The target's URL.
    pub url: &'a TargetUrl,
    /// Requests sent to the target whose responses have not ended yet (tunnels included).
    pub in_flight: usize,
    /// Whether the target is skipped after refusing connections.
    pub ejected: bool,
}

/// Builds an [`Upstream`]; see [`Upstream::builder`].
#[derive(Clone, Debug)]
#[must_use = "call `build` to get the upstream"]
pub struct UpstreamBuilder {
    name: String,
    targets: Vec<String>,
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

    /// Validates the targets and builds the upstream.
    pub fn build(self) -> Result<Upstream, ProxyError> {
        if self.targets.is_empty() {
            return Err(ProxyError::NoTargets(self.name));
        }
        let pool = PoolSettings {
            idle_timeout: self.idle_timeout,
            max_idle: self.max_idle_per_target,
            max_response_head: self.max_response_head,
            body_timeout: self.body_timeout,
            body_timeouts: self.body_timeouts,
        };
        let epoch = Instant::now();
        let urls = self
            .targets
            .iter()
            .map(|url| url.parse::<TargetUrl>())
            .collect::<Result<Vec<_>, _>>()?;
        // Trust roots are loaded once per upstream, and only when a target needs them.
        let tls = match urls.iter().any(TargetUrl::is_tls) {
            true => Some(crate::tls::UpstreamTls::new(&self.roots)?),
            false => None,
        };
        let targets = urls
            .into_iter()
            .map(|url| {
                let id = NEXT_TARGET_ID.fetch_add(1, Ordering::Relaxed);
                let tls = if url.is_tls() { tls.clone() } else { None };
                Arc::new(Target::new(id, url, tls, pool.clone(), epoch))
            })
            .collect();
        Ok(Upstream {
            inner: Arc::new(Inner {
                name: self.name.into(),
                targets,
                balancer: Balancer::new(self.balance),
                connect_timeout: self.connect_timeout,
                response_timeout: self.response_timeout,
                h2c: self.h2c,
                preserve_host: self.preserve_host,
                trusted: self.trusted,
                eject_for: self.eject_for,
                upgrades: self.upgrades,
                epoch,
            }),
        })
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
        let urls: Vec<&str> = upstream.targets().map(|t| t.url.as_str()).collect();
        assert_eq!(urls, ["http://127.0.0.1:1", "http://127.0.0.1:2/x"]);
        assert!(upstream.targets().all(|t| t.in_flight == 0 && !t.ejected));
        assert!(upstream.is_available());
        assert_eq!(upstream.name(), "users");
    }
}
