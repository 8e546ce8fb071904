//! The response body: the inner service's, or one the cache serves.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use gateway_core::BoxError;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::mpsc;

pin_project! {
    /// The body of a cache layer's response: the inner service's body passed through, or a
    /// body the cache serves (a stored one, or the one it is storing while it streams).
    #[project = CacheBodyProj]
    // pin-project-lite takes no doc comments on enum fields; each variant documents its one field.
    #[allow(missing_docs)]
    pub enum CacheBody<B> {
        /// The inner service's body, unchanged.
        Inner { #[pin] body: B },
        /// A body the cache serves.
        Cached { body: CachedBody },
    }
}

impl<B> CacheBody<B> {
    /// Passes `body` through.
    #[must_use]
    pub fn inner(body: B) -> Self {
        Self::Inner { body }
    }

    /// A body the cache serves.
    #[must_use]
    pub fn cached(body: CachedBody) -> Self {
        Self::Cached { body }
    }
}

/// A body the cache serves: a stored body, or the frames of the response being stored as
/// they arrive from the upstream (the fetch runs in its own task, see the crate docs).
pub struct CachedBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Streaming(mpsc::Receiver<Result<Frame<Bytes>, BoxError>>),
}

impl CachedBody {
    /// A body with no bytes (HEAD, 304).
    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
        }
    }

    /// A stored body.
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// The frames the fetch task forwards.
    pub(crate) fn streaming(frames: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>) -> Self {
        Self {
            kind: Kind::Streaming(frames),
        }
    }
}

impl Body for CachedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Streaming(frames) => frames.poll_recv(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Streaming(_) => SizeHint::default(),
        }
    }
}

impl fmt::Debug for CachedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Full(bytes) => format!("stored ({} bytes)", bytes.as_ref().map_or(0, Bytes::len)),
            Kind::Streaming(_) => "streaming".to_owned(),
        };
        f.debug_struct("CachedBody").field("kind", &kind).finish()
    }
}

impl<B> Body for CacheBody<B>
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
        match self.project() {
            CacheBodyProj::Inner { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(Into::into))),
            CacheBodyProj::Cached { body } => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body } => body.is_end_stream(),
            Self::Cached { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner { body } => body.size_hint(),
            Self::Cached { body } => body.size_hint(),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inner { body } => f.debug_tuple("Inner").field(body).finish(),
            Self::Cached { body } => f.debug_tuple("Cached").field(body).finish(),
        }
    }
}
