//! The response future: the inner call, decorated when its response arrives, or the layer's
//! own answer to a preflight.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::ResponseBody;
use http::Response;
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::policy::Actual;

pin_project! {
    /// The response future of [`Cors`](crate::Cors): the inner service's response with the
    /// CORS headers for its origin, or the layer's answer to a preflight (204 or 403), which
    /// is ready at once.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Forwarded {
            #[pin]
            future: F,
            actual: Actual,
        },
        Answered {
            response: Option<Response<Full<Bytes>>>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn forwarded(future: F, actual: Actual) -> Self {
        Self {
            kind: Kind::Forwarded { future, actual },
        }
    }

    pub(crate) fn answered(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Answered {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Forwarded { future, actual } => {
                let mut response = ready!(future.poll(cx))?;
                std::mem::take(actual).apply(response.headers_mut());
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Answered { response } => {
                let response = response
                    .take()
                    .expect("`ResponseFuture` polled after completion");
                Poll::Ready(Ok(response.map(ResponseBody::local)))
            }
        }
    }
}
