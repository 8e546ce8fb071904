//! The request body as the layers see it: the connection's body with `[server].max_body`
//! enforced while it streams.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// The client's stream failed.
    #[error(transparent)]
    Client(#[from] hyper::Error),
    /// The body grew past `[server].max_body`.
    #[error("request body larger than {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: u64,
    },
}

pin_project! {
    /// A request body that fails once it exceeds a byte limit, and says so through a shared
    /// flag so the gateway can answer 413 instead of the 502 the aborted upstream call gives.
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        limit: u64,
        seen: u64,
        exceeded: Option<Arc<AtomicBool>>,
    }
}

impl RequestBody {
    /// Wraps a body; `exceeded` is set when the limit is crossed (`None` when the body's
    /// declared length already fits, so it cannot be crossed).
    pub fn new(inner: Incoming, limit: u64, exceeded: Option<Arc<AtomicBool>>) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            exceeded,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            *this.seen += data.len() as u64;
            if *this.seen > *this.limit {
                if let Some(flag) = this.exceeded {
                    flag.store(true, Ordering::Relaxed);
                }
                return Poll::Ready(Some(Err(RequestBodyError::TooLarge { limit: *this.limit })));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
