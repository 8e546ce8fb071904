//! The checks of single values, each returning the value in the state machine's units.

use std::time::Duration;

use super::error::ConfigError;

/// The longest `open_for` and `max_open_for` accepted.
const MAX_OPEN_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest failure-rate window accepted (it is cut into ten buckets).
const MIN_WINDOW: Duration = Duration::from_millis(100);
/// The largest `success_threshold` and `half_open_max_calls` accepted.
const MAX_PROBES: u32 = 10_000;

pub(super) fn failure_threshold(n: u32) -> Result<u64, ConfigError> {
    count("failure_threshold", n, u32::MAX)
}

pub(super) fn success_threshold(n: u32) -> Result<u64, ConfigError> {
    count("success_threshold", n, MAX_PROBES)
}

pub(super) fn half_open_max_calls(n: u32) -> Result<u64, ConfigError> {
    count("half_open_max_calls", n, MAX_PROBES)
}

pub(super) fn min_calls(n: u32) -> Result<u64, ConfigError> {
    count("min_calls", n, u32::MAX)
}

pub(super) fn failure_rate(rate: f64) -> Result<f64, ConfigError> {
    // Written so that NaN fails too.
    if rate > 0.0 && rate <= 1.0 {
        Ok(rate)
    } else {
        Err(ConfigError::FailureRate(rate))
    }
}

pub(super) fn open_for(d: Duration) -> Result<u64, ConfigError> {
    millis("open_for", d, Duration::from_millis(1))
}

pub(super) fn max_open_for(d: Duration) -> Result<u64, ConfigError> {
    millis("max_open_for", d, Duration::from_millis(1))
}

pub(super) fn window(d: Duration) -> Result<u64, ConfigError> {
    millis("window", d, MIN_WINDOW)
}

fn count(field: &'static str, value: u32, max: u32) -> Result<u64, ConfigError> {
    match value {
        0 => Err(ConfigError::Zero(field)),
        v if v > max => Err(ConfigError::TooLarge { field, value, max }),
        v => Ok(u64::from(v)),
    }
}

fn millis(field: &'static str, value: Duration, min: Duration) -> Result<u64, ConfigError> {
    if value < min || value > MAX_OPEN_FOR {
        return Err(ConfigError::DurationOutOfRange {
            field,
            value,
            min,
            max: MAX_OPEN_FOR,
        });
    }
    // Bounded by a day, so the cast cannot truncate.
    Ok(value.as_millis() as u64)
}
