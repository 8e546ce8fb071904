//! The layer over the in-memory store.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::Identity;
use gateway_ratelimit::{
    ClientKey, Clock, HeaderMode, KeySource, Policy, RateLimitBackend, RateLimitDecision,
    RateLimitLayer,
};
use http::{HeaderName, StatusCode};
use http_body_util::BodyExt;
use support::{decision, ok_service, request_from, send};
use tower::{Layer, ServiceBuilder};

fn fixed(limit: u32, window: Duration) -> Policy {
    Policy::fixed_window(limit, window).unwrap()
}

#[tokio::test(start_paused = true)]
async fn exactly_the_limit_passes_then_429_until_the_window_ends() {
    let backend = RateLimitBackend::in_memory().with_clock(Clock::Tokio);
    let layer = RateLimitLayer::new(
        &backend,
        "api",
        fixed(5, Duration::from_secs(60)),
        KeySource::Ip,
    );
    let mut service = layer.layer(ok_service());

    for remaining in (0..5).rev() {
        let response = send(&mut service, request_from("192.0.2.1")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(decision(&response), RateLimitDecision::Allowed);
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            remaining.to_string()
        );
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"default\";q=5;w=60"
        );
        let reset: u64 = response.headers()["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&reset));
        assert_eq!(
            response.headers()["ratelimit"],
            format!("\"default\";r={remaining};t={reset}").as_str()
        );
    }

    let refused = send(&mut service, request_from("192.0.2.1")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(decision(&refused), RateLimitDecision::Limited);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(refused.headers()["x-ratelimit-remaining"], "0");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 429);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("5 requests per 1m")
    );

    // Another client has its own count.
    assert_eq!(
        send(&mut service, request_from("192.0.2.2")).await.status(),
        StatusCode::OK
    );

    tokio::time::advance(Duration::from_secs(retry_after)).await;
    for _ in 0..5 {
        assert_eq!(
            send(&mut service, request_from("192.0.2.1")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&mut service, request_from("192.0.2.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn token_bucket_refills_over_time() {
    let backend = RateLimitBackend::in_memory().with_clock(Clock::Tokio);
    // 4 tokens per second: one every 250ms.
    let policy = Policy::token_bucket(2, 4.0).unwrap();
    let mut service =
        RateLimitLayer::new(&backend, "api", policy, KeySource::Global).layer(ok_service());
    assert_eq!(passed(&mut service, 5).await, 2);
    tokio::time::advance(Duration::from_millis(249)).await;
    assert_eq!(passed(&mut service, 1).await, 0);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(passed(&mut service, 5).await, 1);
    tokio::time::advance(Duration::from_secs(10)).await;
    let response = send(&mut service, request_from("192.0.2.1")).await;
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"default\";q=2;w=1"
    );
    assert_eq!(response.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(passed(&mut service, 5).await, 1);
}

/// How many of `n` requests from one client pass.
async fn passed<S>(service: &mut S, n: usize) -> usize
where
    S: tower::Service<
            http::Request<()>,
            Response = support::TestResponse,
            Error = std::convert::Infallible,
        >,
{
    let mut ok = 0;
    for _ in 0..n {
        if send(service, request_from("192.0.2.1")).await.status() == StatusCode::OK {
            ok += 1;
        }
    }
    ok
}

#[test]
fn concurrent_requests_from_many_tasks_cannot_exceed_the_limit() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = RateLimitBackend::in_memory();
        let layer = RateLimitLayer::new(
            &backend,
            "api",
            fixed(300, Duration::from_secs(3600)),
            KeySource::Ip,
        );
        let service = layer.layer(ok_service());
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let mut service = service.clone();
                tokio::spawn(async move {
                    let mut ok = 0;
                    for _ in 0..20 {
                        if send(&mut service, request_from("192.0.2.1")).await.status()
                            == StatusCode::OK
                        {
                            ok += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    ok
                })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += task.await.unwrap();
        }
        assert_eq!(allowed, 300);
    });
}

#[tokio::test]
async fn user_header_and_global_keys() {
    let backend = RateLimitBackend::in_memory();
    let one = fixed(1, Duration::from_secs(60));
    let identity = |sub: &str| {
        let serde_json::Value::Object(claims) = serde_json::json!({ "sub": sub }) else {
            unreachable!()
        };
        Identity::new(Arc::new(claims))
    };

    // By user: the same user from two IPs shares one count; anonymous requests count per IP.
    let mut by_user =
        RateLimitLayer::new(&backend, "user", one, KeySource::User).layer(ok_service());
    let mut alice = request_from("192.0.2.1");
    alice.extensions_mut().insert(identity("alice"));
    assert_eq!(send(&mut by_user, alice).await.status(), StatusCode::OK);
    let mut alice_elsewhere = request_from("192.0.2.2");
    alice_elsewhere.extensions_mut().insert(identity("alice"));
    assert_eq!(
        send(&mut by_user, alice_elsewhere).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&mut by_user, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut by_user, request_from("192.0.2.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // By header: the same key from two IPs shares one count.
    let api_key = KeySource::Header(HeaderName::from_static("x-api-key"));
    let mut by_header = RateLimitLayer::new(&backend, "header", one, api_key).layer(ok_service());
    let with_key = |ip: &str, key: &'static str| {
        let mut request = request_from(ip);
        request
            .headers_mut()
            .insert("x-api-key", key.parse().unwrap());
        request
    };
    assert_eq!(
        send(&mut by_header, with_key("192.0.2.1", "k1"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut by_header, with_key("192.0.2.9", "k1"))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&mut by_header, with_key("192.0.2.1", "k2"))
            .await
            .status(),
        StatusCode::OK
    );

    // Global: everyone shares one count.
    let mut global =
        RateLimitLayer::new(&backend, "global", one, KeySource::Global).layer(ok_service());
    assert_eq!(
        send(&mut global, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut global, request_from("198.51.100.1"))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn routes_are_namespaced_and_survive_a_reload() {
    let backend = RateLimitBackend::in_memory();
    let policy = fixed(2, Duration::from_secs(60));
    let build = |route: &str, policy| {
        RateLimitLayer::new(&backend, route, policy, KeySource::Ip).layer(ok_service())
    };
    let mut a = build("a", policy);
    let mut b = build("b", policy);
    for _ in 0..2 {
        assert_eq!(
            send(&mut a, request_from("192.0.2.1")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&mut b, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );

    // A reload rebuilds route `a` with the same policy: its count is kept.
    drop(a);
    let mut a = build("a", policy);
    assert_eq!(
        send(&mut a, request_from("192.0.2.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // A changed policy starts afresh.
    let mut a = build("a", fixed(3, Duration::from_secs(60)));
    assert_eq!(
        send(&mut a, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );

    backend.retain_routes(|route| route == "b");
    let mut a = build("a", fixed(3, Duration::from_secs(60)));
    assert_eq!(
        send(&mut a, request_from("192.0.2.1")).await.headers()["x-ratelimit-remaining"],
        "2"
    );
}

#[tokio::test]
async fn header_mode_none_sends_no_rate_limit_headers() {
    let backend = RateLimitBackend::in_memory();
    let mut service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(
                &backend,
                "api",
                fixed(1, Duration::from_secs(60)),
                KeySource::Ip,
            )
            .headers(HeaderMode::None),
        )
        .service(ok_service());
    let response = send(&mut service, request_from("192.0.2.1")).await;
    assert!(response.headers().is_empty());
    assert_eq!(decision(&response), RateLimitDecision::Allowed);
    let refused = send(&mut service, request_from("192.0.2.1")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(!refused.headers().contains_key("x-ratelimit-remaining"));
}

#[tokio::test(start_paused = true)]
async fn memory_stays_bounded_with_a_million_distinct_keys() {
    const KEYS: u32 = 1_000_000;
    let backend = RateLimitBackend::in_memory().with_clock(Clock::Tokio);
    let limiter = backend.route("api", fixed(10, Duration::from_secs(1)));
    let mut peak = 0;
    for round in 0..3u32 {
        for i in 0..KEYS {
            let ip = IpAddr::V4(Ipv4Addr::from_bits(round * KEYS + i));
            assert!(limiter.check(ClientKey::Ip(ip)).await.decision.is_allowed());
            peak = peak.max(limiter.memory_keys());
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    // Without eviction 3M keys would be held; expired windows are swept as new keys arrive.
    assert!(peak <= 3 * KEYS as usize / 2, "peak {peak} keys");
    assert!(limiter.memory_keys() <= 3 * KEYS as usize / 2);
}
