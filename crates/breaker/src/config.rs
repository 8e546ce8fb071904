//! The `[upstreams.NAME.circuit_breaker]` table and its validation.
//!
//! ```toml
//! [upstreams.users.circuit_breaker]
//! failure_threshold = 5        # consecutive failures that open the circuit
//! success_threshold = 2        # successful probes that close it again
//! open_for = "10s"             # how long it stays open before probing
//! half_open_max_calls = 1      # probes in flight at a time
//! failure_rate = 0.5           # optional: also open at this failure rate...
//! window = "10s"               # ...over this sliding window...
//! min_calls = 20               # ...once it saw this many calls
//! failure_status = [500, 502, 503, 504]  # default: every 5xx
//! max_open_for = "5m"          # optional: each reopening multiplies open_for, up to this
//! open_for_multiplier = 2.0    # growth factor (default 2)
//! ```

use std::time::Duration;

use gateway_core::config::HumanDuration;
use http::StatusCode;
use serde::Deserialize;

use crate::classify::{FailureStatus, NotAnErrorStatus};

/// Consecutive failures that open the circuit when neither `failure_threshold` nor
/// `failure_rate` is configured.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Successful probes that close the circuit by default.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// How long the circuit stays open by default.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);
/// The default sliding window of the failure rate.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// The default number of calls the window must hold before the failure rate is trusted.
pub const DEFAULT_MIN_CALLS: u32 = 20;
/// The default growth factor of `open_for` when `max_open_for` is set.
pub const DEFAULT_OPEN_FOR_MULTIPLIER: f64 = 2.0;

/// The longest `open_for` and `max_open_for` accepted.
const MAX_OPEN_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest failure-rate window accepted (it is cut into ten buckets).
const MIN_WINDOW: Duration = Duration::from_millis(100);
/// The largest `success_threshold` and `half_open_max_calls` accepted.
const MAX_PROBES: u32 = 10_000;
/// Reopenings after which `open_for` stops growing (the state word counts no further).
const MAX_GROWTH_STEPS: i32 = crate::state::MAX_STREAK as i32;

/// A circuit breaker's settings: the `[upstreams.NAME.circuit_breaker]` table of the gateway
/// config, or built in code from [`BreakerConfig::default`] with the builder methods.
///
/// Deserializing validates (see [`ConfigError`] for the rules), so a bad value is reported with
/// its place in the file; a config built in code is validated by
/// [`CircuitBreaker::new`](crate::CircuitBreaker::new).
///
/// ```
/// use std::time::Duration;
/// use gateway_breaker::BreakerConfig;
///
/// let config = BreakerConfig::default()
///     .failure_threshold(3)
///     .open_for(Duration::from_secs(5))
///     .max_open_for(Duration::from_secs(60));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Settings")]
pub struct BreakerConfig(Settings);

/// The table as written; every field is optional. Checks that need one field run while it
/// is deserialized, so an error points at the field's line; the others run on the table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    #[serde(deserialize_with = "field::failure_threshold")]
    failure_threshold: Option<u32>,
    #[serde(deserialize_with = "field::success_threshold")]
    success_threshold: u32,
    #[serde(deserialize_with = "field::open_for")]
    open_for: HumanDuration,
    #[serde(deserialize_with = "field::half_open_max_calls")]
    half_open_max_calls: u32,
    #[serde(deserialize_with = "field::failure_rate")]
    failure_rate: Option<f64>,
    #[serde(deserialize_with = "field::window")]
    window: Option<HumanDuration>,
    #[serde(deserialize_with = "field::min_calls")]
    min_calls: Option<u32>,
    #[serde(deserialize_with = "field::failure_status")]
    failure_status: Option<Vec<u16>>,
    #[serde(deserialize_with = "field::max_open_for")]
    max_open_for: Option<HumanDuration>,
    open_for_multiplier: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            failure_threshold: None,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            open_for: HumanDuration(DEFAULT_OPEN_FOR),
            half_open_max_calls: 1,
            failure_rate: None,
            window: None,
            min_calls: None,
            failure_status: None,
            max_open_for: None,
            open_for_multiplier: None,
        }
    }
}

impl Default for BreakerConfig {
    /// Opens after 5 consecutive failures (any 5xx, error or upstream failure), stays open
    /// 30s, then lets one probe through and closes on its success.
    fn default() -> Self {
        Self(Settings::default())
    }
}

