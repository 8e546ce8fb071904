//! The steerable test DNS server (`support/dns.rs`) against the real hickory resolver: what
//! upstream discovery tests rely on it to do.

#[path = "support/dns.rs"]
mod dns;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use dns::{DnsServer, NEGATIVE_TTL, Srv};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, ResolverBuilder, TokioResolver};
use tokio::io::AsyncWriteExt;

const TIMEOUT: Duration = Duration::from_millis(200);

/// A resolver builder whose only name server is `server`, over `connections` (UDP first when
/// both are given, then TCP on truncation), with a resolver that caches nothing, so every
/// lookup reaches the server.
fn builder_over(
    server: &DnsServer,
    connections: Vec<ConnectionConfig>,
) -> ResolverBuilder<TokioRuntimeProvider> {
    let addr = server.addr();
    let connections = connections
        .into_iter()
        .map(|mut connection| {
            connection.port = addr.port();
            connection
        })
        .collect();
    let name_server = NameServerConfig::new(addr.ip(), true, connections);
    let config = ResolverConfig::from_name_servers(vec![name_server]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    options.timeout = TIMEOUT;
    options.attempts = 1;
    // moka with a capacity of 0 stores nothing; a small positive_max_ttl would instead rewrite
    // the TTLs the tests check.
    options.cache_size = 0;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.use_hosts_file = ResolveHosts::Never;
    builder
}

fn resolver_over(server: &DnsServer, connections: Vec<ConnectionConfig>) -> TokioResolver {
    builder_over(server, connections).build().unwrap()
}

fn resolver(server: &DnsServer) -> TokioResolver {
    resolver_over(
        server,
        vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
    )
}

fn ipv4s(lookup: &Lookup) -> Vec<Ipv4Addr> {
    lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn ttls(lookup: &Lookup) -> BTreeSet<u32> {
    lookup.answers().iter().map(|record| record.ttl).collect()
}

/// `valid_until` is the lookup time plus the smallest TTL.
fn assert_valid_for(lookup_valid_until: Instant, before: Instant, ttl: u64) {
    let ttl = Duration::from_secs(ttl);
    assert!(lookup_valid_until >= before + ttl, "valid_until too early");
    assert!(
        lookup_valid_until <= Instant::now() + ttl,
        "valid_until too late"
    );
}

fn no_records(error: &NetError) -> &NoRecords {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => no_records,
        other => panic!("expected no records, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lookup_returns_the_addresses_and_their_ttl() {
    let server = DnsServer::start().await;
    let ips = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
    server.set_a("API.test", &ips, 30);
    let resolver = resolver(&server);

    let before = Instant::now();
    let lookup = resolver.ipv4_lookup("api.test.").await.unwrap();

    assert_eq!(ipv4s(&lookup), ips);
    assert_eq!(ttls(&lookup), BTreeSet::from([30]));
    assert_valid_for(lookup.valid_until(), before, 30);
    assert!(lookup.message().metadata.authoritative);
    assert_eq!(server.queries("api.test."), 1);
    assert_eq!(server.queries("Api.Test"), 1);
}

#[tokio::test]
async fn aaaa_lookup_returns_the_addresses() {
    let server = DnsServer::start().await;
    let ips = [Ipv6Addr::LOCALHOST, "2001:db8::7".parse().unwrap()];
    server.set_aaaa("v6.test.", &ips, 45);
    let resolver = resolver(&server);

    let lookup = resolver.ipv6_lookup("V6.TEST.").await.unwrap();

    let found: Vec<Ipv6Addr> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::AAAA(aaaa) => Some(aaaa.0),
            _ => None,
        })
        .collect();
    assert_eq!(found, ips);
    assert_eq!(ttls(&lookup), BTreeSet::from([45]));
}

#[tokio::test]
async fn lookup_ip_returns_both_families() {
    let server = DnsServer::start().await;
    server.set_a("dual.test", &[Ipv4Addr::new(192, 0, 2, 1)], 20);
    server.set_aaaa("dual.test", &["2001:db8::1".parse().unwrap()], 10);
    let resolver = resolver(&server);

    let before = Instant::now();
    let lookup = resolver.lookup_ip("dual.test.").await.unwrap();

    let ips: Vec<IpAddr> = lookup.iter().collect();
    assert_eq!(
        ips,
        [
            IpAddr::from([192, 0, 2, 1]),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        ]
    );
    // The two answers are merged; the result is valid as long as the shorter-lived one.
    assert_valid_for(lookup.valid_until(), before, 10);
    assert_eq!(server.queries("dual.test"), 2);
}

#[tokio::test]
async fn lookup_ip_of_a_v4_only_name_gets_nodata_for_aaaa() {
    let server = DnsServer::start().await;
    server.set_a("v4only.test", &[Ipv4Addr::new(192, 0, 2, 9)], 20);
    let resolver = resolver(&server);

    let ips: Vec<IpAddr> = resolver
        .lookup_ip("v4only.test.")
        .await
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ips, [IpAddr::from([192, 0, 2, 9])]);

    let error = resolver.ipv6_lookup("v4only.test.").await.unwrap_err();
    let no_records = no_records(&error);
    assert_eq!(no_records.response_code, ResponseCode::NoError);
    assert_eq!(no_records.negative_ttl, Some(NEGATIVE_TTL));
    assert!(no_records.soa.is_some());
}

