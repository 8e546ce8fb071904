//! Origins: parsing `scheme://host[:port]`, and matching a request's `Origin` against the
//! configured exact origins and wildcard-subdomain patterns.
//!
//! Both sides go through the same parser, so `https://App.Example.com:443` in the config and
//! `https://app.example.com` from a browser are the same origin: scheme and host compare
//! case-insensitively, and a scheme's default port is the same as no port.

use std::net::Ipv6Addr;

/// How an origin in the config is written, for the error messages.
const ORIGIN_SHAPE: &str = "an origin is `scheme://host[:port]`, e.g. `https://app.example.com`";
/// How a wildcard pattern is written, for the error messages.
const WILDCARD_SHAPE: &str =
    "a wildcard must be the whole first label of the host, as in `https://*.example.com`";

/// A parsed origin, borrowing the text it was parsed from.
///
/// `scheme` and `host` are as written (compare them case-insensitively); `port` is `None` when
/// absent or the scheme's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

impl<'a> Origin<'a> {
    /// Parses a serialized origin: `scheme://host[:port]`, nothing before or after.
    ///
    /// The opaque origin `null`, and anything with a user name, path (even `/`), query or
    /// fragment, is not an origin.
    pub(crate) fn parse(text: &'a str) -> Result<Self, &'static str> {
        let (scheme, authority) = split_scheme(text)?;
        let (host, port) = split_port(authority)?;
        check_host(host)?;
        Ok(Self {
            scheme,
            host,
            port: normalize_port(scheme, port)?,
        })
    }
}

/// An entry of `allow_origins` other than `"*"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OriginPattern {
    /// One origin; scheme and host lowercased.
    Exact {
        scheme: Box<str>,
        host: Box<str>,
        port: Option<u16>,
    },
    /// Every subdomain, at any depth, of a domain: `suffix` is `.example.com`, lowercased.
    Subdomains {
        scheme: Box<str>,
        suffix: Box<str>,
        port: Option<u16>,
    },
}

