//! The response timeout: a deadline, pushed back while the request body is still streaming.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::request_body::BodyEnd;

pin_project! {
    /// Expires `timeout` after the start of the request, or after the end of its body if
    /// that is later.
    ///
    /// Polled next to the exchange (not wrapped around it), so that the large exchange
    /// future is not moved into a wrapper; one timer serves all extensions.
    pub(crate) struct ResponseTimer {
        #[pin]
        sleep: Option<Sleep>,
        timeout: Duration,
        body_end: Option<Arc<BodyEnd>>,
    }
}

impl ResponseTimer {
    pub(crate) fn new(start: Instant, timeout: Duration, body_end: Option<Arc<BodyEnd>>) -> Self {
        Self {
            // A deadline past the end of time is no deadline.
            sleep: start.checked_add(timeout).map(tokio::time::sleep_until),
            timeout,
            body_end,
        }
    }

    /// Ready once the response is late.
    pub(crate) fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let Some(mut sleep) = this.sleep.as_pin_mut() else {
            return Poll::Pending;
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            let Some(body_end) = this.body_end else {
                return Poll::Ready(());
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
                None => return Poll::Ready(()),
            }
        }
    }
}
