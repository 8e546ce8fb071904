//! The `X-Forwarded-*` and `X-Real-IP` headers of forwarded requests.

use std::net::IpAddr;

use bytes::Bytes;
use gateway_core::{IpText, TrustedProxies};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`: the chain of client and proxy addresses.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client asked for.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`: the client address, resolved through trusted proxies.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What the forwarding headers are computed from, read from the client's request before its
/// headers are rewritten.
#[derive(Debug)]
pub(crate) struct ClientFacts {
    /// The TCP peer (`PeerAddr`), if the server recorded it.
    pub(crate) peer: Option<IpAddr>,
    /// The resolved client IP (`ClientIp`), if a layer already resolved it.
    pub(crate) client_ip: Option<IpAddr>,
    /// `http`/`https`, as the client reached the gateway.
    pub(crate) scheme: HeaderValue,
    /// The `Host` the client asked for (or the URI authority of an HTTP/2 request).
    pub(crate) host: Option<HeaderValue>,
}

/// Sets `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
///
/// A trusted peer's `X-Forwarded-For` is extended with the peer's address and its
/// `X-Forwarded-Proto`/`-Host` are kept; from anyone else they are replaced, so a client
/// cannot make the upstream believe another address, scheme or host. Without a known peer
/// nothing can be vouched for and the client's address headers are removed.
pub(crate) fn set_forwarding_headers(
    headers: &mut HeaderMap,
    facts: ClientFacts,
    trusted: &TrustedProxies,
) {
    // Room for the four headers below (and `Host`), so the map grows at most once.
    headers.reserve(5);
    let peer = facts.peer.map(|ip| ip.to_canonical());
    let peer_trusted = peer.is_some_and(|ip| trusted.is_trusted(ip));
    // Resolved before X-Forwarded-For is rewritten: resolution reads the client's chain.
    let real_ip = facts
        .client_ip
        .map(|ip| ip.to_canonical())
        .or_else(|| peer.map(|ip| trusted.resolve(ip, headers)));
    let mut real_ip_value = None;
    match peer {
        Some(peer) => {
            let peer_value = ip_value(peer);
            let forwarded_for = if peer_trusted && headers.contains_key(X_FORWARDED_FOR) {
                append_to_chain(headers, &peer_value)
            } else {
                peer_value.clone()
            };
            if real_ip == Some(peer) {
                real_ip_value = Some(peer_value);
            }
            headers.insert(X_FORWARDED_FOR, forwarded_for);
        }
        None => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
    match real_ip_value.or_else(|| real_ip.map(ip_value)) {
        Some(value) => headers.insert(X_REAL_IP, value),
        None => headers.remove(X_REAL_IP),
    };
    if !(peer_trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, facts.scheme);
    }
    if !(peer_trusted && headers.contains_key(X_FORWARDED_HOST)) {
        match facts.host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(X_FORWARDED_HOST),
        };
    }
}

/// An address as a header value: one allocation, shared by its clones (`X-Forwarded-For`
/// and `X-Real-IP` are usually the same).
fn ip_value(ip: IpAddr) -> HeaderValue {
    IpText::new(ip).into_header_value()
}

/// Every `X-Forwarded-For` line joined with `, `, then `, <peer>`.
fn append_to_chain(headers: &HeaderMap, peer: &HeaderValue) -> HeaderValue {
    let lines = headers.get_all(X_FORWARDED_FOR);
    let len = lines.iter().map(|v| v.len() + 2).sum::<usize>() + peer.len();
    let mut chain = Vec::with_capacity(len);
    for line in lines {
        let line = line.as_bytes().trim_ascii();
        if !line.is_empty() {
            chain.extend_from_slice(line);
            chain.extend_from_slice(b", ");
        }
    }
    chain.extend_from_slice(peer.as_bytes());
    // Built from valid header values and an address: always valid.
    HeaderValue::from_maybe_shared(Bytes::from(chain)).unwrap_or_else(|_| peer.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::tests::map;

    #[test]
    fn formats_addresses() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.100.200.255",
            "255.255.255.255",
            "::1",
            "2001:db8::ff:1",
        ] {
            assert_eq!(ip_value(ip.parse().unwrap()), ip);
        }
    }

    fn facts(peer: &str, scheme: &'static str, host: Option<&'static str>) -> ClientFacts {
        ClientFacts {
            peer: Some(peer.parse().unwrap()),
            client_ip: None,
            scheme: HeaderValue::from_static(scheme),
            host: host.map(HeaderValue::from_static),
        }
    }

    #[test]
    fn trusted_peer_extends_the_chain_and_keeps_its_headers() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let mut headers = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example"),
        ]);
        set_forwarding_headers(
            &mut headers,
            facts("10.0.0.2", "http", Some("gw")),
            &trusted,
        );
        assert_eq!(
            headers["x-forwarded-for"],
            "203.0.113.7, 10.1.1.1, 10.0.0.2"
        );
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-real-ip"], "203.0.113.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "shop.example");
    }

    #[test]
    fn untrusted_peer_cannot_spoof_anything() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let mut headers = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ]);
        set_forwarding_headers(
            &mut headers,
            facts("198.51.100.9", "http", Some("gw.example")),
            &trusted,
        );
        assert_eq!(headers["x-forwarded-for"], "198.51.100.9");
        assert_eq!(headers["x-real-ip"], "198.51.100.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "gw.example");
    }

    #[test]
    fn trusted_peer_without_a_chain_starts_one() {
        let trusted = TrustedProxies::parse(["::1/128"]).unwrap();
        let mut headers = HeaderMap::new();
        set_forwarding_headers(&mut headers, facts("::1", "https", None), &trusted);
        assert_eq!(headers["x-forwarded-for"], "::1");
        assert_eq!(headers["x-real-ip"], "::1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert!(!headers.contains_key("x-forwarded-host"));
    }

    #[test]
    fn resolved_client_ip_wins_and_mapped_addresses_are_ipv4() {
        let mut headers = HeaderMap::new();
        let mut facts = facts("::ffff:192.0.2.1", "http", None);
        facts.client_ip = Some("203.0.113.50".parse().unwrap());
        set_forwarding_headers(&mut headers, facts, &TrustedProxies::none());
        assert_eq!(headers["x-forwarded-for"], "192.0.2.1");
        assert_eq!(headers["x-real-ip"], "203.0.113.50");
    }

    #[test]
    fn unknown_peer_removes_client_address_headers() {
        let mut headers = map(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "1.2.3.4")]);
        let facts = ClientFacts {
            peer: None,
            client_ip: None,
            scheme: HeaderValue::from_static("http"),
            host: None,
        };
        set_forwarding_headers(&mut headers, facts, &TrustedProxies::none());
        assert!(!headers.contains_key("x-forwarded-for"));
        assert!(!headers.contains_key("x-real-ip"));
        assert_eq!(headers["x-forwarded-proto"], "http");
    }
}
