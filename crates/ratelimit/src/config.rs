//! The gateway's `[redis]` section and per-route `[routes.rate_limit]` table.
//!
//! ```toml
//! [redis]
//! url = "redis://127.0.0.1:6379"   # redis-cluster://h1:7000?node=h2:7001 for a cluster
//! on_error = "allow"                # "allow" | "deny" (503) | "local"
//! timeout = "50ms"                  # bound of every rate-limit call to Redis
//!
//! [[routes]]
//! [routes.rate_limit]
//! algorithm = "token_bucket"        # or "fixed_window" (limit, window)
//! capacity = 100
//! refill_per_second = 10
//! key = "header:X-Api-Key"          # "ip" | "user" | "header:NAME" | "global"
//! ```
//!
//! Values are validated while deserializing, so a loader reports a bad value with its file,
//! line and field.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use gateway_core::config::HumanDuration;
use serde::Deserialize;

use crate::headers::HeaderMode;
use crate::key::KeySource;
use crate::policy::{Policy, PolicyError};

/// What to do with a request when Redis cannot answer within [`RedisConfig::timeout`]
/// (down, unreachable, too slow or erroring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Let the request through unchecked (fail open).
    #[default]
    Allow,
    /// Answer 503 (fail closed).
    Deny,
    /// Limit with this instance's in-memory limiter until Redis answers again. Each gateway
    /// instance then enforces the full limit on its own share of the traffic, so during an
    /// outage the cluster-wide limit is at most `instances × limit`.
    Local,
}

impl OnError {
    /// The config spelling: `allow`, `deny` or `local`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Local => "local",
        }
    }
}

/// The `[redis]` section: where the shared rate-limit state lives.
///
/// Without it, limits are kept in memory by each gateway instance.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `redis-cluster://host:port?node=host:port`
    /// (more `node` parameters name more seed nodes) for Redis Cluster.
    pub url: RedisUrl,
    /// Treat a `redis://` URL as a cluster seed node (the same as `redis-cluster://`).
    #[serde(default)]
    pub cluster: bool,
    /// What to do when Redis fails. Default `allow`.
    #[serde(default)]
    pub on_error: OnError,
    /// The most a request waits for Redis (including a script reload). Default `50ms`.
    #[serde(default = "default_timeout")]
    pub timeout: PositiveDuration,
    /// The TCP connect (and handshake) timeout. Default `1s`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: PositiveDuration,
    /// Connections to Redis. Each pipelines any number of concurrent requests, so a few are
    /// enough: more connections mean smaller write batches. Default 2.
    #[serde(default = "default_pool_size")]
    pub pool_size: PoolSize,
    /// Prefix of every key the gateway writes. Default `gateway:rl:`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

impl RedisConfig {
    /// A config for `url` with every other field at its default.
    pub fn new(url: RedisUrl) -> Self {
        Self {
            url,
            cluster: false,
            on_error: OnError::default(),
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            pool_size: default_pool_size(),
            key_prefix: default_key_prefix(),
        }
    }
}

fn default_timeout() -> PositiveDuration {
    PositiveDuration(Duration::from_millis(50))
}

fn default_connect_timeout() -> PositiveDuration {
    PositiveDuration(Duration::from_secs(1))
}

fn default_pool_size() -> PoolSize {
    PoolSize(2)
}

fn default_key_prefix() -> String {
    "gateway:rl:".to_owned()
}

/// A Redis URL that parsed (scheme, host, port, credentials, database).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// The URL may carry a password: never print it.
impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once('@') {
            Some((scheme_user, host)) => {
                let scheme = scheme_user
                    .split_once("://")
                    .map_or("", |(scheme, _)| scheme);
                write!(f, "\"{scheme}://***@{host}\"")
            }
            None => write!(f, "{:?}", self.0),
        }
    }
}

impl FromStr for RedisUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let scheme = s.split_once("://").map_or("", |(scheme, _)| scheme);
        match scheme {
            "redis" | "redis-cluster" | "valkey" | "valkey-cluster" => {}
            "rediss" | "rediss-cluster" | "valkeys" | "valkeys-cluster" => {
                return Err("TLS Redis URLs (rediss://) are not supported by this build".to_owned());
            }
            _ => {
                return Err(format!(
                    "invalid Redis URL scheme `{scheme}`: expected redis:// or redis-cluster://"
                ));
            }
        }
        fred::types::config::Config::from_url(s)
            .map(|_| Self(s.to_owned()))
            .map_err(|e| {
                format!(
                    "invalid Redis URL ({}); write e.g. `redis://127.0.0.1:6379` or \
                     `redis-cluster://10.0.0.1:7000?node=10.0.0.2:7000`",
                    e.details()
                )
            })
    }
}

impl TryFrom<String> for RedisUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A duration greater than zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HumanDuration")]
pub struct PositiveDuration(pub Duration);

