//! The `[cache]` table (the gateway's store) and a route's `[routes.cache]` table: plain serde
//! data, checked and turned into runtime values by `build` (in `config/build.rs`).
//!
//! ```toml
//! [cache]                        # the store, shared by every route that caches
//! max_size = "256MiB"            # bytes of bodies + headers + keys
//! max_object = "8MiB"            # larger responses stream through uncached
//!
//! [routes.cache]                 # per route; absent: the route does not cache
//! default_ttl = "0s"             # freshness of responses without explicit freshness (0: not stored)
//! stale_while_revalidate = "0s"  # serve stale this long while one background refresh runs
//! stale_if_error = "0s"          # serve stale this long when the upstream fails
//! authorized = "never"           # | "per_user"
//! key_headers = []               # extra request headers that become part of the key
//! ```

mod build;

use gateway_core::config::{ByteSize, HumanDuration};
use serde::Deserialize;

/// `[cache]`: the size of the gateway-wide response store. Every field has a default, so an
/// empty table turns the store on with the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The most the store holds: bodies, headers and keys. When full, the entries least
    /// likely to be asked for again are evicted first. Default: `256MiB`.
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
    /// The largest response stored; larger ones stream through uncached. Default: `8MiB`,
    /// or `max_size` when that is smaller.
    pub max_object: Option<ByteSize>,
}

impl CacheConfig {
    /// `max_object`, or its default.
    pub fn max_object(&self) -> u64 {
        self.max_object.map_or_else(
            || DEFAULT_MAX_OBJECT.min(self.max_size.bytes()),
            ByteSize::bytes,
        )
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_size: default_max_size(),
            max_object: None,
        }
    }
}

fn default_max_size() -> ByteSize {
    ByteSize(256 << 20)
}

const DEFAULT_MAX_OBJECT: u64 = 8 << 20;

/// Whether requests that carry credentials (`Authorization`, `Cookie`) use the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authorized {
    /// Never: such a request is neither answered from the cache nor stored.
    #[default]
    Never,
    /// Cached per user: the verified identity the auth layer stored in the request
    /// ([`gateway_core::Identity`], its subject) is part of the key. A request with
    /// credentials but no verified identity bypasses the cache.
    PerUser,
}

/// `[routes.cache]`: how one route caches. Every field has a default, so an empty table
/// caches what the upstream marks cacheable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    /// Freshness of responses that carry no explicit freshness (`max-age`, `s-maxage`,
    /// `Expires`); `0s`: such responses are not stored. Default: `0s`.
    #[serde(default)]
    pub default_ttl: HumanDuration,
    /// How long after going stale an entry is still served while one background request
    /// refreshes it (a response's own `stale-while-revalidate` wins). Default: `0s`.
    #[serde(default)]
    pub stale_while_revalidate: HumanDuration,
    /// How long after going stale an entry is served instead of an upstream failure (no
    /// answer, 500, 502, 503, 504; a response's own `stale-if-error` wins). Default: `0s`.
    #[serde(default)]
    pub stale_if_error: HumanDuration,
    /// Whether requests with credentials are cached, and how. Default: `never`.
    #[serde(default)]
    pub authorized: Authorized,
    /// Request headers whose values become part of the key (as if every response varied on
    /// them). Default: none.
    #[serde(default)]
    pub key_headers: Vec<String>,
}
