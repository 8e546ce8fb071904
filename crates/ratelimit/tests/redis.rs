//! The layer over a real Redis: counting, time, sharing, failures and round trips.

mod support;

use std::time::{Duration, Instant};

use gateway_ratelimit::config::{OnError, PositiveDuration};
use gateway_ratelimit::{
    ClientKey, KeySource, Policy, RateLimitBackend, RateLimitDecision, RateLimitLayer, RedisConfig,
};
use http::StatusCode;
use support::{RedisServer, decision, ok_service, request_from, send};
use tower::Layer;

const CONNECT: Duration = Duration::from_secs(10);

async fn backend(config: &RedisConfig) -> RateLimitBackend {
    let backend = RateLimitBackend::redis(config).unwrap();
    assert!(
        backend.wait_connected(CONNECT).await,
        "no connection to Redis"
    );
    backend
}

fn fixed(limit: u32, window: Duration) -> Policy {
    Policy::fixed_window(limit, window).unwrap()
}

async fn check(limiter: &gateway_ratelimit::RouteLimiter, ip: &str) -> gateway_ratelimit::Verdict {
    limiter.check(ClientKey::Ip(ip.parse().unwrap())).await
}

/// Waits (bounded) until `key` no longer exists.
fn wait_expired(server: &RedisServer, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.cli(&["EXISTS", key]).trim() != "0" {
        assert!(Instant::now() < deadline, "{key} did not expire");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn fixed_window_allows_exactly_the_limit_and_rolls_over() {
    let server = RedisServer::start();
    let backend = backend(&server.config()).await;
    let layer = RateLimitLayer::new(
        &backend,
        "api",
        fixed(5, Duration::from_secs(2)),
        KeySource::Ip,
    );
    let mut service = layer.layer(ok_service());

    for remaining in (0..5).rev() {
        let response = send(&mut service, request_from("192.0.2.1")).await;
        assert_eq!(decision(&response), RateLimitDecision::Allowed);
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            remaining.to_string()
        );
    }
    let refused = send(&mut service, request_from("192.0.2.1")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(decision(&refused), RateLimitDecision::Limited);
    assert!(refused.headers().contains_key("retry-after"));

    // The counter carries a TTL of the window, set atomically with the first increment.
    let key = "gateway:rl:{api:ip:192.0.2.1}:fw:2000";
    assert_eq!(server.cli(&["GET", key]).trim(), "6");
    let ttl: i64 = server.cli(&["PTTL", key]).trim().parse().unwrap();
    assert!((1..=2000).contains(&ttl), "ttl {ttl}");

    wait_expired(&server, key);
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

#[tokio::test]
async fn token_bucket_uses_server_time_and_refills() {
    let server = RedisServer::start();
    let backend = backend(&server.config()).await;
    // One token every 500ms.
    let limiter = backend.route("api", Policy::token_bucket(3, 2.0).unwrap());

    for remaining in (0..3).rev() {
        let verdict = check(&limiter, "192.0.2.1").await;
        assert_eq!(verdict.decision, RateLimitDecision::Allowed);
        assert_eq!(verdict.quota.unwrap().remaining, remaining);
    }
    let refused = check(&limiter, "192.0.2.1").await;
    let after_refusal = server.time_us();
    assert_eq!(refused.decision, RateLimitDecision::Limited);
    let quota = refused.quota.unwrap();
    let retry = quota.retry_after.unwrap();
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(500),
        "{retry:?}"
    );
    assert!(
        quota.reset > Duration::from_millis(1000) && quota.reset <= Duration::from_millis(1500)
    );

    // The bucket expires when it would be full again.
    let key = "gateway:rl:{api:ip:192.0.2.1}:tb";
    let ttl: i64 = server.cli(&["PTTL", key]).trim().parse().unwrap();
    assert!((1..=1500).contains(&ttl), "ttl {ttl}");

    // Once the server clock has moved on by one interval, exactly one token is back.
    server.wait_for_time(after_refusal + 500_000);
    assert_eq!(
        check(&limiter, "192.0.2.1").await.decision,
        RateLimitDecision::Allowed
    );
    assert_eq!(
        check(&limiter, "192.0.2.1").await.decision,
        RateLimitDecision::Limited
    );

    wait_expired(&server, key);
    for _ in 0..3 {
        assert_eq!(
            check(&limiter, "192.0.2.1").await.decision,
            RateLimitDecision::Allowed
        );
    }
}

#[test]
fn concurrent_requests_cannot_exceed_the_limit() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = backend(&server.config()).await;
        let policies = [
            ("fixed", fixed(100, Duration::from_secs(3600))),
            ("bucket", Policy::token_bucket(100, 0.01).unwrap()),
        ];
        for (route, policy) in policies {
            let service =
                RateLimitLayer::new(&backend, route, policy, KeySource::Global).layer(ok_service());
            let tasks: Vec<_> = (0..64)
                .map(|i| {
                    let mut service = service.clone();
                    tokio::spawn(async move {
                        let mut ok = 0;
                        for _ in 0..10 {
                            let response =
                                send(&mut service, request_from(&format!("192.0.2.{i}"))).await;
                            match decision(&response) {
                                RateLimitDecision::Allowed => ok += 1,
                                RateLimitDecision::Limited => {}
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                        ok
                    })
                })
                .collect();
            assert_eq!(total(tasks).await, 100, "{route}");
        }
    });
}

/// The gateway's layout: the Redis pool lives on a control runtime, requests run on worker
/// threads with a current-thread runtime each (which may be replaced on the same thread).
#[test]
fn checks_from_worker_runtimes_share_one_limit() {
    let server = RedisServer::start();
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = control.block_on(backend(&server.config()));
    let limiter = backend.route("api", fixed(100, Duration::from_secs(3600)));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                let mut allowed = 0;
                // A second runtime on the same thread finds the first one's batcher gone.
                for _ in 0..2 {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    allowed += runtime.block_on(async {
                        let tasks: Vec<_> = (0..16)
                            .map(|_| {
                                let limiter = limiter.clone();
                                tokio::spawn(
                                    async move { allowed_of(&limiter, "192.0.2.1", 5).await },
                                )
                            })
                            .collect();
                        total(tasks).await
                    });
                }
                allowed
            })
        })
        .collect();
    let allowed: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    // 2 threads x 2 runtimes x 16 tasks x 5 checks = 320 checks of one client.
    assert_eq!(allowed, 100);
}

