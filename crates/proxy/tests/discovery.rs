//! Upstream discovery against a real resolver and a steerable DNS server: hostnames expanded
//! to their addresses, SRV records, answers that change, fail or go empty, and draining.

mod common;
#[path = "support/dns.rs"]
mod dns;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use dns::{DnsServer, Srv};
use gateway_proxy::{Proxy, Resolver, ResolverOptions, TargetSource, Upstream};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Short enough that a change shows within a few hundred milliseconds.
const RESOLVE_EVERY: Duration = Duration::from_millis(200);

/// How long a change in DNS may take to show in the targets: a few lookup periods.
const FOLLOW_WITHIN: Duration = Duration::from_secs(5);

fn resolver(dns: &DnsServer) -> Resolver {
    ResolverOptions::new()
        .nameservers([dns.addr()])
        .timeout(Duration::from_millis(200))
        .attempts(1)
        .build()
        .unwrap()
}

fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Servers on 127.0.0.1, .2 and .3 at one port, answering with their own address.
async fn three_hosts() -> Vec<UpstreamServer> {
    let ips = [1, 2, 3].map(|last| IpAddr::V4(loopback(last)));
    same_port_listeners(&ips)
        .await
        .into_iter()
        .map(serve_identity)
        .collect()
}

fn serve_identity(listener: TcpListener) -> UpstreamServer {
    let me = listener.local_addr().unwrap().to_string();
    serve(listener, move |_request: Request<Incoming>| {
        let me = me.clone();
        async move { Response::new(full(me)) }
    })
}

/// Answers with its own address; on `/slow`, sends the head and a first chunk at once and
/// the rest only once `release` turns true, and counts the bodies it completed.
fn serve_holding(
    listener: TcpListener,
    release: watch::Receiver<bool>,
    completed: Arc<AtomicUsize>,
) -> UpstreamServer {
    let me = listener.local_addr().unwrap().to_string();
    serve(listener, move |request: Request<Incoming>| {
        let me = me.clone();
        let mut release = release.clone();
        let completed = completed.clone();
        async move {
            if request.uri().path() != "/slow" {
                return Response::new(full(me));
            }
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first half,")).await;
                let _ = release.wait_for(|&released| released).await;
                if tx.send(Bytes::from_static(b" second half")).await.is_ok() {
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            });
            Response::builder()
                .header("x-upstream", me)
                .body(body.boxed())
                .unwrap()
        }
    })
}

/// The resolved addresses of the upstream's targets, sorted: their order is not the point.
fn addresses(upstream: &Upstream) -> Vec<Option<SocketAddr>> {
    let mut addresses: Vec<_> = upstream.targets().map(|target| target.address).collect();
    addresses.sort();
    addresses
}

