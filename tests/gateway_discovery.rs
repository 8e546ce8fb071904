//! Discovery through the gateway binary: hostname targets resolved by a real DNS server on
//! loopback that the test steers, SRV targets, active health checks, weighted targets, and
//! what `/ready` and `/metrics` say of them, across a reload.

#[path = "../crates/proxy/tests/support/dns.rs"]
mod dns;
mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{TestGateway, config, get, json, metric};

/// An upstream on one loopback address that answers with its name, and `/healthz` with the
/// status the test sets.
struct Named {
    health: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Named {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Named {
    async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let health = Arc::new(AtomicU16::new(200));
        let name = addr.ip().to_string();
        let task = tokio::spawn({
            let health = health.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (health, name) = (health.clone(), name.clone());
                    let service = hyper::service::service_fn(move |request: http::Request<_>| {
                        let status = match request.uri().path() {
                            "/healthz" => health.load(Ordering::Relaxed),
                            _ => 200,
                        };
                        let response = http::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(name.clone())))
                            .unwrap();
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    tokio::spawn(
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned(),
                    );
                }
            }
        });
        Ok(Self { health, task })
    }

    fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::Relaxed);
    }
}

/// Upstreams on 127.0.0.1, .2 and .3, all on one port (what one hostname with several A
/// records looks like).
async fn three_named() -> (u16, [Named; 3]) {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let at = |last: u8| SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), port));
        if let (Ok(a), Ok(b), Ok(c)) = (
            Named::start(at(1)).await,
            Named::start(at(2)).await,
            Named::start(at(3)).await,
        ) {
            return (port, [a, b, c]);
        }
    }
    panic!("no port free on 127.0.0.1-3");
}

fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Who answered `n` requests to `path`, by name.
async fn spread(gw: &TestGateway, path: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let (parts, body) = get(&gw.url(path)).await;
        assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
        *seen
            .entry(String::from_utf8_lossy(&body).into_owned())
            .or_default() += 1;
    }
    seen
}

async fn ready(gw: &TestGateway) -> serde_json::Value {
    let (_, body) = get(&format!("http://{}/ready", gw.admin.unwrap())).await;
    json(&body)
}

async fn metrics(gw: &TestGateway) -> String {
    let (_, body) = get(&format!("http://{}/metrics", gw.admin.unwrap())).await;
    String::from_utf8_lossy(&body).into_owned()
}

