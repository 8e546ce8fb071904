//! Finding the bearer token in a request, borrowing it in place (no allocation).

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

/// The longest token accepted; longer ones are rejected as malformed before any hashing or
/// decoding, so an oversized header costs nothing.
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Where the layer may look for a token besides the `Authorization` header.
#[derive(Clone, Debug, Default)]
pub(crate) struct TokenSources {
    pub(crate) cookie: Option<Box<str>>,
    pub(crate) query: Option<Box<str>>,
}

/// What a request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// A candidate token (only its syntax on a cache miss is checked later).
    Token(&'a [u8]),
    /// No bearer token anywhere.
    Missing,
    /// A bearer header that is not `Bearer <token>`, or several `Authorization` headers.
    Malformed,
}

impl TokenSources {
    /// Looks in `Authorization: Bearer`, then the cookie, then the query parameter.
    ///
    /// A header with another scheme (`Basic ...`) is not a bearer token: it is left for the
    /// upstream and the other sources are tried.
    pub(crate) fn find<'a>(&self, headers: &'a HeaderMap, query: Option<&'a str>) -> Found<'a> {
        if let Some(found) = bearer(headers) {
            return found;
        }
        let from_cookie = self
            .cookie
            .as_deref()
            .and_then(|name| cookie(headers, name));
        let found = from_cookie.or_else(|| {
            let name = self.query.as_deref()?;
            query_param(query?, name)
        });
        found.map_or(Found::Missing, non_empty)
    }
}

fn non_empty(value: &str) -> Found<'_> {
    if value.is_empty() {
        Found::Malformed
    } else {
        Found::Token(value.as_bytes())
    }
}

/// `Some` when the request has an `Authorization` header with the Bearer scheme (any case),
/// or more than one `Authorization` header (ambiguous, so malformed).
fn bearer(headers: &HeaderMap) -> Option<Found<'_>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some(Found::Malformed);
    }
    let bytes = value.as_bytes();
    let scheme_len = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    if !bytes[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    // Exactly one space, then a token: `Bearer  x`, `Bearer` and `Bearer ` are malformed.
    let token = bytes.get(scheme_len + 1..).unwrap_or_default();
    if token.is_empty() || token[0] == b' ' {
        return Some(Found::Malformed);
    }
    // Bytes, not yet text: a cache hit proves them a verified token; the syntax (ASCII
    // included) is checked on a miss.
    Some(Found::Token(token))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim_start().split_once('=')?;
            (key == name).then(|| value.trim_end().trim_matches('"'))
        })
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Whether `token` has the shape of a compact JWS: three segments, a non-empty header and
/// payload (the signature may be empty so `alg: none` is reported as such). The base64url
/// alphabet is enforced by the decoders, which read every byte anyway.
pub(crate) fn is_compact_jws(token: &str) -> bool {
    if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return false;
    }
    let mut parts = token.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(header), Some(payload), Some(_), None) if !header.is_empty() && !payload.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn sources(cookie: Option<&str>, query: Option<&str>) -> TokenSources {
        TokenSources {
            cookie: cookie.map(Into::into),
            query: query.map(Into::into),
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_with_exactly_one_space() {
        let s = TokenSources::default();
        for ok in ["Bearer a.b.c", "bearer a.b.c", "BEARER a.b.c"] {
            let h = headers(&[("authorization", ok)]);
            assert_eq!(s.find(&h, None), Found::Token(b"a.b.c"), "{ok}");
        }
        for bad in ["Bearer", "Bearer ", "Bearer  a.b.c"] {
            let h = headers(&[("authorization", bad)]);
            assert_eq!(s.find(&h, None), Found::Malformed, "{bad}");
        }
    }

    #[test]
    fn other_schemes_are_not_bearer_tokens() {
        let s = sources(Some("jwt"), None);
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(s.find(&h, None), Found::Missing);
        let h = headers(&[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("cookie", "jwt=x.y.z"),
        ]);
        assert_eq!(s.find(&h, None), Found::Token(b"x.y.z"));
        // `Bearerx` is another scheme, not a malformed bearer header.
        let h = headers(&[("authorization", "Bearerx a.b.c")]);
        assert_eq!(s.find(&h, None), Found::Missing);
    }

    #[test]
    fn two_authorization_headers_are_malformed() {
        let h = headers(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer d.e.f"),
        ]);
        assert_eq!(TokenSources::default().find(&h, None), Found::Malformed);
    }

    #[test]
    fn cookie_and_query_sources_only_when_configured() {
        let h = headers(&[("cookie", "theme=dark; jwt=\"c.c.c\"; x=1")]);
        assert_eq!(
            sources(Some("jwt"), None).find(&h, None),
            Found::Token(b"c.c.c")
        );
        assert_eq!(sources(None, None).find(&h, None), Found::Missing);

        let q = Some("page=2&access_token=q.q.q");
        assert_eq!(
            sources(None, Some("access_token")).find(&HeaderMap::new(), q),
            Found::Token(b"q.q.q")
        );
        assert_eq!(
            sources(None, None).find(&HeaderMap::new(), q),
            Found::Missing
        );
        assert_eq!(
            sources(None, Some("access_token")).find(&HeaderMap::new(), Some("access_token=")),
            Found::Malformed
        );
    }

    #[test]
    fn header_wins_over_cookie_and_query() {
        let h = headers(&[("authorization", "Bearer h.h.h"), ("cookie", "jwt=c.c.c")]);
        let s = sources(Some("jwt"), Some("t"));
        assert_eq!(s.find(&h, Some("t=q.q.q")), Found::Token(b"h.h.h"));
    }

    #[test]
    fn compact_jws_syntax() {
        assert!(is_compact_jws("eyJh.eyJz.c2ln"));
        assert!(is_compact_jws("eyJh.eyJz."));
        assert!(!is_compact_jws("eyJh.eyJz"));
        assert!(!is_compact_jws("a.b.c.d.e"));
        assert!(!is_compact_jws(".eyJz.c2ln"));
        assert!(!is_compact_jws("eyJh..c2ln"));
        assert!(!is_compact_jws("eyJh.eyJz.c2lé"));
        assert!(!is_compact_jws(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }
}