impl TryFrom<HumanDuration> for PositiveDuration {
    type Error = &'static str;

    fn try_from(d: HumanDuration) -> Result<Self, Self::Error> {
        if d.get().is_zero() {
            Err("the duration must be greater than zero")
        } else {
            Ok(Self(d.get()))
        }
    }
}

/// The number of Redis connections: 1 to 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct PoolSize(pub usize);

impl TryFrom<u64> for PoolSize {
    type Error = &'static str;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match n {
            1..=64 => Ok(Self(n as usize)),
            _ => Err("pool_size must be between 1 and 64"),
        }
    }
}

/// The algorithm of a route's limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// `limit` requests per `window`.
    #[default]
    FixedWindow,
    /// A bucket of `capacity` tokens refilled at `refill_per_second`.
    TokenBucket,
}

/// A route's `[routes.rate_limit]` table, validated: see [`RateLimitConfig::policy`] and
/// [`RateLimitConfig::key`].
///
/// - `algorithm = "fixed_window"` (the default) takes `limit` (>= 1) and `window` (>= 1ms);
/// - `algorithm = "token_bucket"` takes `capacity` (>= 1) and `refill_per_second` (> 0,
///   fractional allowed);
/// - `key` is `"ip"` (the default), `"user"`, `"header:NAME"` or `"global"`;
/// - `headers` (optional) is `"all"` (the default), `"standard"`, `"legacy"` or `"none"`: see
///   [`HeaderMode`];
/// - `lease` (optional, with Redis) is how many tokens an instance takes from Redis per call,
///   from 2 up to the limit or capacity: see [`RouteLimiter::with_lease`](crate::RouteLimiter::with_lease).
///
/// Fields of the other algorithm are rejected rather than silently ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawRateLimit")]
pub struct RateLimitConfig {
    policy: Policy,
    key: KeySource,
    headers: HeaderMode,
    lease: Option<u32>,
}

impl RateLimitConfig {
    /// A config from its parts.
    pub fn new(policy: Policy, key: KeySource) -> Self {
        Self {
            policy,
            key,
            headers: HeaderMode::default(),
            lease: None,
        }
    }

    /// The validated policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Where requests find their key.
    pub fn key(&self) -> &KeySource {
        &self.key
    }

    /// Which rate-limit headers responses carry.
    pub fn headers(&self) -> HeaderMode {
        self.headers
    }

    /// Tokens taken from Redis per call, when leasing.
    pub fn lease(&self) -> Option<u32> {
        self.lease
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    #[serde(default)]
    algorithm: Algorithm,
    limit: Option<u32>,
    window: Option<HumanDuration>,
    capacity: Option<u32>,
    refill_per_second: Option<f64>,
    #[serde(default)]
    key: KeyField,
    #[serde(default)]
    headers: HeaderMode,
    lease: Option<u32>,
}

/// `key` validated on its own, so that a bad key is reported at its own line.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct KeyField(KeySource);

impl Default for KeyField {
    fn default() -> Self {
        Self(KeySource::Ip)
    }
}

impl TryFrom<String> for KeyField {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map(Self).map_err(|e| e.to_string())
    }
}

/// Why a `[routes.rate_limit]` table is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitConfigError {
    /// A field the algorithm needs is missing.
    #[error("algorithm = \"{algorithm}\" needs `{field}`")]
    Missing {
        /// The algorithm.
        algorithm: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A field of the other algorithm was given.
    #[error("`{field}` does not apply to algorithm = \"{algorithm}\"")]
    NotApplicable {
        /// The algorithm.
        algorithm: &'static str,
        /// The field that does not apply.
        field: &'static str,
    },
    /// The values do not make a policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A lease must take at least 2 tokens and no more than the limit.
    #[error("lease must be between 2 and the limit or capacity ({max}), got {lease}")]
    Lease {
        /// The lease asked for.
        lease: u32,
        /// The largest lease allowed.
        max: u32,
    },
}

impl TryFrom<RawRateLimit> for RateLimitConfig {
    type Error = RateLimitConfigError;

