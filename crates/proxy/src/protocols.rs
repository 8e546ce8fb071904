//! Which `Upgrade` protocols a proxy lets through, by name.
//!
//! An upgrade hands the client's connection to the upstream: after the `101`, every byte the
//! client sends reaches the upstream unparsed, past routing, methods, authentication and rate
//! limits. So an upgrade passes only when its protocol was opted into, and the protocols that
//! would turn the tunnel into another HTTP connection (`h2c`, `h2`, `HTTP/2.0`) can never be.

use http::header::UPGRADE;
use http::{HeaderMap, HeaderValue};

use crate::error::ProxyError;

/// The protocols clients may upgrade to through the proxy (default: `websocket` alone).
///
/// Names are compared without case and without the version (`websocket/13` is
/// `websocket`).
///
/// ```
/// use gateway_proxy::UpgradeProtocols;
///
/// let protocols = UpgradeProtocols::new(["websocket", "connect-udp"]).unwrap();
/// assert!(protocols.allows("WebSocket"));
/// assert!(!protocols.allows("h2c"));
/// assert!(UpgradeProtocols::new(["h2c"]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeProtocols {
    names: Box<[Box<str>]>,
}

impl Default for UpgradeProtocols {
    fn default() -> Self {
        Self::websocket()
    }
}

/// Protocols that speak HTTP again on the upgraded connection: a tunnel of them would carry
/// requests the gateway never sees.
fn is_http(name: &str) -> bool {
    ["h2c", "h2", "http"]
        .iter()
        .any(|http| name.eq_ignore_ascii_case(http))
}

/// The protocol name of an `Upgrade` token: what comes before the version.
fn protocol_name(token: &[u8]) -> &[u8] {
    match token.iter().position(|&b| b == b'/') {
        Some(slash) => token[..slash].trim_ascii(),
        None => token,
    }
}

impl UpgradeProtocols {
    /// WebSocket only: what browsers and most APIs need.
    pub fn websocket() -> Self {
        Self {
            names: Box::new(["websocket".into()]),
        }
    }

    /// No upgrade passes: every `Upgrade` header is removed.
    pub fn none() -> Self {
        Self {
            names: Box::new([]),
        }
    }

    /// The named protocols. Refuses a name that is empty, not a token, or an HTTP protocol
    /// (`h2c`, `h2`, `HTTP/2.0`): those are never tunnelled.
    pub fn new<I>(names: I) -> Result<Self, ProxyError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list: Vec<Box<str>> = Vec::new();
        for name in names {
            let name = name.as_ref().trim();
            let protocol = std::str::from_utf8(protocol_name(name.as_bytes())).unwrap_or(name);
            let is_token = !protocol.is_empty()
                && protocol
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !is_token {
                return Err(ProxyError::InvalidUpgrade {
                    protocol: name.to_owned(),
                    reason: "not a protocol name",
                });
            }
            if is_http(protocol) {
                return Err(ProxyError::InvalidUpgrade {
                    protocol: name.to_owned(),
                    reason: "an upgrade to HTTP would carry requests past the gateway; it is never forwarded",
                });
            }
            let protocol = protocol.to_ascii_lowercase();
            if !list.iter().any(|known| **known == *protocol) {
                list.push(protocol.into());
            }
        }
        Ok(Self { names: list.into() })
    }

    /// These protocols and `other`'s.
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        let mut names = self.names.to_vec();
        for name in other.names.iter() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        Self {
            names: names.into(),
        }
    }

    /// Whether an `Upgrade` token (`websocket`, `WebSocket/13`) names an allowed protocol.
    pub fn allows(&self, token: impl AsRef<[u8]>) -> bool {
        let name = protocol_name(token.as_ref().trim_ascii());
        !is_http(std::str::from_utf8(name).unwrap_or("http"))
            && self
                .names
                .iter()
                .any(|allowed| name.eq_ignore_ascii_case(allowed.as_bytes()))
    }

    /// The allowed protocol names, lower-case.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.names.iter().map(|name| &**name)
    }

    /// Whether no protocol is allowed.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Keeps only the allowed protocols in the `Upgrade` header; tells whether any is left.
