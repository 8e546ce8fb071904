//! Per-request cost of the header layers against the bare service.
//!
//! `cargo bench --bench headers`. Each iteration builds the same request (a peer address, a
//! host, a cookie), polls the service once (every service here is ready at once) and drops
//! the response.
//!
//! The machine is shared (2 cores, other builds running), and a descheduled batch would
//! count another process's time as ours. So every measurement runs in batches of
//! [`BATCH`] requests, each batch [`REPEAT`] times, and keeps the fastest repeat: the cost
//! of the code without the interruptions. `abs/NAME` is the time per request through a
//! service; `overhead/NAME` runs the layered and the bare service in alternating batches and
//! reports the difference, the layer's own cost per request.

use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_core::PeerAddr;
use gateway_headers::{HeaderRules, HeadersLayer, SetRequestIdLayer};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST};
use http::{HeaderValue, Request, Response, Uri};
use tower::{Layer, Service, service_fn};

// The gateway binary runs on mimalloc; measure what it pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests per batch: long enough to time, short enough to run between two interruptions.
const BATCH: u64 = 500;

/// Runs of each batch; the fastest counts.
const REPEAT: usize = 3;

/// A typical request; built without `request::Builder`, whose moves would dominate `bare`.
fn request() -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = Uri::from_static("/api/v1/users?page=2");
    let headers = request.headers_mut();
    headers.insert(HOST, HeaderValue::from_static("api.example.com"));
    headers.insert(COOKIE, HeaderValue::from_static("session=0123456789"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let peer = SocketAddr::from(([192, 0, 2, 10], 50_000));
    request.extensions_mut().insert(PeerAddr(peer));
    request
}

/// Calls the service once and returns its response; the services here never wait.
fn call<S>(service: &mut S, request: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(response) => response.unwrap(),
        Poll::Pending => panic!("the benchmarked service is always ready"),
    }
}

/// The time of `iterations` requests through `service`, from the fastest repeat of each batch.
fn time<S>(service: &mut S, iterations: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut total = Duration::ZERO;
    let mut left = iterations;
    while left > 0 {
        let batch = left.min(BATCH);
        total += (0..REPEAT)
            .map(|_| once(service, batch))
            .min()
            .unwrap_or_default();
        left -= batch;
    }
    total
}

fn once<S>(service: &mut S, iterations: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(call(service, black_box(request())));
    }
    start.elapsed()
}

type Bare = tower::util::ServiceFn<
    fn(Request<()>) -> std::future::Ready<Result<Response<()>, std::convert::Infallible>>,
>;

/// Answers like an upstream would: with a couple of headers.
fn bare() -> Bare {
    service_fn(|_| {
        let mut response = Response::new(());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
        std::future::ready(Ok(response))
    })
}

/// `abs/NAME`: time per request through `service`; `overhead/NAME`: minus the bare service.
fn bench<S>(c: &mut Criterion, name: &str, mut service: S)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    c.bench_function(&format!("abs/{name}"), |b| {
        b.iter_custom(|n| time(&mut service, n))
    });
    let mut base = bare();
    c.bench_function(&format!("overhead/{name}"), |b| {
        b.iter_custom(|n| {
            let (mut layered, mut plain) = (Duration::ZERO, Duration::ZERO);
            let mut left = n;
            while left > 0 {
                let batch = left.min(BATCH);
                layered += time(&mut service, batch);
                plain += time(&mut base, batch);
                left -= batch;
            }
            layered.saturating_sub(plain)
        })
    });
}

fn headers(c: &mut Criterion) {
    c.bench_function("abs/bare", |b| {
        let mut service = bare();
        b.iter_custom(|n| time(&mut service, n))
    });

    // Four operations, one of them a template: three on the request, one on the response.
    let request_rules = HeaderRules::builder()
        .remove("Cookie")
        .set("X-Source", "gateway")
        .set("X-Client-IP", "{client_ip}")
        .build()
        .unwrap();
    let response_rules = HeaderRules::builder()
        .set("X-Gateway", "gateway")
        .build()
        .unwrap();
    let four_ops = HeadersLayer::new()
        .request(request_rules)
        .response(response_rules.clone());

    let static_rules = HeaderRules::builder()
        .remove("Cookie")
        .set("X-Source", "gateway")
        .set("X-Env", "production")
        .build()
        .unwrap();
    let four_static = HeadersLayer::new()
        .request(static_rules)
        .response(response_rules);

    bench(c, "4_ops_1_template", four_ops.layer(bare()));
    bench(c, "4_ops_static", four_static.layer(bare()));
    bench(c, "request_id", SetRequestIdLayer::new().layer(bare()));
    bench(
        c,
        "request_id+4_ops_1_template",
        SetRequestIdLayer::new().layer(four_ops.layer(bare())),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = headers
}
criterion_main!(benches);
