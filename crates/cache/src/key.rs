//! The cache key of a request, written as bytes so that a lookup compares whole keys (no
//! hash stands in for a key: a collision must never serve one user another's response).
//!
//! Every field is length-prefixed, so no two different requests write the same bytes. The
//! first byte tells the two kinds of key apart: the URI's own slot (a response without
//! `Vary`, or the list of header names the URI's responses vary on) and a variant's slot
//! (the URI's key followed by the values of those headers).

use http::header::HOST;
use http::{HeaderMap, HeaderName, Method, Uri};

/// The tag of a URI's own slot.
const URI: u8 = 0;
/// The tag of a variant's slot.
const VARIANT: u8 = 1;
/// The length written for an absent field (a header the request does not have).
const ABSENT: u32 = u32::MAX;

/// What identifies the stored responses of one target URI, for invalidation and purges.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// The route (the layer's scope).
    pub(crate) scope: std::sync::Arc<str>,
    /// The host, lowercased.
    pub(crate) host: Box<str>,
    pub(crate) path: Box<str>,
    pub(crate) query: Box<str>,
}

impl Target {
    /// The target of a request in `scope`.
    pub(crate) fn of(scope: &std::sync::Arc<str>, uri: &Uri, headers: &HeaderMap) -> Self {
        Self {
            scope: scope.clone(),
            host: host(uri, headers).to_ascii_lowercase().into(),
            path: uri.path().into(),
            query: uri.query().unwrap_or("").into(),
        }
    }
}

/// The host of a request: its `Host` header, else the URI's authority (HTTP/2).
fn host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or("")
}

/// A request's key: the URI slot's bytes, extended in place to a variant's.
#[derive(Clone, Debug)]
pub(crate) struct RequestKey {
    bytes: Vec<u8>,
    uri_len: usize,
}

/// What a key is made of besides the request itself.
pub(crate) struct KeyParts<'a> {
    pub(crate) scope: &'a str,
    /// The listener's scheme, when known (else the URI's).
    pub(crate) scheme: Option<&'a str>,
    pub(crate) key_headers: &'a [HeaderName],
    /// The verified user on `authorized = "per_user"` routes (`Some(None)`: anonymous).
    pub(crate) identity: Option<Option<&'a str>>,
}

impl RequestKey {
    /// The key of a GET or HEAD request (they share entries: a HEAD is answered from a
    /// GET's response).
    pub(crate) fn new(
        parts: &KeyParts<'_>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Self {
        debug_assert!(method == Method::GET || method == Method::HEAD);
        let host = host(uri, headers);
        let scheme = parts.scheme.or(uri.scheme_str()).unwrap_or("");
        let path = uri.path();
        let query = uri.query().unwrap_or("");
        let mut bytes =
            Vec::with_capacity(64 + parts.scope.len() + host.len() + path.len() + query.len());
        bytes.push(URI);
        field(&mut bytes, parts.scope.as_bytes());
        field(&mut bytes, scheme.as_bytes());
        let start = bytes.len();
        field(&mut bytes, host.as_bytes());
        bytes[start + 4..].make_ascii_lowercase();
        field(&mut bytes, path.as_bytes());
        field(&mut bytes, query.as_bytes());
        for name in parts.key_headers {
            header_field(&mut bytes, headers, name);
        }
        match parts.identity {
            None => {}
            Some(None) => bytes.extend_from_slice(&ABSENT.to_le_bytes()),
            Some(Some(user)) => field(&mut bytes, user.as_bytes()),
        }
        let uri_len = bytes.len();
        Self { bytes, uri_len }
    }

    /// The URI slot's key.
    pub(crate) fn uri(&mut self) -> &[u8] {
        self.bytes.truncate(self.uri_len);
        self.bytes[0] = URI;
        &self.bytes
    }

    /// The key of the variant that `headers` select among responses varying on `names`.
    pub(crate) fn variant(&mut self, names: &[HeaderName], headers: &HeaderMap) -> &[u8] {
        self.bytes.truncate(self.uri_len);
        self.bytes[0] = VARIANT;
        for name in names {
            header_field(&mut self.bytes, headers, name);
        }
        &self.bytes
    }