///
/// With none left, the header is removed and the request goes on as an ordinary one (RFC 9110
/// §7.8: a server may ignore `Upgrade`). The usual single allowed value is left as it is.
pub fn retain_upgrades(headers: &mut HeaderMap, allowed: &UpgradeProtocols) -> bool {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut dropped = false;
    for value in headers.get_all(UPGRADE) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            if allowed.allows(token) {
                kept.push(token);
            } else {
                dropped = true;
            }
        }
    }
    if kept.is_empty() {
        headers.remove(UPGRADE);
        return false;
    }
    if dropped || headers.get_all(UPGRADE).iter().count() > 1 {
        let joined = kept.join(&b", "[..]);
        // Made of tokens from valid header values: always a valid value.
        match HeaderValue::from_bytes(&joined) {
            Ok(value) => {
                headers.insert(UPGRADE, value);
            }
            Err(_) => {
                headers.remove(UPGRADE);
                return false;
            }
        }
    }
    true
}

/// Whether the upstream's `101` switched to a protocol the request offered (after
/// [`retain_upgrades`]): an upstream must not pick another one.
pub(crate) fn switched_to_offered(offered: &HeaderValue, response: &HeaderMap) -> bool {
    let mut chosen = response
        .get_all(UPGRADE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty());
    let (Some(first), None) = (chosen.next(), chosen.next()) else {
        return false;
    };
    offered
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|token| protocol_name(token).eq_ignore_ascii_case(protocol_name(first)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(UPGRADE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn http_protocols_are_refused_and_names_compare_without_case_or_version() {
        for name in ["h2c", "H2C", "h2", "HTTP/2.0", "http"] {
            assert!(UpgradeProtocols::new([name]).is_err(), "{name}");
        }
        assert!(UpgradeProtocols::new([""]).is_err());
        assert!(UpgradeProtocols::new(["web socket"]).is_err());
        let protocols = UpgradeProtocols::new(["WebSocket", "echo/1"]).unwrap();
        assert_eq!(protocols.names().collect::<Vec<_>>(), ["websocket", "echo"]);
        assert!(protocols.allows("websocket/13"));
        assert!(protocols.allows(" ECHO "));
        assert!(!protocols.allows("h2c"));
        assert!(!UpgradeProtocols::none().allows("websocket"));
    }

    #[test]
    fn retain_keeps_allowed_tokens_and_removes_the_rest() {
        let websocket = UpgradeProtocols::websocket();
        let mut headers = upgrade_headers(&["h2c"]);
        assert!(!retain_upgrades(&mut headers, &websocket));
        assert!(!headers.contains_key(UPGRADE));

        let mut headers = upgrade_headers(&["h2c, websocket", "HTTP/2.0"]);
        assert!(retain_upgrades(&mut headers, &websocket));
        assert_eq!(headers.get_all(UPGRADE).iter().count(), 1);
        assert_eq!(headers[UPGRADE], "websocket");

        let mut headers = upgrade_headers(&["websocket"]);
        assert!(retain_upgrades(&mut headers, &websocket));
        assert_eq!(headers[UPGRADE], "websocket");

        let mut headers = upgrade_headers(&["websocket"]);
        assert!(!retain_upgrades(&mut headers, &UpgradeProtocols::none()));
        assert!(headers.is_empty());
    }

    #[test]
    fn the_upstream_must_switch_to_an_offered_protocol() {
        let offered = HeaderValue::from_static("websocket");
        assert!(switched_to_offered(
            &offered,
            &upgrade_headers(&["WebSocket"])
        ));
        assert!(!switched_to_offered(&offered, &upgrade_headers(&["h2c"])));
        assert!(!switched_to_offered(&offered, &HeaderMap::new()));
        assert!(!switched_to_offered(
            &offered,
            &upgrade_headers(&["websocket", "h2c"])
        ));
    }

    #[test]
    fn union_merges_without_repeats() {
        let a = UpgradeProtocols::new(["websocket"]).unwrap();
        let b = UpgradeProtocols::new(["echo", "websocket"]).unwrap();
        assert_eq!(
            a.union(&b).names().collect::<Vec<_>>(),
            ["websocket", "echo"]
        );
    }
}
