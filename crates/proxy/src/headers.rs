//! Header rewriting: RFC 9110 hop-by-hop removal (requests and responses) and the
//! `X-Forwarded-*` / `X-Real-IP` headers of forwarded requests.

use std::io::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::{CONNECTION, Entry, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

use gateway_core::TrustedProxies;

/// `X-Forwarded-For`: the chain of client and proxy addresses.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client asked for.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`: the client address, resolved through trusted proxies.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// The settings of an `Upgrade: h2c` offer: meaningful only on the connection it was sent on.
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

// One bit per hop-by-hop header, set by the scan.
const HOP_CONNECTION: u8 = 1;
const HOP_KEEP_ALIVE: u8 = 1 << 1;
const HOP_PROXY_CONNECTION: u8 = 1 << 2;
const HOP_TE: u8 = 1 << 3;
const HOP_TRAILER: u8 = 1 << 4;
const HOP_TRANSFER_ENCODING: u8 = 1 << 5;
const HOP_UPGRADE: u8 = 1 << 6;
const HOP_HTTP2_SETTINGS: u8 = 1 << 7;

/// What [`strip_hop_by_hop`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HopByHop {
    /// The message asked for a protocol upgrade (`Connection: upgrade` and an `Upgrade`
    /// header) and the `Upgrade` header was kept.
    pub upgrade: bool,
    /// `TE` listed `trailers` (worth re-adding on an HTTP/2 hop, where gRPC needs it).
    pub te_trailers: bool,
}

/// The hop-by-hop bit of a header name, 0 for an end-to-end header.
///
/// Dispatches on the length first, so most names cost one comparison of a length.
fn hop_bit(name: &HeaderName) -> u8 {
    let name = name.as_str();
    match name.len() {
        2 if name == "te" => HOP_TE,
        7 if name == "trailer" => HOP_TRAILER,
        7 if name == "upgrade" => HOP_UPGRADE,
        10 if name == "connection" => HOP_CONNECTION,
        10 if name == "keep-alive" => HOP_KEEP_ALIVE,
        14 if name == "http2-settings" => HOP_HTTP2_SETTINGS,
        16 if name == "proxy-connection" => HOP_PROXY_CONNECTION,
        17 if name == "transfer-encoding" => HOP_TRANSFER_ENCODING,
        _ => 0,
    }
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// Whether a `Connection` token names a hop-by-hop header, removed anyway (`upgrade` is
/// handled on its own).
fn is_connection_option(token: &[u8]) -> bool {
    const KNOWN: [&[u8]; 8] = [
        b"keep-alive",
        b"http2-settings",
        b"upgrade",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"proxy-connection",
        b"connection",
    ];
    KNOWN.iter().any(|known| token.eq_ignore_ascii_case(known))
}

/// Removes `Connection` and every header it names, but `upgrade`; tells whether it listed
/// `upgrade`.
///
/// One lookup of `Connection`: its values are read and removed through the same entry. The
/// usual values (`keep-alive`, `upgrade`) name headers removed anyway, so then nothing else is
/// looked up.
fn remove_connection(headers: &mut HeaderMap) -> bool {
    let Entry::Occupied(entry) = headers.entry(CONNECTION) else {
        return false;
    };
    let mut upgrade = false;
    let mut lists_others = false;
    for value in entry.iter() {
        // The usual value, checked without tokenizing.
        if value.as_bytes().eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
        for token in tokens(value) {
            if token.eq_ignore_ascii_case(b"upgrade") {
                upgrade = true;
            } else if !is_connection_option(token) {
                lists_others = true;
            }
        }
    }
    if !lists_others {
        entry.remove();
        return upgrade;
    }
    // Move the values out so that the names they list can be removed from the map.
    let (_, values) = entry.remove_entry_mult();
    let values: Vec<HeaderValue> = values.collect();
    for value in &values {
        for token in tokens(value) {
            if is_connection_option(token) {
                continue;
            }
            if let Ok(name) = std::str::from_utf8(token) {
                // `remove` lower-cases the name and ignores one that is not a valid name.
                headers.remove(name);
            }
        }
    }
    upgrade
}

/// Removes the RFC 9110 hop-by-hop headers in place: `Connection`, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `HTTP2-Settings`, and
/// every header named in `Connection`.
///
/// With `keep_upgrade`, a message that asks for an upgrade keeps its `Upgrade` header (the
/// caller then sets `Connection: upgrade` again). One scan of the header names; headers are
/// only looked up again when the scan found something to remove.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) -> HopByHop {
    let found = headers.keys().fold(0, |found, name| found | hop_bit(name));
    let mut result = HopByHop::default();
    if found == 0 {
        return result;
    }
    if found & HOP_TE != 0 {
        result.te_trailers = headers
            .get_all(TE)
            .iter()
            .any(|value| tokens(value).any(|t| t.eq_ignore_ascii_case(b"trailers")));
    }
    let upgrade_requested =
        found & HOP_CONNECTION != 0 && remove_connection(headers) && found & HOP_UPGRADE != 0;
    let keep = keep_upgrade && upgrade_requested;
    if found & HOP_KEEP_ALIVE != 0 {
        headers.remove(KEEP_ALIVE);
    }
    if found & HOP_PROXY_CONNECTION != 0 {
        headers.remove(PROXY_CONNECTION);
    }
    if found & HOP_TE != 0 {
        headers.remove(TE);
    }
    if found & HOP_TRAILER != 0 {
        headers.remove(TRAILER);
    }
    if found & HOP_TRANSFER_ENCODING != 0 {
        headers.remove(TRANSFER_ENCODING);
    }
    if found & HOP_HTTP2_SETTINGS != 0 {
        headers.remove(HTTP2_SETTINGS);
    }
    if found & HOP_UPGRADE != 0 && !keep {
        headers.remove(UPGRADE);
    }
    result.upgrade = keep;
    result
}

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
    let peer = facts.peer.map(canonical);
    let peer_trusted = peer.is_some_and(|ip| trusted.is_trusted(ip));
    // Resolved before X-Forwarded-For is rewritten: resolution reads the client's chain.
    let real_ip = facts
        .client_ip
        .map(canonical)
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

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An address in text, the owner of a header value's bytes.
struct IpText {
    buf: [u8; 45],
    len: u8,
}

