//! The names from before the layer/service naming rule still compile, as deprecated aliases.

#![allow(deprecated)]

use std::convert::Infallible;

use gateway_breaker::{BreakerConfig, CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn the_old_layer_and_service_names_still_work() {
    let breaker = CircuitBreaker::named("old", BreakerConfig::default()).unwrap();
    let upstream = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let service: CircuitBreakerService<_> = CircuitBreakerLayer::new(breaker).layer(upstream);
    let response = service.oneshot(Request::new(())).await.unwrap();
    assert_eq!(response.status(), 200);
}
