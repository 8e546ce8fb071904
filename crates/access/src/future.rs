//! The response future: the inner call, or an immediate refusal.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::problem::PROBLEM_JSON;
use gateway_core::{Problem, ResponseBody};
use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use http_body_util::Full;
use pin_project_lite::pin_project;

/// The detail of the problem document of a refusal. It names no address: the client knows
/// its own, and the gateway's view of it (through proxies) is not the client's business.
pub(crate) const DENIED_DETAIL: &str = "the client address is not allowed on this route";

/// Marks a response the access layer generated because the client IP is not permitted.
///
/// Every refusal of [`Access`](crate::Access) carries it in its extensions, so the gateway can
/// count them (`gateway_access_denied_total`) without parsing bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessDenied;

pin_project! {
    /// The response future of [`Access`](crate::Access): the inner service's response, or the
    /// layer's `403` refusal, which is ready at once.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Permitted {
            #[pin]
            future: F,
        },
        Denied,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn permitted(future: F) -> Self {
        Self {
            kind: Kind::Permitted { future },
        }
    }

    pub(crate) fn denied() -> Self {
        Self { kind: Kind::Denied }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Permitted { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Denied => Poll::Ready(Ok(denied_response())),
        }
    }
}

/// 403, problem+json, and the [`AccessDenied`] marker in the extensions.
fn denied_response<B>() -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::local(Full::new(problem_body())));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(CONTENT_TYPE, PROBLEM_JSON);
    response.extensions_mut().insert(AccessDenied);
    response
}

/// The problem document of a refusal, rendered once per process: handing it out copies
/// nothing and counts no references.
fn problem_body() -> Bytes {
    static JSON: OnceLock<Box<[u8]>> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        let problem = Problem::new(StatusCode::FORBIDDEN).with_detail(DENIED_DETAIL);
        problem.to_json().to_vec().into_boxed_slice()
    });
    Bytes::from_static(json)
}
