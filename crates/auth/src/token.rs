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

/// Where a token was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Header,
    Cookie,
    Query,
}

/// What a request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// A candidate token (only its syntax on a cache miss is checked later).
    Token(&'a [u8], Source),
    /// No bearer token anywhere.
    Missing,
    /// Malformed or ambiguous credentials: a bearer header that is not `Bearer <token>`,
    /// several `Authorization` headers, an empty cookie or parameter, or tokens in more than
    /// one place.
    Malformed,
}

impl TokenSources {
    /// Looks in `Authorization: Bearer`, the cookie and the query parameter, and expects a
    /// token in exactly one of them.
    ///
    /// A header with another scheme (`Basic ...`) is not a bearer token: it is left for the
    /// upstream and the other sources are tried. Tokens in two places (or a cookie or
    /// parameter repeated) are refused rather than ranked: RFC 6750 section 2 forbids more
    /// than one method per request, and any precedence rule lets whoever can plant a cookie
    /// or a link decide whose identity the request carries.
    pub(crate) fn find<'a>(&self, headers: &'a HeaderMap, query: Option<&'a str>) -> Found<'a> {
        let from_cookie = self
            .cookie
            .as_deref()
            .and_then(|name| cookie(headers, name));
        let from_query = self
            .query
            .as_deref()
            .zip(query)
            .and_then(|(name, query)| query_param(query, name));
        let mut found = [bearer(headers), from_cookie, from_query]
            .into_iter()
            .flatten();
        match (found.next(), found.next()) {
            (None, _) => Found::Missing,
            (Some(one), None) => one,
            (Some(_), Some(_)) => Found::Malformed,
        }
    }
}

/// The one non-empty value among `values`, else `Malformed` (`None` when there is none).
fn single<'a>(mut values: impl Iterator<Item = &'a str>, source: Source) -> Option<Found<'a>> {
    let value = values.next()?;
    if value.is_empty() || values.next().is_some() {
        return Some(Found::Malformed);
    }
    Some(Found::Token(value.as_bytes(), source))
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
    // A tab cannot end an auth-scheme (only SP can, RFC 7235), so `Bearer\t...` is a broken
    // bearer header rather than some other scheme.
    let scheme_len = bytes
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(bytes.len());
    if !bytes[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    // Exactly one space, then a token: `Bearer  x`, `Bearer` and `Bearer ` are malformed.
    let token = match bytes.get(scheme_len..) {
        Some([b' ', token @ ..]) if !token.is_empty() && token[0] != b' ' => token,
        _ => return Some(Found::Malformed),
    };
    // Bytes, not yet text: a cache hit proves them a verified token; the syntax (ASCII and
    // `b64token` included) is checked on a miss.
    Some(Found::Token(token, Source::Header))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<Found<'a>> {
    let values = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim_start().split_once('=')?;
            (key == name).then(|| value.trim_end().trim_matches('"'))
        });
    single(values, Source::Cookie)
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<Found<'a>> {
    let values = query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    });
    single(values, Source::Query)
}

/// Whether `credentials` match RFC 6750's `b64token` (`1*( ALPHA / DIGIT / "-" / "." /
/// "_" / "~" / "+" / "/" ) *"="`), the syntax of `Authorization: Bearer <credentials>`.
///
/// Every verified token matches (base64url segments joined by dots), so the layer only runs
/// this after a token failed, to tell a malformed request from a malformed token.
pub(crate) fn is_b64token(credentials: &[u8]) -> bool {
    let end = credentials
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |last| last + 1);
    end > 0
        && credentials[..end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
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

    const HEADER: Source = Source::Header;

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
            assert_eq!(s.find(&h, None), Found::Token(b"a.b.c", HEADER), "{ok}");
        }
        for bad in ["Bearer", "Bearer ", "Bearer  a.b.c", "Bearer\ta.b.c"] {
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
        assert_eq!(s.find(&h, None), Found::Token(b"x.y.z", Source::Cookie));
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
            Found::Token(b"c.c.c", Source::Cookie)
        );
        assert_eq!(sources(None, None).find(&h, None), Found::Missing);

        let q = Some("page=2&access_token=q.q.q");
        assert_eq!(
            sources(None, Some("access_token")).find(&HeaderMap::new(), q),
            Found::Token(b"q.q.q", Source::Query)
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
    fn a_token_in_two_places_is_malformed() {
        let s = sources(Some("jwt"), Some("t"));
        let both = headers(&[("authorization", "Bearer h.h.h"), ("cookie", "jwt=c.c.c")]);
        assert_eq!(s.find(&both, None), Found::Malformed);
        let header = headers(&[("authorization", "Bearer h.h.h")]);
        assert_eq!(s.find(&header, Some("t=q.q.q")), Found::Malformed);
        let cookie = headers(&[("cookie", "jwt=c.c.c")]);
        assert_eq!(s.find(&cookie, Some("t=q.q.q")), Found::Malformed);
        let twice = headers(&[("cookie", "jwt=c.c.c"), ("cookie", "jwt=d.d.d")]);
        assert_eq!(s.find(&twice, None), Found::Malformed);
        assert_eq!(
            s.find(&HeaderMap::new(), Some("t=q.q.q&t=r.r.r")),
            Found::Malformed
        );
        // Sources that are not configured do not count.
        let plain = TokenSources::default();
        assert_eq!(
            plain.find(&both, Some("t=q.q.q")),
            Found::Token(b"h.h.h", HEADER)
        );
    }

    #[test]
    fn b64token_syntax() {
        for ok in ["a.b.c", "eyJh.eyJz.c2ln", "A-Z_a~z+0/9", "abc==", "x="] {
            assert!(is_b64token(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "=", "a=.b", "a b", "a\tb", "\"a\"", "a,b", "é"] {
            assert!(!is_b64token(bad.as_bytes()), "{bad}");
        }
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
