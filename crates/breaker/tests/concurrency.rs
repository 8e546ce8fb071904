//! Admission under real parallelism: no race lets more than `half_open_max_calls` probes
//! through, and a probe whose caller went away frees its slot.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use common::{Script, assert_refused, guarded, request, status};
use gateway_breaker::{BreakerConfig, BreakerLayer, BreakerState, CircuitBreaker};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};

const THREADS: usize = 8;
const ROUNDS: u64 = 200;

/// Each round, eight threads race for the probe slots the moment `open_for` has passed: the
/// one transition to half-open and the slot count must both come out exact.
#[tokio::test(start_paused = true)]
async fn racing_threads_get_exactly_the_probe_slots() {
    const SLOTS: u32 = 3;
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .half_open_max_calls(SLOTS)
        .open_for(Duration::from_secs(1));
    let breaker = CircuitBreaker::new(config).unwrap();
    breaker.try_acquire().unwrap().failure();
    // The threads read tokio's paused clock by entering this runtime.
    let runtime = tokio::runtime::Handle::current();

    for round in 1..=ROUNDS {
        assert_eq!(breaker.state(), BreakerState::Open);
        advance(Duration::from_secs(1)).await;
        let barrier = Barrier::new(THREADS);
        let permits: Vec<_> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        let _clock = runtime.enter();
                        barrier.wait();
                        breaker.try_acquire().ok()
                    })
                })
                .collect();
            racers
                .into_iter()
                .filter_map(|racer| racer.join().unwrap())
                .collect()
        });
        assert_eq!(permits.len(), SLOTS as usize, "round {round}");
        assert!(permits.iter().all(|permit| permit.is_probe()));
        let metrics = breaker.metrics();
        assert_eq!(
            metrics.half_opened, round,
            "exactly one caller made the transition"
        );
        assert_eq!(
            metrics.rejected,
            round * (THREADS as u64 - u64::from(SLOTS))
        );

        // One probe fails: the circuit reopens and the other probes' outcomes are stale.
        let mut permits = permits.into_iter();
        permits.next().unwrap().failure();
        permits.for_each(|permit| permit.success());
        assert_eq!(breaker.metrics().closed, 0);
    }
}

/// Many tasks on a multi-thread runtime call the layer while it is half-open: exactly
/// `half_open_max_calls` reach the service, and their successes close the circuit.
#[test]
fn many_tasks_on_a_multi_thread_runtime_get_exactly_the_probe_slots() {
    const SLOTS: usize = 3;
    const TASKS: usize = 64;
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .success_threshold(SLOTS as u32)
        .half_open_max_calls(SLOTS as u32)
        .open_for(Duration::from_secs(1));

    // Reaching half-open takes time to pass: do it on a paused clock (a multi-thread runtime
    // cannot pause); once half-open, admission reads no clock.
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let breaker = clock.block_on(async {
        let breaker = CircuitBreaker::new(config).unwrap();
        breaker.try_acquire().unwrap().failure();
        advance(Duration::from_secs(1)).await;
        // The first probe moves the circuit to half-open; dropping it frees its slot.
        drop(breaker.try_acquire().unwrap());
        breaker
    });
    assert_eq!(breaker.state(), BreakerState::HalfOpen);

    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let upstream = tower::service_fn({
        let (calls, gate) = (calls.clone(), gate.clone());
        move |_: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
            }
        }
    });
    let service = BreakerLayer::new(breaker.clone()).layer(upstream);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let statuses = runtime.block_on(async {
        let (called_tx, mut called_rx) = mpsc::unbounded_channel();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mut service = service.clone();
                let called = called_tx.clone();
                tokio::spawn(async move {
                    let response = service.ready().await.unwrap().call(Request::new(()));
                    called.send(()).unwrap();
                    response.await.unwrap().status()
                })
            })
            .collect();
        for _ in 0..TASKS {
            called_rx.recv().await.unwrap();
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            SLOTS,
            "every task has called: only the probes got through"
        );
        gate.add_permits(SLOTS);
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    });

    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!((ok, refused), (SLOTS, TASKS - SLOTS));
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().rejected, (TASKS - SLOTS) as u64);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_future_frees_its_slot_without_counting() {
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .open_for(Duration::from_secs(1));
    let (breaker, upstream, service) = guarded(config);
    status(&service, Script::Status(500)).await;
    advance(Duration::from_secs(1)).await;

    let probe = service.clone().call(request(Script::Hang));
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(upstream.calls(), 2);

    let busy = service
        .clone()
        .oneshot(request(Script::Status(200)))
        .await
        .unwrap();
    assert_eq!(assert_refused(busy, BreakerState::HalfOpen).await, 1);
    assert_eq!(upstream.calls(), 2, "the only probe slot is taken");

    drop(probe);
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "an abandoned probe is no success"
    );
    assert_eq!(breaker.metrics().closed, 0);

    assert_eq!(status(&service, Script::Status(200)).await, StatusCode::OK);
    assert_eq!(upstream.calls(), 3);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_permit_frees_its_slot_without_counting() {
    let config = BreakerConfig::default()
        .failure_threshold(1)
        .open_for(Duration::from_secs(1));
    let breaker = CircuitBreaker::new(config).unwrap();
    breaker.try_acquire().unwrap().failure();
    advance(Duration::from_secs(1)).await;

    let probe = breaker.try_acquire().unwrap();
    let refusal = breaker.try_acquire().unwrap_err();
    assert_eq!(refusal.state, BreakerState::HalfOpen);
    drop(probe);
    breaker.try_acquire().unwrap().failure();
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "the next probe got the slot, and failed"
    );
}