impl AsRef<[u8]> for IpText {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// An address as a header value: one allocation, shared by its clones (`X-Forwarded-For`
/// and `X-Real-IP` are usually the same), and IPv4 written without the formatting
/// machinery, since this runs for every request.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let mut text = IpText {
        buf: [0; 45],
        len: 0,
    };
    let buf = &mut text.buf;
    let len = match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            len
        }
        IpAddr::V6(v6) => {
            let mut cursor = &mut buf[..];
            // 45 bytes hold any IPv6 address, so the write cannot fail.
            let _ = write!(cursor, "{v6}");
            45 - cursor.len()
        }
    };
    text.len = len as u8;
    // Digits, dots, colons and hex: always a valid header value.
    HeaderValue::from_maybe_shared(Bytes::from_owner(text))
        .unwrap_or(HeaderValue::from_static("unknown"))
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

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn removes_hop_by_hop_and_connection_listed_headers() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("http2-settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("accept", "*/*"),
            ("x-kept", "3"),
        ]);
        let found = strip_hop_by_hop(&mut headers, true);
        assert_eq!(names(&headers), ["accept", "x-kept"]);
        assert_eq!(found, HopByHop::default());
    }

    #[test]
    fn keeps_upgrade_only_when_asked_and_requested() {
        let upgrade = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("host", "a"),
        ];
        let mut headers = map(&upgrade);
        let found = strip_hop_by_hop(&mut headers, true);
        assert!(found.upgrade);
        assert_eq!(names(&headers), ["host", "upgrade"]);

        let mut headers = map(&upgrade);
        assert!(!strip_hop_by_hop(&mut headers, false).upgrade);
        assert_eq!(names(&headers), ["host"]);

        // `Upgrade` without `Connection: upgrade` is not a request to upgrade.
        let mut headers = map(&[("upgrade", "websocket")]);
        assert!(!strip_hop_by_hop(&mut headers, true).upgrade);
        assert!(headers.is_empty());
    }

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

    #[test]
    fn connection_tokens_of_hop_by_hop_headers() {
        let mut headers = map(&[("connection", "Keep-Alive"), ("a", "1")]);
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(names(&headers), ["a"]);
        // `close` is an option, but a header of that name goes too (RFC 9110, 7.6.1).
        let mut headers = map(&[("connection", "close"), ("close", "x"), ("a", "1")]);
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(names(&headers), ["a"]);
    }

    #[test]
    fn reports_te_trailers() {
        let mut headers = map(&[("te", "deflate, Trailers")]);
        assert!(strip_hop_by_hop(&mut headers, false).te_trailers);
        assert!(headers.is_empty());
    }

    #[test]
    fn leaves_end_to_end_headers_alone() {
        let mut headers = map(&[("content-length", "3"), ("x-connection", "1"), ("tee", "2")]);
        let before = headers.clone();
        assert_eq!(strip_hop_by_hop(&mut headers, false), HopByHop::default());
        assert_eq!(headers, before);
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
