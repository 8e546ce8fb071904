//! The route table: which route serves a normalized path and method.

use std::collections::HashMap;

use http::Method;

/// The outcome of matching a request against the table.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Match<'t> {
    /// A route serves the request.
    Route {
        /// The route's index in config order.
        index: usize,
        /// The length of the matched prefix.
        prefix_len: usize,
    },
    /// Some route has this path, none with this method.
    MethodNotAllowed {
        /// The methods allowed there, as an `Allow` header value.
        allow: &'t str,
    },
    /// No route has this path.
    NotFound,
}

struct PrefixEntry {
    /// Routes on this prefix with their methods (`None`: any).
    routes: Vec<(usize, Option<Vec<Method>>)>,
    /// The `Allow` header value for a 405 on this prefix.
    allow: String,
}

/// A fast, non-cryptographic hash for route prefixes: the keys come from the config, not from
/// clients, so flooding a bucket is not a concern, and SipHash would cost more than the rest
/// of the lookup.
#[derive(Default)]
struct PrefixHasher(u64);

impl std::hash::Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }
}

type PrefixMap = HashMap<Box<str>, PrefixEntry, std::hash::BuildHasherDefault<PrefixHasher>>;

/// Routes keyed by prefix: matching looks up each segment boundary of the path, longest first.
pub(crate) struct RouteTable {
    prefixes: PrefixMap,
    longest: usize,
}

impl RouteTable {
    /// Builds the table from normalized prefixes (see [`normalize_route_prefix`]) and methods, in
    /// route order.
    pub(crate) fn new<'a>(
        routes: impl IntoIterator<Item = (&'a str, Option<&'a [Method]>)>,
    ) -> Self {
        let mut prefixes = PrefixMap::default();
        for (index, (prefix, methods)) in routes.into_iter().enumerate() {
            let entry = prefixes
                .entry(prefix.into())
                .or_insert_with(|| PrefixEntry {
                    routes: Vec::new(),
                    allow: String::new(),
                });
            entry.routes.push((index, methods.map(<[Method]>::to_vec)));
        }
        for entry in prefixes.values_mut() {
            let mut allow: Vec<&str> = Vec::new();
            for (_, methods) in &entry.routes {
                for method in methods.iter().flatten() {
                    if !allow.contains(&method.as_str()) {
                        allow.push(method.as_str());
                    }
                }
            }
            if allow.contains(&"GET") && !allow.contains(&"HEAD") {
                // A route that allows GET serves HEAD too.
                allow.push("HEAD");
            }
            entry.allow = allow.join(", ");
        }
        let longest = prefixes.keys().map(|k| k.len()).max().unwrap_or(0);
        Self { prefixes, longest }
    }

    /// Finds the route of a normalized path.
    pub(crate) fn find(&self, path: &str, method: &Method) -> Match<'_> {
        let mut end = path.len().min(self.longest.max(1));
        // Candidate prefixes: the path itself, then each segment boundary, down to `/`.
        if end < path.len() {
            // A prefix can only end on a boundary: step back to the `/` at or before `end`.
            match path.as_bytes()[end] {
                b'/' => {}
                _ => end = path[..end].rfind('/').unwrap_or(0),
            }
        }
        loop {
            let candidate = if end == 0 { "/" } else { &path[..end] };
            let candidate = if candidate.len() > 1 {
                candidate.trim_end_matches('/')
            } else {
                candidate
            };
            if let Some(entry) = self.prefixes.get(candidate) {
                for (index, methods) in &entry.routes {
                    let allowed = match methods {
                        None => true,
                        Some(list) => {
                            list.contains(method)
                                || (*method == Method::HEAD && list.contains(&Method::GET))
                        }
                    };
                    if allowed {
                        return Match::Route {
                            index: *index,
                            prefix_len: candidate.len(),
                        };
                    }
                }
                return Match::MethodNotAllowed {
                    allow: &entry.allow,
                };
            }
            if end == 0 {
                return Match::NotFound;
            }
            end = path[..end].rfind('/').unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let get = [Method::GET];
        let post = [Method::POST];
        RouteTable::new([
            ("/", None),
            ("/api", None),
            ("/api/v1/users", Some(&get[..])),
            ("/api/v1/users", Some(&post[..])),
            ("/admin", Some(&post[..])),
        ])
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table();
        for (path, method, index, prefix_len) in [
            ("/api/v1/users/42", Method::GET, 2, 13),
            ("/api/v1/users", Method::POST, 3, 13),
            ("/api/v1/usersx", Method::GET, 1, 4),
            ("/apix", Method::GET, 0, 1),
            ("/api/", Method::GET, 1, 4),
            ("/", Method::GET, 0, 1),
        ] {
            assert_eq!(
                t.find(path, &method),
                Match::Route { index, prefix_len },
                "{method} {path}"
            );
        }
    }

    #[test]
    fn method_mismatch_lists_allowed_methods() {
        let t = table();
        assert_eq!(
            t.find("/api/v1/users/1", &Method::DELETE),
            Match::MethodNotAllowed {
                allow: "GET, POST, HEAD"
            }
        );
        assert_eq!(
            t.find("/api/v1/users", &Method::HEAD),
            Match::Route {
                index: 2,
                prefix_len: 13
            }
        );
        assert_eq!(
            t.find("/admin/x", &Method::GET),
            Match::MethodNotAllowed { allow: "POST" }
        );
    }

    #[test]
    fn no_root_route_means_not_found() {
        let t = RouteTable::new([("/api", None)]);
        assert_eq!(t.find("/other", &Method::GET), Match::NotFound);
        assert_eq!(t.find("/", &Method::GET), Match::NotFound);
    }
}
