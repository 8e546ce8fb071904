//! The response future of the header rules: it edits the inner response's headers in place,
//! so the body type stays the inner service's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::rules::HeaderRules;

pin_project! {
    /// The future of [`ResponseHeaders`](crate::ResponseHeaders): applies the response rules,
    /// with the values its templates rendered from the request, once the response is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` for empty rules: no reference count to touch per request.
        rules: Option<HeaderRules>,
        rendered: Vec<Option<HeaderValue>>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, rules: &HeaderRules, rendered: Vec<Option<HeaderValue>>) -> Self {
        Self {
            inner,
            rules: (!rules.is_empty()).then(|| rules.clone()),
            rendered,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(rules) = this.rules {
            rules.apply(response.headers_mut(), this.rendered);
        }
        Poll::Ready(Ok(response))
    }
}
