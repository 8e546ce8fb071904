//! `[server].max_body`, in one place: a declared `Content-Length` over it is refused before
//! anything is forwarded, and a streamed body is cut off once it grows past it; either way the
//! client gets 413.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http::header::CONTENT_LENGTH;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestBodyError {
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

/// A request's body limit, from its head to the end of its body.
pub(crate) struct BodyLimit {
    /// Set by the body when a streamed body crossed the limit; only a body without a declared
    /// length needs it (hyper enforces a declared one).
    exceeded: Option<Arc<AtomicBool>>,
}

/// The body is larger than the gateway accepts.
pub(crate) struct TooLarge;

impl BodyLimit {
    /// Checks the declared length of a request against `limit` and puts its body under the
    /// limit: `TooLarge` when the declared length is over it.
    pub(crate) fn apply(
        request: Request<Incoming>,
        limit: u64,
    ) -> Result<(Request<RequestBody>, Self), TooLarge> {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(TooLarge);
        }
        let empty = Body::is_end_stream(request.body());
        let exceeded = (declared.is_none() && !empty).then(|| Arc::new(AtomicBool::new(false)));
        let request = request.map(|body| RequestBody::new(body, limit, exceeded.clone()));
        Ok((request, Self { exceeded }))
    }

    /// Whether the streamed body crossed the limit (the upstream call then failed because of
    /// it, and the answer is 413, not the upstream's error).
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

pin_project! {
    /// A request body that fails once it exceeds a byte limit, and says so through a shared
    /// flag so the gateway can answer 413 instead of the 502 the aborted upstream call gives.
    pub(crate) struct RequestBody {
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
    fn new(inner: Incoming, limit: u64, exceeded: Option<Arc<AtomicBool>>) -> Self {
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
