//! RFC 9110 hop-by-hop headers: they describe one connection, so a proxy removes them in
//! both directions.

use http::header::{CONNECTION, Entry, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::tests::map;

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
}