    /// The key as it was last made ([`uri`](Self::uri) or [`variant`](Self::variant)).
    pub(crate) fn current(&self) -> &[u8] {
        &self.bytes
    }
}

fn field(bytes: &mut Vec<u8>, value: &[u8]) {
    let len = u32::try_from(value.len()).unwrap_or(ABSENT - 1);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(value);
}

/// A request header's values as one field: its lines joined by commas (RFC 9111 section
/// 4.1 lets a cache combine them), absent distinct from empty.
fn header_field(bytes: &mut Vec<u8>, headers: &HeaderMap, name: &HeaderName) {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        bytes.extend_from_slice(&ABSENT.to_le_bytes());
        return;
    };
    let start = bytes.len();
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(first.as_bytes());
    for value in values {
        bytes.push(b',');
        bytes.extend_from_slice(value.as_bytes());
    }
    let len = u32::try_from(bytes.len() - start - 4).unwrap_or(ABSENT - 1);
    bytes[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn key(
        method: Method,
        uri: &str,
        headers: &[(&'static str, &'static str)],
        parts: &KeyParts<'_>,
    ) -> RequestKey {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        RequestKey::new(parts, &method, &uri.parse().unwrap(), &map)
    }

    const PLAIN: KeyParts<'static> = KeyParts {
        scope: "r",
        scheme: None,
        key_headers: &[],
        identity: None,
    };

    #[test]
    fn get_and_head_share_and_hosts_are_case_insensitive() {
        let mut a = key(Method::GET, "/x?q=1", &[("host", "Example.COM")], &PLAIN);
        let mut b = key(Method::HEAD, "/x?q=1", &[("host", "example.com")], &PLAIN);
        assert_eq!(a.uri(), b.uri());
        let mut c = key(Method::GET, "/x?q=2", &[("host", "example.com")], &PLAIN);
        assert_ne!(a.uri(), c.uri());
        let mut d = key(Method::GET, "/x", &[("host", "example.com")], &PLAIN);
        assert_ne!(c.uri(), d.uri());
        let mut e = key(Method::GET, "/x", &[("host", "other.com")], &PLAIN);
        assert_ne!(d.uri(), e.uri());
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // "/ab" + "" and "/a" + "b" must differ although their bytes concatenate alike.
        let mut a = key(Method::GET, "/ab", &[], &PLAIN);
        let mut b = key(Method::GET, "/a?b", &[], &PLAIN);
        assert_ne!(a.uri(), b.uri());
    }

    #[test]
    fn identity_and_key_headers_split_keys() {
        let names = [HeaderName::from_static("x-tenant")];
        let user = |name| KeyParts {
            scope: "r",
            scheme: None,
            key_headers: &names,
            identity: Some(name),
        };
        let mut alice = key(Method::GET, "/x", &[], &user(Some("alice")));
        let mut bob = key(Method::GET, "/x", &[], &user(Some("bob")));
        let mut anonymous = key(Method::GET, "/x", &[], &user(None));
        assert_ne!(alice.uri(), bob.uri());
        assert_ne!(alice.uri(), anonymous.uri());
        let mut tenant_a = key(Method::GET, "/x", &[("x-tenant", "a")], &user(None));
        let mut empty = key(Method::GET, "/x", &[("x-tenant", "")], &user(None));
        assert_ne!(tenant_a.uri(), anonymous.uri());
        assert_ne!(empty.uri(), anonymous.uri());
    }

    #[test]
    fn variants_extend_the_uri_key() {
        let names = [HeaderName::from_static("accept-encoding")];
        let mut map = HeaderMap::new();
        map.insert("accept-encoding", HeaderValue::from_static("gzip"));
        let mut a = key(Method::GET, "/x", &[], &PLAIN);
        let gzip = a.variant(&names, &map).to_vec();
        map.insert("accept-encoding", HeaderValue::from_static("br"));
        let br = a.variant(&names, &map).to_vec();
        assert_ne!(gzip, br);
        assert_ne!(a.uri(), &gzip[..]);
        assert!(gzip.starts_with(&a.uri()[1..]) || gzip[1..].starts_with(&a.uri()[1..]));
    }
}
