//! The state machine on tokio's paused clock: when the circuit opens, how long it stays open,
//! how probes close or reopen it.

mod common;

use std::time::Duration;

use common::{Script, guarded, refused, status};
use gateway_breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use http::StatusCode;
use tokio::time::advance;

const FAIL: Script = Script::Status(500);
const OK: Script = Script::Status(200);

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_the_circuit_and_a_success_resets_the_count() {
    let config = BreakerConfig::default()
        .failure_threshold(3)
        .open_for(Duration::from_secs(10));
    let (breaker, upstream, service) = guarded(config);

    for script in [FAIL, FAIL, OK, FAIL, FAIL] {
        status(&service, script).await;
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "the success broke the streak"
    );

    assert_eq!(
        status(&service, FAIL).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(upstream.calls(), 6);

    assert_eq!(refused(&service, BreakerState::Open).await, 10);
    advance(Duration::from_millis(2500)).await;
    assert_eq!(
        refused(&service, BreakerState::Open).await,
        8,
        "7.5s left, rounded up"
    );
    advance(Duration::from_millis(7499)).await;
    assert_eq!(refused(&service, BreakerState::Open).await, 1);
    assert_eq!(
        upstream.calls(),
        6,
        "an open circuit does not call the service"
    );

    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.opened, metrics.half_opened, metrics.closed),
        (1, 0, 0)
    );
    assert_eq!(metrics.rejected, 3);
}