impl TryFrom<Settings> for BreakerConfig {
    type Error = ConfigError;

    fn try_from(settings: Settings) -> Result<Self, Self::Error> {
        let config = Self(settings);
        config.policy()?;
        Ok(config)
    }
}

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

/// Validated settings in the units the state machine works in (milliseconds, counts).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Policy {
    pub(crate) failure_threshold: Option<u64>,
    pub(crate) success_threshold: u64,
    pub(crate) half_open_max_calls: u64,
    pub(crate) open_for_ms: u64,
    pub(crate) growth: Option<Growth>,
    pub(crate) rate: Option<RatePolicy>,
    pub(crate) failure_status: FailureStatus,
}

/// How `open_for` grows on each reopening without an intervening close.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Growth {
    pub(crate) multiplier: f64,
    pub(crate) max_ms: u64,
}

/// The failure-rate trip condition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RatePolicy {
    pub(crate) threshold: f64,
    pub(crate) window_ms: u64,
    pub(crate) min_calls: u64,
}

impl BreakerConfig {
    /// Opens the circuit after this many consecutive failures.
    ///
    /// Unset, it is 5 unless a [`failure_rate`](Self::failure_rate) is set, in which case only
    /// the rate opens the circuit.
    #[must_use]
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.0.failure_threshold = Some(failures);
        self
    }

    /// Closes the circuit after this many successful probes (default 1).
    #[must_use]
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.0.success_threshold = successes;
        self
    }

    /// How long the circuit stays open before it lets probes through (default 30s).
    #[must_use]
    pub fn open_for(mut self, duration: Duration) -> Self {
        self.0.open_for = HumanDuration(duration);
        self
    }

    /// How many probes may be in flight at a time while half-open (default 1).
    #[must_use]
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.0.half_open_max_calls = calls;
        self
    }

    /// Also opens the circuit when at least this fraction of the calls in the sliding
    /// [`window`](Self::window) failed, once the window holds [`min_calls`](Self::min_calls).
    #[must_use]
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.0.failure_rate = Some(rate);
        self
    }

    /// The sliding window of the failure rate (default 10s).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.0.window = Some(HumanDuration(window));
        self
    }

    /// The calls the window must hold before the failure rate can open the circuit
    /// (default 20).
    #[must_use]
    pub fn min_calls(mut self, calls: u32) -> Self {
        self.0.min_calls = Some(calls);
        self
    }

    /// Exactly these statuses count as failures, instead of every 5xx.
    ///
    /// Errors and [`UpstreamFailure`](gateway_core::UpstreamFailure) responses count whatever
    /// the list; an empty list counts nothing else.
    #[must_use]
    pub fn failure_status(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.0.failure_status = Some(statuses.into_iter().map(|s| s.as_u16()).collect());
        self
    }

    /// Grows `open_for` on each reopening (a failed probe), up to this cap; a close resets it.
    #[must_use]
    pub fn max_open_for(mut self, cap: Duration) -> Self {
        self.0.max_open_for = Some(HumanDuration(cap));
        self
    }

    /// The growth factor of `open_for` on each reopening (default 2; needs
    /// [`max_open_for`](Self::max_open_for)).
    #[must_use]
    pub fn open_for_multiplier(mut self, multiplier: f64) -> Self {
        self.0.open_for_multiplier = Some(multiplier);
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy().map(drop)
    }

    pub(crate) fn policy(&self) -> Result<Policy, ConfigError> {
        let s = &self.0;
        let failure_threshold = match (s.failure_threshold, s.failure_rate) {
            (Some(n), _) => Some(check::failure_threshold(n)?),
            (None, Some(_)) => None,
            (None, None) => Some(u64::from(DEFAULT_FAILURE_THRESHOLD)),
        };
        let open_for = s.open_for.get();
        let open_for_ms = check::open_for(open_for)?;
        let growth = match (s.max_open_for, s.open_for_multiplier) {
            (None, Some(_)) => return Err(ConfigError::MultiplierWithoutCap),
            (None, None) => None,
            (Some(cap), multiplier) => {
                let max_ms = check::max_open_for(cap.get())?;
                if cap.get() < open_for {
                    return Err(ConfigError::MaxOpenForTooShort {
                        open_for,
                        max_open_for: cap.get(),
                    });
                }
                let multiplier = multiplier.unwrap_or(DEFAULT_OPEN_FOR_MULTIPLIER);
                let reach = open_for_ms as f64 * multiplier.powi(MAX_GROWTH_STEPS);
                if !(multiplier > 1.0 && multiplier.is_finite() && reach >= max_ms as f64) {
                    return Err(ConfigError::Multiplier(multiplier));
                }
                Some(Growth { multiplier, max_ms })
            }
        };
        let rate = match s.failure_rate {
            None if s.window.is_some() || s.min_calls.is_some() => {
                return Err(ConfigError::WindowWithoutRate);
            }
            None => None,
            Some(threshold) => Some(RatePolicy {
                threshold: check::failure_rate(threshold)?,
                window_ms: check::window(s.window.map_or(DEFAULT_WINDOW, HumanDuration::get))?,
                min_calls: check::min_calls(s.min_calls.unwrap_or(DEFAULT_MIN_CALLS))?,
            }),
        };
        let failure_status = match &s.failure_status {
            None => FailureStatus::server_errors(),
            Some(codes) => FailureStatus::from_codes(codes.iter().copied())?,
        };
        Ok(Policy {
            failure_threshold,
            success_threshold: check::success_threshold(s.success_threshold)?,
            half_open_max_calls: check::half_open_max_calls(s.half_open_max_calls)?,
            open_for_ms,
            growth,
            rate,
            failure_status,
        })
    }
}