#[tokio::test]
async fn srv_lookup_returns_the_records_and_the_targets_addresses() {
    let server = DnsServer::start().await;
    server.set_srv(
        "_http._tcp.svc.test",
        &[
            Srv {
                priority: 10,
                weight: 60,
                port: 8080,
                target: "a.svc.test".into(),
            },
            Srv {
                priority: 20,
                weight: 0,
                port: 8081,
                target: "b.svc.test.".into(),
            },
            Srv {
                priority: 10,
                weight: 40,
                port: 8082,
                target: "a.svc.test.".into(),
            },
        ],
        60,
    );
    server.set_a("a.svc.test", &[Ipv4Addr::new(10, 1, 0, 1)], 15);
    server.set_aaaa("a.svc.test", &["2001:db8::a".parse().unwrap()], 15);
    let resolver = resolver(&server);

    let lookup = resolver.srv_lookup("_http._tcp.svc.test.").await.unwrap();

    let records: Vec<(u16, u16, u16, String)> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some((srv.priority, srv.weight, srv.port, srv.target.to_ascii())),
            _ => None,
        })
        .collect();
    assert_eq!(
        records,
        [
            (10, 60, 8080, "a.svc.test.".to_owned()),
            (20, 0, 8081, "b.svc.test.".to_owned()),
            (10, 40, 8082, "a.svc.test.".to_owned()),
        ]
    );
    assert_eq!(ttls(&lookup), BTreeSet::from([60]));

    // Glue for the known target only (b.svc.test is unknown), once though named twice.
    let glue: Vec<(String, RecordType, u32)> = lookup
        .additionals()
        .iter()
        .filter(|record| record.record_type() != RecordType::OPT)
        .map(|record| (record.name.to_ascii(), record.record_type(), record.ttl))
        .collect();
    assert_eq!(
        glue,
        [
            ("a.svc.test.".to_owned(), RecordType::A, 15),
            ("a.svc.test.".to_owned(), RecordType::AAAA, 15),
        ]
    );
}

#[tokio::test]
async fn changed_records_are_seen_on_the_next_lookup() {
    let server = DnsServer::start().await;
    server.set_a("moving.test", &[Ipv4Addr::new(10, 0, 0, 1)], 300);
    let resolver = resolver(&server);

    let first = resolver.ipv4_lookup("moving.test.").await.unwrap();
    assert_eq!(ipv4s(&first), [Ipv4Addr::new(10, 0, 0, 1)]);

    server.set_a(
        "moving.test.",
        &[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
        5,
    );
    let second = resolver.ipv4_lookup("moving.test.").await.unwrap();
    assert_eq!(
        ipv4s(&second),
        [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]
    );
    assert_eq!(ttls(&second), BTreeSet::from([5]));

    // Emptied: the name exists without addresses.
    server.set_a("moving.test", &[], 5);
    let error = resolver.ipv4_lookup("moving.test.").await.unwrap_err();
    assert_eq!(no_records(&error).response_code, ResponseCode::NoError);

    // Removed: the name is gone.
    server.remove("moving.test");
    let error = resolver.ipv4_lookup("moving.test.").await.unwrap_err();
    assert!(error.is_nx_domain(), "{error:?}");

    assert_eq!(server.queries("moving.test"), 4);
}

#[tokio::test]
async fn a_server_that_does_not_answer_makes_the_lookup_time_out() {
    let server = DnsServer::start().await;
    server.set_a("quiet.test", &[Ipv4Addr::new(10, 0, 0, 1)], 30);
    server.set_answering(false);
    let resolver = resolver(&server);

    let started = Instant::now();
    let error = resolver.ipv4_lookup("quiet.test.").await.unwrap_err();
    let elapsed = started.elapsed();

    assert!(matches!(error, NetError::Timeout), "{error:?}");
    assert!(elapsed >= TIMEOUT, "failed before the timeout: {elapsed:?}");
    // `attempts` counts retries: two tries of 200 ms, plus slack for a loaded machine.
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(server.queries("quiet.test"), 2);

    server.set_answering(true);
    let lookup = resolver.ipv4_lookup("quiet.test.").await.unwrap();
    assert_eq!(ipv4s(&lookup), [Ipv4Addr::new(10, 0, 0, 1)]);
}

#[tokio::test]
async fn servfail_makes_the_lookup_fail() {
    let server = DnsServer::start().await;
    server.set_a("broken.test", &[Ipv4Addr::new(10, 0, 0, 1)], 30);
    server.set_servfail(true);
    let resolver = resolver(&server);

    let error = resolver.ipv4_lookup("broken.test.").await.unwrap_err();
    assert!(
        matches!(
            error,
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))
        ),
        "{error:?}"
    );

    server.set_servfail(false);
    let lookup = resolver.ipv4_lookup("broken.test.").await.unwrap();
    assert_eq!(ipv4s(&lookup), [Ipv4Addr::new(10, 0, 0, 1)]);
}

