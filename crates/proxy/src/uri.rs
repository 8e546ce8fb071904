//! The request target sent upstream: the target's base path joined to the client's path, the
//! query byte for byte.

use bytes::Bytes;
use http::Uri;
use http::uri::{Authority, InvalidUri, PathAndQuery, Scheme};

/// The client's path and query with the `from` base path removed (a request is re-targeted
/// after an attempt on a target with another base).
fn client_path<'a>(uri: &'a Uri, from_base: &str) -> &'a str {
    let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    path.strip_prefix(from_base).unwrap_or(path)
}

/// `base` + `path`, with exactly one `/` between them.
fn join(base: &str, path: &str) -> Result<PathAndQuery, InvalidUri> {
    let mut joined = String::with_capacity(base.len() + path.len() + 1);
    joined.push_str(base);
    if !path.starts_with('/') {
        joined.push('/');
    }
    joined.push_str(path);
    PathAndQuery::from_maybe_shared(Bytes::from(joined))
}

/// The URI to send to a target with base path `to_base`.
///
/// `from_base` is the base path already in `uri` (empty for the client's own URI, which is
/// as the gateway received it, prefix already stripped). HTTP/1.1
/// targets get the origin form (`/path?query`); HTTP/2 targets the absolute form, whose
/// scheme and authority become the `:scheme` and `:authority` pseudo-headers. When the base
/// does not change, the path is moved, not copied.
pub(crate) fn upstream_uri(
    uri: Uri,
    from_base: &str,
    to_base: &str,
    h2_authority: Option<Authority>,
) -> Result<Uri, http::Error> {
    let path_and_query = if from_base == to_base {
        // The base is already in the path (or there is none).
        uri.into_parts()
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    } else {
        join(to_base, client_path(&uri, from_base))?
    };
    Ok(match h2_authority {
        Some(authority) => {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(authority);
            parts.path_and_query = Some(path_and_query);
            Uri::from_parts(parts)?
        }
        None => Uri::from(path_and_query),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h1(uri: &str, from: &str, to: &str) -> String {
        upstream_uri(uri.parse().unwrap(), from, to, None)
            .unwrap()
            .to_string()
    }

    #[test]
    fn origin_form_without_base_passes_through() {
        assert_eq!(h1("/a/b?x=%20y&&z=", "", ""), "/a/b?x=%20y&&z=");
        assert_eq!(h1("/", "", ""), "/");
    }

    #[test]
    fn base_path_is_joined_without_double_slashes() {
        assert_eq!(h1("/a?q=1", "", "/base"), "/base/a?q=1");
        assert_eq!(h1("/", "", "/base"), "/base/");
        assert_eq!(h1("/?q", "", "/base"), "/base/?q");
        assert_eq!(h1("*", "", "/base"), "/base/*");
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        assert_eq!(h1("http://gw.example/a/b?c=d", "", ""), "/a/b?c=d");
        assert_eq!(h1("https://gw.example", "", "/v1"), "/v1/");
    }

    #[test]
    fn retargeting_swaps_the_base() {
        assert_eq!(h1("/one/a?q=%2F", "/one", "/two"), "/two/a?q=%2F");
        assert_eq!(h1("/one/a", "/one", ""), "/a");
    }

    #[test]
    fn h2_targets_get_the_absolute_form() {
        let authority = Authority::from_static("10.0.0.1:81");
        let uri = upstream_uri("/a?b".parse().unwrap(), "", "/x", Some(authority.clone())).unwrap();
        assert_eq!(uri.to_string(), "http://10.0.0.1:81/x/a?b");
        let uri = upstream_uri("https://gw/a?b".parse().unwrap(), "", "", Some(authority)).unwrap();
        assert_eq!(uri.to_string(), "http://10.0.0.1:81/a?b");
    }
}
