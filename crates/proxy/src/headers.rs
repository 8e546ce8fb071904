//! Header rewriting: RFC 9110 hop-by-hop removal (requests and responses) and the
//! `X-Forwarded-*` / `X-Real-IP` headers of forwarded requests.

mod forwarded;
mod hop_by_hop;

pub(crate) use forwarded::{ClientFacts, set_forwarding_headers};
pub use forwarded::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REAL_IP};
pub use hop_by_hop::{HopByHop, strip_hop_by_hop};

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};

    /// A header map of name/value pairs, repeated names appended.
    pub(super) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }
}
