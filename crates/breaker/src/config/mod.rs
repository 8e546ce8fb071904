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

mod build;
mod check;
mod convert;
mod error;
mod field;
mod settings;
#[cfg(test)]
mod tests;

use std::time::Duration;

use gateway_core::config::HumanDuration;
use http::StatusCode;
use serde::Deserialize;

pub use error::ConfigError;
use settings::Settings;
pub use settings::{
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_MIN_CALLS, DEFAULT_OPEN_FOR, DEFAULT_OPEN_FOR_MULTIPLIER,
    DEFAULT_SUCCESS_THRESHOLD, DEFAULT_WINDOW,
};

use crate::policy::Policy;

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

    /// The validated policy the breaker runs.
    pub(crate) fn policy(&self) -> Result<Policy, ConfigError> {
        convert::policy(&self.0)
    }
}
