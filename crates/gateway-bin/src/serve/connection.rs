//! The per-connection service handed to hyper: stamps the peer address, takes the current
//! config generation, and accounts for each request when its response ends.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arc_swap::ArcSwap;
use gateway_core::PeerAddr;
use http::{Request, Response};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::observe::{ObservedBody, Record, Tagged};

/// The front of one config generation: the service every request of that generation enters.
pub(crate) trait Front:
    Service<Request<Incoming>, Error = Infallible> + Clone + Send + Sync + 'static
{
}
impl<T> Front for T where
    T: Service<Request<Incoming>, Error = Infallible> + Clone + Send + Sync + 'static
{
}

/// What the connection service needs of a config generation.
pub(crate) struct Current<F> {
    /// The generation's front service.
    pub(crate) front: F,
    /// Whether access log lines are written.
    pub(crate) access_log: bool,
    /// Whether request paths are kept for the accounting (access log lines, exported spans).
    pub(crate) keep_path: bool,
    /// Where the accounting finds each response's request id.
    pub(crate) request_id: RequestIdSource,
    /// The TLS acceptor, when the listener terminates TLS.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The service of one client connection.
///
/// It keeps its own clone of the current generation's front service (and so, through the
/// dispatcher, of the route stacks it uses) and checks per request, with one atomic load,
/// whether a reload replaced the generation: requests cost no shared reference-count traffic.
pub(crate) struct ConnectionService<F> {
    peer: SocketAddr,
    tls: bool,
    current: Arc<ArcSwap<Current<F>>>,
    cached: RefCell<Option<(Arc<Current<F>>, F)>>,
}

impl<F> ConnectionService<F> {
    /// The service for a connection from `peer`, over TLS or not.
    pub(crate) fn new(peer: SocketAddr, tls: bool, current: Arc<ArcSwap<Current<F>>>) -> Self {
        Self {
            peer,
            tls,
            current,
            cached: RefCell::new(None),
        }
    }
}

impl<F, B> hyper::service::Service<Request<Incoming>> for ConnectionService<F>
where
    F: Front<Response = Response<Tagged<B>>>,
    B: http_body::Body,
{
    type Response = Response<ObservedBody<B>>;
    type Error = Infallible;
    type Future = ConnectionFuture<F>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let start = Instant::now();
        request.extensions_mut().insert(PeerAddr(self.peer));
        if self.tls {
            // The client-facing scheme, for X-Forwarded-Proto.
            request.extensions_mut().insert(http::uri::Scheme::HTTPS);
        }
        strip_hop_by_hop(request.headers_mut());
        let method = request.method().clone();
        let mut cached = self.cached.borrow_mut();
        let current = self.current.load();
        if cached
            .as_ref()
            .is_some_and(|(generation, _)| !Arc::ptr_eq(generation, &current))
        {
            // A reload swapped the generation: this connection's next requests use the new one.
            *cached = None;
        }
        let (generation, front) = cached.get_or_insert_with(|| {
            let generation = arc_swap::Guard::into_inner(current);
            let front = generation.front.clone();
            (generation, front)
        });
        // Front services are always ready (the layer rules).
        let ready = front.poll_ready(&mut Context::from_waker(std::task::Waker::noop()));
        debug_assert!(ready.is_ready(), "front services are always ready");
        // Kept only for what prints it: cloning the URI costs an allocation.
        let uri = generation.keep_path.then(|| request.uri().clone());
        ConnectionFuture {
            start,
            method,
            uri,
            access_log: generation.access_log,
            request_id: generation.request_id.clone(),
            future: front.call(request),
        }
    }
}

/// Removes the client's hop-by-hop headers before any layer runs, so that headers the
/// gateway adds (the request id, identity and forwarding headers, `traceparent`) cannot be
/// removed by naming them in `Connection`. What the route and the proxy still need (an
/// upgrade offer, gRPC's `TE: trailers`) is put back in its canonical form.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let hop = gateway_proxy::headers::strip_hop_by_hop(headers, true);
    if hop.upgrade {
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
    }
    if hop.te_trailers {
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    }
}

/// Where the accounting finds a response's request id.
#[derive(Clone, Debug)]
pub(crate) enum RequestIdSource {
    /// In the response header that echoes it.
    Echoed(http::HeaderName),
    /// In the [`gateway_core::RequestId`] response extension (the id is not echoed).
    Extension,
    /// Nowhere: nothing prints it, or requests get no id.
    Unwanted,
}

pin_project! {
    /// The future of [`ConnectionService`].
    pub(crate) struct ConnectionFuture<F: Service<Request<Incoming>>> {
        #[pin]
        future: F::Future,
        start: Instant,
        method: http::Method,
        uri: Option<http::Uri>,
        access_log: bool,
        request_id: RequestIdSource,
    }
}

impl<F, B> Future for ConnectionFuture<F>
where
    F: Service<Request<Incoming>, Response = Response<Tagged<B>>, Error = Infallible>,
    B: http_body::Body,
{
    type Output = Result<Response<ObservedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.future.poll(cx));
        let (mut parts, body) = response.into_parts();
        // Every response passes the dispatcher, which says in the body what it observed.
        let (body, observed) = body.into_parts();
        let request_id = match this.request_id {
            RequestIdSource::Echoed(header) => parts.headers.get(&*header).cloned(),
            RequestIdSource::Extension => parts
                .extensions
                .remove::<gateway_core::RequestId>()
                .map(|id| id.0),
            RequestIdSource::Unwanted => None,
        };
        let record = Record {
            start: *this.start,
            method: std::mem::take(this.method),
            uri: this.uri.take(),
            status: parts.status.as_u16(),
            request_id,
            observed,
            bytes: 0,
            access_log: *this.access_log,
            empty_body: http_body::Body::is_end_stream(&body),
        };
        Poll::Ready(Ok(Response::from_parts(
            parts,
            ObservedBody::new(body, record),
        )))
    }
}
