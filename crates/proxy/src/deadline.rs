//! The response timeout: a future's deadline, pushed back while the request body streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::body::BodyEnd;

pin_project! {
    /// Resolves to `None` when `inner` has not finished `timeout` after the start, or after
    /// the end of the request body if that is later.
    ///
    /// Written out (rather than an `async fn` around `tokio::time::timeout`) so that the
    /// exchange future is stored once, in place, and one timer serves all extensions.
    pub(crate) struct Deadline<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        timeout: Duration,
        body_end: Option<Arc<BodyEnd>>,
    }
}

impl<F> Deadline<F> {
    /// `inner` must end by `start + timeout` (or `timeout` after the end of the body).
    pub(crate) fn new(
        inner: F,
        start: Instant,
        timeout: Duration,
        body_end: Option<Arc<BodyEnd>>,
    ) -> Self {
        Self {
            inner,
            // A deadline past the end of time is no deadline.
            sleep: start.checked_add(timeout).map(tokio::time::sleep_until),
            timeout,
            body_end,
        }
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let Some(mut sleep) = this.sleep.as_pin_mut() else {
            return Poll::Pending;
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            let Some(body_end) = this.body_end else {
                return Poll::Ready(None);
            };
            let next = match body_end.ended_at() {
                // Still uploading: the response cannot be late yet.
                None => Instant::now().checked_add(*this.timeout),
                Some(ended) => ended
                    .checked_add(*this.timeout)
                    .filter(|&deadline| deadline > Instant::now()),
            };
            match next {
                Some(deadline) => sleep.as_mut().reset(deadline),
                None => return Poll::Ready(None),
            }
        }
    }
}
