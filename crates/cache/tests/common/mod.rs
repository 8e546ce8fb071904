//! A counting upstream as a tower service, and helpers to call a cache in front of it.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use gateway_cache::{Cache, CacheBody, CachePolicy, CacheStore};
use gateway_core::BoxError;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

/// The upstream's body: all at once, or frames sent through a channel by the test.
pub enum TestBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Result<Bytes, BoxError>>),
}

impl TestBody {
    pub fn text(text: &str) -> Self {
        Self::Full(Some(Bytes::copy_from_slice(text.as_bytes())))
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Channel(rx) => rx.poll_recv(cx).map(|f| f.map(|r| r.map(Frame::data))),
        }
    }
}

type Handler =
    dyn Fn(Request<()>) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>> + Send + Sync;

/// An upstream that counts its calls and keeps the headers of each request.
#[derive(Clone)]
pub struct Upstream {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    handler: Arc<Handler>,
}

impl Upstream {
    /// An upstream answering with `handler`.
    pub fn new<F, Fut>(handler: F) -> Self
    where
        F: Fn(Request<()>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        Self {
            calls: Arc::default(),
            seen: Arc::default(),
            handler: Arc::new(move |request| Box::pin(handler(request))),
        }
    }

    /// An upstream answering every request with `headers` and `body`.
    pub fn fixed(headers: &'static [(&'static str, &'static str)], body: &'static str) -> Self {
        Self::new(move |_| async move { response(200, headers, body) })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The headers of the `n`th request the upstream received.
    pub fn request(&self, n: usize) -> HeaderMap {
        self.seen.lock().unwrap()[n].clone()
    }
}

pub fn response(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: &str,
) -> Response<TestBody> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(TestBody::text(body)).unwrap()
}

impl Service<Request<()>> for Upstream {
    type Response = Response<TestBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<TestBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(request.headers().clone());
        let future = (self.handler)(request);
        Box::pin(async move { Ok(future.await) })
    }
}

/// A cache over `upstream` with a store of `max_size` bytes.
pub fn cache(upstream: &Upstream, policy: CachePolicy, max_size: u64) -> Cache<Upstream> {
    Cache::new(
        upstream.clone(),
        CacheStore::new(max_size, max_size),
        policy.scope("route"),
    )
}

pub fn get(path: &str) -> http::request::Builder {
    Request::get(path).header("host", "api.test")
}

/// What a response came back with.
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .map_or("", |v| v.to_str().unwrap())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn send<S>(service: &S, request: Request<()>) -> Got
where
    S: Service<Request<()>, Response = Response<CacheBody<TestBody>>, Error = Infallible> + Clone,
{
    let response = service.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn fetch<S>(service: &S, path: &str) -> Got
where
    S: Service<Request<()>, Response = Response<CacheBody<TestBody>>, Error = Infallible> + Clone,
{
    send(service, get(path).body(()).unwrap()).await
}

/// The policy's counters, in [`CacheResult::ALL`]'s order (hit, miss, stale, bypass,
/// revalidated).
pub fn counters<S>(cache: &Cache<S>) -> [u64; 5] {
    let counters = cache.policy().get_counters();
    gateway_cache::CacheResult::ALL.map(|result| counters.get(result))
}
