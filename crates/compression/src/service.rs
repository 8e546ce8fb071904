//! The compression service.

use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower_service::Service;

use crate::body::CompressionBody;
use crate::future::ResponseFuture;
use crate::policy::CompressionPolicy;

/// Compresses the inner service's responses as the request's `Accept-Encoding` and the
/// [`CompressionPolicy`] allow. Built by [`CompressionLayer`](crate::CompressionLayer).
///
/// The coding is negotiated when the request arrives; HEAD and CONNECT requests are never
/// answered compressed. Readiness is the inner service's.
#[derive(Clone, Debug)]
pub struct Compression<S> {
    inner: S,
    policy: CompressionPolicy,
}

impl<S> Compression<S> {
    /// Compresses the responses of `inner` under `policy`.
    #[must_use]
    pub fn new(inner: S, policy: CompressionPolicy) -> Self {
        Self { inner, policy }
    }

    /// The policy this service applies.
    pub fn policy(&self) -> &CompressionPolicy {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Compression<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<CompressionBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // A HEAD response must carry the headers of the GET one but no body to compress; a
        // CONNECT response is a tunnel.
        let algorithm = if matches!(*request.method(), Method::HEAD | Method::CONNECT) {
            None
        } else {
            self.policy.negotiate(request.headers())
        };
        ResponseFuture::new(self.inner.call(request), self.policy.clone(), algorithm)
    }
}
