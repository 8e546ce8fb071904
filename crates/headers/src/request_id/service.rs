//! The request id service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::assign::Assigner;
use super::future::RequestIdFuture;

/// The service of [`SetRequestIdLayer`](crate::SetRequestIdLayer): gives each request its
/// id before the inner service sees it, and puts the id on the response.
#[derive(Clone, Debug)]
pub struct SetRequestId<S> {
    inner: S,
    shared: Arc<Assigner>,
}

impl<S> SetRequestId<S> {
    pub(super) fn new(inner: S, shared: Arc<Assigner>) -> Self {
        Self { inner, shared }
    }
}

impl<S, B, ResB> Service<Request<B>> for SetRequestId<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = self.shared.assign(&mut request);
        let settings = &self.shared.settings;
        let echo = settings.echo.then(|| settings.header.clone());
        let future = self.inner.call(request);
        RequestIdFuture::new(future, id, echo, settings.response_extension)
    }
}
