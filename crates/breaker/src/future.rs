//! The response future: the inner call with its permit, or an immediate refusal.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::problem::PROBLEM_JSON;
use gateway_core::{Problem, ResponseBody, UpstreamFailure};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::breaker::{BreakerRejected, Permit};
use crate::classify::ClassifyResponse;
use crate::state::BreakerState;

pin_project! {
    /// The response future of [`Breaker`](crate::Breaker).
    ///
    /// It holds the call's [`Permit`]: dropping the future before the response arrives frees a
    /// half-open probe slot without counting a success or a failure.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Admitted {
            #[pin]
            future: F,
            permit: Option<Permit>,
            classifier: C,
        },
        Refused {
            rejected: BreakerRejected,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn admitted(future: F, permit: Permit, classifier: C) -> Self {
        Self {
            kind: Kind::Admitted {
                future,
                permit: Some(permit),
                classifier,
            },
        }
    }

    pub(crate) fn refused(rejected: BreakerRejected) -> Self {
        Self {
            kind: Kind::Refused { rejected },
        }
    }
}

impl<F, C, B, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    C: ClassifyResponse<B>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Admitted {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                let failed = match &result {
                    Err(_) => true,
                    Ok(response) => {
                        response.extensions().get::<UpstreamFailure>().is_some()
                            || classifier.is_failure(response)
                    }
                };
                if let Some(permit) = permit.take() {
                    permit.record(failed);
                }
                Poll::Ready(result.map(|response| response.map(ResponseBody::inner)))
            }
            KindProj::Refused { rejected } => Poll::Ready(Ok(refusal_response(*rejected))),
        }
    }
}

/// 503, problem+json, `Retry-After` in whole seconds rounded up, and the [`BreakerRejected`]
/// marker in the extensions.
fn refusal_response<B>(rejected: BreakerRejected) -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::local(Full::new(problem_body(rejected.state))));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, PROBLEM_JSON);
    let seconds = rejected.retry_after.as_millis().div_ceil(1000).max(1);
    headers.insert(RETRY_AFTER, HeaderValue::from(seconds as u64));
    response.extensions_mut().insert(rejected);
    response
}

/// The problem document of a refusal, rendered once per process: the text names no upstream,
/// so every breaker shares it, and handing it out copies nothing and counts no references.
fn problem_body(state: BreakerState) -> Bytes {
    static OPEN: OnceLock<Box<[u8]>> = OnceLock::new();
    static PROBING: OnceLock<Box<[u8]>> = OnceLock::new();
    let (cell, detail) = match state {
        BreakerState::HalfOpen => (
            &PROBING,
            "the upstream service is recovering; only trial requests go through for now (circuit breaker half-open)",
        ),
        _ => (
            &OPEN,
            "the upstream service is failing; requests to it are paused (circuit breaker open)",
        ),
    };
    let json = cell.get_or_init(|| {
        let problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE).with_detail(detail);
        problem.to_json().to_vec().into_boxed_slice()
    });
    Bytes::from_static(json)
}
