//! One upstream server: its validated URL and the state the balancer shares across threads
//! (requests in flight, ejection).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use http::uri::{Authority, Scheme, Uri};
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::ProxyError;

/// A target URL, `http://host:port[/base]` or `https://...`, validated.
///
/// Deserializes from a string, so a config loader reports a bad URL at its line. The base
/// path (without a trailing slash) is prepended to every forwarded path.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TargetUrl {
    text: Box<str>,
    tls: bool,
    authority: Authority,
    port: u16,
    base: Box<str>,
}

impl TargetUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `host:port` as written in the URL (the port may be implied).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The base path, empty or starting with `/` and never ending with one.
    pub fn base_path(&self) -> &str {
        &self.base
    }

    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        let host = self.authority.host();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The host as an IP address, when it is one (a name is resolved instead).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host().parse().ok()
    }

    /// The port (80, or 443 for `https`, when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether connections to the target use TLS (`https://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl FromStr for TargetUrl {
    type Err = ProxyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &'static str| ProxyError::InvalidTarget {
            url: text.to_owned(),
            reason,
        };
        let uri: Uri = text
            .parse()
            .map_err(|_| invalid("not a URL; write e.g. `http://127.0.0.1:9001`"))?;
        let tls = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => false,
            Some(scheme) if *scheme == Scheme::HTTPS => true,
            _ => return Err(invalid("the scheme must be `http://` or `https://`")),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        if authority.host().is_empty() {
            return Err(invalid("the URL has no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a target URL cannot have a query"));
        }
        if authority.port_u16() == Some(0) {
            return Err(invalid("the port must be from 1 to 65535"));
        }
        let base = uri.path().trim_end_matches('/');
        Ok(Self {
            text: text.into(),
            tls,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority,
            base: base.into(),
        })
    }
}

impl TryFrom<String> for TargetUrl {
    type Error = ProxyError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Connection-pool settings every target of an upstream shares.
#[derive(Clone, Debug)]
pub(crate) struct PoolSettings {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle: usize,
    /// Largest response head read from a target.
    pub(crate) max_response_head: usize,
    /// The longest a response body may go without a frame; `None`: no limit.
    pub(crate) body_timeout: Option<Duration>,
    /// Counts the bodies aborted by `body_timeout` (shared with whoever reports it).
    pub(crate) body_timeouts: Arc<AtomicU64>,
}

/// Where a target came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetSource {
    /// Written in the configuration with an IP address (or a hostname not resolved yet,
    /// which is then looked up per connection).
    Static,
    /// An address a configured hostname resolved to (A/AAAA).
    Dns,
    /// A server of an SRV record, with the port and weight it gives.
    Srv,
}

impl TargetSource {
    /// `"static"`, `"dns"` or `"srv"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dns => "dns",
            Self::Srv => "srv",
        }
    }
}

