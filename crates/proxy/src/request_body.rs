//! The request body as sent upstream: the client's body, streamed, noting when and how it
//! ended.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::BoxError;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

/// The request body sent upstream: nothing (no allocation for the common bodiless request),
/// or the client's body, streamed.
pub(crate) enum UpstreamBody {
    Empty,
    Stream(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Stream(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Stream(body) => body.size_hint(),
        }
    }
}

/// When and how the client's request body ended: the response timeout counts from then (a
/// large upload is not cut off by the time it takes to send), and a body that failed makes
/// the exchange's failure the client's, not the upstream's.
#[derive(Debug)]
pub(crate) struct BodyEnd {
    /// Milliseconds since `epoch`, plus one; 0 while the body is streaming.
    at: AtomicU64,
    epoch: Instant,
    failed: AtomicBool,
}

impl BodyEnd {
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            at: AtomicU64::new(0),
            epoch,
            failed: AtomicBool::new(false),
        }
    }

    /// Whether reading the client's body failed (cut off, malformed, over a size limit).
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn mark(&self) {
        let millis = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis();
        let value = u64::try_from(millis).unwrap_or(u64::MAX - 1) + 1;
        let _ = self
            .at
            .compare_exchange(0, value, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// When the body ended, if it has.
    pub(crate) fn ended_at(&self) -> Option<Instant> {
        match self.at.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(self.epoch + std::time::Duration::from_millis(millis - 1)),
        }
    }
}

pin_project! {
    /// The client's body, its error boxed, noting when it ends.
    pub(crate) struct Tracked<B> {
        #[pin]
        inner: B,
        end: Arc<BodyEnd>,
    }
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, end: Arc<BodyEnd>) -> Self {
        Self { inner, end }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(_)) if !this.inner.is_end_stream() => {}
            Some(Err(_)) => {
                this.end.failed.store(true, Ordering::Relaxed);
                this.end.mark();
            }
            _ => this.end.mark(),
        }
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
