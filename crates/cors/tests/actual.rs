//! Actual requests: always forwarded, CORS headers for allowed origins only.

mod common;

use common::{Harness, actual, body, cors_headers, values};
use http::{Method, StatusCode};

const POLICY: &str = r#"
    allow_origins = ["https://app.example.com"]
    expose_headers = ["X-Trace", "x-request-id"]
    allow_credentials = true
"#;

#[tokio::test]
async fn allowed_origin_gets_the_cors_headers() {
    let harness = Harness::new(POLICY);
    let reply = harness
        .send(actual(Method::POST, Some("https://app.example.com")))
        .await;
    assert_eq!(harness.calls(), 1);
    assert_eq!(reply.status(), StatusCode::OK);
    let headers = reply.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(
        headers["access-control-expose-headers"],
        "x-trace, x-request-id"
    );
    assert_eq!(values(headers, "vary"), ["Origin"]);
    assert!(headers.get("access-control-allow-methods").is_none());
    assert_eq!(body(reply).await, "upstream");
}

#[tokio::test]
async fn the_echoed_origin_is_the_one_the_browser_sent() {
    let harness = Harness::new(POLICY);
    let reply = harness
        .send(actual(Method::GET, Some("https://APP.example.com:443")))
        .await;
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://APP.example.com:443"
    );
}

#[tokio::test]
async fn other_origins_are_forwarded_without_cors_headers() {
    let harness = Harness::with_upstream_headers(
        POLICY,
        &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-secret"),
        ],
    );
    for origin in ["https://evil.example.com", "null", "http://app.example.com"] {
        let reply = harness.send(actual(Method::GET, Some(origin))).await;
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(
            cors_headers(reply.headers()),
            Vec::<String>::new(),
            "{origin}"
        );
        assert_eq!(values(reply.headers(), "vary"), ["Origin"]);
        assert_eq!(body(reply).await, "upstream");
    }
    assert_eq!(harness.calls(), 3);
}

#[tokio::test]
async fn requests_without_origin_are_untouched() {
    let harness = Harness::with_upstream_headers(
        POLICY,
        &[
            ("access-control-allow-origin", "https://x.test"),
            ("vary", "accept-encoding"),
        ],
    );
    let reply = harness.send(actual(Method::GET, None)).await;
    assert_eq!(harness.calls(), 1);
    assert_eq!(
        cors_headers(reply.headers()),
        ["access-control-allow-origin"]
    );
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://x.test"
    );
    assert_eq!(values(reply.headers(), "vary"), ["accept-encoding"]);
    assert_eq!(reply.headers().len(), 2);
}

#[tokio::test]
async fn any_one_upstream_cors_header_alone_is_removed() {
    for (header, upstream) in [
        (
            "access-control-allow-origin",
            &[("access-control-allow-origin", "true")],
        ),
        (
            "access-control-allow-credentials",
            &[("access-control-allow-credentials", "true")],
        ),
        (
            "access-control-expose-headers",
            &[("access-control-expose-headers", "true")],
        ),
    ] {
        let harness = Harness::with_upstream_headers(
            r#"allow_origins = ["https://app.example.com"]"#,
            upstream,
        );
        let refused = harness
            .send(actual(Method::GET, Some("https://evil.example.com")))
            .await;
        assert_eq!(
            cors_headers(refused.headers()),
            Vec::<String>::new(),
            "{header}"
        );
        let allowed = harness
            .send(actual(Method::GET, Some("https://app.example.com")))
            .await;
        assert_eq!(
            cors_headers(allowed.headers()),
            ["access-control-allow-origin"],
            "{header}"
        );
        assert_eq!(
            values(allowed.headers(), "access-control-allow-origin"),
            ["https://app.example.com"]
        );
    }
}

#[tokio::test]
async fn upstream_cors_headers_are_replaced_by_the_policy() {
    let harness = Harness::with_upstream_headers(
        r#"allow_origins = ["https://app.example.com"]"#,
        &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-secret"),
        ],
    );
    let reply = harness
        .send(actual(Method::GET, Some("https://app.example.com")))
        .await;
    assert_eq!(
        values(reply.headers(), "access-control-allow-origin"),
        ["https://app.example.com"]
    );
    assert!(
        reply
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    assert!(
        reply
            .headers()
            .get("access-control-expose-headers")
            .is_none()
    );
}

#[tokio::test]
async fn origin_is_appended_to_an_existing_vary() {
    let harness = Harness::with_upstream_headers(
        POLICY,
        &[("vary", "Accept-Encoding"), ("vary", "accept-language")],
    );
    let reply = harness
        .send(actual(Method::GET, Some("https://app.example.com")))
        .await;
    assert_eq!(
        values(reply.headers(), "vary"),
        ["Accept-Encoding, accept-language, Origin"]
    );
}

#[tokio::test]
async fn origin_already_in_vary_is_not_repeated() {
    for (upstream, expected) in [
        (
            &[("vary", "accept-encoding, origin")][..],
            "accept-encoding, origin",
        ),
        (&[("vary", "ORIGIN")][..], "ORIGIN"),
        (&[("vary", "*")][..], "*"),
    ] {
        let harness = Harness::with_upstream_headers(POLICY, upstream);
        for origin in ["https://app.example.com", "https://evil.example.com"] {
            let reply = harness.send(actual(Method::GET, Some(origin))).await;
            assert_eq!(values(reply.headers(), "vary"), [expected], "{origin}");
        }
    }
}

#[tokio::test]
async fn any_origin_gets_a_star_and_no_vary() {
    let harness = Harness::with_upstream_headers(
        r#"
        allow_origins = ["*"]
        expose_headers = ["x-trace"]
    "#,
        &[("access-control-allow-credentials", "true")],
    );
    let reply = harness
        .send(actual(Method::GET, Some("https://anyone.test")))
        .await;
    assert_eq!(reply.headers()["access-control-allow-origin"], "*");
    assert_eq!(reply.headers()["access-control-expose-headers"], "x-trace");
    assert!(
        reply
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    assert!(reply.headers().get("vary").is_none());
}

#[tokio::test]
async fn without_credentials_and_exposed_headers_only_the_origin_is_sent() {
    let harness = Harness::new(r#"allow_origins = ["https://app.example.com"]"#);
    let reply = harness
        .send(actual(Method::DELETE, Some("https://app.example.com")))
        .await;
    assert_eq!(
        cors_headers(reply.headers()),
        ["access-control-allow-origin"]
    );
    assert_eq!(
        harness.calls(),
        1,
        "actual requests are forwarded whatever their method"
    );
}

#[test]
fn service_and_future_are_send_sync_and_clone() {
    fn check<T: Clone + Send + Sync + 'static>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let policy = gateway_cors::CorsPolicy::builder()
        .allow_any_origin()
        .build()
        .unwrap();
    let layer = gateway_cors::CorsLayer::new(policy);
    let service = tower::Layer::layer(
        &layer,
        tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }),
    );
    check(&layer);
    check(&service);
    let mut service = service;
    let future = tower::Service::call(&mut service, actual(Method::GET, Some("https://a.test")));
    send(&future);
}
