//! Preflights: answered by the layer (204 or 403), never forwarded.

mod common;

use common::{Harness, actual, body, cors_headers, preflight, values};
use gateway_cors::CorsRejected;
use http::{Method, StatusCode};

const POLICY: &str = r#"
    allow_origins = ["https://app.example.com", "http://localhost:3000"]
    allow_methods = ["GET", "POST", "PUT"]
    allow_headers = ["Content-Type", "x-request-id"]
    expose_headers = ["x-trace"]
    max_age = "10m"
"#;

#[tokio::test]
async fn allowed_preflight_is_answered_204_with_every_header() {
    let harness = Harness::new(POLICY);
    let reply = harness
        .send(preflight(
            "https://app.example.com",
            "PUT",
            Some("content-type,x-request-id"),
        ))
        .await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    assert_eq!(harness.calls(), 0, "a preflight must not be forwarded");
    let headers = reply.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(headers["access-control-allow-methods"], "GET, POST, PUT");
    assert_eq!(
        headers["access-control-allow-headers"],
        "content-type, x-request-id"
    );
    assert_eq!(headers["access-control-max-age"], "600");
    assert_eq!(
        values(headers, "vary"),
        ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"]
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    assert!(headers.get("access-control-expose-headers").is_none());
    assert!(reply.extensions().get::<CorsRejected>().is_none());
    assert!(body(reply).await.is_empty());
}

#[tokio::test]
async fn requested_headers_match_case_insensitively_with_spaces_and_empty_items() {
    let harness = Harness::new(POLICY);
    for requested in [
        "Content-Type",
        "X-REQUEST-ID, content-type",
        " content-type ,, x-request-id ",
        "",
    ] {
        let reply = harness
            .send(preflight(
                "https://app.example.com",
                "POST",
                Some(requested),
            ))
            .await;
        assert_eq!(reply.status(), StatusCode::NO_CONTENT, "{requested:?}");
    }
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn preflight_from_an_origin_not_allowed_is_refused_403() {
    let harness = Harness::new(POLICY);
    for origin in [
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "http://localhost:3001",
        "null",
        "not an origin",
    ] {
        let reply = harness.send(preflight(origin, "GET", None)).await;
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(reply.headers()["content-type"], "application/problem+json");
        assert_eq!(
            cors_headers(reply.headers()),
            Vec::<String>::new(),
            "{origin}"
        );
        assert!(reply.headers().get("vary").is_none());
        assert_eq!(
            reply.extensions().get::<CorsRejected>(),
            Some(&CorsRejected)
        );
        let json: serde_json::Value = serde_json::from_slice(&body(reply).await).unwrap();
        assert_eq!(json["status"], 403);
        assert!(json["detail"].as_str().unwrap().contains("origin"));
    }
    assert_eq!(
        harness.calls(),
        0,
        "a refused preflight must not be forwarded"
    );
}

#[tokio::test]
async fn preflight_asking_a_method_not_allowed_is_refused() {
    let harness = Harness::new(POLICY);
    for method in ["DELETE", "PATCH", "put", "HEAD"] {
        let reply = harness
            .send(preflight("https://app.example.com", method, None))
            .await;
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{method}");
        assert_eq!(cors_headers(reply.headers()), Vec::<String>::new());
        assert!(reply.extensions().get::<CorsRejected>().is_some());
        let json: serde_json::Value = serde_json::from_slice(&body(reply).await).unwrap();
        assert!(json["detail"].as_str().unwrap().contains("method"));
    }
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn preflight_asking_a_header_not_allowed_is_refused() {
    let harness = Harness::new(POLICY);
    for requested in [
        "authorization",
        "content-type, authorization",
        "x-request",
        "content-type-x",
    ] {
        let reply = harness
            .send(preflight("https://app.example.com", "GET", Some(requested)))
            .await;
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{requested}");
        assert_eq!(cors_headers(reply.headers()), Vec::<String>::new());
        assert!(reply.extensions().get::<CorsRejected>().is_some());
        let json: serde_json::Value = serde_json::from_slice(&body(reply).await).unwrap();
        assert!(json["detail"].as_str().unwrap().contains("header"));
    }
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn without_allow_headers_no_header_may_be_requested() {
    let harness = Harness::new(r#"allow_origins = ["https://app.example.com"]"#);
    let reply = harness
        .send(preflight("https://app.example.com", "GET", None))
        .await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    assert!(
        reply
            .headers()
            .get("access-control-allow-headers")
            .is_none()
    );
    assert!(reply.headers().get("access-control-max-age").is_none());
    assert_eq!(
        reply.headers()["access-control-allow-methods"],
        "GET, HEAD, POST"
    );
    let reply = harness
        .send(preflight(
            "https://app.example.com",
            "GET",
            Some("content-type"),
        ))
        .await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn credentials_are_allowed_on_preflights_when_set() {
    let harness = Harness::new(
        r#"
        allow_origins = ["https://app.example.com"]
        allow_credentials = true
    "#,
    );
    let reply = harness
        .send(preflight("https://app.example.com", "POST", None))
        .await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    assert_eq!(reply.headers()["access-control-allow-credentials"], "true");
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test]
async fn any_origin_is_answered_with_a_star() {
    let harness = Harness::new(r#"allow_origins = ["*"]"#);
    for origin in ["https://anything.test", "http://localhost:1234", "null"] {
        let reply = harness.send(preflight(origin, "GET", None)).await;
        assert_eq!(reply.status(), StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(reply.headers()["access-control-allow-origin"], "*");
        assert!(
            reply
                .headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
    }
    let reply = harness
        .send(preflight("https://anything.test", "DELETE", None))
        .await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    assert_eq!(harness.calls(), 0);
}

#[tokio::test]
async fn options_without_preflight_headers_is_an_ordinary_request() {
    let harness = Harness::new(POLICY);
    // Origin but no Access-Control-Request-Method: an actual OPTIONS request.
    let reply = harness
        .send(actual(Method::OPTIONS, Some("https://app.example.com")))
        .await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(harness.calls(), 1);
    // Access-Control-Request-Method but no Origin: not CORS at all.
    let request = http::Request::options("/resource")
        .header("access-control-request-method", "DELETE")
        .body(())
        .unwrap();
    let reply = harness.send(request).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(cors_headers(reply.headers()), Vec::<String>::new());
    assert_eq!(body(reply).await, "upstream");
    assert_eq!(harness.calls(), 2);
}

#[tokio::test]
async fn preflight_ignores_an_upstream_that_would_answer_differently() {
    // The upstream's headers never appear: the preflight never reaches it.
    let harness = Harness::with_upstream_headers(
        POLICY,
        &[("access-control-allow-origin", "*"), ("x-upstream", "1")],
    );
    let reply = harness
        .send(preflight("https://app.example.com", "GET", None))
        .await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    assert!(reply.headers().get("x-upstream").is_none());
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}
