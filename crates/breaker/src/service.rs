//! The circuit-breaker service.

use std::task::{Context, Poll};

use gateway_core::ResponseBody;
use http::{Request, Response};
use tower_service::Service;

use crate::breaker::CircuitBreaker;
use crate::classify::ClassifyResponse;
use crate::future::ResponseFuture;
use crate::status::FailureStatus;

/// Sends requests to the inner service while the circuit lets them through, and answers
/// 503 itself (problem+json, `Retry-After`) while it does not. Built by
/// [`BreakerLayer`](crate::BreakerLayer).
///
/// Each response is classified when its headers arrive: an error of the inner service, a
/// response marked [`UpstreamFailure`](gateway_core::UpstreamFailure), or one the classifier
/// `C` calls a failure counts as a failure; anything else as a success.
#[derive(Clone, Debug)]
pub struct Breaker<S, C = FailureStatus> {
    inner: S,
    breaker: CircuitBreaker,
    classifier: C,
}

impl<S> Breaker<S> {
    /// Guards `inner` with `breaker`, counting the breaker's failure statuses as failures.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        let classifier = breaker.failure_status();
        Self::with_classifier(inner, breaker, classifier)
    }
}

impl<S, C> Breaker<S, C> {
    /// Guards `inner` with `breaker`, asking `classifier` which responses are failures.
    pub fn with_classifier(inner: S, breaker: CircuitBreaker, classifier: C) -> Self {
        Self {
            inner,
            breaker,
            classifier,
        }
    }

    /// The breaker guarding this service.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the service, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for Breaker<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: ClassifyResponse<ResBody> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => {
                ResponseFuture::admitted(self.inner.call(request), permit, self.classifier.clone())
            }
            Err(rejected) => ResponseFuture::refused(rejected),
        }
    }
}
