//! The response future of the request id service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gateway_core::RequestId;
use http::{HeaderName, HeaderValue, Response};
use pin_project_lite::pin_project;

pin_project! {
    /// The future of [`SetRequestId`](crate::SetRequestId): puts the request id on the
    /// response.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
        echo: Option<HeaderName>,
        extension: bool,
    }
}

impl<F> RequestIdFuture<F> {
    pub(super) fn new(
        inner: F,
        id: HeaderValue,
        echo: Option<HeaderName>,
        extension: bool,
    ) -> Self {
        Self {
            inner,
            id: Some(id),
            echo,
            extension,
        }
    }
}

impl<F, B, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            if *this.extension {
                response.extensions_mut().insert(RequestId(id.clone()));
            }
            if let Some(header) = this.echo.take() {
                let _ = response.headers_mut().try_insert(header, id);
            }
        }
        Poll::Ready(Ok(response))
    }
}
