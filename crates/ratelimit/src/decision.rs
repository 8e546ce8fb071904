//! The result of a rate-limit check, as stored in response extensions.

use std::time::Duration;

/// What the rate limiter decided for one request.
///
/// The layer inserts it into the extensions of every response of a limited route (allowed or
/// refused), so the gateway can count `gateway_ratelimit_decisions_total{route,decision}`
/// with [`as_str`](Self::as_str) as the label, without parsing responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitDecision {
    /// Within the limit.
    Allowed,
    /// Over the limit: answered 429.
    Limited,
    /// The store (Redis) failed and `on_error = "allow"` let the request through unchecked.
    FailOpen,
    /// The store failed and `on_error = "deny"` answered 503.
    FailClosed,
    /// The store failed and `on_error = "local"`: this instance's in-memory limiter allowed it.
    LocalAllowed,
    /// The store failed and `on_error = "local"`: this instance's in-memory limiter refused it
    /// (429).
    LocalLimited,
}

impl RateLimitDecision {
    /// A metric label: `allowed`, `limited`, `fail_open`, `fail_closed`, `local_allowed` or
    /// `local_limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Limited => "limited",
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
            Self::LocalAllowed => "local_allowed",
            Self::LocalLimited => "local_limited",
        }
    }

    /// Whether the request goes on to the inner service.
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed | Self::FailOpen | Self::LocalAllowed)
    }

    /// Whether the shared store could not answer for this request.
    pub fn is_backend_error(self) -> bool {
        matches!(
            self,
            Self::FailOpen | Self::FailClosed | Self::LocalAllowed | Self::LocalLimited
        )
    }
}

/// Where a key stands against its limit after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// The limit (fixed window) or capacity (token bucket).
    pub limit: u32,
    /// Requests left in this window, or whole tokens left in the bucket.
    pub remaining: u32,
    /// Until the window ends, or until the bucket is full again.
    pub reset: Duration,
    /// For a refused request: until a request can succeed.
    pub retry_after: Option<Duration>,
}

/// A decision and, when a store answered, the quota it reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: RateLimitDecision,
    /// The quota; `None` when no store answered (`FailOpen`, `FailClosed`).
    pub quota: Option<Quota>,
}

impl Verdict {
    pub(crate) fn new(decision: RateLimitDecision, quota: Quota) -> Self {
        Self {
            decision,
            quota: Some(quota),
        }
    }

    pub(crate) fn without_quota(decision: RateLimitDecision) -> Self {
        Self {
            decision,
            quota: None,
        }
    }
}