#[tokio::test]
async fn two_gateways_sharing_redis_enforce_one_limit() {
    let server = RedisServer::start();
    // Two backends are two pools, as two gateway processes would have.
    let first = backend(&server.config()).await;
    let second = backend(&server.config()).await;
    for policy in [
        fixed(5, Duration::from_secs(60)),
        Policy::token_bucket(5, 0.01).unwrap(),
    ] {
        let route = if policy.is_token_bucket() {
            "bucket"
        } else {
            "fixed"
        };
        let a = first.route(route, policy);
        let b = second.route(route, policy);
        let mut allowed = 0;
        for i in 0..10 {
            let limiter = if i % 2 == 0 { &a } else { &b };
            if check(limiter, "192.0.2.1").await.decision == RateLimitDecision::Allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "{route}");
    }
}

/// Redis killed mid-test, then restarted on the same port.
async fn kill_and_restart(on_error: OnError) {
    let mut server = RedisServer::start();
    let mut config = server.config();
    config.on_error = on_error;
    config.timeout = PositiveDuration(Duration::from_millis(50));
    let backend = backend(&config).await;
    let layer = RateLimitLayer::new(
        &backend,
        "api",
        fixed(3, Duration::from_secs(60)),
        KeySource::Ip,
    );
    let mut service = layer.layer(ok_service());
    for _ in 0..2 {
        assert_eq!(
            decision(&send(&mut service, request_from("192.0.2.1")).await),
            RateLimitDecision::Allowed
        );
    }

    server.kill();
    let mut decisions = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let response = send(&mut service, request_from("192.0.2.1")).await;
        // Never the reconnect backoff or a TCP timeout: at most the Redis timeout, plus slack.
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
        let expected_status = match decision(&response) {
            RateLimitDecision::FailClosed => StatusCode::SERVICE_UNAVAILABLE,
            RateLimitDecision::LocalLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::OK,
        };
        assert_eq!(response.status(), expected_status);
        decisions.push(decision(&response));
    }
    let expected = match on_error {
        OnError::Allow => vec![RateLimitDecision::FailOpen; 5],
        OnError::Deny => vec![RateLimitDecision::FailClosed; 5],
        // The local limiter starts its own count: 3 pass, then it limits.
        OnError::Local => [
            [RateLimitDecision::LocalAllowed; 3].as_slice(),
            &[RateLimitDecision::LocalLimited; 2],
        ]
        .concat(),
    };
    assert_eq!(decisions, expected);
    assert_eq!(backend.backend_errors_total(), 5);

    // Redis comes back (empty): limiting through Redis resumes without a restart.
    server.restart();
    assert!(backend.wait_connected(CONNECT).await, "no reconnection");
    // Under heavy machine load one call may still exceed the 50ms timeout (the first one
    // after the restart also reloads the script): such a request gets `on_error` again and
    // may or may not have been counted, so only an error-free run must count exactly 3.
    let mut after = Vec::new();
    while after.last() != Some(&RateLimitDecision::Limited) {
        assert!(after.len() < 20, "limiting did not resume: {after:?}");
        after.push(decision(
            &send(&mut service, request_from("192.0.2.1")).await,
        ));
    }
    let from_redis: Vec<_> = after.iter().filter(|d| !d.is_backend_error()).collect();
    let allowed = from_redis
        .iter()
        .filter(|d| ***d == RateLimitDecision::Allowed)
        .count();
    assert_eq!(from_redis.len(), allowed + 1, "{after:?}");
    if from_redis.len() == after.len() {
        assert_eq!(allowed, 3, "{after:?}");
    } else {
        assert!((1..=3).contains(&allowed), "{after:?}");
    }
}

