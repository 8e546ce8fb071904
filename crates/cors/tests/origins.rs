//! Origin matching through the layer: exact origins, ports, wildcard subdomains and
//! look-alikes.

mod common;

use common::{Harness, actual, preflight};
use gateway_cors::CorsPolicy;
use http::{Method, StatusCode};

async fn allowed(harness: &Harness, origin: &str) -> bool {
    let preflight_ok =
        harness.send(preflight(origin, "GET", None)).await.status() == StatusCode::NO_CONTENT;
    let reply = harness.send(actual(Method::GET, Some(origin))).await;
    let actual_ok = reply.headers().get("access-control-allow-origin").is_some();
    assert_eq!(
        preflight_ok, actual_ok,
        "preflight and actual disagree on {origin}"
    );
    preflight_ok
}

#[tokio::test]
async fn wildcard_matches_subdomains_at_any_depth() {
    let harness = Harness::new(r#"allow_origins = ["https://*.example.com"]"#);
    for origin in [
        "https://a.example.com",
        "https://a.b.example.com",
        "https://A.Example.COM",
        "https://a.example.com:443",
    ] {
        assert!(allowed(&harness, origin).await, "{origin} refused");
    }
    let reply = harness
        .send(actual(Method::GET, Some("https://deep.a.example.com")))
        .await;
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://deep.a.example.com"
    );
}

#[tokio::test]
async fn wildcard_refuses_look_alikes() {
    let harness = Harness::new(r#"allow_origins = ["https://*.example.com"]"#);
    for origin in [
        "https://example.com",
        "https://evil-example.com",
        "https://evilexample.com",
        "https://example.com.evil.net",
        "https://a.example.com.evil.net",
        "https://a.example.co",
        "http://a.example.com",
        "wss://a.example.com",
        "https://a.example.com:8443",
        "https://.example.com",
        "https://a.example.com.",
        "https://a.example.com/",
        "https://user@a.example.com",
        "null",
    ] {
        assert!(!allowed(&harness, origin).await, "{origin} allowed");
    }
}

#[tokio::test]
async fn exact_origins_match_scheme_host_and_port() {
    let harness = Harness::new(
        r#"allow_origins = ["https://App.Example.com:443", "http://localhost:3000", "http://[::1]:8080"]"#,
    );
    for origin in [
        "https://app.example.com",
        "HTTPS://APP.EXAMPLE.COM",
        "https://app.example.com:443",
        "http://localhost:3000",
        "http://[::1]:8080",
    ] {
        assert!(allowed(&harness, origin).await, "{origin} refused");
    }
    for origin in [
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://sub.app.example.com",
        "https://example.com",
        "http://localhost",
        "http://localhost:3001",
        "https://localhost:3000",
        "http://[::1]",
        // Near misses of the byte-for-byte match: longer, shorter, or with a path.
        "https://app.example.comm",
        "https://app.example.co",
        "https://app.example.com/",
        "https://app.example.com.",
        "https://app.example.com:",
    ] {
        assert!(!allowed(&harness, origin).await, "{origin} allowed");
    }
}

#[tokio::test]
async fn wildcard_with_a_port_needs_that_port() {
    let harness = Harness::new(r#"allow_origins = ["http://*.dev.example.com:8080"]"#);
    assert!(allowed(&harness, "http://a.dev.example.com:8080").await);
    assert!(!allowed(&harness, "http://a.dev.example.com").await);
    assert!(!allowed(&harness, "http://a.dev.example.com:8081").await);
}

#[test]
fn policy_answers_origin_questions_directly() {
    let policy = CorsPolicy::builder()
        .allow_origin("https://*.example.com")
        .allow_origin("https://app.example.net")
        .build()
        .unwrap();
    assert!(policy.allows_origin("https://x.example.com"));
    assert!(policy.allows_origin("https://app.example.net"));
    assert!(!policy.allows_origin("https://example.com"));
    assert!(!policy.allows_origin("https://x.app.example.net"));
    assert!(!policy.allows_credentials());
}