impl OriginPattern {
    /// Parses an entry of `allow_origins`: an exact origin or `scheme://*.domain[:port]`.
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        if text.eq_ignore_ascii_case("null") {
            return Err(
                "`null` is the origin of every sandboxed frame, `file:` page and cross-origin \
                 redirect, so allowing it would allow anyone; it cannot be listed",
            );
        }
        if text.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err("an origin contains no whitespace");
        }
        if !text.contains("://") && text.contains('*') {
            return Err("a wildcard pattern needs a scheme, as in `https://*.example.com`");
        }
        let (scheme, authority) = split_scheme(text)?;
        let (host, port) = split_port(authority)?;
        if port.is_some_and(|port| port.contains('*')) {
            return Err("a port cannot be a wildcard");
        }
        let port = normalize_port(scheme, port)?;
        let scheme = scheme.to_ascii_lowercase().into_boxed_str();
        if !host.contains('*') {
            check_host(host)?;
            return Ok(Self::Exact {
                scheme,
                host: host.to_ascii_lowercase().into_boxed_str(),
                port,
            });
        }
        let Some(domain) = host.strip_prefix("*.") else {
            return Err(if host == "*" {
                "a wildcard needs at least two labels after it, as in `https://*.example.com`"
            } else {
                WILDCARD_SHAPE
            });
        };
        if domain.contains('*') {
            return Err(WILDCARD_SHAPE);
        }
        check_host(domain)?;
        if domain.starts_with('[') {
            return Err("a wildcard pattern must name a domain, not an IP address");
        }
        let mut labels = domain.rsplit('.');
        let last = labels.next().unwrap_or_default();
        if labels.next().is_none() {
            return Err(
                "a wildcard needs at least two labels after it (`https://*.example.com`, not \
                 `https://*.com`)",
            );
        }
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a wildcard pattern must name a domain, not an IP address");
        }
        let mut suffix = String::with_capacity(domain.len() + 1);
        suffix.push('.');
        suffix.push_str(&domain.to_ascii_lowercase());
        Ok(Self::Subdomains {
            scheme,
            suffix: suffix.into_boxed_str(),
            port,
        })
    }

    /// The pattern as the bytes a browser sends for it, for matching without parsing.
    pub(crate) fn serialized(&self) -> Serialized {
        let with_port = |text: String, port: &Option<u16>| match port {
            Some(port) => format!("{text}:{port}"),
            None => text,
        };
        let (prefix, suffix, subdomains) = match self {
            Self::Exact { scheme, host, port } => (
                with_port(format!("{scheme}://{host}"), port),
                String::new(),
                false,
            ),
            Self::Subdomains {
                scheme,
                suffix,
                port,
            } => (
                format!("{scheme}://"),
                with_port(suffix.to_string(), port),
                true,
            ),
        };
        Serialized {
            prefix: prefix.into_bytes().into_boxed_slice(),
            suffix: suffix.into_bytes().into_boxed_slice(),
            subdomains,
        }
    }

    /// Whether `origin` is this origin, or one of these subdomains.
    pub(crate) fn matches(&self, origin: &Origin<'_>) -> bool {
        match self {
            Self::Exact { scheme, host, port } => {
                origin.port == *port
                    && origin.scheme.eq_ignore_ascii_case(scheme)
                    && origin.host.eq_ignore_ascii_case(host)
            }
            Self::Subdomains {
                scheme,
                suffix,
                port,
            } => {
                // The parser leaves no empty label, so a host longer than `.example.com`
                // that ends with it has at least one whole label before it.
                origin.port == *port
                    && origin.scheme.eq_ignore_ascii_case(scheme)
                    && origin.host.len() > suffix.len()
                    && origin.host.as_bytes()[origin.host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// A pattern as browsers serialize the origins it matches (lowercase, no default port):
/// `https://app.example.com` exactly, or for `https://*.example.com:8443` the text around the
/// subdomain, `https://` before and `.example.com:8443` after.
///
/// Browsers send origins serialized, so nearly every allowed `Origin` matches one of these
/// byte for byte, without the parser. Whatever matches also parses to an origin the pattern
/// matches; what does not (`https://App.example.com:443`) is left to the parser.
#[derive(Clone, Debug)]
pub(crate) struct Serialized {
    prefix: Box<[u8]>,
    suffix: Box<[u8]>,
    /// Whether one or more whole labels go between `prefix` and `suffix`; else nothing does.
    subdomains: bool,
}

impl Serialized {
    /// Whether `origin`, as received, is this pattern's serialized form.
    pub(crate) fn matches(&self, origin: &[u8]) -> bool {
        let Some(middle) = origin
            .len()
            .checked_sub(self.prefix.len() + self.suffix.len())
        else {
            return false;
        };
        // Nothing may go between the parts of an exact origin; something must for subdomains.
        if (middle == 0) == self.subdomains {
            return false;
        }
        let (head, rest) = origin.split_at(self.prefix.len());
        let (labels, tail) = rest.split_at(middle);
        // Browsers send lowercase: the plain comparison (a `memcmp`) nearly always decides.
        let same = |received: &[u8], expected: &[u8]| {
            received == expected || received.eq_ignore_ascii_case(expected)
        };
        same(head, &self.prefix)
            && same(tail, &self.suffix)
            // The suffix starts with its dot, so the labels end without one.
            && (!self.subdomains || labels_valid(labels))
    }
}

/// `scheme` and what follows `://`.
fn split_scheme(text: &str) -> Result<(&str, &str), &'static str> {
    // The scheme ends at the first `:`; anything else before `://` would make it invalid.
    let colon = text.bytes().position(|b| b == b':');
    let Some((scheme, authority)) = colon.and_then(|colon| {
        let (scheme, rest) = text.split_at(colon);
        rest.strip_prefix("://")
            .map(|authority| (scheme, authority))
    }) else {
        return Err(if text.contains("://") && !text.starts_with("://") {
            "the scheme is not valid (write e.g. `https`)"
        } else {
            ORIGIN_SHAPE
        });
    };
    let mut chars = scheme.bytes();
    let valid = chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        && chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid {
        return Err(if scheme.contains('*') {
            "a scheme cannot be a wildcard; write `https://*.example.com`"
        } else {
            "the scheme is not valid (write e.g. `https`)"
        });
    }
    // One pass over the authority for what an origin never has.
    let Some(bad) = authority
        .bytes()
        .find(|b| matches!(b, b'/' | b'?' | b'#' | b'@'))
    else {
        return Ok((scheme, authority));
    };
    Err(match bad {
        b'/' => "an origin has no path, not even a trailing `/`",
        b'?' | b'#' => "an origin has no query or fragment",
        _ => "an origin has no user name or password",
    })
}

/// The host (an IPv6 address keeps its brackets) and the port text, if any.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    let (host, rest) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err("an IPv6 address is missing its `]`");
        };
        authority.split_at(end + 1)
    } else {
        match authority.bytes().position(|b| b == b':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, ""),
        }
    };
    if rest.is_empty() {
        return Ok((host, None));
    }
    match rest.strip_prefix(':') {
        Some(port) => Ok((host, Some(port))),
        None => Err(ORIGIN_SHAPE),
    }
}

