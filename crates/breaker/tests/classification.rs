//! What counts as a failure.

mod common;

use common::{Body, Script, ScriptError, Scripted, guarded, request, status};
use gateway_breaker::{BreakerConfig, BreakerLayer, BreakerState, CircuitBreaker};
use http::{Response, StatusCode};
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn any_server_error_counts_by_default_and_client_errors_do_not() {
    let (breaker, _, service) = guarded(BreakerConfig::default().failure_threshold(2));
    for code in [404, 429, 400, 499, 200, 302] {
        status(&service, Script::Status(code)).await;
        status(&service, Script::Status(code)).await;
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "{code} is no failure"
        );
    }
    status(&service, Script::Status(503)).await;
    status(&service, Script::Status(599)).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test]
async fn only_the_listed_statuses_count_when_a_list_is_given() {
    let config = BreakerConfig::default()
        .failure_threshold(2)
        .failure_status([
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ]);
    let (breaker, _, service) = guarded(config);
    for _ in 0..3 {
        status(&service, Script::Status(500)).await;
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "500 is not listed");
    status(&service, Script::Status(429)).await;
    status(&service, Script::Status(503)).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test]
async fn upstream_failures_count_whatever_the_status_list() {
    let config = BreakerConfig::default()
        .failure_threshold(2)
        .failure_status([]);
    let (breaker, _, service) = guarded(config);
    for _ in 0..3 {
        status(&service, Script::Status(502)).await;
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "an empty list counts no status"
    );
    assert_eq!(
        status(&service, Script::Unreachable).await,
        StatusCode::BAD_GATEWAY
    );
    status(&service, Script::Unreachable).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test]
async fn errors_count_and_pass_through_unchanged() {
    let (breaker, _, service) = guarded(BreakerConfig::default().failure_threshold(2));
    for _ in 0..2 {
        let result = service.clone().oneshot(request(Script::Error)).await;
        assert!(matches!(result, Err(ScriptError("inner service failed"))));
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test]
async fn a_custom_classifier_decides_for_responses_but_not_for_upstream_failures() {
    let breaker = CircuitBreaker::new(BreakerConfig::default().failure_threshold(2)).unwrap();
    let upstream = Scripted::default();
    let service = BreakerLayer::new(breaker.clone())
        .classify_with(|response: &Response<Body>| response.status() == StatusCode::NOT_FOUND)
        .layer(upstream.service());

    for _ in 0..3 {
        service
            .clone()
            .oneshot(request(Script::Status(500)))
            .await
            .unwrap();
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "the classifier does not mind 500s"
    );
    service
        .clone()
        .oneshot(request(Script::Status(404)))
        .await
        .unwrap();
    service
        .clone()
        .oneshot(request(Script::Unreachable))
        .await
        .unwrap();
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "a 404 and an upstream failure"
    );
}
