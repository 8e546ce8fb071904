//! A stored response: what is kept, whether a response may be kept at all (RFC 9111
//! section 3), and the responses made from it.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{
    self, AGE, CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, SET_COOKIE,
    VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use tokio::time::Instant;

use crate::body::{CacheBody, CachedBody};
use crate::control::Directives;
use crate::freshness::{self, Defaults, Exchange, Freshness, Lifetime};
use crate::key::Target;
use crate::status::CACHE_STATUS;

/// The statuses a response may be stored with (RFC 9110 section 15.1's heuristically
/// cacheable ones; 206 is left out: partial content is not stored).
const STORABLE: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// One stored response.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) status: StatusCode,
    /// The headers served, without `Age` (made per response) and hop-by-hop fields.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) freshness: Freshness,
    pub(crate) target: Arc<Target>,
    /// The request headers the response varies on (empty: none).
    pub(crate) vary: Arc<[HeaderName]>,
}

/// Why and how a response may be stored.
#[derive(Debug)]
pub(crate) struct Storable {
    pub(crate) directives: Directives,
    pub(crate) lifetime: Lifetime,
    pub(crate) vary: Arc<[HeaderName]>,
}

/// Whether a response to a GET may be stored, and with what freshness.
///
/// Not stored: a status outside [`STORABLE`]; `no-store` or `private` (qualified or not);
/// `Set-Cookie` without `public` (one client's cookie must not reach another); `Vary: *`;
/// a response without explicit freshness when the route has no `default_ttl`; one with no
/// freshness at all and no validator to revalidate it with; one whose `Content-Length`
/// exceeds `max_object`.
pub(crate) fn storable(
    status: StatusCode,
    headers: &HeaderMap,
    defaults: &Defaults,
    max_object: u64,
) -> Option<Storable> {
    if !STORABLE.contains(&status.as_u16()) {
        return None;
    }
    let directives = Directives::of(headers);
    if directives.no_store || directives.private {
        return None;
    }
    if headers.contains_key(SET_COOKIE) && !directives.public {
        return None;
    }
    let vary = vary_names(headers)?;
    if let Some(length) = content_length(headers)
        && length > max_object
    {
        return None;
    }
    let lifetime = freshness::lifetime(headers, &directives, SystemTime::now(), defaults);
    let has_validator = headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED);
    match lifetime {
        Lifetime::Default(ttl) if ttl.is_zero() => return None,
        Lifetime::Explicit(ttl) if ttl.is_zero() && !has_validator => {
            let stale_window = directives
                .stale_if_error
                .or(directives.stale_while_revalidate)
                .is_some_and(|s| s > 0)
                || !defaults.stale_if_error.is_zero()
                || !defaults.stale_while_revalidate.is_zero();
            if !stale_window || directives.no_cache || directives.must_revalidate {
                return None;
            }
        }
        _ => {}
    }
    Some(Storable {
        directives,
        lifetime,
        vary,
    })
}

/// The header names of `Vary`, lowercased and without repeats; `None` for `Vary: *`, which
/// no stored response can satisfy.
fn vary_names(headers: &HeaderMap) -> Option<Arc<[HeaderName]>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(value) = value.to_str() else {
            return None;
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names.into())
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Fields never stored: hop-by-hop ones (the proxy removes them, a plain upstream may not),
/// `Age` (recomputed per response), and `Set-Cookie` of a `public` response (the cookie was
/// for the client that caused the fetch, not for everyone the entry serves).
const NOT_STORED: [HeaderName; 7] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    AGE,
    SET_COOKIE,
];

