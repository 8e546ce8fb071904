//! The response future of the rate-limit service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::ResponseBody;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::decision::{Quota, RateLimitDecision, Verdict};
use crate::header_mode::HeaderMode;
use crate::headers;
use crate::limiter::PendingCheck;
use crate::shared::Shared;

pin_project! {
    /// The response future of [`RateLimit`](crate::RateLimit).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // Waiting for Redis; the inner service is called once it has answered. Boxed: the
        // request and the inner service would otherwise size (and be copied with) the
        // future of every request, the in-memory ones that never wait included.
        Checking {
            waiting: Option<Box<Waiting<S, B>>>,
        },
        Inner {
            #[pin]
            future: S::Future,
            stamp: Option<Stamp>,
        },
        Reject {
            response: Option<Response<Full<Bytes>>>,
        },
    }
}

/// A request waiting for Redis, with what calls the inner service once it answers.
struct Waiting<S, B> {
    check: PendingCheck,
    shared: Arc<Shared>,
    service: S,
    request: Request<B>,
}

/// What an allowed response gets: the decision extension and, when enabled, the headers.
struct Stamp {
    decision: RateLimitDecision,
    headers: Option<(Arc<Shared>, Quota)>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn decided(
        verdict: Verdict,
        shared: &Arc<Shared>,
        service: &mut S,
        request: Request<B>,
    ) -> Self {
        Self {
            state: State::decided(verdict, shared, service, request),
        }
    }

    pub(crate) fn pending(
        check: PendingCheck,
        shared: Arc<Shared>,
        service: S,
        request: Request<B>,
    ) -> Self {
        Self {
            state: State::Checking {
                waiting: Some(Box::new(Waiting {
                    check,
                    shared,
                    service,
                    request,
                })),
            },
        }
    }
}

impl<S, B> State<S, B>
where
    S: Service<Request<B>>,
{
    fn decided(
        verdict: Verdict,
        shared: &Arc<Shared>,
        service: &mut S,
        request: Request<B>,
    ) -> Self {
        let decision = verdict.decision;
        let mut response = match (decision.is_allowed(), verdict.quota) {
            (true, quota) => {
                let headers = quota
                    .filter(|_| shared.headers.mode() != HeaderMode::None)
                    .map(|quota| (Arc::clone(shared), quota));
                return Self::Inner {
                    future: service.call(request),
                    stamp: Some(Stamp { decision, headers }),
                };
            }
            (false, Some(quota)) => shared.headers.too_many_requests(&quota),
            (false, None) => headers::unavailable(),
        };
        response.extensions_mut().insert(decision);
        Self::Reject {
            response: Some(response),
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Checking { waiting } => {
                    let pending = waiting
                        .as_mut()
                        .expect("ResponseFuture polled after completion");
                    let verdict = ready!(pending.check.as_mut().poll(cx));
                    let Some(waiting) = waiting.take() else {
                        unreachable!("checked above");
                    };
                    let Waiting {
                        shared,
                        mut service,
                        request,
                        ..
                    } = *waiting;
                    let next = State::decided(verdict, &shared, &mut service, request);
                    state.set(next);
                }
                StateProj::Inner { future, stamp } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(stamp) = stamp.take() {
                        if let Some((shared, quota)) = &stamp.headers {
                            shared.headers.apply(response.headers_mut(), quota);
                        }
                        response.extensions_mut().insert(stamp.decision);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Reject { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::local)));
                }
            }
        }
    }
}
