//! Benchmarks of the response cache's hit path: what answering a request from a stored 1 KiB
//! entry costs, with a working set of 200 entries (the store's table stays in the CPU
//! caches) and with 1M entries (it does not), against building the same request for a
//! service that answers at once.
//!
//! Run with `cargo bench --bench cache`. Filling the 1M-entry store takes about 20 seconds
//! and 3 GB of memory. Each case includes building the request (as `bare` does) and the
//! whole hit: key, lookup, freshness, the response with `Age` and `Cache-Status`.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gateway_cache::{CacheLayer, CachePolicy, CacheStore};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};

// The gateway binary runs on mimalloc; measure what it pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An upstream that answers at once with a cacheable 1 KiB body.
#[derive(Clone)]
struct Origin(Bytes);

impl Service<Request<()>> for Origin {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut response = Response::new(Full::new(self.0.clone()));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=86400"),
        );
        headers.insert(
            http::header::DATE,
            HeaderValue::from_static("Wed, 02 Dec 2026 10:00:00 GMT"),
        );
        ready(Ok(response))
    }
}

const HOST: HeaderValue = HeaderValue::from_static("api.example.com");

fn request(uri: &Uri) -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = uri.clone();
    request.headers_mut().insert(http::header::HOST, HOST);
    request
}

/// Polls a future that is ready at once (a hit's is).
fn now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a hit answers without waiting"),
    }
}

/// The cache layer over [`Origin`].
type Cached = gateway_cache::Cache<Origin>;

/// A cache over [`Origin`] with `entries` 1 KiB responses stored, and their URIs.
fn filled(runtime: &tokio::runtime::Runtime, entries: usize) -> (Cached, Vec<Uri>) {
    let store = CacheStore::new(8 << 30, 1 << 20);
    let origin = Origin(Bytes::from(vec![b'x'; 1024]));
    let cache = CacheLayer::new(store.clone(), CachePolicy::new().scope("bench")).layer(origin);
    let uris: Vec<Uri> = (0..entries)
        .map(|n| format!("/api/v1/items/{n}?fields=all").parse().unwrap())
        .collect();
    runtime.block_on(async {
        for uri in &uris {
            let response = cache.clone().oneshot(request(uri)).await.unwrap();
            response.into_body().collect().await.unwrap();
        }
    });
    assert_eq!(store.stats().entries, entries as u64, "every entry stored");
    (cache, uris)
}

fn hit(cache: &mut Cached, uri: &Uri) -> Response<gateway_cache::CacheBody<Full<Bytes>>> {
    let response = now(cache.call(request(uri))).unwrap();
    debug_assert_eq!(response.headers()["cache-status"], "gateway; hit");
    black_box(response)
}

fn hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let mut group = c.benchmark_group("cache");

    let origin = Origin(Bytes::from(vec![b'x'; 1024]));
    let uri: Uri = "/api/v1/items/1?fields=all".parse().unwrap();
    group.bench_function("bare/origin_1KiB", |b| {
        let mut origin = origin.clone();
        b.iter(|| black_box(now(origin.call(request(black_box(&uri))))))
    });

    for (name, entries) in [("200_entries", 200), ("1M_entries", 1_000_000)] {
        let (cache, uris) = filled(&runtime, entries);
        // Every entry in turn, by a stride coprime with the entry counts: successive hits
        // touch unrelated parts of the store, so with 1M entries (about 2 GB) each one
        // reads cold memory.
        let mut every = (cache.clone(), 0usize);
        group.bench_function(format!("hit/{name}_1KiB"), |b| {
            b.iter(|| {
                let (cache, i) = &mut every;
                *i = (*i + 7919) % uris.len();
                hit(cache, &uris[*i])
            })
        });
        if entries > 200 {
            // The same store, with requests going to 200 of its entries.
            let mut hot = (cache.clone(), 0usize);
            group.bench_function(format!("hit/{name}_1KiB_200_hot"), |b| {
                b.iter(|| {
                    let (cache, i) = &mut hot;
                    *i = (*i + 1) % 200;
                    hit(cache, &uris[*i * 4999 % uris.len()])
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hits);
criterion_main!(benches);
