//! Request ids: generation, passthrough from trusted senders only, and what reaches upstream
//! and the client.

mod common;

use std::collections::HashSet;

use common::{recording, request_from, seen, values};
use gateway_core::{RequestId, TrustedProxies};
use gateway_headers::{
    HeaderRules, RequestHeadersLayer, RequestIdStats, SetRequestIdLayer, TrustIncoming,
};
use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, ServiceExt};

fn proxies() -> TrustedProxies {
    TrustedProxies::parse(["10.0.0.0/8"]).unwrap()
}

/// Sends `request` through `layer`; returns the request upstream saw and the response.
async fn exchange(layer: &SetRequestIdLayer, request: Request<()>) -> (Request<()>, Response<()>) {
    let (inner, record) = recording(&[]);
    let response = layer.layer(inner).oneshot(request).await.unwrap();
    (seen(&record), response)
}

fn is_generated(id: &HeaderValue) -> bool {
    id.len() == 32
        && id
            .as_bytes()
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[tokio::test]
async fn a_request_without_id_gets_one_everywhere() {
    let layer = SetRequestIdLayer::new();
    let (upstream, response) = exchange(&layer, Request::new(())).await;
    let id = upstream.extensions().get::<RequestId>().unwrap().0.clone();
    assert!(is_generated(&id), "{id:?}");
    assert_eq!(
        values(upstream.headers(), "x-request-id"),
        [id.to_str().unwrap()]
    );
    assert_eq!(
        values(response.headers(), "x-request-id"),
        [id.to_str().unwrap()]
    );
    // Only on request: the response extension costs allocations.
    assert!(response.extensions().get::<RequestId>().is_none());
    assert_eq!(
        layer.stats(),
        RequestIdStats {
            generated: 1,
            kept: 0,
            replaced: 0
        }
    );
}

#[tokio::test]
async fn a_trusted_proxy_s_id_is_kept() {
    let layer = SetRequestIdLayer::new().trusted_proxies(proxies());
    let request = request_from("10.1.2.3:4000")
        .header("x-request-id", "edge-42")
        .body(())
        .unwrap();
    let (upstream, response) = exchange(&layer, request).await;
    assert_eq!(
        upstream.extensions().get::<RequestId>().unwrap().0,
        "edge-42"
    );
    assert_eq!(values(upstream.headers(), "x-request-id"), ["edge-42"]);
    assert_eq!(values(response.headers(), "x-request-id"), ["edge-42"]);
    assert_eq!(
        layer.stats(),
        RequestIdStats {
            generated: 0,
            kept: 1,
            replaced: 0
        }
    );
}

#[tokio::test]
async fn an_untrusted_client_s_id_is_replaced() {
    let layer = SetRequestIdLayer::new().trusted_proxies(proxies());
    for request in [
        request_from("203.0.113.5:4000")
            .header("x-request-id", "forged")
            .body(())
            .unwrap(),
        // No peer address known: not trusted either.
        Request::get("/")
            .header("x-request-id", "forged")
            .body(())
            .unwrap(),
    ] {
        let (upstream, response) = exchange(&layer, request).await;
        let id = &upstream.extensions().get::<RequestId>().unwrap().0;
        assert!(is_generated(id));
        assert_eq!(
            values(upstream.headers(), "x-request-id"),
            [id.to_str().unwrap()]
        );
        assert_eq!(&response.headers()["x-request-id"], id);
    }
    assert_eq!(
        layer.stats(),
        RequestIdStats {
            generated: 2,
            kept: 0,
            replaced: 2
        }
    );
}

#[tokio::test]
async fn trust_always_and_never() {
    let always = SetRequestIdLayer::new().trust(TrustIncoming::Always);
    let request = request_from("203.0.113.5:1")
        .header("x-request-id", "client-1")
        .body(())
        .unwrap();
    let (upstream, _) = exchange(&always, request).await;
    assert_eq!(values(upstream.headers(), "x-request-id"), ["client-1"]);

    let never = SetRequestIdLayer::new()
        .trust(TrustIncoming::Never)
        .trusted_proxies(proxies());
    let request = request_from("10.0.0.1:1")
        .header("x-request-id", "proxy-1")
        .body(())
        .unwrap();
    let (upstream, _) = exchange(&never, request).await;
    assert!(is_generated(&upstream.headers()["x-request-id"]));
}

#[tokio::test]
async fn insane_ids_are_replaced_even_from_trusted_proxies() {
    let layer = SetRequestIdLayer::new()
        .trusted_proxies(proxies())
        .max_length(16);
    let bad: [&[&[u8]]; 5] = [
        &[b"has space"],
        &[b"caf\xc3\xa9"],
        &[b""],
        &[b"0123456789abcdefX"],
        &[b"one", b"two"],
    ];
    for ids in bad {
        let mut request = request_from("10.0.0.1:1");
        for id in ids {
            request = request.header("x-request-id", HeaderValue::from_bytes(id).unwrap());
        }
        let (upstream, _) = exchange(&layer, request.body(()).unwrap()).await;
        let sent = upstream
            .headers()
            .get_all("x-request-id")
            .iter()
            .collect::<Vec<_>>();
        assert_eq!(sent.len(), 1, "{ids:?}");
        assert!(is_generated(sent[0]), "{ids:?} kept as {:?}", sent[0]);
    }
    assert_eq!(layer.stats().replaced, 5);
    // Exactly at the limit is fine.
    let request = request_from("10.0.0.1:1")
        .header("x-request-id", "0123456789abcdef")
        .body(())
        .unwrap();
    let (upstream, _) = exchange(&layer, request).await;
    assert_eq!(
        values(upstream.headers(), "x-request-id"),
        ["0123456789abcdef"]
    );
}

#[tokio::test]
async fn an_id_assigned_by_an_outer_layer_is_used() {
    let layer = SetRequestIdLayer::new();
    let request = Request::get("/")
        .header("x-request-id", "from-client")
        .extension(RequestId(HeaderValue::from_static("assigned")))
        .body(())
        .unwrap();
    let (upstream, response) = exchange(&layer, request).await;
    assert_eq!(values(upstream.headers(), "x-request-id"), ["assigned"]);
    assert_eq!(values(response.headers(), "x-request-id"), ["assigned"]);
}

#[tokio::test]
async fn custom_header_and_no_echo() {
    let layer = SetRequestIdLayer::new()
        .header(HeaderName::from_static("x-correlation-id"))
        .echo(false)
        .response_extension(true)
        .trust(TrustIncoming::Always);
    let request = Request::get("/")
        .header("x-correlation-id", "corr-7")
        .body(())
        .unwrap();
    let (upstream, response) = exchange(&layer, request).await;
    assert_eq!(values(upstream.headers(), "x-correlation-id"), ["corr-7"]);
    assert!(upstream.headers().get("x-request-id").is_none());
    assert!(response.headers().get("x-correlation-id").is_none());
    // The access log outside can still read it.
    assert_eq!(
        response.extensions().get::<RequestId>().unwrap().0,
        "corr-7"
    );
}

#[tokio::test]
async fn templates_inside_the_layer_see_the_id() {
    let (inner, record) = recording(&[]);
    let rules = HeaderRules::builder()
        .set("X-Trace", "gw-{request_id}")
        .build()
        .unwrap();
    let service = SetRequestIdLayer::new().layer(RequestHeadersLayer::new(rules).layer(inner));
    let response = service.oneshot(Request::new(())).await.unwrap();
    let upstream = seen(&record);
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(values(upstream.headers(), "x-trace"), [format!("gw-{id}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_across_threads_and_clones() {
    let layer = SetRequestIdLayer::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let layer = layer.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(2_000);
            for _ in 0..2_000 {
                let (upstream, _) = exchange(&layer, Request::new(())).await;
                ids.push(upstream.extensions().get::<RequestId>().unwrap().0.clone());
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(all.insert(id), "duplicate id");
        }
    }
    assert_eq!(all.len(), 8_000);
    assert_eq!(layer.stats().generated, 8_000);
}
