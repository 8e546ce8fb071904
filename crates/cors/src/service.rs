//! The CORS service.

use std::task::{Context, Poll};

use gateway_core::ResponseBody;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{Method, Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::policy::{Actual, CorsPolicy};

/// Applies a [`CorsPolicy`] to the requests of the inner service. Built by
/// [`CorsLayer`](crate::CorsLayer).
///
/// - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
///   here and never reaches the inner service: 204 with the CORS headers when the origin, the
///   method and every requested header are allowed, else 403 problem+json marked
///   [`CorsRejected`](crate::CorsRejected).
/// - Any other request with an `Origin` is forwarded; the response gets the CORS headers when
///   the origin is allowed, none when it is not (the policy replaces whatever CORS headers the
///   inner service sent), and `Vary: Origin` unless the policy is `*`.
/// - A request without `Origin` is forwarded and its response left as it is.
///
/// A preflight answered here uses up the readiness that [`poll_ready`](Service::poll_ready)
/// obtained from the inner service without calling it.
#[derive(Clone, Debug)]
pub struct Cors<S> {
    inner: S,
    policy: CorsPolicy,
}

impl<S> Cors<S> {
    /// Applies `policy` to `inner`.
    pub fn new(inner: S, policy: CorsPolicy) -> Self {
        Self { inner, policy }
    }

    /// The policy applied.
    pub fn policy(&self) -> &CorsPolicy {
        &self.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the service, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let headers = request.headers();
        let Some(origin) = headers.get(ORIGIN) else {
            return ResponseFuture::forwarded(self.inner.call(request), Actual::Untouched);
        };
        if request.method() == Method::OPTIONS
            && let Some(method) = headers.get(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return ResponseFuture::answered(self.policy.preflight(origin, method, headers));
        }
        let actual = self.policy.actual(origin);
        ResponseFuture::forwarded(self.inner.call(request), actual)
    }
}