/// The headers to keep of a response about to be stored.
pub(crate) fn stored_headers(mut headers: HeaderMap) -> HeaderMap {
    for name in &NOT_STORED {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    headers
}

/// The headers with their values copied into one buffer of their own.
///
/// Values parsed by hyper are slices of the connection's read buffer, which an entry would
/// keep alive (and not weigh) for as long as it is stored. In one buffer, a hit's clone of
/// the map also touches one reference count instead of one per value.
pub(crate) fn compact(headers: &HeaderMap) -> HeaderMap {
    let total = headers.iter().map(|(_, value)| value.len()).sum();
    let mut buffer = BytesMut::with_capacity(total);
    for (_, value) in headers {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = buffer.freeze();
    let mut compacted = HeaderMap::with_capacity(headers.len());
    let mut start = 0;
    for (name, value) in headers {
        let end = start + value.len();
        // Standard names are static; a custom one is copied off the read buffer too.
        let name =
            HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
        match HeaderValue::from_maybe_shared(buffer.slice(start..end)) {
            Ok(mut copied) => {
                copied.set_sensitive(value.is_sensitive());
                compacted.append(name, copied);
            }
            Err(_) => {
                compacted.append(name, value.clone());
            }
        }
        start = end;
    }
    compacted
}

/// The fields a 304 carries over from the stored response (RFC 9110 section 15.4.5).
const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    ETAG,
    header::EXPIRES,
    VARY,
    LAST_MODIFIED,
];

/// Fields of a 304 that must not replace the stored ones when it refreshes an entry: they
/// describe the (empty) 304 message, not the stored representation.
const KEEP_ON_REFRESH: [HeaderName; 4] = [
    CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_TYPE,
    header::CONTENT_RANGE,
];

impl Entry {
    /// The response served from this entry: its headers with `Age` and `Cache-Status`, and
    /// the body unless the request is a HEAD.
    pub(crate) fn response<B>(
        &self,
        now: Instant,
        head: bool,
        cache_status: HeaderValue,
    ) -> Response<CacheBody<B>> {
        let body = if head {
            CachedBody::empty()
        } else {
            CachedBody::full(self.body.clone())
        };
        let mut response = Response::new(CacheBody::cached(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        *headers = self.headers.clone();
        self.stamp(headers, now, cache_status);
        response
    }

    /// A 304 answering a client's conditional request from this entry.
    pub(crate) fn not_modified<B>(
        &self,
        now: Instant,
        cache_status: HeaderValue,
    ) -> Response<CacheBody<B>> {
        let mut response = Response::new(CacheBody::cached(CachedBody::empty()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        for name in &NOT_MODIFIED_FIELDS {
            for value in self.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        self.stamp(headers, now, cache_status);
        response
    }

    fn stamp(&self, headers: &mut HeaderMap, now: Instant, cache_status: HeaderValue) {
        headers.insert(AGE, HeaderValue::from(self.freshness.age(now).as_secs()));
        // Appended: an upstream cache's member comes first, ours (closer to the client) last.
        headers.append(CACHE_STATUS, cache_status);
    }

    /// Whether the client's own conditional request is satisfied by this entry, so it may
    /// be answered 304: `If-None-Match` (weak comparison) when present, else
    /// `If-Modified-Since` against the entry's `Last-Modified`. Only 200 entries qualify.
    pub(crate) fn satisfies_conditional(&self, request: &HeaderMap) -> bool {
        if self.status != StatusCode::OK {
            return false;
        }
        if request.contains_key(IF_NONE_MATCH) {
            let Some(etag) = self.headers.get(ETAG) else {
                return false;
            };
            let ours = opaque(etag.as_bytes());
            return request.get_all(IF_NONE_MATCH).iter().any(|value| {
                value
                    .as_bytes()
                    .split(|&b| b == b',')
                    .map(|tag| opaque(tag.trim_ascii()))
                    .any(|tag| tag == b"*" || tag == ours)
            });
        }
        let since = request
            .get(IF_MODIFIED_SINCE)
            .and_then(freshness::http_date);
        let modified = self
            .headers
            .get(LAST_MODIFIED)
            .and_then(freshness::http_date);
        matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
    }

    /// The request headers that validate this entry upstream: `If-None-Match` with its
    /// `ETag`, `If-Modified-Since` with its `Last-Modified`.
    pub(crate) fn validators(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let etag = self.headers.get(ETAG).map(|v| (IF_NONE_MATCH, v.clone()));
        let modified = self
            .headers
            .get(LAST_MODIFIED)
            .map(|v| (IF_MODIFIED_SINCE, v.clone()));
        etag.into_iter().chain(modified)
    }

    /// Whether the entry can be revalidated upstream.
    pub(crate) fn has_validator(&self) -> bool {
        self.headers.contains_key(ETAG) || self.headers.contains_key(LAST_MODIFIED)
    }

    /// This entry refreshed by a 304 (RFC 9111 section 4.3.4): the 304's fields replace the
    /// stored ones, freshness starts again from the 304's exchange, the body is shared.
    pub(crate) fn refreshed(
        &self,
        not_modified: &HeaderMap,
        exchange: Exchange,
        defaults: &Defaults,
    ) -> Self {
        let mut headers = self.headers.clone();
        let mut replaced: Vec<&HeaderName> = Vec::new();
        for (name, value) in not_modified {
            if KEEP_ON_REFRESH.contains(name) || NOT_STORED.contains(name) {
                continue;
            }
            if !replaced.contains(&name) {
                headers.remove(name);
                replaced.push(name);
            }
            headers.append(name.clone(), value.clone());
        }
        let headers = compact(&headers);
        let directives = Directives::of(&headers);
        let lifetime = freshness::lifetime(&headers, &directives, exchange.response_wall, defaults);
        // Ages carried by the 304 describe the 304: parse them from its own headers.
        let mut age_source = headers.clone();
        age_source.remove(AGE);
        if let Some(age) = not_modified.get(AGE) {
            age_source.insert(AGE, age.clone());
        }
        let freshness = Freshness::new(&age_source, &directives, exchange, lifetime, defaults);
        Self {
            status: self.status,
            headers,
            body: self.body.clone(),
            freshness,
            target: self.target.clone(),
            vary: self.vary.clone(),
        }
    }

    /// What the entry costs the store, in bytes (approximately: headers and a fixed
    /// overhead for the bookkeeping around them).
    pub(crate) fn weight(&self, key_len: usize) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        let total = key_len + headers + self.body.len() + 256;
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// An entity-tag without its weakness prefix, for weak comparison.
fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    const TTL: Defaults = Defaults {
        ttl: Duration::from_secs(10),
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
    };

    #[test]
    fn what_is_stored() {
        let ok = StatusCode::OK;
        let none = Defaults::default();
        assert!(storable(ok, &map(&[("cache-control", "max-age=5")]), &none, 100).is_some());
        assert!(
            storable(ok, &map(&[]), &none, 100).is_none(),
            "no freshness, no default"
        );
        assert!(storable(ok, &map(&[]), &TTL, 100).is_some());
        for cc in [
            "no-store",
            "private",
            "private=\"x\", max-age=5",
            "max-age=5, no-store",
        ] {
            assert!(
                storable(ok, &map(&[("cache-control", cc)]), &TTL, 100).is_none(),
                "{cc}"
            );
        }
        let cookie = [("cache-control", "max-age=5"), ("set-cookie", "a=b")];
        assert!(storable(ok, &map(&cookie), &TTL, 100).is_none());
        let public = [
            ("cache-control", "max-age=5, public"),
            ("set-cookie", "a=b"),
        ];
        assert!(storable(ok, &map(&public), &TTL, 100).is_some());
        let star = [("cache-control", "max-age=5"), ("vary", "accept, *")];
        assert!(storable(ok, &map(&star), &TTL, 100).is_none());
        let big = [("cache-control", "max-age=5"), ("content-length", "101")];
        assert!(storable(ok, &map(&big), &TTL, 100).is_none());
        for status in [201u16, 206, 302, 500, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(storable(status, &map(&[("cache-control", "max-age=5")]), &TTL, 100).is_none());
        }
        assert!(storable(StatusCode::NOT_FOUND, &map(&[]), &TTL, 100).is_some());
        // no-cache is stored only to be revalidated: it needs a validator.
        let no_cache = [("cache-control", "no-cache")];
        assert!(storable(ok, &map(&no_cache), &TTL, 100).is_none());
        let with_etag = [("cache-control", "no-cache"), ("etag", "\"v1\"")];
        assert!(storable(ok, &map(&with_etag), &TTL, 100).is_some());
    }

    #[test]
    fn compacted_headers_own_their_bytes() {
        let shared = Bytes::from_static(b"application/jsonx-custom-value");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_maybe_shared(shared.slice(0..16)).unwrap(),
        );
        headers.append(
            HeaderName::from_static("x-custom"),
            HeaderValue::from_maybe_shared(shared.slice(16..)).unwrap(),
        );
        headers.append(
            HeaderName::from_static("x-custom"),
            HeaderValue::from_static("second"),
        );
        let compacted = compact(&headers);
        assert_eq!(compacted, headers);
        let copied = compacted[header::CONTENT_TYPE].as_bytes().as_ptr();
        assert_ne!(copied, shared.as_ptr(), "a copy, not the source buffer");
        let values: Vec<_> = compacted.get_all("x-custom").iter().collect();
        assert_eq!(values, ["x-custom-value", "second"]);
    }

    #[test]
    fn vary_names_are_normalized() {
        let names = vary_names(&map(&[
            ("vary", "Accept-Encoding, accept-encoding"),
            ("vary", "X-A"),
        ]))
        .unwrap();
        assert_eq!(
            &names[..],
            &[
                HeaderName::from_static("accept-encoding"),
                HeaderName::from_static("x-a")
            ]
        );
    }
}
