//! The table: what parses, the defaults, and every invalid value explained.

use super::*;
use crate::policy::{Growth, RatePolicy};
use crate::status::{FailureStatus, NotAnErrorStatus};

fn parse(toml_text: &str) -> Result<BreakerConfig, String> {
    toml::from_str(toml_text).map_err(|e| e.to_string())
}

#[test]
fn the_contract_example_parses() {
    let config = parse("failure_threshold = 5\nsuccess_threshold = 2\nopen_for = \"10s\"").unwrap();
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
