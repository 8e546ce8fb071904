//! The circuit-breaker layer.

use tower_layer::Layer;

use crate::breaker::CircuitBreaker;
use crate::service::Breaker;
use crate::status::FailureStatus;

/// Puts a shared [`CircuitBreaker`] in front of a service; see [`Breaker`].
///
/// Every service the layer wraps shares the one breaker, so give all routes to an upstream
/// layers built from clones of that upstream's breaker.
#[derive(Clone, Debug)]
pub struct BreakerLayer<C = FailureStatus> {
    breaker: CircuitBreaker,
    classifier: C,
}

impl BreakerLayer {
    /// A layer counting the breaker's configured failure statuses (default: any 5xx) as
    /// failures, besides errors and [`UpstreamFailure`](gateway_core::UpstreamFailure)
    /// responses.
    pub fn new(breaker: CircuitBreaker) -> Self {
        let classifier = breaker.failure_status();
        Self {
            breaker,
            classifier,
        }
    }
}

impl<C> BreakerLayer<C> {
    /// Decides with `classifier` which responses count as failures, instead of by status.
    ///
    /// Errors and [`UpstreamFailure`](gateway_core::UpstreamFailure) responses still count.
    /// A classifier is any [`ClassifyResponse`](crate::ClassifyResponse), such as a
    /// `Fn(&Response<B>) -> bool` closure.
    #[must_use]
    pub fn classify_with<D>(self, classifier: D) -> BreakerLayer<D> {
        BreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The breaker this layer installs.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = Breaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::with_classifier(inner, self.breaker.clone(), self.classifier.clone())
    }
}