/// The checks of single values, each returning the value in the state machine's units.
mod check {
    use super::*;

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
}

/// `deserialize_with` functions running the [`check`]s while a field is read.
mod field {
    use serde::de::{Deserializer, Error};

    use super::*;

    fn checked<'de, D, T, U>(
        deserializer: D,
        check: impl FnOnce(&T) -> Result<U, ConfigError>,
    ) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        let value = T::deserialize(deserializer)?;
        check(&value).map_err(D::Error::custom)?;
        Ok(value)
    }

    macro_rules! fields {
        ($($name:ident: $ty:ty => $check:expr;)*) => {$(
            pub(super) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                checked(d, $check)
            }
        )*};
    }

    fields! {
        failure_threshold: Option<u32> => |n: &Option<u32>| n.map(check::failure_threshold).transpose();
        success_threshold: u32 => |n: &u32| check::success_threshold(*n);
        half_open_max_calls: u32 => |n: &u32| check::half_open_max_calls(*n);
        min_calls: Option<u32> => |n: &Option<u32>| n.map(check::min_calls).transpose();
        failure_rate: Option<f64> => |r: &Option<f64>| r.map(check::failure_rate).transpose();
        open_for: HumanDuration => |d: &HumanDuration| check::open_for(d.get());
        max_open_for: Option<HumanDuration> => |d: &Option<HumanDuration>| d.map(|d| check::max_open_for(d.get())).transpose();
        window: Option<HumanDuration> => |d: &Option<HumanDuration>| d.map(|d| check::window(d.get())).transpose();
        failure_status: Option<Vec<u16>> => |codes: &Option<Vec<u16>>| match codes {
            Some(codes) => Ok(Some(FailureStatus::from_codes(codes.iter().copied())?)),
            None => Ok(None),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<BreakerConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_contract_example_parses() {
        let config =
            parse("failure_threshold = 5\nsuccess_threshold = 2\nopen_for = \"10s\"").unwrap();
        let policy = config.policy().unwrap();
        assert_eq!(policy.failure_threshold, Some(5));
        assert_eq!(policy.success_threshold, 2);
        assert_eq!(policy.open_for_ms, 10_000);
        assert_eq!(policy.half_open_max_calls, 1);
        assert_eq!(policy.failure_status, FailureStatus::server_errors());
        assert_eq!(policy.rate, None);
        assert_eq!(policy.growth, None);
    }

    #[test]
    fn every_field_parses() {
        let config = parse(
            r#"
            failure_threshold = 7
            success_threshold = 3
            open_for = "2s"
            half_open_max_calls = 4
            failure_rate = 0.25
            window = "30s"
            min_calls = 50
            failure_status = [502, 503]
            max_open_for = "1m"
            open_for_multiplier = 1.5
            "#,
        )
        .unwrap();
        let policy = config.policy().unwrap();
        assert_eq!(policy.failure_threshold, Some(7));
        assert_eq!(policy.half_open_max_calls, 4);
        assert_eq!(
            policy.rate,
            Some(RatePolicy {
                threshold: 0.25,
                window_ms: 30_000,
                min_calls: 50
            })
        );
        assert_eq!(
            policy.growth,
            Some(Growth {
                multiplier: 1.5,
                max_ms: 60_000
            })
        );
        assert_eq!(
            policy.failure_status,
            FailureStatus::from_codes([502, 503]).unwrap()
        );
    }

    #[test]
    fn an_empty_table_takes_the_defaults() {
        let policy = parse("").unwrap().policy().unwrap();
        assert_eq!(policy, BreakerConfig::default().policy().unwrap());
        assert_eq!(
            policy.failure_threshold,
            Some(u64::from(DEFAULT_FAILURE_THRESHOLD))
        );
        assert_eq!(policy.open_for_ms, DEFAULT_OPEN_FOR.as_millis() as u64);
    }

    #[test]
    fn a_failure_rate_alone_turns_consecutive_counting_off() {
        let policy = parse("failure_rate = 0.5").unwrap().policy().unwrap();
        assert_eq!(policy.failure_threshold, None);
        assert_eq!(
            policy.rate,
            Some(RatePolicy {
                threshold: 0.5,
                window_ms: DEFAULT_WINDOW.as_millis() as u64,
                min_calls: u64::from(DEFAULT_MIN_CALLS),
            })
        );
    }

    #[test]
    fn bad_values_are_explained() {
        let cases = [
            (
                "failure_threshold = 0",
                "`failure_threshold` must be at least 1",
            ),
            (
                "success_threshold = 0",
                "`success_threshold` must be at least 1",
            ),
            (
                "half_open_max_calls = 20000",
                "`half_open_max_calls` must be at most 10000",
            ),
            ("open_for = \"0s\"", "`open_for` must be between"),
            ("open_for = \"2d\"", "`open_for` must be between"),
            ("open_for = \"soon\"", "invalid duration `soon`"),
            (
                "failure_rate = 1.5",
                "`failure_rate` must be greater than 0 and at most 1",
            ),
            (
                "failure_rate = 0.0",
                "`failure_rate` must be greater than 0 and at most 1",
            ),
            (
                "failure_rate = 0.5\nwindow = \"10ms\"",
                "`window` must be between",
            ),
            (
                "failure_rate = 0.5\nmin_calls = 0",
                "`min_calls` must be at least 1",
            ),
            (
                "window = \"10s\"",
                "only apply together with `failure_rate`",
            ),
            ("min_calls = 5", "only apply together with `failure_rate`"),
            (
                "failure_status = [200]",
                "status 200 is not an error status",
            ),
            (
                "open_for = \"10s\"\nmax_open_for = \"5s\"",
                "must not be shorter than `open_for`",
            ),
            ("open_for_multiplier = 3.0", "needs `max_open_for`"),
            (
                "max_open_for = \"1m\"\nopen_for_multiplier = 1.0",
                "must be greater than 1",
            ),
            (
                "open_for = \"1s\"\nmax_open_for = \"1d\"\nopen_for_multiplier = 1.01",
                "within 63",
            ),
            ("failure_treshold = 3", "unknown field `failure_treshold`"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(
                err.contains(expected),
                "{text:?} gave {err:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn errors_point_at_the_field_or_the_table() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct File {
            circuit_breaker: BreakerConfig,
        }
        let error = |text: &str| toml::from_str::<File>(text).unwrap_err().to_string();

        // One bad value: its own line.
        let err = error("[circuit_breaker]\nopen_for = \"5s\"\nfailure_rate = 2.0\n");
        assert!(err.contains("line 3"), "{err}");
        assert!(
            err.contains("`failure_rate` must be greater than 0"),
            "{err}"
        );

        // Values that disagree: the table's line.
        let err = error("[circuit_breaker]\nopen_for = \"5s\"\nmax_open_for = \"1s\"\n");
        assert!(err.contains("line 1"), "{err}");
        assert!(
            err.contains("`max_open_for` (1s) must not be shorter than `open_for` (5s)"),
            "{err}"
        );
    }

    #[test]
    fn builder_configs_are_validated_too() {
        let config = BreakerConfig::default().failure_rate(f64::NAN);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::FailureRate(_))
        ));
        let config = BreakerConfig::default().failure_status([StatusCode::OK]);
        assert_eq!(
            config.validate(),
            Err(ConfigError::FailureStatus(NotAnErrorStatus(200)))
        );
    }
}
