//! Why a breaker config is invalid.

use std::time::Duration;

use crate::status::NotAnErrorStatus;

/// Why a breaker config is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count that must be positive is zero.
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    /// A probe count is unreasonably large.
    #[error("`{field}` must be at most {max}, got {value}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u32,
        /// The largest accepted value.
        max: u32,
    },
    /// A duration is outside its accepted range.
    #[error("`{field}` must be between {min:?} and {max:?}, got {value:?}")]
    DurationOutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: Duration,
        /// The shortest accepted value.
        min: Duration,
        /// The longest accepted value.
        max: Duration,
    },
    /// The failure rate is not a fraction in (0, 1].
    #[error("`failure_rate` must be greater than 0 and at most 1 (0.5 = half the calls), got {0}")]
    FailureRate(f64),
    /// `window` or `min_calls` is set without `failure_rate`.
    #[error("`window` and `min_calls` only apply together with `failure_rate`")]
    WindowWithoutRate,
    /// A status in `failure_status` is not an error status.
    #[error("`failure_status`: {0}")]
    FailureStatus(#[from] NotAnErrorStatus),
    /// `max_open_for` is shorter than `open_for`.
    #[error("`max_open_for` ({max_open_for:?}) must not be shorter than `open_for` ({open_for:?})")]
    MaxOpenForTooShort {
        /// The configured `open_for`.
        open_for: Duration,
        /// The configured `max_open_for`.
        max_open_for: Duration,
    },
    /// `open_for_multiplier` is set without `max_open_for`.
    #[error("`open_for_multiplier` needs `max_open_for`, the cap of the growing open time")]
    MultiplierWithoutCap,
    /// The multiplier does not grow `open_for` or cannot reach the cap.
    #[error(
        "`open_for_multiplier` must be greater than 1 and reach `max_open_for` within 63 reopenings, got {0}"
    )]
    Multiplier(f64),
}