#[tokio::test(start_paused = true)]
async fn after_open_for_probes_close_the_circuit_at_the_success_threshold() {
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .success_threshold(2)
        .open_for(Duration::from_secs(5));
    let (breaker, upstream, service) = guarded(config);

    status(&service, FAIL).await;
    advance(Duration::from_millis(4999)).await;
    refused(&service, BreakerState::Open).await;
    assert_eq!(upstream.calls(), 1);

    advance(Duration::from_millis(1)).await;
    assert_eq!(status(&service, OK).await, StatusCode::OK);
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "one success of two"
    );
    assert_eq!(status(&service, OK).await, StatusCode::OK);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(upstream.calls(), 3);

    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.opened, metrics.half_opened, metrics.closed),
        (1, 1, 1)
    );
    for state in [
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::Closed,
    ] {
        assert_eq!(metrics.transitions_to(state), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_longer_up_to_the_cap_and_a_close_resets_it() {
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .open_for(Duration::from_secs(1))
        .max_open_for(Duration::from_secs(5));
    let (breaker, _, service) = guarded(config);

    status(&service, FAIL).await;
    let mut open_for = refused(&service, BreakerState::Open).await;
    assert_eq!(open_for, 1);
    // Doubling from 1s, capped at 5s.
    for expected in [2, 4, 5, 5] {
        advance(Duration::from_secs(open_for)).await;
        assert_eq!(
            status(&service, FAIL).await,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the probe"
        );
        open_for = refused(&service, BreakerState::Open).await;
        assert_eq!(open_for, expected);
    }

    advance(Duration::from_secs(open_for)).await;
    status(&service, OK).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    status(&service, FAIL).await;
    assert_eq!(
        refused(&service, BreakerState::Open).await,
        1,
        "closing reset the growth"
    );
    assert_eq!(breaker.metrics().opened, 6);
}

#[tokio::test(start_paused = true)]
async fn a_custom_multiplier_grows_open_for() {
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .open_for(Duration::from_secs(2))
        .max_open_for(Duration::from_secs(60))
        .open_for_multiplier(1.5);
    let (_, _, service) = guarded(config);

    status(&service, FAIL).await;
    let mut open_for = refused(&service, BreakerState::Open).await;
    for expected in [3, 5, 7] {
        // 2s, 3s, 4.5s, 6.75s: Retry-After rounds up.
        advance(Duration::from_secs(open_for)).await;
        status(&service, FAIL).await;
        open_for = refused(&service, BreakerState::Open).await;
        assert_eq!(open_for, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_waits_for_min_calls() {
    let config = BreakerConfig::default()
        .failure_rate(0.5)
        .window(Duration::from_secs(10))
        .min_calls(10);
    let (breaker, _, service) = guarded(config);

    for _ in 0..9 {
        status(&service, FAIL).await;
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "9 calls are too few; and with only a rate configured, consecutive failures do not count"
    );
    status(&service, FAIL).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_counts_successes_too() {
    let config = BreakerConfig::default().failure_rate(0.5).min_calls(10);
    let (breaker, _, service) = guarded(config);

    for script in [OK, FAIL, OK, FAIL, OK, FAIL, OK, FAIL, OK, OK] {
        status(&service, script).await;
    }
    status(&service, FAIL).await;
    assert_eq!(breaker.state(), BreakerState::Closed, "5 of 11 failed");
    status(&service, FAIL).await;
    assert_eq!(breaker.state(), BreakerState::Open, "6 of 12 failed");
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_forgets_calls_older_than_the_window() {
    let config = BreakerConfig::default()
        .failure_rate(0.5)
        .window(Duration::from_secs(10))
        .min_calls(10);
    let (breaker, _, service) = guarded(config);

    for _ in 0..9 {
        status(&service, FAIL).await;
    }
    advance(Duration::from_secs(10)).await;
    for _ in 0..9 {
        status(&service, FAIL).await;
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "the first 9 slid out of the window"
    );
    status(&service, FAIL).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn closing_forgets_the_failures_that_opened_the_circuit() {
    let config = BreakerConfig::default()
        .failure_rate(0.5)
        .min_calls(4)
        .open_for(Duration::from_secs(1));
    let (breaker, _, service) = guarded(config);

    for _ in 0..4 {
        status(&service, FAIL).await;
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(Duration::from_secs(1)).await;
    status(&service, OK).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    for script in [FAIL, OK, FAIL] {
        status(&service, script).await;
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "3 calls since the close, fewer than min_calls"
    );
    status(&service, FAIL).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "3 of 4 failed since the close"
    );
}

#[tokio::test(start_paused = true)]
async fn both_trip_conditions_can_be_on_at_once() {
    let config = BreakerConfig::default()
        .failure_threshold(3)
        .failure_rate(0.5)
        .min_calls(100);
    let (breaker, _, service) = guarded(config);

    for _ in 0..3 {
        status(&service, FAIL).await;
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "the consecutive count tripped first"
    );
}

#[tokio::test(start_paused = true)]
async fn outcomes_of_calls_from_an_earlier_period_change_nothing() {
    let config = BreakerConfig::default()
        .failure_threshold(2)
        .open_for(Duration::from_secs(1));
    let breaker = CircuitBreaker::new(config).unwrap();

    let slow_success = breaker.try_acquire().unwrap();
    let slow_failure = breaker.try_acquire().unwrap();
    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), BreakerState::Open);

    advance(Duration::from_secs(1)).await;
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert!(!slow_success.is_probe());
    slow_success.success();
    slow_failure.failure();
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "calls admitted while closed are not probes"
    );

    probe.success();
    assert_eq!(breaker.state(), BreakerState::Closed);

    // A failure admitted in the first closed period does not count in the second.
    let stale = {
        let stale = breaker.try_acquire().unwrap();
        breaker.try_acquire().unwrap().failure();
        breaker.try_acquire().unwrap().failure();
        advance(Duration::from_secs(1)).await;
        breaker.try_acquire().unwrap().success();
        stale
    };
    assert_eq!(breaker.state(), BreakerState::Closed);
    breaker.try_acquire().unwrap().failure();
    stale.failure();
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "one failure of this period, one stale"
    );
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn probes_of_an_earlier_half_open_period_change_nothing() {
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .half_open_max_calls(2)
        .open_for(Duration::from_secs(1));
    let breaker = CircuitBreaker::new(config).unwrap();
    breaker.try_acquire().unwrap().failure();

    // First half-open period: two probes; one fails and reopens the circuit.
    advance(Duration::from_secs(1)).await;
    let (failed, abandoned) = (
        breaker.try_acquire().unwrap(),
        breaker.try_acquire().unwrap(),
    );
    failed.failure();

    // Second period: the first period's other probe goes away; that frees no slot of this one.
    advance(Duration::from_secs(1)).await;
    let (first, second) = (
        breaker.try_acquire().unwrap(),
        breaker.try_acquire().unwrap(),
    );
    drop(abandoned);
    assert_eq!(
        breaker.try_acquire().unwrap_err().state,
        BreakerState::HalfOpen
    );

    // Third period: the second period's other probe succeeds; that does not close this one.
    first.failure();
    advance(Duration::from_secs(1)).await;
    let probe = breaker.try_acquire().unwrap();
    second.success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    probe.success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn state_names_are_stable() {
    assert_eq!(BreakerState::Closed.as_str(), "closed");
    assert_eq!(BreakerState::Open.to_string(), "open");
    assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    let breaker = CircuitBreaker::named("users", BreakerConfig::default()).unwrap();
    assert_eq!(breaker.name(), Some("users"));
    assert_eq!(breaker.metrics().state, BreakerState::Closed);
}