#[tokio::test]
async fn redis_killed_with_on_error_allow_fails_open() {
    kill_and_restart(OnError::Allow).await;
}

#[tokio::test]
async fn redis_killed_with_on_error_deny_answers_503() {
    kill_and_restart(OnError::Deny).await;
}

#[tokio::test]
async fn redis_killed_with_on_error_local_keeps_limiting() {
    kill_and_restart(OnError::Local).await;
}

#[tokio::test]
async fn unresponsive_redis_costs_at_most_the_timeout() {
    let server = RedisServer::start();
    let mut config = server.config();
    config.on_error = OnError::Allow;
    config.timeout = PositiveDuration(Duration::from_millis(50));
    let backend = backend(&config).await;
    let limiter = backend.route("api", fixed(100, Duration::from_secs(60)));
    assert_eq!(
        check(&limiter, "192.0.2.1").await.decision,
        RateLimitDecision::Allowed
    );

    server.pause();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            check(&limiter, "192.0.2.1").await.decision,
            RateLimitDecision::FailOpen
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
    }
    server.resume();
    let deadline = Instant::now() + CONNECT;
    while check(&limiter, "192.0.2.1").await.decision != RateLimitDecision::Allowed {
        assert!(Instant::now() < deadline, "limiting did not resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn redis_down_at_startup_does_not_block_and_limiting_starts_when_it_comes_up() {
    // Reserve a port, then leave it closed.
    let mut server = RedisServer::start();
    server.kill();
    let mut config = server.config();
    config.on_error = OnError::Deny;
    let started = Instant::now();
    let backend = RateLimitBackend::redis(&config).unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(!backend.is_connected());
    let limiter = backend.route("api", fixed(1, Duration::from_secs(60)));
    assert_eq!(
        check(&limiter, "192.0.2.1").await.decision,
        RateLimitDecision::FailClosed
    );

    server.restart();
    assert!(backend.wait_connected(CONNECT).await);
    assert_eq!(
        check(&limiter, "192.0.2.1").await.decision,
        RateLimitDecision::Allowed
    );
    assert_eq!(
        check(&limiter, "192.0.2.1").await.decision,
        RateLimitDecision::Limited
    );
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let server = RedisServer::start();
    let backend = backend(&server.config()).await;
    let fixed_window = backend.route("fixed", fixed(4, Duration::from_secs(60)));
    let bucket = backend.route("bucket", Policy::token_bucket(4, 0.01).unwrap());
    for limiter in [&fixed_window, &bucket] {
        for _ in 0..2 {
            assert_eq!(
                check(limiter, "192.0.2.1").await.decision,
                RateLimitDecision::Allowed
            );
        }
    }
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
    server.cli(&["CONFIG", "RESETSTAT"]);
    for limiter in [&fixed_window, &bucket] {
        for _ in 0..2 {
            assert_eq!(
                check(limiter, "192.0.2.1").await.decision,
                RateLimitDecision::Allowed
            );
        }
        assert_eq!(
            check(limiter, "192.0.2.1").await.decision,
            RateLimitDecision::Limited
        );
    }
    let calls = server.command_calls();
    let eval = calls
        .iter()
        .find(|(name, _)| name == "eval")
        .map(|(_, n)| *n);
    // One EVAL per script after the flush reloaded it; every other call was an EVALSHA.
    assert_eq!(eval, Some(2), "{calls:?}");
}

#[tokio::test]
async fn one_round_trip_per_request() {
    let server = RedisServer::start();
    let backend = backend(&server.config()).await;
    let services = [
        RateLimitLayer::new(
            &backend,
            "fixed",
            fixed(1000, Duration::from_secs(60)),
            KeySource::Ip,
        ),
        RateLimitLayer::new(
            &backend,
            "bucket",
            Policy::token_bucket(1000, 1.0).unwrap(),
            KeySource::Ip,
        ),
    ];
    let mut services: Vec<_> = services
        .iter()
        .map(|layer| layer.layer(ok_service()))
        .collect();
    // Warm up: the first call of a script after startup may need its EVAL.
    for service in &mut services {
        send(service, request_from("192.0.2.1")).await;
    }
    // Wait for the whole pool to connect, so no connection handshake lands in the stats.
    let deadline = Instant::now() + CONNECT;
    while !server
        .cli(&["INFO", "clients"])
        .contains("connected_clients:3")
    {
        assert!(Instant::now() < deadline, "pool did not connect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.cli(&["CONFIG", "RESETSTAT"]);
    for i in 0..50 {
        for service in &mut services {
            let response = send(service, request_from(&format!("198.51.100.{i}"))).await;
            assert_eq!(decision(&response), RateLimitDecision::Allowed);
        }
    }
    // Commands the scripts run inside EVALSHA are counted too, but are no round trips.
    const IN_SCRIPTS: [&str; 6] = ["incrby", "pttl", "pexpire", "time", "get", "set"];
    // Neither are the test's own commands, nor a connection's setup: on a loaded machine the
    // client may drop a slow connection and set up a new one between two requests.
    const NOT_PER_REQUEST: [&str; 7] = [
        "info", "config", "hello", "client", "select", "ping", "command",
    ];
    let calls = server.command_calls();
    let round_trips: Vec<_> = calls
        .iter()
        .filter(|(name, _)| {
            !IN_SCRIPTS.contains(&name.as_str())
                && !NOT_PER_REQUEST
                    .iter()
                    .any(|prefix| name.starts_with(prefix))
        })
        .collect();
    assert_eq!(round_trips, [&("evalsha".to_owned(), 100)], "{calls:?}");
}

fn evalsha_calls(server: &RedisServer) -> u64 {
    server
        .command_calls()
        .iter()
        .find(|(name, _)| name == "evalsha")
        .map_or(0, |(_, calls)| *calls)
}

/// Counts the checks of `ip` that `limiter` allows out of `n`; every other check must be
/// limited (no Redis failure is expected).
async fn allowed_of(limiter: &gateway_ratelimit::RouteLimiter, ip: &str, n: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        match check(limiter, ip).await.decision {
            RateLimitDecision::Allowed => allowed += 1,
            RateLimitDecision::Limited => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    allowed
}

/// Waits for the tasks and adds up what they return.
async fn total(tasks: Vec<tokio::task::JoinHandle<usize>>) -> usize {
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

#[tokio::test]
async fn leases_cut_redis_calls_and_never_exceed_the_limit() {
    let server = RedisServer::start();
    // Two backends are two gateway instances.
    let first = backend(&server.config()).await;
    let second = backend(&server.config()).await;
    let policy = fixed(100, Duration::from_secs(3600));
    let a = first.route("api", policy).with_lease(10);
    let b = second.route("api", policy).with_lease(10);
    // Loads the script, so that its first NOSCRIPT is not in the count below.
    check(&a, "198.51.100.1").await;
    server.cli(&["CONFIG", "RESETSTAT"]);

    let mut allowed = 0;
    for i in 0..300 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if check(limiter, "192.0.2.1").await.decision == RateLimitDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 100);
    // 10 leases of 10, then one refusal per instance, remembered until the window ends.
    assert_eq!(evalsha_calls(&server), 12);
    assert_eq!(
        server
            .cli(&["GET", "gateway:rl:{api:ip:192.0.2.1}:fw:3600000"])
            .trim(),
        "100",
        "refused asks count nothing"
    );
}

#[tokio::test]
async fn leases_are_granted_partially_at_the_limit() {
    let server = RedisServer::start();
    let backend = backend(&server.config()).await;
    let fixed = backend
        .route("fixed", fixed(25, Duration::from_secs(3600)))
        .with_lease(10);
    assert_eq!(allowed_of(&fixed, "192.0.2.1", 40).await, 25);

    let bucket = backend
        .route("bucket", Policy::token_bucket(20, 0.001).unwrap())
        .with_lease(8);
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert_eq!(allowed_of(&bucket, "192.0.2.1", 30).await, 20);
    // 8 + 8 + 4 tokens, then one refusal (the first call also loaded the script).
    let calls = server.command_calls();
    let script_calls: u64 = calls
        .iter()
        .filter(|(name, _)| name == "evalsha" || name == "eval")
        .map(|(_, n)| n)
        .sum();
    assert!((4..=5).contains(&script_calls), "{calls:?}");
}

#[tokio::test]
async fn a_refused_lease_ends_with_the_window() {
    let server = RedisServer::start();
    let backend = backend(&server.config()).await;
    let limiter = backend
        .route("api", fixed(4, Duration::from_millis(400)))
        .with_lease(4);
    assert_eq!(allowed_of(&limiter, "192.0.2.1", 6).await, 4);
    let refused = check(&limiter, "192.0.2.1").await;
    assert_eq!(refused.decision, RateLimitDecision::Limited);
    assert!(refused.quota.unwrap().retry_after.unwrap() <= Duration::from_millis(400));
    wait_expired(&server, "gateway:rl:{api:ip:192.0.2.1}:fw:400");
    // The local refusal ends with the window (the gateway's clock ticks in a few ms).
    let deadline = Instant::now() + Duration::from_secs(5);
    while check(&limiter, "192.0.2.1").await.decision != RateLimitDecision::Allowed {
        assert!(Instant::now() < deadline, "still refused after the window");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn leased_tokens_are_spent_while_redis_is_down() {
    let mut server = RedisServer::start();
    let mut config = server.config();
    config.on_error = OnError::Deny;
    let backend = backend(&config).await;
    let limiter = backend
        .route("api", fixed(100, Duration::from_secs(3600)))
        .with_lease(10);
    assert_eq!(allowed_of(&limiter, "192.0.2.1", 3).await, 3);
    server.kill();
    // 7 tokens of the lease are left; then Redis is needed and `on_error = "deny"` applies.
    assert_eq!(allowed_of(&limiter, "192.0.2.1", 7).await, 7);
    assert_eq!(
        check(&limiter, "192.0.2.1").await.decision,
        RateLimitDecision::FailClosed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_leases_of_two_instances_admit_exactly_the_limit() {
    let server = RedisServer::start();
    let policy = fixed(100, Duration::from_secs(3600));
    let a = backend(&server.config())
        .await
        .route("api", policy)
        .with_lease(7);
    let b = backend(&server.config())
        .await
        .route("api", policy)
        .with_lease(7);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { allowed_of(&limiter, "192.0.2.1", 10).await })
        })
        .collect();
    // Never more than the limit; and with checks to spare, no granted token is lost.
    assert_eq!(total(tasks).await, 100);
}
