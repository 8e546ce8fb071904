//! Benchmarks of the rate-limit layer.
//!
//! - `ratelimit_memory/*`: one request through the layer over the in-memory store (key
//!   extraction, check, response headers, decision extension), the inner service alone, and
//!   the check alone; one key and 10k keys.
//! - `ratelimit_redis/*`: requests through the layer over a local `redis-server` (started by
//!   the bench on a free port), 64 concurrent tasks; the throughput is checks per second.
//!
//! Run with `cargo bench --bench ratelimit`.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

// The same launcher as the end-to-end tests.
#[allow(dead_code, unreachable_pub)]
#[path = "../tests/support/redis.rs"]
mod redis;
use redis::RedisServer;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gateway_core::PeerAddr;
use gateway_ratelimit::{
    ClientKey, HeaderMode, KeySource, Policy, RateLimitBackend, RateLimitDecision, RateLimitLayer,
    RedisConfig,
};
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};

const KEYS: u32 = 10_000;
const TASKS: u64 = 64;

type Ready = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

/// The inner service: an empty 200.
fn inner() -> tower::util::ServiceFn<fn(Request<()>) -> Ready> {
    fn handler(_request: Request<()>) -> Ready {
        std::future::ready(Ok(Response::new(Full::new(Bytes::new()))))
    }
    tower::service_fn(handler as fn(Request<()>) -> Ready)
}

fn request(key: u32) -> Request<()> {
    let mut request = Request::new(());
    let ip = IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + key));
    request
        .extensions_mut()
        .insert(PeerAddr(SocketAddr::new(ip, 40_000)));
    request
}

/// Polls a future that is ready at once (the in-memory path never waits).
fn now<F: Future>(future: F) -> F::Output {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the in-memory path never waits"),
    }
}

fn memory(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let backend = RateLimitBackend::in_memory();
    // Nothing is refused: each request takes the full path (inner call + headers).
    let policy = Policy::fixed_window(u32::MAX, Duration::from_secs(3600)).unwrap();

    let mut group = c.benchmark_group("ratelimit_memory");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);

    let mut plain = inner();
    group.bench_function("inner_service_alone", |b| {
        b.iter_batched(
            || request(1),
            |req| now(plain.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let limiter = backend.route("check", policy);
    let key = KeySource::Ip;
    // By reference: the request is dropped outside the timing, as the layer's caller would.
    group.bench_function("check_only/1_key", |b| {
        b.iter_batched_ref(
            || request(1),
            |req| now(limiter.check(key.extract(req))).decision,
            BatchSize::SmallInput,
        )
    });
    let mut next = 0;
    group.bench_function("check_only/10k_keys", |b| {
        b.iter_batched_ref(
            || {
                next = (next + 1) % KEYS;
                request(next)
            },
            |req| now(limiter.check(key.extract(req))).decision,
            BatchSize::SmallInput,
        )
    });

    for (mode, name) in [
        (HeaderMode::None, "no_headers"),
        (HeaderMode::All, "all_headers"),
    ] {
        let layer = RateLimitLayer::new(&backend, name, policy, KeySource::Ip).headers(mode);
        let mut service = layer.layer(inner());
        group.bench_function(format!("layer/{name}/1_key"), |b| {
            b.iter_batched(
                || request(1),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let mut next = 0;
        group.bench_function(format!("layer/{name}/10k_keys"), |b| {
            b.iter_batched(
                || {
                    next = (next + 1) % KEYS;
                    request(next)
                },
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn redis(c: &mut Criterion) {
    let Some(server) = RedisServer::try_start() else {
        eprintln!("redis-server could not be started: skipping the Redis benchmarks");
        return;
    };
    // One thread, as a gateway worker runs: its requests' checks batch into shared calls.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config: RedisConfig = redis_config(server.port);
    let backend = runtime.block_on(async {
        let backend = RateLimitBackend::redis(&config).unwrap();
        assert!(backend.wait_connected(Duration::from_secs(10)).await);
        backend
    });

    let mut group = c.benchmark_group("ratelimit_redis");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    group.throughput(Throughput::Elements(1));
    let policies = [
        (
            "fixed_window",
            Policy::fixed_window(u32::MAX, Duration::from_secs(3600)).unwrap(),
        ),
        (
            "token_bucket",
            Policy::token_bucket(1_000_000, 1_000.0).unwrap(),
        ),
    ];
    // A lease of 16: one Redis call per 16 checks of a key.
    let leased = [(
        "fixed_window_lease_16",
        Policy::fixed_window(u32::MAX, Duration::from_secs(3600)).unwrap(),
        16,
    )];
    let policies = policies
        .into_iter()
        .map(|(name, policy)| (name, policy, 0))
        .chain(leased);
    for (name, policy, lease) in policies {
        let layer = RateLimitLayer::new(&backend, name, policy, KeySource::Ip);
        let service = if lease > 0 { layer.lease(lease) } else { layer }.layer(inner());
        group.bench_function(format!("layer_64_tasks/{name}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let service = service.clone();
                async move { run_concurrently(service, iters).await }
            })
        });
    }
    group.finish();

    let limiter = backend.route(
        "raw",
        Policy::fixed_window(u32::MAX, Duration::from_secs(3600)).unwrap(),
    );
    let mut group = c.benchmark_group("ratelimit_redis");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    group.bench_function("sequential_round_trip/fixed_window", |b| {
        b.to_async(&runtime).iter(|| async {
            let decision = limiter
                .check(ClientKey::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))
                .await
                .decision;
            assert_eq!(decision, RateLimitDecision::Allowed);
        })
    });
    group.finish();
    assert_eq!(
        backend.backend_errors_total(),
        0,
        "Redis failed during the benchmark"
    );
}

/// `iters` requests through the layer from 64 tasks at once, over 10k client keys.
async fn run_concurrently<S>(service: S, iters: u64) -> Duration
where
    S: Service<Request<()>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let mut service = service.clone();
            let count = iters / TASKS + u64::from(task < iters % TASKS);
            tokio::spawn(async move {
                for i in 0..count {
                    let key = ((task * 7919 + i) % u64::from(KEYS)) as u32;
                    let _ = service.ready().await.unwrap().call(request(key)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn redis_config(port: u16) -> RedisConfig {
    let mut config = RedisConfig::new(format!("redis://127.0.0.1:{port}").parse().unwrap());
    // Generous: a loaded 2-core machine must not turn queueing into fail-open results.
    config.timeout = gateway_ratelimit::config::PositiveDuration(Duration::from_secs(1));
    config
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