/// The targets `/ready` lists for `upstream`, as (address, source, health) triples.
async fn targets(gw: &TestGateway, upstream: &str) -> Vec<(String, String, String)> {
    let ready = ready(gw).await;
    ready["upstreams"][upstream]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["address"].as_str().unwrap_or("-").to_owned(),
                t["source"].as_str().unwrap().to_owned(),
                t["health"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Polls `check` until it holds, for at most 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn discovery_config(dns: SocketAddr, port: u16, extra: &str) -> String {
    config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [resolver]\nnameservers = [\"{dns}\"]\ntimeout = \"200ms\"\nattempts = 1\n\
         [upstreams.svc]\ntargets = [\"http://svc.test:{port}\"]\nresolve_every = \"200ms\"\n\
         [upstreams.svc.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\n\
         [[routes]]\npath = \"/\"\nupstream = \"svc\"\n{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_follows_dns_and_health_checks_take_failing_addresses_out() {
    let dns = dns::DnsServer::start().await;
    let (port, upstreams) = three_named().await;
    dns.set_a("svc.test", &[loopback(1), loopback(2)], 1);
    let gw = TestGateway::start(&discovery_config(dns.addr(), port, ""));
    let addr = |last: u8| format!("127.0.0.{last}:{port}");

    // The first answer is in before the gateway serves.
    let listed = targets(&gw, "svc").await;
    assert_eq!(
        listed,
        [
            (addr(1), "dns".into(), "healthy".into()),
            (addr(2), "dns".into(), "healthy".into())
        ]
    );
    let seen = spread(&gw, "/x", 40).await;
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["127.0.0.1", "127.0.0.2"],
        "{seen:?}"
    );

    // A new answer: .1 leaves, .3 joins.
    dns.set_a("svc.test", &[loopback(2), loopback(3)], 1);
    eventually("the new addresses are the targets", || async {
        targets(&gw, "svc")
            .await
            .iter()
            .map(|t| t.0.clone())
            .collect::<Vec<_>>()
            == [addr(2), addr(3)]
    })
    .await;
    let seen = spread(&gw, "/x", 40).await;
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["127.0.0.2", "127.0.0.3"],
        "{seen:?}"
    );

    // .3 starts failing its probes: out of rotation, said in /ready and /metrics.
    upstreams[2].set_health(503);
    eventually(".3 is unhealthy", || async {
        targets(&gw, "svc")
            .await
            .contains(&(addr(3), "dns".into(), "unhealthy".into()))
    })
    .await;
    let detail = ready(&gw).await;
    let failing = detail["upstreams"]["svc"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["address"] == addr(3))
        .unwrap()
        .clone();
    assert_eq!(failing["last_probe"], "failed: status 503", "{failing}");
    assert_eq!(detail["upstreams"]["svc"]["fail_open"], false);
    let text = metrics(&gw).await;
    let healthy = |last: u8| {
        metric(
            &text,
            &format!(
                "gateway_upstream_target_healthy{{upstream=\"svc\",target=\"{}\"}}",
                addr(last)
            ),
        )
    };
    assert_eq!((healthy(2), healthy(3)), (Some(1.0), Some(0.0)), "{text}");
    assert!(
        metric(
            &text,
            "gateway_health_checks_total{upstream=\"svc\",result=\"fail\"}"
        )
        .is_some_and(|fails| fails >= 3.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "gateway_dns_resolutions_total{upstream=\"svc\",result=\"ok\"}"
        )
        .is_some_and(|ok| ok >= 2.0),
        "{text}"
    );
    let seen = spread(&gw, "/x", 20).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["127.0.0.2"], "{seen:?}");

    // A reload that leaves the upstream as it was keeps its resolved set and health.
    let changed = discovery_config(
        dns.addr(),
        port,
        "[[routes]]\npath = \"/other\"\nupstream = \"svc\"\n",
    );
    std::fs::write(&gw.config_path, changed).unwrap();
    gw.reload().unwrap();
    assert_eq!(
        targets(&gw, "svc").await,
        [
            (addr(2), "dns".into(), "healthy".into()),
            (addr(3), "dns".into(), "unhealthy".into())
        ]
    );

    // DNS goes silent: the last set stays, requests are still served, the failure counted.
    dns.set_answering(false);
    eventually("a failed lookup is counted", || async {
        metric(
            &metrics(&gw).await,
            "gateway_dns_resolutions_total{upstream=\"svc\",result=\"error\"}",
        )
        .is_some_and(|errors| errors >= 1.0)
    })
    .await;
    assert_eq!(targets(&gw, "svc").await.len(), 2);
    let seen = spread(&gw, "/x", 10).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["127.0.0.2"], "{seen:?}");

    // Every address failing: the gateway still tries them (fail open) and says so.
    upstreams[1].set_health(503);
    eventually("fail open is reported", || async {
        ready(&gw).await["upstreams"]["svc"]["fail_open"] == true
    })
    .await;
    let seen = spread(&gw, "/x", 20).await;
    assert_eq!(seen.values().sum::<usize>(), 20, "{seen:?}");
    drop(upstreams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_and_weighted_targets_set_the_shares() {
    let dns = dns::DnsServer::start().await;
    let (port, upstreams) = three_named().await;
    dns.set_a("a.svc.test", &[loopback(1)], 30);
    dns.set_a("b.svc.test", &[loopback(2)], 30);
    dns.set_srv(
        "_http._tcp.svc.test",
        &[
            dns::Srv {
                priority: 10,
                weight: 3,
                port,
                target: "a.svc.test.".into(),
            },
            dns::Srv {
                priority: 10,
                weight: 1,
                port,
                target: "b.svc.test.".into(),
            },
            // A worse priority: a backup, unused while the others exist.
            dns::Srv {
                priority: 20,
                weight: 100,
                port,
                target: "127.0.0.3".into(),
            },
        ],
        30,
    );
    let gw = TestGateway::start(&config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [resolver]\nnameservers = [\"{dns}\"]\ntimeout = \"200ms\"\nattempts = 1\n\
         [upstreams.srv]\nsrv = \"_http._tcp.svc.test\"\n\
         [upstreams.weighted]\ntargets = [{{ url = \"http://127.0.0.1:{port}\", weight = 9 }}, {{ url = \"http://127.0.0.2:{port}\", weight = 1 }}, {{ url = \"http://127.0.0.3:{port}\", weight = 0 }}]\n\
         [[routes]]\npath = \"/srv\"\nupstream = \"srv\"\n\
         [[routes]]\npath = \"/weighted\"\nupstream = \"weighted\"\n",
        dns = dns.addr(),
    )));

    let listed = targets(&gw, "srv").await;
    assert_eq!(
        listed,
        [
            (
                format!("127.0.0.1:{port}"),
                "srv".into(),
                "unchecked".into()
            ),
            (
                format!("127.0.0.2:{port}"),
                "srv".into(),
                "unchecked".into()
            )
        ]
    );
    let seen = spread(&gw, "/srv", 400).await;
    assert_eq!(seen.get("127.0.0.1"), Some(&300), "{seen:?}");
    assert_eq!(seen.get("127.0.0.2"), Some(&100), "{seen:?}");

    // 9:1, and weight 0 takes nothing: smooth weighted round robin is exact per cycle.
    let seen = spread(&gw, "/weighted", 1000).await;
    assert_eq!(seen.get("127.0.0.1"), Some(&900), "{seen:?}");
    assert_eq!(seen.get("127.0.0.2"), Some(&100), "{seen:?}");
    assert_eq!(seen.get("127.0.0.3"), None, "{seen:?}");
    let weights: Vec<u64> = ready(&gw).await["upstreams"]["weighted"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [9, 1, 0]);
    drop(upstreams);
}
