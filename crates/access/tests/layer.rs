//! The layer over a trivial inner service: which requests reach it, and what the refused get.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gateway_access::{Access, AccessDenied, AccessLayer, AccessList};
use gateway_core::{ClientIp, PeerAddr, ResponseBody};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};

/// The response of the layered service.
type Answer = Response<ResponseBody<Full<Bytes>>>;

/// The layer over an inner service answering 200 "upstream", counting its calls.
fn service(
    allow: &[&str],
    deny: &[&str],
) -> (
    impl Service<Request<()>, Response = Answer, Error = Infallible> + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let inner = tower::service_fn(move |_: Request<()>| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(b"upstream"),
        ))))
    });
    let list = AccessList::new(nets(allow), nets(deny));
    let access: Access<_> = AccessLayer::new(list).layer(inner);
    (access, calls)
}

fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter()
        .map(|net| {
            net.parse()
                .unwrap_or_else(|_| ipnet::IpNet::from(net.parse::<IpAddr>().unwrap()))
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A request from a TCP peer (no resolved client IP).
fn from_peer(peer: &str) -> Request<()> {
    let mut request = Request::new(());
    request
        .extensions_mut()
        .insert(PeerAddr(SocketAddr::new(ip(peer), 40000)));
    request
}

/// A request whose client IP was resolved (through trusted proxies) to `client`.
fn from_client(client: &str) -> Request<()> {
    let mut request = Request::new(());
    request.extensions_mut().insert(ClientIp(ip(client)));
    request
}

async fn status<S>(service: &S, request: Request<()>) -> StatusCode
where
    S: Service<Request<()>, Response = Answer, Error = Infallible> + Clone,
{
    service.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn allow_list_admits_only_its_ipv4_networks() {
    let (svc, calls) = service(&["192.168.1.0/24", "10.0.0.7"], &[]);
    assert_eq!(
        status(&svc, from_client("192.168.1.200")).await,
        StatusCode::OK
    );
    assert_eq!(status(&svc, from_client("10.0.0.7")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, from_client("10.0.0.8")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_client("192.168.2.1")).await,
        StatusCode::FORBIDDEN
    );
    // An IPv4-only allow list admits no IPv6 client.
    assert_eq!(
        status(&svc, from_client("2001:db8::1")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn allow_list_admits_only_its_ipv6_networks() {
    let (svc, calls) = service(&["2001:db8:1::/48", "2001:db8::7"], &[]);
    assert_eq!(
        status(&svc, from_client("2001:db8:1:ffff::1")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, from_client("2001:db8::7")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, from_client("2001:db8::8")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_client("2001:db8:2::1")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_client("192.0.2.1")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn deny_list_refuses_ipv4_and_ipv6() {
    let (svc, calls) = service(&[], &["10.1.2.0/24", "2001:db8:bad::/48"]);
    assert_eq!(
        status(&svc, from_client("10.1.2.3")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_client("2001:db8:bad::1")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status(&svc, from_client("10.1.3.3")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, from_client("2001:db8:bad1::1")).await,
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn mapped_addresses_are_their_ipv4_addresses() {
    let (svc, _) = service(&[], &["10.1.2.0/24"]);
    assert_eq!(
        status(&svc, from_client("::ffff:10.1.2.3")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_peer("::ffff:10.1.2.3")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_client("::ffff:10.1.3.3")).await,
        StatusCode::OK
    );

    let (svc, _) = service(&["192.168.1.0/24"], &[]);
    assert_eq!(
        status(&svc, from_client("::ffff:192.168.1.5")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, from_client("::ffff:192.168.2.5")).await,
        StatusCode::FORBIDDEN
    );

    // An IPv6 network outside the mapped range does not match mapped IPv4 clients.
    let (svc, _) = service(&["2001:db8::/32"], &[]);
    assert_eq!(
        status(&svc, from_client("::ffff:192.168.1.5")).await,
        StatusCode::FORBIDDEN
    );
    // A mapped network is the IPv4 network it maps.
    let (svc, _) = service(&["::ffff:192.168.1.0/120"], &[]);
    assert_eq!(
        status(&svc, from_client("192.168.1.5")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, from_client("192.168.2.5")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn deny_wins_over_allow() {
    let (svc, calls) = service(
        &["192.168.1.0/24", "2001:db8::/32"],
        &["192.168.1.13", "2001:db8:bad::/48"],
    );
    assert_eq!(
        status(&svc, from_client("192.168.1.13")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_client("2001:db8:bad::1")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, from_client("192.168.1.12")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, from_client("2001:db8:600d::1")).await,
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn empty_lists_admit_everyone() {
    let (svc, calls) = service(&[], &[]);
    for client in [
        "203.0.113.9",
        "10.0.0.1",
        "::1",
        "2001:db8::1",
        "::ffff:1.2.3.4",
    ] {
        assert_eq!(
            status(&svc, from_client(client)).await,
            StatusCode::OK,
            "{client}"
        );
    }
    assert_eq!(status(&svc, Request::new(())).await, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn unknown_client_is_refused_only_with_an_allow_list() {
    let (svc, calls) = service(&["192.168.1.0/24"], &[]);
    assert_eq!(status(&svc, Request::new(())).await, StatusCode::FORBIDDEN);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let (svc, calls) = service(&[], &["0.0.0.0/0", "::/0"]);
    assert_eq!(status(&svc, Request::new(())).await, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_resolved_client_ip_wins_over_the_peer() {
    let (svc, _) = service(&["192.168.1.0/24"], &[]);
    // Through a proxy at 127.0.0.1, resolved to an allowed client.
    let mut request = from_peer("127.0.0.1");
    request.extensions_mut().insert(ClientIp(ip("192.168.1.7")));
    assert_eq!(status(&svc, request).await, StatusCode::OK);
    // Resolved to a client outside the list, from an allowed peer.
    let mut request = from_peer("192.168.1.7");
    request.extensions_mut().insert(ClientIp(ip("203.0.113.9")));
    assert_eq!(status(&svc, request).await, StatusCode::FORBIDDEN);
    // No resolved client: the peer is checked.
    assert_eq!(status(&svc, from_peer("192.168.1.7")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, from_peer("203.0.113.9")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_refusal_is_a_marked_problem_json_403_and_the_inner_service_is_not_called() {
    let (svc, calls) = service(&[], &["203.0.113.0/24"]);
    let response = svc
        .clone()
        .oneshot(from_client("203.0.113.9"))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        response.extensions().get::<AccessDenied>(),
        Some(&AccessDenied)
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], 403);
    assert_eq!(json["title"], "Forbidden");
    assert_eq!(
        json["detail"],
        "the client address is not allowed on this route"
    );
    assert!(!String::from_utf8_lossy(&body).contains("203.0.113"));
}

#[tokio::test]
async fn a_permitted_response_passes_through_unmarked() {
    let (svc, calls) = service(&[], &["203.0.113.0/24"]);
    let response = svc
        .clone()
        .oneshot(from_client("198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.extensions().get::<AccessDenied>().is_none());
    assert!(response.headers().get("content-type").is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "upstream");
}

#[tokio::test]
async fn errors_of_the_inner_service_pass_through() {
    let list = AccessList::new([], nets(&["203.0.113.0/24"]));
    let inner = tower::service_fn(|_: Request<()>| async {
        Err::<Response<Full<Bytes>>, _>("upstream broke")
    });
    let svc = AccessLayer::new(list).layer(inner);
    let result = svc.clone().oneshot(from_client("198.51.100.1")).await;
    let Err(error) = result else {
        panic!("the inner service's error was swallowed")
    };
    assert_eq!(error, "upstream broke");
    // A refusal is a response, not the inner service's error.
    let response = svc.oneshot(from_client("203.0.113.1")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn poll_ready_is_the_inner_service_s() {
    use std::task::{Context, Poll, Waker};

    /// Never ready.
    #[derive(Clone)]
    struct Busy;
    impl Service<Request<()>> for Busy {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Pending<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::pending()
        }
    }
    let mut svc = AccessLayer::new(AccessList::default()).layer(Busy);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
}
