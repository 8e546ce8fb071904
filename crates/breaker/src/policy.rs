//! A breaker's settings validated, in the units the state machine works in (milliseconds,
//! counts): what the config produces and the breaker runs.

use crate::status::FailureStatus;

/// The most reopenings the state word can count; `open_for` stops growing there.
pub(crate) const MAX_STREAK: u64 = 63;

/// Validated settings.
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
