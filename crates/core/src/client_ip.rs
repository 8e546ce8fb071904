//! Who the client is: the TCP peer, the trusted proxies in front of the gateway, and the
//! client IP resolved from both.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request};
use ipnet::IpNet;
use tower_layer::Layer;
use tower_service::Service;

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The address of the TCP peer of the connection a request arrived on.
///
/// The server inserts it into every request's extensions (the gateway binary does; with axum,
/// insert it from `ConnectInfo<SocketAddr>` with a `map_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The client's IP address, resolved through trusted proxies by [`ResolveClientIpLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client IP of a request: the resolved [`ClientIp`] extension when present, else the
    /// [`PeerAddr`]'s IP.
    pub fn of<B>(request: &Request<B>) -> Option<IpAddr> {
        let extensions = request.extensions();
        extensions
            .get::<ClientIp>()
            .map(|ip| ip.0)
            .or_else(|| extensions.get::<PeerAddr>().map(|peer| peer.0.ip()))
    }
}

/// The error of parsing a trusted-proxy network.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or a CIDR network (e.g. 10.0.0.0/8)")]
pub struct InvalidNetwork(String);

/// The networks whose `X-Forwarded-For` is believed.
///
/// A request from a peer outside these networks is attributed to the peer itself, whatever
/// headers it sent, so a client cannot pick the address it is rate-limited or logged under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Arc<[IpNet]>,
}

impl TrustedProxies {
    /// Trust the given networks.
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            networks: networks.into_iter().collect(),
        }
    }

    /// Trust no one: the client IP is always the peer's.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses networks such as `10.0.0.0/8`, `::1/128` or a bare address (`192.0.2.7`).
    pub fn parse<I, S>(networks: I) -> Result<Self, InvalidNetwork>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        networks
            .into_iter()
            .map(|s| parse_network(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// Whether an address belongs to a trusted network.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address it maps.
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether any network is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Resolves the client IP of a request that came from `peer`.
    ///
    /// When the peer is trusted, `X-Forwarded-For` is read right to left and the first address
    /// that is not a trusted proxy is the client; an entry that does not parse stops the walk
    /// (the last trusted hop is then the client). An untrusted peer is the client.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        // Later header lines are appended by nearer proxies: walk lines and entries backwards.
        for line in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for entry in line.rsplit(',') {
                let Some(ip) = parse_forwarded_entry(entry) else {
                    return client;
                };
                client = ip;
                if !self.is_trusted(ip) {
                    return ip;
                }
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidNetwork;

    /// Parses a comma-separated list of networks.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }
}

fn parse_network(s: &str) -> Result<IpNet, InvalidNetwork> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| InvalidNetwork(s.to_owned()))
}

/// One `X-Forwarded-For` entry: an address, optionally bracketed or with a port.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(bracketed) = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
        return bracketed
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|addr| addr.ip().to_canonical())
}

/// A layer that resolves the client IP of each request and stores it as [`ClientIp`].
///
/// Requests without a [`PeerAddr`] extension pass through unchanged.
#[derive(Clone, Debug, Default)]
pub struct ResolveClientIpLayer {
    trusted: TrustedProxies,
}

impl ResolveClientIpLayer {
    /// Resolves client IPs through the given trusted proxies.
    pub fn new(trusted: TrustedProxies) -> Self {
        Self { trusted }
    }
}

impl<S> Layer<S> for ResolveClientIpLayer {
    type Service = ResolveClientIp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveClientIp {
            inner,
            trusted: self.trusted.clone(),
        }
    }
}

/// The service of [`ResolveClientIpLayer`].
#[derive(Clone, Debug)]
pub struct ResolveClientIp<S> {
    inner: S,
    trusted: TrustedProxies,
}

impl<S, B> Service<Request<B>> for ResolveClientIp<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(peer) = request.extensions().get::<PeerAddr>() {
            let ip = self.trusted.resolve(peer.0.ip(), request.headers());
            request.extensions_mut().insert(ClientIp(ip));
        }
        self.inner.call(request)
    }
}

/// The old name of [`ResolveClientIpLayer`].
#[deprecated(note = "renamed to `ResolveClientIpLayer`")]
pub type ClientIpLayer = ResolveClientIpLayer;

/// The old name of [`ResolveClientIp`].
#[deprecated(note = "renamed to `ResolveClientIp`")]
pub type ClientIpService<S> = ResolveClientIp<S>;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in xff {
            map.append("x-forwarded-for", line.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        assert_eq!(
            trusted.resolve(ip("203.0.113.9"), &headers(&["1.2.3.4"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_chain_is_walked_from_the_right() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.1"]).unwrap();
        let h = headers(&["6.6.6.6, 198.51.100.4", "192.168.1.1"]);
        assert_eq!(trusted.resolve(ip("10.1.2.3"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn garbage_entry_stops_the_walk_at_the_last_trusted_hop() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let h = headers(&["1.2.3.4, not-an-ip, 10.0.0.2"]);
        assert_eq!(trusted.resolve(ip("10.0.0.1"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn all_trusted_means_the_leftmost_is_the_client() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let h = headers(&["10.0.0.3, 10.0.0.2"]);
        assert_eq!(trusted.resolve(ip("10.0.0.1"), &h), ip("10.0.0.3"));
    }

    #[test]
    fn mapped_ipv6_and_ports_are_understood() {
        let trusted = TrustedProxies::parse(["127.0.0.0/8"]).unwrap();
        assert!(trusted.is_trusted(ip("::ffff:127.0.0.1")));
        let h = headers(&["[2001:db8::1]:4711"]);
        assert_eq!(trusted.resolve(ip("127.0.0.1"), &h), ip("2001:db8::1"));
    }

    #[test]
    #[allow(deprecated)]
    fn the_old_layer_and_service_names_still_work() {
        let layer: ClientIpLayer = ClientIpLayer::new(TrustedProxies::none());
        let _: ClientIpService<()> = layer.layer(());
    }

    #[test]
    fn bad_network_is_an_error() {
        let err = TrustedProxies::parse(["10.0.0.0/33"]).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/33"));
    }
}
