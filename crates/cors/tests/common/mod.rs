//! A counting upstream behind the CORS layer, and request builders.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gateway_core::ResponseBody;
use gateway_cors::{CorsLayer, config::CorsConfig};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt};

pub type Reply = Response<ResponseBody<Full<Bytes>>>;

/// The layer over an upstream that counts its calls and answers 200 `upstream` with the
/// given headers.
pub struct Harness {
    calls: Arc<AtomicUsize>,
    service: BoxCloneService<Request<()>, Reply, Infallible>,
}

impl Harness {
    /// A harness for the `[cors]` table `toml`, whose upstream sends no headers.
    pub fn new(toml: &str) -> Self {
        Self::with_upstream_headers(toml, &[])
    }

    /// A harness whose upstream adds `headers` (each appended) to its responses.
    pub fn with_upstream_headers(
        toml: &str,
        headers: &'static [(&'static str, &'static str)],
    ) -> Self {
        let config: CorsConfig = toml::from_str(toml).unwrap();
        let policy = config.build().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let upstream = tower::service_fn(move |_: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut response = Response::new(Full::new(Bytes::from_static(b"upstream")));
                for (name, value) in headers {
                    response.headers_mut().append(*name, value.parse().unwrap());
                }
                Ok::<_, Infallible>(response)
            }
        });
        let service = BoxCloneService::new(CorsLayer::new(policy).layer(upstream));
        Self { calls, service }
    }

    /// How many requests reached the upstream.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub async fn send(&self, request: Request<()>) -> Reply {
        self.service.clone().oneshot(request).await.unwrap()
    }
}

/// A preflight from `origin` asking for `method` and, if given, `headers`.
pub fn preflight(origin: &str, method: &str, headers: Option<&str>) -> Request<()> {
    let mut builder = Request::builder()
        .method(Method::OPTIONS)
        .uri("/resource")
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(headers) = headers {
        builder = builder.header("access-control-request-headers", headers);
    }
    builder.body(()).unwrap()
}

/// An actual request with `method`, from `origin` if given.
pub fn actual(method: Method, origin: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().method(method).uri("/resource");
    if let Some(origin) = origin {
        builder = builder.header("origin", origin);
    }
    builder.body(()).unwrap()
}

/// The names of the `access-control-*` headers present.
pub fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect();
    names.sort();
    names
}

/// The header's values, one string per line.
pub fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

pub async fn body(reply: Reply) -> Bytes {
    reply.into_body().collect().await.unwrap().to_bytes()
}
