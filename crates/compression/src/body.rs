//! The response body: the inner body as is, or compressed frame by frame.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::BoxError;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::encoder::Encoder;
use crate::negotiate::Algorithm;

pin_project! {
    /// The response body: the inner body as is, or compressed while it streams.
    ///
    /// Compressed, each data frame of the inner body is compressed and the encoder flushed, so
    /// the frame's bytes go out at once (server-sent-event-like streams and long polls are
    /// not held back in the encoder's window); the stream's end is written when the inner body
    /// ends or sends its trailers, which then pass through unchanged.
    ///
    /// It is `Send` and `Sync` when `B` is. Its error is the inner body's, boxed, or (never in
    /// practice, the encoders write into memory) an encoder's I/O error.
    pub struct CompressionBody<B> {
        #[pin]
        body: B,
        // `None`: passthrough. Boxed, so identity bodies stay one pointer larger than `B`.
        state: Option<Box<Compressing>>,
    }
}

/// The state of a compressed stream.
struct Compressing {
    /// `None` once the stream is finished (or failed).
    encoder: Option<Encoder>,
    /// The inner body's trailers, sent after the stream's last bytes.
    trailers: Option<HeaderMap>,
}

impl<B> CompressionBody<B> {
    /// Passes `body` through unchanged: for responses that are not compressed, and routes
    /// without compression. It costs one pointer-sized field and one branch a frame.
    #[must_use]
    pub fn identity(body: B) -> Self {
        Self { body, state: None }
    }

    pub(crate) fn compressed(body: B, encoder: Encoder) -> Self {
        Self {
            body,
            state: Some(Box::new(Compressing {
                encoder: Some(encoder),
                trailers: None,
            })),
        }
    }

    /// The algorithm the body is compressed with, or `None` when it passes through.
    pub fn algorithm(&self) -> Option<Algorithm> {
        let state = self.state.as_ref()?;
        state.encoder.as_ref().map(Encoder::algorithm)
    }
}

impl<B> Body for CompressionBody<B>
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
        let this = self.project();
        let Some(state) = this.state.as_deref_mut() else {
            return this
                .body
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(Into::into)));
        };
        let mut body = this.body;
        loop {
            let Some(encoder) = state.encoder.as_mut() else {
                return Poll::Ready(state.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            let output = match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => encoder.encode(&data),
                    Err(frame) => {
                        state.trailers = frame.into_trailers().ok();
                        state.finish()
                    }
                },
                Some(Err(error)) => {
                    state.encoder = None;
                    state.trailers = None;
                    return Poll::Ready(Some(Err(error.into())));
                }
                None => state.finish(),
            };
            match output {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Err(error) => {
                    state.encoder = None;
                    state.trailers = None;
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            None => self.body.is_end_stream(),
            Some(state) => state.encoder.is_none() && state.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            None => self.body.size_hint(),
            Some(_) if self.is_end_stream() => SizeHint::with_exact(0),
            Some(_) => SizeHint::default(),
        }
    }
}

impl Compressing {
    /// Ends the stream: its last bytes.
    fn finish(&mut self) -> std::io::Result<Bytes> {
        self.encoder
            .take()
            .map_or(Ok(Bytes::new()), Encoder::finish)
    }
}

impl<B: fmt::Debug> fmt::Debug for CompressionBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompressionBody")
            .field("body", &self.body)
            .field("compressed", &self.state.is_some())
            .field("algorithm", &self.algorithm())
            .finish()
    }
}
