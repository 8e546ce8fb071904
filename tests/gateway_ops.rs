//! Operating the gateway: admin endpoints, exact metrics, hot reload under load, state that
//! survives a reload, and several instances sharing one Redis.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use support::redis::RedisServer;
use support::upstream::Upstream;
use support::{TestGateway, config, get, json, metric};

fn with_admin(rest: &str) -> String {
    config(&format!("[admin]\nlisten = \"127.0.0.1:0\"\n\n{rest}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reports_health_readiness_and_exact_metrics() {
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&with_admin(&format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n[upstreams.app.circuit_breaker]\nfailure_threshold = 5\n\
         [[routes]]\nname = \"users\"\npath = \"/users\"\nupstream = \"app\"\nstrip_prefix = true\n\
         [routes.rate_limit]\nlimit = 3\nwindow = \"1h\"\nkey = \"global\"\n",
        upstream.url()
    )));
    let admin = gw.admin.unwrap();
    let (parts, _) = get(&format!("http://{admin}/health")).await;
    assert_eq!(parts.status, StatusCode::OK);
    let (parts, body) = get(&format!("http://{admin}/ready")).await;
    assert_eq!(parts.status, StatusCode::OK);
    let ready = json(&body);
    assert_eq!(ready["upstreams"]["app"]["circuit_breaker"], "closed");
    assert_eq!(
        ready["upstreams"]["app"]["targets"][0]["url"],
        upstream.url()
    );
    assert_eq!(ready["config"]["version"], 1);

    for _ in 0..4 {
        get(&gw.url("/users/1")).await;
    }
    get(&gw.url("/users/status/500")).await; // limited: the 5th request
    get(&gw.url("/nowhere")).await;
    let (_, body) = get(&format!("http://{admin}/metrics")).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        metric(
            &text,
            "gateway_requests_total{route=\"users\",method=\"GET\",status=\"200\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "gateway_requests_total{route=\"users\",method=\"GET\",status=\"429\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "gateway_requests_total{route=\"_unmatched\",method=\"GET\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "gateway_ratelimit_decisions_total{route=\"users\",decision=\"allowed\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            "gateway_ratelimit_decisions_total{route=\"users\",decision=\"limited\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "gateway_request_duration_seconds_count{route=\"users\"}"
        ),
        Some(5.0)
    );
    assert_eq!(
        metric(
            &text,
            "gateway_upstream_duration_seconds_count{upstream=\"app\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(&text, "gateway_circuit_state{upstream=\"app\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "gateway_config_reloads_total{result=\"success\"}"),
        Some(0.0)
    );
    assert!(text.contains("# TYPE gateway_request_duration_seconds histogram"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_routes_keeps_counters_and_rejects_a_broken_config() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let route = |upstream: &str| {
        format!(
            "[upstreams.a]\ntargets = [\"{}\"]\n[upstreams.b]\ntargets = [\"{}\"]\n\
             [[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"{upstream}\"\n\
             [routes.rate_limit]\nlimit = 4\nwindow = \"1h\"\nkey = \"global\"\n",
            a.url(),
            b.url()
        )
    };
    let gw = TestGateway::start(&with_admin(&route("a")));
    for _ in 0..2 {
        assert_eq!(json(&get(&gw.url("/api")).await.1)["upstream"], "a");
    }
    std::fs::write(&gw.config_path, with_admin(&route("b"))).unwrap();
    assert_eq!(gw.reload(), Ok(2));
    // New requests take the new route; the limiter kept its count (2 of 4 used).
    assert_eq!(json(&get(&gw.url("/api")).await.1)["upstream"], "b");
    assert_eq!(get(&gw.url("/api")).await.0.status, StatusCode::OK);
    assert_eq!(
        get(&gw.url("/api")).await.0.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    std::fs::write(
        &gw.config_path,
        with_admin(&route("b")).replace("[[routes]]", "[[routes]"),
    )
    .unwrap();
    let error = gw.reload().unwrap_err();
    assert!(error.contains("gateway.toml:"), "{error}");
    assert_eq!(
        get(&gw.url("/api")).await.0.status,
        StatusCode::TOO_MANY_REQUESTS,
        "old config still serves"
    );
    let (_, body) = get(&format!("http://{}/metrics", gw.admin.unwrap())).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        metric(&text, "gateway_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "gateway_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing_and_keeps_tunnels_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let config_for = |upstream: &Upstream| {
        config(&format!(
            "[upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            upstream.url()
        ))
    };
    let gw = TestGateway::start(&config_for(&a));

    // A tunnel opened before the reload.
    let mut tunnel = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    tunnel
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: gw\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
    let head = support::read_head(&mut tunnel).await;
    assert!(head.starts_with(b"HTTP/1.1 101"));

    // Clients hammering throughout, each on keep-alive connections.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, failures, done, url) =
            (stop.clone(), failures.clone(), done.clone(), gw.url("/x"));
        clients.push(tokio::spawn(async move {
            let client = support::client();
            while !stop.load(Ordering::Relaxed) {
                let request = http::Request::get(&url).body(Default::default()).unwrap();
                match client.request(request).await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = if round % 2 == 0 { &b } else { &a };
        std::fs::write(&gw.config_path, config_for(next)).unwrap();
        gw.reload().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(done.load(Ordering::Relaxed) > 20);
    assert!(
        a.requests() > 0 && b.requests() > 0,
        "both generations served"
    );

    tunnel.write_all(b"still there?").await.unwrap();
    let mut echoed = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"still there?");
}

/// Sends `n` requests, alternating between two gateways, and counts those let through; every
/// other one must be refused with 429.
async fn allowed_through(one: &TestGateway, two: &TestGateway, n: usize) -> usize {
    let mut allowed = 0;
    for i in 0..n {
        let gw = if i % 2 == 0 { one } else { two };
        match get(&gw.url("/x")).await.0.status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_enforce_one_limit() {
    let redis = RedisServer::start();
    let upstream = Upstream::start("app").await;
    let text = config(&format!(
        "[redis]\nurl = \"{}\"\non_error = \"deny\"\ntimeout = \"500ms\"\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"shared\"\npath = \"/\"\nupstream = \"app\"\n\
         [routes.rate_limit]\nalgorithm = \"token_bucket\"\ncapacity = 7\nrefill_per_second = 0.001\nkey = \"global\"\n",
        redis.url(),
        upstream.url()
    ));
    let one = TestGateway::start(&text);
    let two = TestGateway::start(&text);
    assert_eq!(allowed_through(&one, &two, 20).await, 7);
    assert_eq!(upstream.requests(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_leasing_from_redis_enforce_one_limit() {
    let redis = RedisServer::start();
    let upstream = Upstream::start("app").await;
    let text = config(&format!(
        "[redis]\nurl = \"{}\"\ntimeout = \"500ms\"\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"leased\"\npath = \"/\"\nupstream = \"app\"\n\
         [routes.rate_limit]\nlimit = 10\nwindow = \"1h\"\nkey = \"global\"\nlease = 4\n",
        redis.url(),
        upstream.url()
    ));
    let one = TestGateway::start(&text);
    let two = TestGateway::start(&text);
    assert_eq!(allowed_through(&one, &two, 40).await, 10);
    assert_eq!(upstream.requests(), 10);
    // Leases of 4, 4 and 2 tokens, a refusal remembered by each instance, and the scripts'
    // first loads: a handful of calls for 40 requests.
    let calls = redis.calls("evalsha") + redis.calls("eval");
    assert!(calls <= 8, "{calls} script calls for 40 requests");
}