/// A DNS name or IPv4 address (labels of letters, digits, `-` and `_`, none empty), or an IPv6
/// address in brackets.
fn check_host(host: &str) -> Result<(), &'static str> {
    if let Some(inner) = host.strip_prefix('[') {
        let address = inner.strip_suffix(']').unwrap_or(inner);
        return match address.parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err("the IPv6 address is not valid"),
        };
    }
    if host.is_empty() {
        return Err("the host is missing");
    }
    if !host.is_ascii() {
        return Err("write internationalized domain names in punycode (`xn--...`)");
    }
    if labels_valid(host.as_bytes()) {
        Ok(())
    } else {
        Err("the host is not a valid domain name or IP address")
    }
}

/// Dot-separated labels of letters, digits, `-` and `_`, at least one and none empty, in one
/// pass.
fn labels_valid(host: &[u8]) -> bool {
    let mut label_empty = true;
    let mut valid = true;
    for &b in host {
        if b == b'.' {
            valid &= !label_empty;
            label_empty = true;
        } else {
            valid &= b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
            label_empty = false;
        }
    }
    valid && !label_empty
}

/// The port, `None` when absent or the scheme's default.
fn normalize_port(scheme: &str, port: Option<&str>) -> Result<Option<u16>, &'static str> {
    let Some(port) = port else {
        return Ok(None);
    };
    let number = if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else {
        port.parse::<u16>().ok().filter(|&n| n != 0)
    };
    let Some(number) = number else {
        return Err("the port must be a number from 1 to 65535");
    };
    let default = if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else {
        None
    };
    Ok((default != Some(number)).then_some(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(pattern: &str, origin: &str) -> bool {
        let pattern = OriginPattern::parse(pattern).unwrap();
        Origin::parse(origin).is_ok_and(|origin| pattern.matches(&origin))
    }

    #[test]
    fn exact_origins_compare_scheme_and_host_case_insensitively() {
        assert!(allows("https://App.Example.com", "https://app.example.com"));
        assert!(allows("HTTPS://app.example.com", "https://APP.example.COM"));
        assert!(!allows("https://app.example.com", "http://app.example.com"));
        assert!(!allows("https://app.example.com", "https://app.example.co"));
        assert!(!allows(
            "https://app.example.com",
            "https://app.example.com."
        ));
    }

    #[test]
    fn default_ports_are_the_same_as_none() {
        assert!(allows("https://a.example.com:443", "https://a.example.com"));
        assert!(allows("https://a.example.com", "https://a.example.com:443"));
        assert!(allows("http://localhost:80", "http://localhost"));
        assert!(!allows(
            "https://a.example.com",
            "https://a.example.com:8443"
        ));
        assert!(!allows(
            "https://a.example.com:8443",
            "https://a.example.com"
        ));
        assert!(allows("http://localhost:3000", "http://localhost:3000"));
        assert!(!allows("http://localhost:3000", "http://localhost:3001"));
    }

    #[test]
    fn subdomain_patterns_need_a_whole_label_before_the_domain() {
        let p = "https://*.example.com";
        assert!(allows(p, "https://a.example.com"));
        assert!(allows(p, "https://a.b.example.com"));
        assert!(allows(p, "https://A.Example.COM"));
        assert!(!allows(p, "https://example.com"));
        assert!(!allows(p, "https://.example.com"));
        assert!(!allows(p, "https://evil-example.com"));
        assert!(!allows(p, "https://example.com.evil.net"));
        assert!(!allows(p, "http://a.example.com"));
        assert!(!allows(p, "https://a.example.com:8443"));
        assert!(!allows(p, "null"));
        assert!(allows(
            "https://*.example.com:8443",
            "https://a.example.com:8443"
        ));
    }

    #[test]
    fn the_serialized_form_never_matches_what_the_parser_refuses() {
        let patterns = [
            "https://app.example.com",
            "https://App.Example.com:443",
            "https://*.example.com",
            "http://*.dev.example.com:8080",
            "http://[::1]:8080",
        ];
        let origins = [
            "https://app.example.com",
            "HTTPS://APP.EXAMPLE.COM",
            "https://app.example.com:443",
            "https://app.example.comm",
            "https://app.example.com/",
            "https://app.example.com.",
            "https://a.example.com",
            "https://a.b.example.com",
            "https://.example.com",
            "https://..example.com",
            "https://a..example.com",
            "https://a/.example.com",
            "https://a@b.example.com",
            "https://a:1.example.com",
            "https://example.com",
            "https://evil-example.com",
            "https://example.com.evil.net",
            "https://a.example.com:8443",
            "http://a.dev.example.com:8080",
            "http://a.dev.example.com",
            "http://a.dev.example.com:80801",
            "http://[::1]:8080",
            "http://[::1]",
            "null",
            "",
        ];
        for pattern_text in patterns {
            let pattern = OriginPattern::parse(pattern_text).unwrap();
            let serialized = pattern.serialized();
            for origin in origins {
                let parsed = Origin::parse(origin).is_ok_and(|o| pattern.matches(&o));
                if serialized.matches(origin.as_bytes()) {
                    assert!(parsed, "{pattern_text}: {origin:?} matched unparsed only");
                }
            }
        }
        // What browsers send takes the fast path.
        for (pattern, origin) in [
            ("https://App.Example.com:443", "https://app.example.com"),
            ("https://*.example.com", "https://a.b.example.com"),
            (
                "http://*.dev.example.com:8080",
                "http://x.dev.example.com:8080",
            ),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ] {
            let serialized = OriginPattern::parse(pattern).unwrap().serialized();
            assert!(serialized.matches(origin.as_bytes()), "{pattern}: {origin}");
        }
    }

    #[test]
    fn request_origins_that_are_not_origins_match_nothing() {
        for text in [
            "null",
            "https://a.example.com/",
            "https://a.example.com/path",
            "https://user@a.example.com",
            "https://a.example.com:",
            "https://a.example.com:0",
            "https://a.example.com:99999",
            "a.example.com",
            "",
        ] {
            assert!(Origin::parse(text).is_err(), "{text:?} parsed");
        }
        assert!(Origin::parse("http://[::1]:8080").is_ok());
        assert!(Origin::parse("chrome-extension://abcdefgh").is_ok());
    }

    #[test]
    fn bad_patterns_are_refused() {
        for text in [
            "https://*",
            "*.com",
            "*.example.com",
            "https://*.com",
            "https://a.*.example.com",
            "https://*a.example.com",
            "https://**.example.com",
            "https://*.*.example.com",
            "https://*.0.0.1",
            "https://*.example.com:*",
            "*://a.example.com",
            "https://a.example.com/",
            "https://a.example.com/api",
            "https://a.example.com?x",
            "null",
            "https://bücher.example",
            " https://a.example.com",
        ] {
            assert!(OriginPattern::parse(text).is_err(), "{text:?} parsed");
        }
    }
}
