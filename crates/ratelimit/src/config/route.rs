//! A route's `[routes.rate_limit]` table.

use gateway_core::config::HumanDuration;
use serde::Deserialize;

use crate::header_mode::HeaderMode;
use crate::key_source::KeySource;
use crate::policy::{MAX_LEASE, Policy, PolicyError};

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
///   from 2 up to the limit or capacity: see
///   [`RouteLimiter::with_lease`](crate::RouteLimiter::with_lease).
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
            let max = policy.limit().min(MAX_LEASE);
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
    use std::time::Duration;

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
}
