//! The `[redis]` section.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use gateway_core::config::HumanDuration;
use serde::Deserialize;

use crate::on_error::OnError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