/// A target and its shared state. One per target URL and address, behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Target {
    /// Process-unique key of this target's thread-local connection pools.
    pub(crate) id: u64,
    pub(crate) url: TargetUrl,
    /// The socket address when the host is an IP literal or was resolved (no lookup per
    /// connection then).
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) source: TargetSource,
    /// Relative share of requests; 0 takes the target out of rotation.
    pub(crate) weight: u32,
    /// `Host` header value of the target.
    pub(crate) host_header: HeaderValue,
    /// TLS settings, for an `https://` target.
    pub(crate) tls: Option<crate::tls::UpstreamTls>,
    pub(crate) pool: PoolSettings,
    /// Set by active health checks only; read by the balancer with one relaxed load.
    healthy: AtomicBool,
    pub(crate) probes: crate::health::ProbeRecord,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` until which the target is skipped; 0 when it is not.
    ejected_until: AtomicU64,
    epoch: Instant,
}

/// What a target is built from, besides the upstream's shared settings.
#[derive(Clone, Debug)]
pub(crate) struct TargetSpec {
    pub(crate) url: TargetUrl,
    /// The address to connect to; `None` to look the URL's host up per connection.
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) source: TargetSource,
    pub(crate) weight: u32,
}

impl TargetSpec {
    /// A configured URL: its address is known when the host is an IP literal.
    pub(crate) fn configured(url: TargetUrl, weight: u32) -> Self {
        let addr = url.ip().map(|ip| SocketAddr::new(ip, url.port()));
        Self {
            url,
            addr,
            source: TargetSource::Static,
            weight,
        }
    }

    /// Whether a target built from `self` is `target` (same URL, address and weight), so
    /// that a re-resolution keeps the target and its state.
    pub(crate) fn matches(&self, target: &Target) -> bool {
        self.url == target.url
            && self.addr == target.addr
            && self.source == target.source
            && self.weight == target.weight
    }
}

impl Target {
    pub(crate) fn new(
        id: u64,
        spec: TargetSpec,
        tls: Option<crate::tls::UpstreamTls>,
        pool: PoolSettings,
        epoch: Instant,
    ) -> Self {
        let TargetSpec {
            url,
            addr,
            source,
            weight,
        } = spec;
        // An `Authority` is always a valid header value.
        let host_header = HeaderValue::from_str(url.authority().as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Self {
            id,
            url,
            addr,
            source,
            weight,
            host_header,
            tls,
            pool,
            healthy: AtomicBool::new(true),
            probes: crate::health::ProbeRecord::default(),
            in_flight: AtomicUsize::new(0),
            ejected_until: AtomicU64::new(0),
            epoch,
        }
    }

    /// Whether the balancer may pick the target: not ejected, not failing its health
    /// checks.
    pub(crate) fn is_usable(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.is_ejected()
    }

    /// Whether the target passes its health checks (always, without them).
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Requests sent to this target whose responses have not ended.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Skips the target for `duration` from now.
    pub(crate) fn eject(&self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        let until = self.millis(Instant::now() + duration).max(1);
        self.ejected_until.store(until, Ordering::Relaxed);
    }

    /// Whether the target is being skipped; reads the clock only while it is.
    pub(crate) fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if self.millis(Instant::now()) < until {
            return true;
        }
        // Expired: clear it so that later checks skip the clock (unless re-ejected meanwhile).
        let _ = self
            .ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        false
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Target {
    /// The URL, and the address when it was resolved from the URL's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.source, self.addr) {
            (TargetSource::Static, _) | (_, None) => write!(f, "{}", self.url),
            (_, Some(addr)) => write!(f, "{} ({addr})", self.url),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Its idle pooled connections, on every thread, are closed at that thread's next
        // pool access instead of lingering until the upstream closes them.
        crate::pool::note_retired();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_base() {
        let url: TargetUrl = "http://127.0.0.1:9001/api/v2/".parse().unwrap();
        assert_eq!(url.host(), "127.0.0.1");
        assert_eq!(url.port(), 9001);
        assert_eq!(url.base_path(), "/api/v2");
        assert_eq!(url.authority().as_str(), "127.0.0.1:9001");

        let url: TargetUrl = "http://[::1]:8080".parse().unwrap();
        assert_eq!(url.host(), "::1");
        assert_eq!(url.base_path(), "");

        let url: TargetUrl = "http://users.internal".parse().unwrap();
        assert_eq!(url.port(), 80);
        assert_eq!(url.base_path(), "");
        assert!(!url.is_tls());

        let url: TargetUrl = "https://users.internal/v1".parse().unwrap();
        assert_eq!(url.port(), 443);
        assert!(url.is_tls());
    }

    #[test]
    fn rejects_what_cannot_be_a_target() {
        for (url, reason) in [
            ("ftp://example.com", "scheme"),
            ("127.0.0.1:9000", "scheme"),
            ("http://user:pw@example.com", "credentials"),
            ("http://example.com/?a=1", "query"),
            ("not a url", "not a URL"),
            // Found by the `target_url` fuzz target: port 0 was taken for a target.
            ("http://127ttp:0/ap:2sp", "port"),
            ("https://127.0.0.1:0", "port"),
        ] {
            let err = url.parse::<TargetUrl>().unwrap_err().to_string();
            assert!(err.contains(reason), "{url}: {err}");
            assert!(err.contains(url), "{url}: {err}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_expires() {
        let settings = PoolSettings {
            idle_timeout: Duration::from_secs(1),
            max_idle: 1,
            max_response_head: 8192,
            body_timeout: None,
            body_timeouts: Default::default(),
        };
        let target = Target::new(
            1,
            TargetSpec::configured("http://127.0.0.1:1".parse().unwrap(), 1),
            None,
            settings,
            Instant::now(),
        );
        assert!(!target.is_ejected());
        target.eject(Duration::from_secs(10));
        assert!(target.is_ejected());
        tokio::time::advance(Duration::from_millis(9_900)).await;
        assert!(target.is_ejected());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!target.is_ejected());
        target.eject(Duration::ZERO);
        assert!(!target.is_ejected());
    }
}