/// Sends `n` requests one after the other; counts the answers by the upstream that gave them.
async fn spread(client: &mut SendRequest<TestBody>, n: usize) -> BTreeMap<String, usize> {
    let mut served = BTreeMap::new();
    for _ in 0..n {
        let response = client.send_request(get("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        *served.entry(text(response).await).or_default() += 1;
    }
    served
}

fn shares<const N: usize>(servers: [(&UpstreamServer, usize); N]) -> BTreeMap<String, usize> {
    servers
        .into_iter()
        .map(|(server, count)| (server.addr.to_string(), count))
        .collect()
}

/// The upstream `http://svc.test:{port}`, resolved through `dns` every `RESOLVE_EVERY`, once
/// its first lookup has answered.
async fn svc_upstream(dns: &DnsServer, port: u16) -> Upstream {
    let upstream = Upstream::builder("svc", [format!("http://svc.test:{port}")])
        .resolver(resolver(dns))
        .resolve_every(RESOLVE_EVERY)
        .build()
        .unwrap();
    within(FOLLOW_WITHIN, "first lookup", upstream.resolved()).await;
    upstream
}

async fn within<F: std::future::Future>(limit: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("not within {limit:?}: {what}"))
}

#[tokio::test]
async fn a_hostname_becomes_one_target_per_address_and_follows_the_answer() {
    bounded(async {
        let servers = three_hosts().await;
        let port = servers[0].addr.port();
        let dns = DnsServer::start().await;
        dns.set_a("svc.test", &[loopback(1), loopback(2)], 1);
        let url = format!("http://svc.test:{port}");
        let upstream = svc_upstream(&dns, port).await;

        assert_eq!(
            addresses(&upstream),
            [Some(servers[0].addr), Some(servers[1].addr)]
        );
        for target in upstream.targets() {
            assert_eq!(target.source, TargetSource::Dns, "{target:?}");
            assert_eq!(target.url.as_str(), url);
            assert_eq!(target.weight, 1);
        }

        let gateway = gateway(Proxy::new(upstream.clone())).await;
        let mut client = h1_client(gateway).await;
        assert_eq!(
            spread(&mut client, 20).await,
            shares([(&servers[0], 10), (&servers[1], 10)])
        );
        let kept_connections = servers[1].connections();

        // One address removed, one added.
        dns.set_a("svc.test", &[loopback(2), loopback(3)], 1);
        eventually(FOLLOW_WITHIN, "the targets follow the new answer", || {
            (addresses(&upstream) == [Some(servers[1].addr), Some(servers[2].addr)]).then_some(())
        })
        .await;
        assert!(
            upstream
                .targets()
                .all(|target| target.source == TargetSource::Dns)
        );

        let removed_requests = servers[0].requests();
        assert_eq!(
            spread(&mut client, 20).await,
            shares([(&servers[1], 10), (&servers[2], 10)])
        );
        assert_eq!(servers[0].requests(), removed_requests);
        // The address that stayed is the same target: its pooled connection was reused.
        assert_eq!(servers[1].connections(), kept_connections);
        // Using the pools after the removal closes the removed target's idle connection.
        eventually(
            FOLLOW_WITHIN,
            "the removed target's connection closes",
            || (servers[0].open_connections() == 0).then_some(()),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_removed_address_drains_its_requests_then_closes_its_connections() {
    bounded(async {
        let (release, released) = watch::channel(false);
        let completed = Arc::new(AtomicUsize::new(0));
        let ips = [1, 2].map(|last| IpAddr::V4(loopback(last)));
        let servers: Vec<UpstreamServer> = same_port_listeners(&ips)
            .await
            .into_iter()
            .map(|listener| serve_holding(listener, released.clone(), completed.clone()))
            .collect();
        let port = servers[0].addr.port();
        let dns = DnsServer::start().await;
        dns.set_a("svc.test", &[loopback(1), loopback(2)], 1);
        let upstream = svc_upstream(&dns, port).await;
        assert_eq!(upstream.targets().len(), 2);
        let gateway = gateway(Proxy::new(upstream.clone())).await;

        // Idle pooled connections to both addresses.
        let mut client = h1_client(gateway).await;
        assert_eq!(spread(&mut client, 4).await.len(), 2);

        let mut slow_client = h1_client(gateway).await;
        let slow = slow_client.send_request(get("/slow")).await.unwrap();
        assert_eq!(slow.status(), StatusCode::OK);
        let holder = slow.headers()["x-upstream"].to_str().unwrap().to_owned();
        let (victim, survivor) = if holder == servers[0].addr.to_string() {
            (&servers[0], &servers[1])
        } else {
            (&servers[1], &servers[0])
        };
        assert_eq!(holder, victim.addr.to_string());
        assert!(victim.open_connections() >= 1);

        // Requests all along the change, none of which may fail.
        let (stop, stopped) = watch::channel(false);
        let load = tokio::spawn(async move {
            let mut client = h1_client(gateway).await;
            let mut statuses = Vec::new();
            let mut pace = tokio::time::interval(Duration::from_millis(10));
            while !*stopped.borrow() {
                pace.tick().await;
                let response = client.send_request(get("/")).await.unwrap();
                statuses.push(response.status());
                text(response).await;
            }
            statuses
        });

        let IpAddr::V4(survivor_ip) = survivor.addr.ip() else {
            unreachable!("the servers are on IPv4 loopback")
        };
        dns.set_a("svc.test", &[survivor_ip], 1);
        eventually(
            FOLLOW_WITHIN,
            "the victim's address leaves the targets",
            || (addresses(&upstream) == [Some(survivor.addr)]).then_some(()),
        )
        .await;
        let victim_requests = victim.requests();
        assert_eq!(
            spread(&mut client, 6).await,
            shares([(survivor, 6)]),
            "requests went to a removed address"
        );
        assert_eq!(victim.requests(), victim_requests);

        stop.send(true).unwrap();
        let statuses = load.await.unwrap();
        assert!(!statuses.is_empty());
        assert!(
            statuses.iter().all(|&status| status == StatusCode::OK),
            "{statuses:?}"
        );

        release.send(true).unwrap();
        let body = slow.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "first half, second half");
        assert_eq!(completed.load(Ordering::SeqCst), 1);

        // Nothing uses the pools any more: the sweep alone has to drop the removed target's
        // pool. The gateway runs on this thread (current-thread runtime), where its pools are.
        eventually(
            FOLLOW_WITHIN,
            "the removed target's connections close",
            || {
                gateway_proxy::sweep_idle_connections();
                (victim.open_connections() == 0).then_some(())
            },
        )
        .await;
        assert!(survivor.open_connections() >= 1);
    })
    .await;
}

/// The ways a DNS answer can be of no use, in the order the test goes through them.
#[derive(Clone, Copy, Debug)]
enum Bad {
    Silent,
    ServFail,
    NxDomain,
    NoData,
}

impl Bad {
    /// Turns the previous phase's fault off and this one's on.
    fn steer(self, dns: &DnsServer) {
        match self {
            Self::Silent => dns.set_answering(false),
            Self::ServFail => {
                dns.set_servfail(true);
                dns.set_answering(true);
            }
            Self::NxDomain => {
                dns.set_servfail(false);
                dns.remove("svc.test");
            }
            Self::NoData => dns.set_a("svc.test", &[], 1),
        }
    }

    /// Counted as a failed lookup rather than an empty one.
    fn fails(self) -> bool {
        matches!(self, Self::Silent | Self::ServFail)
    }
}

#[tokio::test]
async fn failed_and_empty_answers_keep_the_last_targets() {
    bounded(async {
        let servers = three_hosts().await;
        let port = servers[0].addr.port();
        let dns = DnsServer::start().await;
        dns.set_a("svc.test", &[loopback(1), loopback(2)], 1);
        let upstream = svc_upstream(&dns, port).await;
        let resolved = [Some(servers[0].addr), Some(servers[1].addr)];
        assert_eq!(addresses(&upstream), resolved);
        let counters = upstream.discovery_counters();
        assert!(counters.resolutions_ok() >= 1);
        assert_eq!(counters.resolutions_failed(), 0);
        assert_eq!(counters.resolutions_empty(), 0);

        let gateway = gateway(Proxy::new(upstream.clone())).await;
        let mut client = h1_client(gateway).await;

        let count = |failed: bool| {
            if failed {
                counters.resolutions_failed()
            } else {
                counters.resolutions_empty()
            }
        };
        for phase in [Bad::Silent, Bad::ServFail, Bad::NxDomain, Bad::NoData] {
            let failing = phase.fails();
            let before = count(failing);
            let asked = dns.queries("svc.test");
            phase.steer(&dns);
            let phase = format!("{phase:?}");
            eventually(FOLLOW_WITHIN, &phase, || {
                (count(failing) > before).then_some(())
            })
            .await;
            // Lookups of a name are made one at a time: a lookup in flight at the change
            // could count the old way, but none after the first one counted the new way.
            let (seen, other) = (count(failing), count(!failing));
            eventually(FOLLOW_WITHIN, &phase, || {
                (count(failing) >= seen + 2).then_some(())
            })
            .await;
            assert_eq!(count(!failing), other, "{phase}");
            assert!(dns.queries("svc.test") > asked, "{phase}");
            assert_eq!(addresses(&upstream), resolved, "{phase}");
            assert_eq!(
                spread(&mut client, 10).await,
                shares([(&servers[0], 5), (&servers[1], 5)]),
                "{phase}"
            );
        }

        // Discovery survived all of it: a good answer is followed again.
        dns.set_a("svc.test", &[loopback(3)], 1);
        eventually(
            FOLLOW_WITHIN,
            "the targets follow a good answer again",
            || (addresses(&upstream) == [Some(servers[2].addr)]).then_some(()),
        )
        .await;
        assert_eq!(spread(&mut client, 4).await, shares([(&servers[2], 4)]));
    })
    .await;
}

#[tokio::test]
async fn srv_records_give_targets_weighted_by_the_best_priority() {
    bounded(async {
        let heavy = serve_identity(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let light = serve_identity(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let backup = serve_identity(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let dns = DnsServer::start().await;
        let record = |priority, weight, server: &UpstreamServer, host: &str| Srv {
            priority,
            weight,
            port: server.addr.port(),
            target: host.to_owned(),
        };
        dns.set_srv(
            "_http._tcp.svc.test",
            &[
                record(10, 9, &heavy, "heavy.svc.test"),
                record(20, 100, &backup, "backup.svc.test"),
                record(10, 1, &light, "light.svc.test"),
            ],
            1,
        );
        for host in ["heavy.svc.test", "light.svc.test", "backup.svc.test"] {
            dns.set_a(host, &[loopback(1)], 1);
        }
        let upstream = Upstream::builder("svc", Vec::<String>::new())
            .srv("_http._tcp.svc.test")
            .resolver(resolver(&dns))
            .resolve_every(RESOLVE_EVERY)
            .build()
            .unwrap();
        within(FOLLOW_WITHIN, "first lookup", upstream.resolved()).await;

        let mut targets: Vec<(String, Option<SocketAddr>, u32, TargetSource)> = upstream
            .targets()
            .map(|t| (t.url.to_string(), t.address, t.weight, t.source))
            .collect();
        targets.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = |server: &UpstreamServer, host: &str, weight| {
            (
                format!("http://{host}:{}", server.addr.port()),
                Some(server.addr),
                weight,
                TargetSource::Srv,
            )
        };
        assert_eq!(
            targets,
            [
                expected(&heavy, "heavy.svc.test", 9),
                expected(&light, "light.svc.test", 1),
            ]
        );

        let gateway = gateway(Proxy::new(upstream.clone())).await;
        let mut client = h1_client(gateway).await;
        let served = spread(&mut client, 1000).await;
        let heavy_share = served.get(&heavy.addr.to_string()).copied().unwrap_or(0);
        let light_share = served.get(&light.addr.to_string()).copied().unwrap_or(0);
        assert_eq!(heavy_share + light_share, 1000, "{served:?}");
        assert!((870..=930).contains(&heavy_share), "{served:?}");
        assert_eq!(backup.requests(), 0);
    })
    .await;
}

/// What a resolver whose nameserver never answers does to an upstream. A name it is asked
/// about keeps the target it started as: no address, looked up per connection. `localhost`
/// is never asked about: hickory answers it itself (RFC 6761), with 127.0.0.1 and ::1.
#[tokio::test]
async fn a_silent_nameserver_leaves_names_to_the_per_connection_lookup() {
    bounded(async {
        let local = serve_identity(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let port = local.addr.port();
        let dns = DnsServer::start().await;
        dns.set_answering(false);
        // Long enough that the requests below surely fit in the first round of lookups.
        let query_timeout = Duration::from_secs(2);
        let resolver = ResolverOptions::new()
            .nameservers([dns.addr()])
            .timeout(query_timeout)
            .attempts(1)
            .build()
            .unwrap();
        // `never.test` is looked up first (configuration order) and holds the first round
        // for the query timeout: meanwhile `localhost` is as configured. Weight 0 keeps
        // requests off it, as no lookup of it could ever succeed.
        let never = format!("http://never.test:{port}");
        let localhost = format!("http://localhost:{port}");
        let upstream = Upstream::builder("local", [(never.clone(), 0), (localhost.clone(), 1)])
            .resolver(resolver)
            .resolve_every(RESOLVE_EVERY)
            .build()
            .unwrap();
        let configured = |upstream: &Upstream| {
            upstream
                .targets()
                .map(|t| (t.url.to_string(), t.address, t.source))
                .collect::<Vec<_>>()
        };
        let as_configured = [
            (never.clone(), None, TargetSource::Static),
            (localhost.clone(), None, TargetSource::Static),
        ];
        assert_eq!(configured(&upstream), as_configured);

        let gateway = gateway(Proxy::new(upstream.clone())).await;
        let mut client = h1_client(gateway).await;
        assert_eq!(spread(&mut client, 5).await, shares([(&local, 5)]));
        // Served with no address known: through the lookup made per connection.
        assert_eq!(configured(&upstream), as_configured);
        assert_eq!(upstream.discovery_counters().resolutions_failed(), 0);

        within(
            query_timeout * 3,
            "the first round of lookups",
            upstream.resolved(),
        )
        .await;
        let counters = upstream.discovery_counters();
        assert!(counters.resolutions_failed() >= 1);
        assert!(counters.resolutions_ok() >= 1);
        assert!(dns.queries("never.test") >= 1);
        assert_eq!(dns.queries("localhost"), 0);
        let v6 = SocketAddr::new(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]), port);
        assert_eq!(
            configured(&upstream),
            [
                (never.clone(), None, TargetSource::Static),
                (localhost.clone(), Some(local.addr), TargetSource::Dns),
                (localhost.clone(), Some(v6), TargetSource::Dns),
            ]
        );

        // Nothing listens on [::1]: that target refuses, is ejected, and its requests are
        // retried on 127.0.0.1.
        assert_eq!(spread(&mut client, 10).await, shares([(&local, 10)]));
        let ejected: Vec<bool> = upstream.targets().map(|t| t.ejected).collect();
        assert_eq!(ejected, [false, false, true]);
    })
    .await;
}
