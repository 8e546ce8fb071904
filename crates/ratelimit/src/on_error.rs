//! What a route does while Redis cannot answer.

use serde::Deserialize;

/// What to do with a request when Redis cannot answer within [`RedisConfig::timeout`](crate::RedisConfig::timeout)
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