    fn try_from(raw: RawRateLimit) -> Result<Self, Self::Error> {
        use RateLimitConfigError::{Missing, NotApplicable};
        let policy = match raw.algorithm {
            Algorithm::FixedWindow => {
                let algorithm = "fixed_window";
                if raw.capacity.is_some() {
                    return Err(NotApplicable {
                        algorithm,
                        field: "capacity",
                    });
                }
                if raw.refill_per_second.is_some() {
                    return Err(NotApplicable {
                        algorithm,
                        field: "refill_per_second",
                    });
                }
                let limit = raw.limit.ok_or(Missing {
                    algorithm,
                    field: "limit",
                })?;
                let window = raw.window.ok_or(Missing {
                    algorithm,
                    field: "window",
                })?;
                Policy::fixed_window(limit, window.get())?
            }
            Algorithm::TokenBucket => {
                let algorithm = "token_bucket";
                if raw.limit.is_some() {
                    return Err(NotApplicable {
                        algorithm,
                        field: "limit",
                    });
                }
                if raw.window.is_some() {
                    return Err(NotApplicable {
                        algorithm,
                        field: "window",
                    });
                }
                let capacity = raw.capacity.ok_or(Missing {
                    algorithm,
                    field: "capacity",
                })?;
                let refill = raw.refill_per_second.ok_or(Missing {
                    algorithm,
                    field: "refill_per_second",
                })?;
                Policy::token_bucket(capacity, refill)?
            }
        };
        if let Some(lease) = raw.lease {
            let max = policy.limit().min(crate::lease::MAX_LEASE);
            if !(2..=max).contains(&lease) {
                return Err(RateLimitConfigError::Lease { lease, max });
            }
        }
        Ok(Self {
            policy,
            key: raw.key.0,
            headers: raw.headers,
            lease: raw.lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn route(toml_text: &str) -> Result<RateLimitConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn fixed_window_from_the_contract() {
        let config =
            route("algorithm = \"fixed_window\"\nlimit = 100\nwindow = \"1m\"\nkey = \"ip\"")
                .unwrap();
        assert_eq!(
            config.policy(),
            Policy::fixed_window(100, Duration::from_secs(60)).unwrap()
        );
        assert_eq!(config.key(), &KeySource::Ip);
    }

    #[test]
    fn token_bucket_with_fractional_refill_and_header_key() {
        let config = route(
            "algorithm = \"token_bucket\"\ncapacity = 10\nrefill_per_second = 2.5\nkey = \"header:X-Api-Key\"\nheaders = \"standard\"",
        )
        .unwrap();
        assert_eq!(config.headers(), HeaderMode::Standard);
        assert_eq!(config.policy(), Policy::token_bucket(10, 2.5).unwrap());
        assert_eq!(
            config.key(),
            &KeySource::Header(HeaderName::from_static("x-api-key"))
        );
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let cases = [
            ("limit = 0\nwindow = \"1s\"", "at least 1"),
            ("limit = 5\nwindow = \"0ms\"", "at least 1ms"),
            ("limit = 5", "needs `window`"),
            (
                "limit = 5\nwindow = \"1s\"\ncapacity = 3",
                "`capacity` does not apply",
            ),
            (
                "algorithm = \"token_bucket\"\ncapacity = 5",
                "needs `refill_per_second`",
            ),
            (
                "algorithm = \"token_bucket\"\ncapacity = 5\nrefill_per_second = -1",
                "refill_per_second",
            ),
            (
                "algorithm = \"leaky\"\nlimit = 5\nwindow = \"1s\"",
                "unknown variant",
            ),
            (
                "limit = 5\nwindow = \"1s\"\nkey = \"header:bad name\"",
                "invalid rate-limit key",
            ),
            ("limit = 5\nwindow = \"1s\"\nburst = 3", "unknown field"),
            (
                "limit = 5\nwindow = \"1s\"\nheaders = \"some\"",
                "unknown variant",
            ),
            ("limit = -5\nwindow = \"1s\"", "invalid value"),
            (
                "limit = 5\nwindow = \"1s\"\nlease = 6",
                "between 2 and the limit",
            ),
            (
                "limit = 5\nwindow = \"1s\"\nlease = 1",
                "between 2 and the limit",
            ),
        ];
        for (text, expected) in cases {
            let err = route(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn redis_section_defaults_and_validation() {
        let config: RedisConfig = toml::from_str("url = \"redis://127.0.0.1:6379\"").unwrap();
        assert_eq!(config.on_error, OnError::Allow);
        assert_eq!(config.timeout.0, Duration::from_millis(50));
        assert_eq!(config.pool_size.0, 2);

        let config: RedisConfig = toml::from_str(
            "url = \"redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001\"\non_error = \"local\"\ntimeout = \"20ms\"",
        )
        .unwrap();
        assert_eq!(config.on_error, OnError::Local);

        for (text, expected) in [
            ("url = \"http://x\"", "invalid Redis URL scheme `http`"),
            ("url = \"redis://\"", "invalid Redis URL"),
            ("url = \"rediss://h:6380\"", "not supported"),
            (
                "url = \"redis://h\"\non_error = \"ignore\"",
                "unknown variant",
            ),
            ("url = \"redis://h\"\ntimeout = \"0s\"", "greater than zero"),
            ("url = \"redis://h\"\npool_size = 0", "between 1 and 64"),
            ("url = \"redis://h\"\npassword = \"x\"", "unknown field"),
        ] {
            let err = toml::from_str::<RedisConfig>(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let url: RedisUrl = "redis://user:hunter2@cache:6379/1".parse().unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cache:6379"));
    }
}