#[tokio::test]
async fn unknown_names_are_nxdomain_with_a_short_negative_ttl() {
    let server = DnsServer::start().await;
    server.set_a("known.test", &[Ipv4Addr::new(10, 0, 0, 1)], 30);
    let resolver = resolver(&server);

    for lookup in [
        resolver.ipv4_lookup("unknown.test.").await,
        resolver.srv_lookup("_x._tcp.unknown.test.").await,
    ] {
        let error = lookup.unwrap_err();
        assert!(error.is_nx_domain(), "{error:?}");
        let no_records = no_records(&error);
        assert_eq!(no_records.negative_ttl, Some(NEGATIVE_TTL));
        assert!(no_records.soa.is_some());
    }
    assert_eq!(server.queries("unknown.test"), 1);
}

#[tokio::test]
async fn lookups_work_over_tcp_only() {
    let server = DnsServer::start().await;
    server.set_a("tcp.test", &[Ipv4Addr::new(10, 0, 0, 4)], 30);
    server.set_aaaa("tcp.test", &["2001:db8::4".parse().unwrap()], 30);
    let resolver = resolver_over(&server, vec![ConnectionConfig::tcp()]);

    // Several queries, which the resolver sends on one connection.
    for _ in 0..3 {
        let ips: Vec<IpAddr> = resolver
            .lookup_ip("tcp.test.")
            .await
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            ips,
            [
                IpAddr::from([10, 0, 0, 4]),
                "2001:db8::4".parse::<IpAddr>().unwrap()
            ]
        );
    }
    assert_eq!(server.queries("tcp.test"), 6);
}

#[tokio::test]
async fn an_answer_too_large_for_udp_is_truncated_and_retried_over_tcp() {
    let server = DnsServer::start().await;
    let ips: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(10, 2, 0, i)).collect();
    server.set_a("many.test", &ips, 30);
    let mut builder = builder_over(
        &server,
        vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
    );
    // Without EDNS the client accepts 512 bytes over UDP; 60 A records take about 1 KiB.
    builder.options_mut().edns0 = false;
    let resolver = builder.build().unwrap();

    let lookup = resolver.ipv4_lookup("many.test.").await.unwrap();

    assert_eq!(ipv4s(&lookup), ips);
    // Once over UDP (truncated), once over TCP.
    assert_eq!(server.queries("many.test"), 2);
}

#[tokio::test]
async fn malformed_packets_are_ignored() {
    let server = DnsServer::start().await;
    server.set_a("robust.test", &[Ipv4Addr::new(10, 0, 0, 5)], 30);

    let udp = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    for garbage in [&[][..], &[0xff; 3], &[0x12; 40], &[0; 12]] {
        udp.send_to(garbage, server.addr()).await.unwrap();
    }
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(&[0, 5, 1, 2, 3, 4, 5, 0, 1]).await.unwrap();
    drop(tcp);

    let lookup = resolver(&server).ipv4_lookup("robust.test.").await.unwrap();
    assert_eq!(ipv4s(&lookup), [Ipv4Addr::new(10, 0, 0, 5)]);
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = DnsServer::start().await;
    server.set_a("gone.test", &[Ipv4Addr::new(10, 0, 0, 6)], 30);
    let resolver = resolver(&server);
    resolver.ipv4_lookup("gone.test.").await.unwrap();
    let tcp_only = resolver_over(&server, vec![ConnectionConfig::tcp()]);
    tcp_only.ipv4_lookup("gone.test.").await.unwrap();

    let addr = server.addr();
    drop(server);
    // The aborted tasks drop their sockets when next scheduled.
    tokio::time::sleep(Duration::from_millis(50)).await;

    assert!(resolver.ipv4_lookup("gone.test.").await.is_err());
    assert!(tcp_only.ipv4_lookup("gone.test.").await.is_err());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
