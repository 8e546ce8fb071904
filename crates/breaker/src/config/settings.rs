//! The `[upstreams.NAME.circuit_breaker]` table as written, with its defaults.

use std::time::Duration;

use gateway_core::config::HumanDuration;
use serde::Deserialize;

use super::field;

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

/// The table as written; every field is optional. Checks that need one field run while it
/// is deserialized, so an error points at the field's line; the others run on the table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Settings {
    #[serde(deserialize_with = "field::failure_threshold")]
    pub(super) failure_threshold: Option<u32>,
    #[serde(deserialize_with = "field::success_threshold")]
    pub(super) success_threshold: u32,
    #[serde(deserialize_with = "field::open_for")]
    pub(super) open_for: HumanDuration,
    #[serde(deserialize_with = "field::half_open_max_calls")]
    pub(super) half_open_max_calls: u32,
    #[serde(deserialize_with = "field::failure_rate")]
    pub(super) failure_rate: Option<f64>,
    #[serde(deserialize_with = "field::window")]
    pub(super) window: Option<HumanDuration>,
    #[serde(deserialize_with = "field::min_calls")]
    pub(super) min_calls: Option<u32>,
    #[serde(deserialize_with = "field::failure_status")]
    pub(super) failure_status: Option<Vec<u16>>,
    #[serde(deserialize_with = "field::max_open_for")]
    pub(super) max_open_for: Option<HumanDuration>,
    pub(super) open_for_multiplier: Option<f64>,
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
