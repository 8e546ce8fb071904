//! Benchmarks of the circuit-breaker layer: what the closed-state path adds to a request, alone
//! and with 2 and 8 threads sharing one breaker; and the cost of a refusal while open.
//!
//! Run with `cargo bench --bench breaker`. The inner service answers at once, so the figures are
//! the layer's own cost: the admission check, the permit and the outcome record.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gateway_breaker::{BreakerConfig, BreakerLayer, CircuitBreaker};
use gateway_core::ResponseBody;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

/// The cheapest possible inner service: a ready 200.
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
        ready(Ok(Response::new(())))
    }
}

/// A layer that does nothing but what every rejecting layer must: wrap the response body in
/// `ResponseBody`. The part of the breaker's overhead that is not the breaker.
#[derive(Clone, Copy)]
struct PassThrough<S>(S);

impl<S, B> Service<Request<()>> for PassThrough<S>
where
    S: Service<
            Request<()>,
            Response = Response<B>,
            Future = Ready<Result<Response<B>, Infallible>>,
            Error = Infallible,
        >,
{
    type Response = Response<ResponseBody<B>>;
    type Error = Infallible;
    type Future = MapBody<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        MapBody(self.0.call(request))
    }
}

/// The pass-through's future (the inner one is `Unpin`, so no pin projection is needed).
struct MapBody<F>(F);

impl<F, B> Future for MapBody<F>
where
    F: Future<Output = Result<Response<B>, Infallible>> + Unpin,
{
    type Output = Result<Response<ResponseBody<B>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.map(|response| response.map(ResponseBody::inner)))
    }
}

/// One request through `service`, polled to completion on the spot.
fn one_request<S, B>(service: &mut S) -> StatusCode
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(Request::new(())));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => response.status(),
        _ => unreachable!("the inner service is always ready"),
    }
}

/// `iters` requests spread over `threads` threads, each with its own clone of the service (as
/// each connection has); returns the wall time.
fn spread<S, B>(service: &S, threads: u64, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible> + Clone + Send + Sync,
{
    let per_thread = iters.div_ceil(threads);
    let barrier = Barrier::new(threads as usize + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let mut service = service.clone();
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..per_thread {
                    black_box(one_request(&mut service));
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins the threads.
        start
    })
    .elapsed()
}

fn consecutive() -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig::default()).unwrap()
}

fn with_failure_rate() -> CircuitBreaker {
    CircuitBreaker::new(
        BreakerConfig::default()
            .failure_threshold(5)
            .failure_rate(0.5),
    )
    .unwrap()
}

fn closed_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("closed");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1));

    let mut bare = Instant200;
    group.bench_function("bare service", |b| {
        b.iter(|| black_box(one_request(&mut bare)))
    });
    let mut pass_through = PassThrough(Instant200);
    group.bench_function("pass-through layer", |b| {
        b.iter(|| black_box(one_request(&mut pass_through)))
    });
    let breaker = consecutive();
    group.bench_function("permit alone", |b| {
        b.iter(|| breaker.try_acquire().unwrap().success())
    });
    let mut guarded = BreakerLayer::new(consecutive()).layer(Instant200);
    group.bench_function("breaker", |b| {
        b.iter(|| black_box(one_request(&mut guarded)))
    });
    let mut windowed = BreakerLayer::new(with_failure_rate()).layer(Instant200);
    group.bench_function("breaker + failure rate", |b| {
        b.iter(|| black_box(one_request(&mut windowed)))
    });

    for threads in [2, 8] {
        let guarded = BreakerLayer::new(consecutive()).layer(Instant200);
        let windowed = BreakerLayer::new(with_failure_rate()).layer(Instant200);
        group.bench_function(
            BenchmarkId::new("bare service", format!("{threads} threads")),
            |b| b.iter_custom(|iters| spread(&Instant200, threads, iters)),
        );
        group.bench_function(
            BenchmarkId::new("breaker", format!("{threads} threads")),
            |b| b.iter_custom(|iters| spread(&guarded, threads, iters)),
        );
        group.bench_function(
            BenchmarkId::new("breaker + failure rate", format!("{threads} threads")),
            |b| b.iter_custom(|iters| spread(&windowed, threads, iters)),
        );
    }
    group.finish();
}

fn open_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1));
    let breaker = consecutive();
    for _ in 0..5 {
        breaker.try_acquire().unwrap().failure();
    }
    let mut refused = BreakerLayer::new(breaker).layer(Instant200);
    assert_eq!(one_request(&mut refused), StatusCode::SERVICE_UNAVAILABLE);
    group.bench_function("503 refusal", |b| {
        b.iter(|| black_box(one_request(&mut refused)))
    });
    group.finish();
}

criterion_group!(benches, closed_state, open_state);
criterion_main!(benches);
