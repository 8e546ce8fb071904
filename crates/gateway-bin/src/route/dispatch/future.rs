//! The future of [`Dispatch`](super::Dispatch): the route's call under the request
//! deadline, or a response the dispatcher made itself; and the counting of what the route's
//! layers decided.

use std::pin::Pin;
use std::task::{Context, Poll};

use gateway_core::ResponseBody;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{LocalResponse, problem};
use crate::observe::{Observed, Tagged};
use crate::route::request_body::{BodyLimit, RequestBody};

/// Counts what the route's layers decided, from the markers they leave on the response.
fn count_layer_decisions<B>(response: &Response<B>, observed: &Observed) {
    let extensions = response.extensions();
    if let Some(failure) = extensions.get::<gateway_auth::AuthFailure>() {
        observed.route.record_auth_failure(failure.as_str());
    }
    if let Some(decision) = extensions.get::<gateway_ratelimit::RateLimitDecision>() {
        observed.route.record_decision(decision.as_str());
    }
    if extensions.get::<gateway_access::AccessDenied>().is_some() {
        observed.route.record_access_denied();
    }
    if extensions.get::<gateway_cors::CorsRejected>().is_some() {
        observed.route.record_cors_rejected();
    }
}

pin_project! {
    /// The future of [`Dispatch`]: the route's call under the request deadline, or a response
    /// the dispatcher made itself.
    #[project = DispatchProj]
    // pin-project-lite takes no doc comments on enum fields; the variants say what they hold.
    #[allow(missing_docs)]
    pub(crate) enum DispatchFuture<S: Service<Request<RequestBody>>, B> {
        /// The route's stack is answering.
        Route {
            #[pin]
            future: S::Future,
            #[pin]
            deadline: Option<tokio::time::Sleep>,
            observed: Option<Observed>,
            limit: BodyLimit,
        },
        /// The dispatcher answered.
        Local {
            response: Option<(LocalResponse<B>, Observed)>,
        },
    }
}

impl<S: Service<Request<RequestBody>>, B> DispatchFuture<S, B> {
    pub(super) fn local(response: LocalResponse<B>, observed: Observed) -> Self {
        Self::Local {
            response: Some((response, observed)),
        }
    }
}

impl<S, B> Future for DispatchFuture<S, B>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = std::convert::Infallible>,
{
    type Output = Result<Response<Tagged<ResponseBody<B>>>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DispatchProj::Route {
                future,
                deadline,
                observed,
                limit,
            } => {
                let response = match future.poll(cx) {
                    Poll::Ready(Ok(response)) => {
                        if limit.exceeded() {
                            problem(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "the request body is larger than the gateway accepts",
                            )
                        } else {
                            response.map(ResponseBody::inner)
                        }
                    }
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending => {
                        match deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
                            Some(Poll::Ready(())) => problem(
                                StatusCode::GATEWAY_TIMEOUT,
                                "the request took longer than the gateway allows",
                            ),
                            Some(Poll::Pending) | None => return Poll::Pending,
                        }
                    }
                };
                let observed = observed
                    .take()
                    .expect("DispatchFuture polled after completion");
                count_layer_decisions(&response, &observed);
                Poll::Ready(Ok(response.map(|body| Tagged::new(body, observed))))
            }
            DispatchProj::Local { response } => {
                let (response, observed) = response
                    .take()
                    .expect("DispatchFuture polled after completion");
                Poll::Ready(Ok(response.map(|body| Tagged::new(body, observed))))
            }
        }
    }
}
