//! The response future: the inner call, then the decision and the header changes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, ETAG, VARY};
use http::{HeaderMap, HeaderValue, Response};
use http_body::Body;
use pin_project_lite::pin_project;

use crate::body::CompressionBody;
use crate::encoder::Encoder;
use crate::negotiate::Algorithm;
use crate::policy::CompressionPolicy;

pin_project! {
    /// The response future of [`Compression`](crate::Compression).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        policy: CompressionPolicy,
        // What the request negotiated; `None` for identity (or a HEAD/CONNECT request).
        algorithm: Option<Algorithm>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, policy: CompressionPolicy, algorithm: Option<Algorithm>) -> Self {
        Self {
            inner,
            policy,
            algorithm,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<CompressionBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(apply(this.policy, *this.algorithm, response)))
    }
}

/// Compresses `response` with `algorithm` if the policy lets it.
///
/// A compressible response gets `Vary: Accept-Encoding` even when it goes out as is (the
/// client did not accept a coding, or asked with HEAD): it is what a cache must key it by.
fn apply<B: Body>(
    policy: &CompressionPolicy,
    algorithm: Option<Algorithm>,
    response: Response<B>,
) -> Response<CompressionBody<B>> {
    if !policy.is_compressible(&response) {
        return response.map(CompressionBody::identity);
    }
    let (mut parts, body) = response.into_parts();
    add_vary(&mut parts.headers);
    // Without an encoder (zstd could not allocate one) the response goes out as is.
    let Some(encoder) = algorithm.and_then(|algorithm| Encoder::new(algorithm).ok()) else {
        return Response::from_parts(parts, CompressionBody::identity(body));
    };
    let headers = &mut parts.headers;
    headers.insert(
        CONTENT_ENCODING,
        HeaderValue::from_static(encoder.algorithm().name()),
    );
    headers.remove(CONTENT_LENGTH);
    weaken_etag(headers);
    Response::from_parts(parts, CompressionBody::compressed(body, encoder))
}

/// Appends `Accept-Encoding` to `Vary` unless it (or `*`) is already there.
fn add_vary(headers: &mut HeaderMap) {
    let listed = headers
        .get_all(VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|name| name == "*" || name.eq_ignore_ascii_case("accept-encoding"));
    if !listed {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// A strong `ETag` promises byte-identical content, which the compressed body is not (and its
/// bytes may differ between algorithms and versions of the encoder): it becomes weak, `W/"…"`,
/// which still lets `If-None-Match` revalidate against it (weak comparison).
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    if etag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = Vec::with_capacity(etag.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(etag.as_bytes());
    if let Ok(weak) = HeaderValue::from_bytes(&weak) {
        headers.insert(ETAG, weak);
    }
}
