//! The access service.

use std::task::{Context, Poll};

use gateway_core::{ClientIp, ResponseBody};
use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::list::AccessList;

/// Sends the requests whose client IP the [`AccessList`] permits to the inner service, and
/// answers the others itself: `403 Forbidden`, `application/problem+json`, with the
/// [`AccessDenied`](crate::AccessDenied) marker in the response extensions. Built by
/// [`AccessLayer`](crate::AccessLayer).
///
/// The client IP is [`ClientIp::of`] the request: the [`ClientIp`] extension resolved through
/// trusted proxies, else the [`PeerAddr`](gateway_core::PeerAddr) of the connection. A request
/// with neither is refused when the allow list is non-empty and passed on otherwise
/// ([`AccessList::permits_unknown`]).
#[derive(Clone, Debug)]
pub struct Access<S> {
    inner: S,
    list: AccessList,
}

impl<S> Access<S> {
    /// Guards `inner` with `list`.
    pub fn new(inner: S, list: AccessList) -> Self {
        Self { inner, list }
    }

    /// The list guarding this service.
    pub fn list(&self) -> &AccessList {
        &self.list
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Access<S>
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
        let permitted = match ClientIp::of(&request) {
            Some(ip) => self.list.permits(ip),
            None => self.list.permits_unknown(),
        };
        if permitted {
            ResponseFuture::permitted(self.inner.call(request))
        } else {
            ResponseFuture::denied()
        }
    }
}
