//! What a route allows: a fixed window or a token bucket, validated once.

use std::time::Duration;

/// The longest window or full-refill time accepted (about 31 years), so that every time
/// computation fits in 64-bit nanoseconds.
const MAX_SPAN: Duration = Duration::from_secs(1_000_000_000);

/// The fastest refill accepted: one token per microsecond, the resolution of Redis `TIME`.
const MAX_REFILL_PER_SECOND: f64 = 1_000_000.0;

/// The largest lease (`lease = B`): a lease's remaining count has 24 bits of a word.
pub(crate) const MAX_LEASE: u32 = (1 << 24) - 1;

/// Why a [`Policy`] cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A limit of zero would refuse every request.
    #[error("limit must be at least 1")]
    ZeroLimit,
    /// A bucket of no tokens would refuse every request.
    #[error("capacity must be at least 1")]
    ZeroCapacity,
    /// Windows are counted in milliseconds (the unit of Redis `PEXPIRE`).
    #[error("window must be at least 1ms (got {0:?})")]
    WindowTooShort(Duration),
    /// A window so long its arithmetic would overflow.
    #[error("window must be at most {MAX_SPAN:?} (got {0:?})")]
    WindowTooLong(Duration),
    /// The refill rate must be a positive number of tokens per second, at most one per µs.
    #[error("refill_per_second must be > 0 and <= 1000000 (got {0})")]
    InvalidRefill(f64),
    /// An empty bucket would take longer than about 31 years to fill up.
    #[error(
        "a bucket of {capacity} tokens refilled at {refill_per_second}/s takes too long to fill"
    )]
    RefillTooSlow {
        /// The bucket capacity.
        capacity: u32,
        /// The refill rate.
        refill_per_second: f64,
    },
}

/// A validated rate-limit policy.
///
/// - [`Policy::fixed_window`]: at most `limit` requests per key in each `window`; the count
///   starts again at the end of the window.
/// - [`Policy::token_bucket`]: a bucket of `capacity` tokens per key, refilled continuously at
///   `refill_per_second` (fractional rates such as 2.5/s are exact); a request takes one token.
///
/// The token bucket is kept as its "theoretical arrival time" (the GCRA form of a token bucket):
/// one number per key that both the in-memory store and the Redis script update atomically,
/// with the same results as counting tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    FixedWindow {
        limit: u32,
        window_ms: u64,
    },
    TokenBucket {
        capacity: u32,
        /// Microseconds per token: integer arithmetic keeps the boundary exact in Lua doubles
        /// and in memory alike.
        interval_us: u64,
    },
}

impl Policy {
    /// At most `limit` requests per key in each `window` (1ms resolution).
    pub fn fixed_window(limit: u32, window: Duration) -> Result<Self, PolicyError> {
        if limit == 0 {
            return Err(PolicyError::ZeroLimit);
        }
        if window < Duration::from_millis(1) {
            return Err(PolicyError::WindowTooShort(window));
        }
        if window > MAX_SPAN {
            return Err(PolicyError::WindowTooLong(window));
        }
        Ok(Self {
            kind: Kind::FixedWindow {
                limit,
                window_ms: window.as_millis() as u64,
            },
        })
    }

    /// A bucket of `capacity` tokens refilled at `refill_per_second` tokens per second.
    ///
    /// The refill interval is rounded to whole microseconds (3/s refills one token every
    /// 333 333 µs).
    pub fn token_bucket(capacity: u32, refill_per_second: f64) -> Result<Self, PolicyError> {
        if capacity == 0 {
            return Err(PolicyError::ZeroCapacity);
        }
        if !(refill_per_second > 0.0 && refill_per_second <= MAX_REFILL_PER_SECOND) {
            return Err(PolicyError::InvalidRefill(refill_per_second));
        }
        let interval_us = (1_000_000.0 / refill_per_second).round().max(1.0);
        let fill_us = interval_us * f64::from(capacity);
        if fill_us > MAX_SPAN.as_micros() as f64 {
            return Err(PolicyError::RefillTooSlow {
                capacity,
                refill_per_second,
            });
        }
        Ok(Self {
            kind: Kind::TokenBucket {
                capacity,
                interval_us: interval_us as u64,
            },
        })
    }

    /// The number of requests allowed in a window, or the bucket capacity.
    pub fn limit(&self) -> u32 {
        match self.kind {
            Kind::FixedWindow { limit, .. } => limit,
            Kind::TokenBucket { capacity, .. } => capacity,
        }
    }

    /// The window, or the time an empty bucket takes to fill up: the `w` of `RateLimit-Policy`.
    pub fn window(&self) -> Duration {
        match self.kind {
            Kind::FixedWindow { window_ms, .. } => Duration::from_millis(window_ms),
            Kind::TokenBucket {
                capacity,
                interval_us,
            } => Duration::from_micros(interval_us * u64::from(capacity)),
        }
    }

    /// Whether this is a token bucket (else a fixed window).
    pub fn is_token_bucket(&self) -> bool {
        matches!(self.kind, Kind::TokenBucket { .. })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert_eq!(
            Policy::fixed_window(0, Duration::from_secs(1)),
            Err(PolicyError::ZeroLimit)
        );
        assert!(matches!(
            Policy::fixed_window(1, Duration::from_micros(999)),
            Err(PolicyError::WindowTooShort(_))
        ));
        assert!(Policy::fixed_window(1, Duration::from_millis(1)).is_ok());
        assert!(matches!(
            Policy::token_bucket(1, 0.0),
            Err(PolicyError::InvalidRefill(_))
        ));
        assert!(matches!(
            Policy::token_bucket(1, f64::NAN),
            Err(PolicyError::InvalidRefill(_))
        ));
        assert!(matches!(
            Policy::token_bucket(u32::MAX, 0.001),
            Err(PolicyError::RefillTooSlow { .. })
        ));
    }

    #[test]
    fn token_bucket_window_is_the_full_refill_time() {
        let policy = Policy::token_bucket(10, 2.5).unwrap();
        assert_eq!(policy.limit(), 10);
        assert_eq!(policy.window(), Duration::from_secs(4));
    }
}
