//! The rate-limit service.

use std::sync::Arc;
use std::task::{Context, Poll};

use gateway_core::ResponseBody;
use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::limiter::Check;
use crate::shared::Shared;

/// The service of [`RateLimitLayer`](crate::RateLimitLayer).
///
/// In memory the decision is taken before `call` returns; with Redis the returned future first
/// waits for Redis (at most `[redis].timeout`), then calls the inner service.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let key = self.shared.key.extract(&request);
        match self.shared.limiter.start_check(key) {
            Check::Ready(verdict) => {
                ResponseFuture::decided(verdict, &self.shared, &mut self.inner, request)
            }
            Check::Pending(check) => {
                // The inner service is called once Redis answers: take the clone that was
                // driven to readiness and leave a fresh one for the next `poll_ready`.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::pending(check, Arc::clone(&self.shared), ready, request)
            }
        }
    }
}
