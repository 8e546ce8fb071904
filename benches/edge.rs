//! Benchmarks of the edge policies: what an access check and a CORS pass add to a request over
//! a service that answers at once, and what compressing a 16 KiB JSON body costs.
//!
//! Run with `cargo bench --bench edge`. Every case builds the same request as one of the
//! `bare` baselines, so the difference to it is the layer's own cost.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gateway_access::AccessLayer;
use gateway_compression::CompressionLayer;
use gateway_core::{ClientIp, PeerAddr};
use gateway_cors::CorsLayer;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service};

// The gateway binary runs on mimalloc; measure what it pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The cheapest possible inner service: a ready 200 with the headers an upstream's response
/// has (so the layers insert into a map that already has room, as in the gateway).
#[derive(Clone, Copy)]
struct Instant200;

impl Service<Request<()>> for Instant200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut response = Response::new(());
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("100"),
        );
        headers.insert(
            http::header::DATE,
            http::HeaderValue::from_static("Wed, 02 Dec 2026 10:00:00 GMT"),
        );
        ready(Ok(response))
    }
}

/// A request as the gateway's layers see it: a peer and a resolved client IP.
fn request(origin: Option<&'static str>, preflight: bool) -> Request<()> {
    let mut builder = Request::builder().uri("/api/orders");
    if preflight {
        builder = builder
            .method("OPTIONS")
            .header("access-control-request-method", "POST");
    }
    if let Some(origin) = origin {
        // hyper's header values are slices of the connection's read buffer, so cloning one
        // is a reference count, not a copy: build it the same way.
        let head = Bytes::from(origin.as_bytes().to_vec());
        let _promote_to_shared = head.clone();
        builder = builder.header("origin", HeaderValue::from_maybe_shared(head).unwrap());
    }
    let mut request = builder.body(()).unwrap();
    let peer: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    request.extensions_mut().insert(PeerAddr(peer));
    request
        .extensions_mut()
        .insert(ClientIp(IpAddr::from([203, 0, 113, 9])));
    request
}

/// Calls the service once and polls its future to completion (it is ready at once).
fn call<S, R>(service: &mut S, request: Request<()>) -> R
where
    S: Service<Request<()>, Response = R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(response) => response.unwrap(),
        Poll::Pending => unreachable!("the inner service answers at once"),
    }
}

/// Times calls alone: the requests are built, and the responses dropped, outside the timing.
fn measure<S, R>(b: &mut criterion::Bencher<'_>, service: &mut S, make: impl Fn() -> Request<()>)
where
    S: Service<Request<()>, Response = R>,
    S::Error: std::fmt::Debug,
{
    b.iter_batched(
        make,
        |request| call(service, request),
        criterion::BatchSize::SmallInput,
    );
}

fn access_and_cors(c: &mut Criterion) {
    let mut group = c.benchmark_group("edge");
    let mut bare = Instant200;
    // The baselines: each layered case builds the same request as one of these, so the
    // difference is the layer's own work.
    group.bench_function("bare", |b| measure(b, &mut bare, || request(None, false)));
    group.bench_function("bare, with Origin", |b| {
        measure(b, &mut bare, || {
            request(Some("https://shop.example.com"), false)
        })
    });
    group.bench_function("bare, preflight", |b| {
        measure(b, &mut bare, || {
            request(Some("https://app.example.com"), true)
        })
    });

    // Twenty networks of each family in the deny list, the client in none of them.
    let deny: Vec<String> = (0..20)
        .map(|i| format!("10.{i}.0.0/16"))
        .chain((0..20).map(|i| format!("2001:db8:{i:x}::/48")))
        .collect();
    let access: gateway_access::config::AccessConfig =
        toml::from_str(&format!("deny = {deny:?}")).unwrap();
    let mut access = AccessLayer::new(access.build().unwrap()).layer(Instant200);
    group.bench_function("access, 40 networks, allowed", |b| {
        measure(b, &mut access, || request(None, false))
    });

    let cors: gateway_cors::config::CorsConfig = toml::from_str(
        "allow_origins = [\"https://app.example.com\", \"https://*.example.com\"]\n\
         allow_headers = [\"Authorization\", \"Content-Type\"]\n",
    )
    .unwrap();
    let mut cors = CorsLayer::new(cors.build().unwrap()).layer(Instant200);
    group.bench_function("cors, no Origin", |b| {
        measure(b, &mut cors, || request(None, false))
    });
    group.bench_function("cors, allowed Origin", |b| {
        measure(b, &mut cors, || {
            request(Some("https://shop.example.com"), false)
        })
    });
    group.bench_function("cors, preflight answered", |b| {
        measure(b, &mut cors, || {
            request(Some("https://app.example.com"), true)
        })
    });
    group.finish();
}

/// A 16 KiB JSON document, like an API's list response.
fn json_16k() -> Bytes {
    let mut out = String::from("[");
    let mut i = 0;
    while out.len() < 16 << 10 {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user-{i}\",\"email\":\"user{i}@example.com\",\"active\":{}}}",
            i % 3 == 0
        ));
        i += 1;
    }
    out.push(']');
    Bytes::from(out)
}

fn compression(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = json_16k();
    let mut group = c.benchmark_group("compression, 16 KiB JSON");
    for algorithm in ["gzip", "br", "zstd"] {
        let settings: gateway_compression::config::CompressionConfig =
            toml::from_str(&format!("algorithms = [\"{algorithm}\"]")).unwrap();
        let layer = CompressionLayer::new(settings.build().unwrap());
        let body = body.clone();
        let inner = tower::service_fn(move |_: Request<()>| {
            let body = body.clone();
            async move {
                let mut response = Response::new(Full::new(body));
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                Ok::<_, Infallible>(response)
            }
        });
        let mut service = layer.layer(inner);
        group.bench_function(algorithm, |b| {
            b.iter(|| {
                let request = Request::builder()
                    .header("accept-encoding", algorithm)
                    .body(())
                    .unwrap();
                let response = runtime.block_on(service.call(request)).unwrap();
                let compressed = runtime
                    .block_on(response.into_body().collect())
                    .map(|collected| collected.to_bytes())
                    .unwrap_or_default();
                black_box(compressed.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, access_and_cors, compression);
criterion_main!(benches);
