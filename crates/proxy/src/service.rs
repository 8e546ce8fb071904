//! [`Proxy`]: the tower service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use gateway_core::BoxError;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::ProxyBody;
use crate::forward::forward;
use crate::upstream::Upstream;

/// A tower [`Service`] that forwards every request to an [`Upstream`].
///
/// It is the innermost service of a stack: it never fails (`Error = Infallible`); an
/// unreachable upstream is a `502`, a slow one a `504`, both `application/problem+json`
/// with a [`gateway_core::UpstreamFailure`] in the response extensions.
///
/// The request reaching it carries the path to forward (strip route prefixes before). It
/// reads [`gateway_core::PeerAddr`] and [`gateway_core::ClientIp`] from the request
/// extensions for `X-Forwarded-For` and `X-Real-IP`, and an [`http::uri::Scheme`] (the
/// scheme clients used, if the server stores one) for `X-Forwarded-Proto`.
///
/// Cheap to clone: clones share the upstream.
#[derive(Clone, Debug)]
pub struct Proxy {
    upstream: Upstream,
}

impl Proxy {
    /// A proxy to `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    /// The upstream it forwards to (its targets' state, for readiness and metrics).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Forwards one request; what [`Service::call`] does, without needing `&mut self`
    /// (handy in a hyper `service_fn`).
    pub fn forward<B>(&self, request: Request<B>) -> ResponseFuture
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // Written into its allocation rather than built on the stack and moved there: the
        // future is about 2 KiB, and a move is a copy of all of it.
        let slot = Box::new_uninit();
        let future = Box::write(slot, forward(self.upstream.inner.clone(), request));
        ResponseFuture {
            inner: Box::into_pin(future),
        }
    }
}

impl From<Upstream> for Proxy {
    fn from(upstream: Upstream) -> Self {
        Self::new(upstream)
    }
}

impl<B> Service<Request<B>> for Proxy
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.forward(request)
    }
}

/// The future of [`Proxy`]'s response.
///
/// Boxed once per request: hyper's send futures cannot be named, so the exchange cannot be
/// spelled out as a type.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>,
}

impl Future for ResponseFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
