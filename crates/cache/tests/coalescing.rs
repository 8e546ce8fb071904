//! Concurrent misses of one key: one upstream request, its waiters answered from what it
//! stored (or sent upstream themselves), a fetch that outlives the clients that leave, and
//! bodies stored while they stream to the first client.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Got, TestBody, Upstream, cache, counters, fetch, response};
use gateway_cache::Cache;
use gateway_cache::CachePolicy;
use http::Response;
use http_body_util::BodyExt;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tower::ServiceExt;

const MIB: u64 = 1 << 20;

/// An upstream whose first `held` calls wait for `gate` before answering `headers`.
fn gated(gate: Arc<Notify>, headers: &'static [(&'static str, &'static str)]) -> Upstream {
    Upstream::new(move |_| {
        let gate = gate.clone();
        async move {
            gate.notified().await;
            response(200, headers, "slow answer")
        }
    })
}

/// A client fetching `path` in a task of its own.
fn spawn_fetch(cache: &Cache<Upstream>, path: &'static str) -> JoinHandle<Got> {
    let cache = cache.clone();
    tokio::spawn(async move { fetch(&cache, path).await })
}

/// Lets every ready task run until it waits (the tests run on one thread).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_hundred_concurrent_misses_send_one_request() {
    let gate = Arc::new(Notify::new());
    let upstream = gated(gate.clone(), &[("cache-control", "max-age=60")]);
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let clients: Vec<_> = (0..100).map(|_| spawn_fetch(&cache, "/hot")).collect();
    settle().await;
    assert_eq!(upstream.calls(), 1);
    gate.notify_waiters();
    let mut statuses = std::collections::BTreeMap::new();
    for client in clients {
        let got = client.await.unwrap();
        assert_eq!(got.body, "slow answer");
        *statuses.entry(got.cache_status().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(upstream.calls(), 1);
    assert_eq!(statuses["gateway; fwd=miss; stored"], 1);
    assert_eq!(statuses["gateway; fwd=miss; collapsed"], 99);
    assert_eq!(counters(&cache)[1], 100);
    assert_eq!(cache.store().flights(), 0);
}

#[tokio::test]
async fn waiters_go_upstream_themselves_when_nothing_was_stored() {
    let gate = Arc::new(Notify::new());
    let upstream = gated(gate.clone(), &[("cache-control", "private")]);
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let clients: Vec<_> = (0..10).map(|_| spawn_fetch(&cache, "/mine")).collect();
    settle().await;
    assert_eq!(upstream.calls(), 1);
    gate.notify_waiters();
    settle().await;
    // The nine waiters are upstream now, waiting at the gate too.
    assert_eq!(upstream.calls(), 10);
    gate.notify_waiters();
    for client in clients {
        assert_eq!(client.await.unwrap().cache_status(), "gateway; fwd=miss");
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiter_stops_waiting_after_the_timeout() {
    let first = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let upstream = Upstream::new({
        let gate = gate.clone();
        move |_| {
            let held = first.fetch_add(1, Ordering::SeqCst) == 0;
            let gate = gate.clone();
            async move {
                if held {
                    gate.notified().await;
                }
                response(200, &[("cache-control", "max-age=60")], "answer")
            }
        }
    });
    let policy = CachePolicy::new().coalesce_timeout(Duration::from_secs(2));
    let cache = cache(&upstream, policy, MIB);
    let leader = spawn_fetch(&cache, "/a");
    settle().await;
    // The paused clock jumps to the waiter's deadline once everything waits.
    let waiter = fetch(&cache, "/a").await;
    assert_eq!(waiter.cache_status(), "gateway; fwd=miss");
    assert_eq!(upstream.calls(), 2);
    assert!(!leader.is_finished());
    gate.notify_waiters();
    assert_eq!(
        leader.await.unwrap().cache_status(),
        "gateway; fwd=miss; stored"
    );
}

#[tokio::test]
async fn a_dropped_waiter_does_not_cancel_the_fetch() {
    let gate = Arc::new(Notify::new());
    let upstream = gated(gate.clone(), &[("cache-control", "max-age=60")]);
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let leader = spawn_fetch(&cache, "/a");
    let waiter = spawn_fetch(&cache, "/a");
    settle().await;
    waiter.abort();
    settle().await;
    gate.notify_waiters();
    assert_eq!(leader.await.unwrap().body, "slow answer");
    assert_eq!(fetch(&cache, "/a").await.cache_status(), "gateway; hit");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn the_leaders_client_leaving_does_not_cancel_the_fetch_for_its_waiters() {
    let gate = Arc::new(Notify::new());
    let upstream = gated(gate.clone(), &[("cache-control", "max-age=60")]);
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let leader = spawn_fetch(&cache, "/a");
    settle().await;
    let waiters: Vec<_> = (0..3).map(|_| spawn_fetch(&cache, "/a")).collect();
    settle().await;
    leader.abort();
    settle().await;
    gate.notify_waiters();
    for waiter in waiters {
        let got = waiter.await.unwrap();
        assert_eq!(got.body, "slow answer");
        assert_eq!(got.cache_status(), "gateway; fwd=miss; collapsed");
    }
    assert_eq!(upstream.calls(), 1);
}

/// An upstream whose body the test feeds: each call hands over its sender.
fn streaming(
    headers: &'static [(&'static str, &'static str)],
) -> (
    Upstream,
    mpsc::UnboundedReceiver<mpsc::Sender<Result<Bytes, gateway_core::BoxError>>>,
) {
    let (senders, handed) = mpsc::unbounded_channel();
    let upstream = Upstream::new(move |_| {
        let (tx, rx) = mpsc::channel(4);
        let _ = senders.send(tx);
        async move {
            let mut builder = Response::builder();
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(TestBody::Channel(rx)).unwrap()
        }
    });
    (upstream, handed)
}

#[tokio::test]
async fn a_streamed_body_reaches_the_first_client_before_it_ends_and_is_stored_after() {
    let (upstream, mut handed) = streaming(&[("cache-control", "max-age=60")]);
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let response = cache
        .clone()
        .oneshot(common::get("/stream").body(()).unwrap())
        .await
        .unwrap();
    let body_tx = handed.recv().await.unwrap();
    body_tx
        .send(Ok(Bytes::from_static(b"first ")))
        .await
        .unwrap();
    let mut body = response.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "first ");
    // Not stored before the body ends.
    assert_eq!(cache.store().stats().entries, 0);
    body_tx
        .send(Ok(Bytes::from_static(b"second")))
        .await
        .unwrap();
    drop(body_tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
    let hit = fetch(&cache, "/stream").await;
    assert_eq!(hit.cache_status(), "gateway; hit");
    assert_eq!(hit.body, "first second");
    assert_eq!(hit.header("content-length"), Some("12"));
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn a_body_that_fails_or_outgrows_max_object_is_not_stored() {
    let (upstream, mut handed) = streaming(&[("cache-control", "max-age=60")]);
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let request = || common::get("/a").body(()).unwrap();
    let response = cache.clone().oneshot(request()).await.unwrap();
    let body_tx = handed.recv().await.unwrap();
    body_tx.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
    body_tx.send(Err("upstream reset".into())).await.unwrap();
    assert!(response.into_body().collect().await.is_err());
    assert_eq!(cache.store().stats().entries, 0);

    let store = gateway_cache::CacheStore::new(MIB, 8);
    let small = gateway_cache::Cache::new(upstream.clone(), store, CachePolicy::new());
    let response = small.clone().oneshot(request()).await.unwrap();
    let body_tx = handed.recv().await.unwrap();
    body_tx
        .send(Ok(Bytes::from_static(b"12345")))
        .await
        .unwrap();
    body_tx
        .send(Ok(Bytes::from_static(b"67890")))
        .await
        .unwrap();
    drop(body_tx);
    // The client gets all of it; the store keeps none of it.
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "1234567890"
    );
    assert_eq!(small.store().stats().entries, 0);
}

#[tokio::test]
async fn a_fetch_nobody_waits_for_is_given_up_when_its_client_leaves() {
    let (upstream, mut handed) = streaming(&[("cache-control", "max-age=60")]);
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let response = cache
        .clone()
        .oneshot(common::get("/a").body(()).unwrap())
        .await
        .unwrap();
    let body_tx = handed.recv().await.unwrap();
    body_tx.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
    drop(response);
    // The fetch drops the upstream body: the upstream sees its reader gone.
    tokio::time::timeout(Duration::from_secs(10), body_tx.closed())
        .await
        .expect("the fetch should give up the upstream body");
    assert_eq!(cache.store().stats().entries, 0);
    assert_eq!(cache.store().flights(), 0);
}

#[tokio::test]
async fn misses_of_a_known_variant_coalesce_on_that_variant() {
    let gate = Arc::new(Notify::new());
    let upstream = Upstream::new({
        let gate = gate.clone();
        move |request: http::Request<()>| {
            let gate = gate.clone();
            let language = request.headers()["accept-language"]
                .to_str()
                .unwrap()
                .to_owned();
            async move {
                if language != "en" {
                    gate.notified().await;
                }
                let headers = &[("cache-control", "max-age=60"), ("vary", "accept-language")];
                response(200, headers, &language)
            }
        }
    });
    let cache = cache(&upstream, CachePolicy::new(), MIB);
    let ask = |language: &'static str| {
        let cache = cache.clone();
        tokio::spawn(async move {
            let request = common::get("/v").header("accept-language", language);
            common::send(&cache, request.body(()).unwrap()).await
        })
    };
    assert_eq!(ask("en").await.unwrap().body, "en");
    let french: Vec<_> = (0..5).map(|_| ask("fr")).collect();
    let german: Vec<_> = (0..5).map(|_| ask("de")).collect();
    settle().await;
    // One fetch per variant, not one for the URI that the other variant's requests wait on.
    assert_eq!(upstream.calls(), 3);
    gate.notify_waiters();
    for (language, clients) in [("fr", french), ("de", german)] {
        for client in clients {
            assert_eq!(client.await.unwrap().body, language);
        }
    }
    assert_eq!(upstream.calls(), 3);
}
