//! Per-request accounting: the access log line and the request metrics, recorded when the
//! response body ends (or is dropped, when the client goes away first).

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Uri};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::observe::metrics::RouteMetrics;

/// What the dispatcher learned about a request, handed to the accounting with the response
/// body ([`Tagged`]).
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    /// The route's metrics (the unmatched pseudo-route for 400/404/405).
    pub(crate) route: &'static RouteMetrics,
    /// The resolved client IP.
    pub(crate) client_ip: IpAddr,
    /// The request's span, when it is sampled for export (boxed: most requests have none).
    #[cfg(feature = "otlp")]
    pub(crate) span: Option<Box<crate::observe::otlp::TraceSpan>>,
}

impl Observed {
    /// A request on `route` from `client_ip`, with no exported span.
    pub(crate) fn new(route: &'static RouteMetrics, client_ip: IpAddr) -> Self {
        Self {
            route,
            client_ip,
            #[cfg(feature = "otlp")]
            span: None,
        }
    }
}

pin_project! {
    /// A response body carrying what the dispatcher observed out to the connection service.
    ///
    /// Carried by the body rather than in the response extensions: the layers between pass
    /// bodies through untouched, and the first extension of a response costs two allocations.
    pub(crate) struct Tagged<B> {
        #[pin]
        inner: B,
        observed: Observed,
    }
}

impl<B> Tagged<B> {
    /// `inner`, with what the dispatcher observed.
    pub(crate) fn new(inner: B, observed: Observed) -> Self {
        Self { inner, observed }
    }

    /// The body and what was observed.
    pub(crate) fn into_parts(self) -> (B, Observed) {
        (self.inner, self.observed)
    }
}

impl<B: Body> Body for Tagged<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One request's accounting, finished once.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) start: Instant,
    pub(crate) method: Method,
    /// Kept only when something prints the path.
    pub(crate) uri: Option<Uri>,
    pub(crate) status: u16,
    pub(crate) observed: Observed,
    pub(crate) request_id: Option<HeaderValue>,
    pub(crate) bytes: u64,
    pub(crate) access_log: bool,
    /// The body had ended before it was sent, so dropping it unpolled is a complete response.
    pub(crate) empty_body: bool,
}

impl Record {
    fn finish(self, complete: bool) {
        let elapsed = self.start.elapsed();
        let observed = self.observed;
        observed.route.record(&self.method, self.status, elapsed);
        #[cfg(feature = "otlp")]
        let wanted = self.access_log || observed.span.is_some();
        #[cfg(not(feature = "otlp"))]
        let wanted = self.access_log;
        if !wanted {
            return;
        }
        let (route, upstream) = observed.route.log_names();
        let entry = crate::observe::access_log::Entry {
            client_ip: observed.client_ip,
            method: self.method.as_str(),
            path: self.uri.as_ref().map_or("", Uri::path),
            route,
            upstream,
            status: self.status,
            bytes: self.bytes,
            duration: elapsed,
            request_id: self.request_id.as_ref().and_then(|v| v.to_str().ok()),
            complete,
        };
        #[cfg(feature = "otlp")]
        if let Some(span) = observed.span {
            span.finish(&entry);
        }
        if self.access_log {
            crate::observe::access_log::log(&entry);
        }
    }
}

pin_project! {
    /// A response body that finishes its request's [`Record`] when it ends or is dropped.
    pub(crate) struct ObservedBody<B> {
        #[pin]
        inner: B,
        record: Option<Record>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(record) = this.project().record.take() {
                // A body that was complete from the start (empty, HEAD) is never polled.
                let complete = record.empty_body;
                record.finish(complete);
            }
        }
    }
}

impl<B> ObservedBody<B> {
    /// Wraps a body with its request's record.
    pub(crate) fn new(inner: B, record: Record) -> Self {
        Self {
            inner,
            record: Some(record),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ObservedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), this.record.as_mut()) {
                    record.bytes += data.len() as u64;
                }
                // hyper stops polling once a sized body is complete: finish on its last frame.
                if this.inner.is_end_stream()
                    && let Some(record) = this.record.take()
                {
                    record.finish(true);
                }
            }
            Poll::Ready(None) => {
                if let Some(record) = this.record.take() {
                    record.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
