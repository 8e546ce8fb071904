//! The Redis store against a real 3-node Redis Cluster.

mod support;

use std::time::Duration;

use gateway_ratelimit::{ClientKey, Policy, RateLimitBackend, RateLimitDecision, RedisConfig};
use support::RedisCluster;

#[tokio::test]
async fn limits_hold_on_every_node_of_a_cluster() {
    let cluster = RedisCluster::start();
    let mut config = RedisConfig::new(cluster.url().parse().unwrap());
    config.timeout = gateway_ratelimit::config::PositiveDuration(Duration::from_secs(2));
    let backend = RateLimitBackend::redis(&config).unwrap();
    assert!(backend.wait_connected(Duration::from_secs(10)).await);

    let routes = [
        backend.route(
            "fixed",
            Policy::fixed_window(3, Duration::from_secs(60)).unwrap(),
        ),
        backend.route("bucket", Policy::token_bucket(3, 0.01).unwrap()),
    ];
    for limiter in &routes {
        for client in 0..30u32 {
            let ip = std::net::IpAddr::from([10, 0, 0, client as u8]);
            let mut allowed = 0;
            for _ in 0..5 {
                match limiter.check(ClientKey::Ip(ip)).await.decision {
                    RateLimitDecision::Allowed => allowed += 1,
                    RateLimitDecision::Limited => {}
                    other => panic!("{}: unexpected {other:?}", limiter.route()),
                }
            }
            assert_eq!(allowed, 3, "{} client {client}", limiter.route());
        }
    }

    // The hash tag is per route and client, so the 60 keys spread over all three masters;
    // each master loaded each script on its first NOSCRIPT, at most once.
    for node in &cluster.nodes {
        let keys: u64 = node.cli(&["DBSIZE"]).trim().parse().unwrap();
        assert!(keys > 0, "node {} holds no key", node.port);
        let evals = node
            .command_calls()
            .into_iter()
            .find(|(name, _)| name == "eval")
            .map_or(0, |(_, calls)| calls);
        assert!(evals <= 2, "node {}: {evals} EVALs", node.port);
    }
    assert_eq!(backend.backend_errors_total(), 0);
}
