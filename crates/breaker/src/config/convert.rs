//! From the table as written to the policy the state machine runs: the checks that involve
//! more than one field, and the defaults that depend on other fields.

use gateway_core::config::HumanDuration;

use super::check;
use super::error::ConfigError;
use super::settings::{
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_MIN_CALLS, DEFAULT_OPEN_FOR_MULTIPLIER, DEFAULT_WINDOW,
    Settings,
};
use crate::policy::{Growth, MAX_STREAK, Policy, RatePolicy};
use crate::status::FailureStatus;

/// Reopenings after which `open_for` stops growing (the state word counts no further).
const MAX_GROWTH_STEPS: i32 = MAX_STREAK as i32;

pub(super) fn policy(s: &Settings) -> Result<Policy, ConfigError> {
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
