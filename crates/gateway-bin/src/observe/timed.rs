//! Times the upstream call of a route for `gateway_upstream_duration_seconds`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::observe::metrics::UpstreamMetrics;

/// Records the time from calling the inner service to its response (headers) in an
/// upstream's histogram.
#[derive(Clone)]
pub(crate) struct Timed<S> {
    inner: S,
    metrics: &'static UpstreamMetrics,
}

impl<S> Timed<S> {
    /// Times `inner` into `metrics`.
    pub(crate) fn new(inner: S, metrics: &'static UpstreamMetrics) -> Self {
        Self { inner, metrics }
    }
}

impl<S, B> Service<Request<B>> for Timed<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TimedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        TimedFuture {
            inner: self.inner.call(request),
            start: Instant::now(),
            metrics: Some(self.metrics),
        }
    }
}

pin_project! {
    /// The future of [`Timed`].
    pub(crate) struct TimedFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        metrics: Option<&'static UpstreamMetrics>,
    }
}

impl<F: Future> Future for TimedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Some(metrics) = this.metrics.take() {
            metrics.observe(this.start.elapsed());
        }
        Poll::Ready(output)
    }
}
