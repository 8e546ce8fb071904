//! Templates: every placeholder, with and without claims, and values that must not reach the
//! wire.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{identity, recording, seen, values};
use gateway_core::{ClientIp, PeerAddr, RequestId};
use gateway_headers::{HeaderRules, HeadersLayer, RequestHeadersLayer, ResponseHeadersLayer};
use http::{HeaderValue, Request};
use serde_json::json;
use tower::{Layer, ServiceExt};

async fn forwarded(rules: HeaderRules, request: Request<()>) -> http::HeaderMap {
    let (inner, record) = recording(&[]);
    RequestHeadersLayer::new(rules)
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap();
    seen(&record).headers().clone()
}

fn set(name: &str, template: &str) -> HeaderRules {
    HeaderRules::builder().set(name, template).build().unwrap()
}

#[tokio::test]
async fn request_placeholders_render_from_the_request() {
    let rules = HeaderRules::builder()
        .set("X-Method", "{method}")
        .set("X-Path", "{path}")
        .set("X-Host", "{host}")
        .set("X-Id", "{request_id}")
        .set("X-Trace", "trace={header.X-Trace}")
        .set("X-Line", "{{{method} {path}}}")
        .build()
        .unwrap();
    let request = Request::put("http://ignored.example/v1/items?page=2")
        .header("host", "api.example.com")
        .header("x-trace", "abc")
        .extension(RequestId(HeaderValue::from_static("rid-1")))
        .body(())
        .unwrap();
    let h = forwarded(rules, request).await;
    assert_eq!(values(&h, "x-method"), ["PUT"]);
    assert_eq!(values(&h, "x-path"), ["/v1/items"]);
    assert_eq!(values(&h, "x-host"), ["api.example.com"]);
    assert_eq!(values(&h, "x-id"), ["rid-1"]);
    assert_eq!(values(&h, "x-trace"), ["trace=abc"]);
    assert_eq!(values(&h, "x-line"), ["{PUT /v1/items}"]);
}

#[tokio::test]
async fn host_falls_back_to_the_uri_authority() {
    // HTTP/2 requests carry `:authority` in the URI and no Host header.
    let request = Request::get("https://h2.example:8443/x").body(()).unwrap();
    let h = forwarded(set("X-Host", "{host}"), request).await;
    assert_eq!(values(&h, "x-host"), ["h2.example:8443"]);
}

#[tokio::test]
async fn several_header_values_are_joined() {
    let request = Request::get("/")
        .header("x-forwarded-for", "1.1.1.1")
        .header("x-forwarded-for", "2.2.2.2")
        .body(())
        .unwrap();
    let h = forwarded(set("X-Chain", "{header.x-forwarded-for}"), request).await;
    assert_eq!(values(&h, "x-chain"), ["1.1.1.1, 2.2.2.2"]);
}

#[tokio::test]
async fn client_ip_prefers_the_resolved_ip_then_the_peer() {
    let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let rules = set("X-Client-IP", "{client_ip}");
    let resolved: IpAddr = "203.0.113.7".parse().unwrap();
    let request = Request::get("/")
        .extension(PeerAddr(peer))
        .extension(ClientIp(resolved))
        .body(())
        .unwrap();
    assert_eq!(
        values(&forwarded(rules.clone(), request).await, "x-client-ip"),
        ["203.0.113.7"]
    );

    let request = Request::get("/")
        .extension(PeerAddr(peer))
        .body(())
        .unwrap();
    assert_eq!(
        values(&forwarded(rules.clone(), request).await, "x-client-ip"),
        ["10.0.0.1"]
    );

    let mapped: SocketAddr = "[::ffff:192.0.2.9]:80".parse().unwrap();
    let request = Request::get("/")
        .extension(PeerAddr(mapped))
        .body(())
        .unwrap();
    assert_eq!(
        values(&forwarded(rules.clone(), request).await, "x-client-ip"),
        ["192.0.2.9"]
    );

    let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
    let request = Request::get("/").extension(PeerAddr(v6)).body(()).unwrap();
    assert_eq!(
        values(&forwarded(rules, request).await, "x-client-ip"),
        ["2001:db8::1"]
    );
}

#[tokio::test]
async fn claims_render_strings_numbers_and_booleans() {
    let rules = HeaderRules::builder()
        .set("X-User", "{claim.sub}")
        .set("X-Tenant", "tenant-{claim.tenant_id}")
        .set("X-Admin", "{claim.admin}")
        .set("X-Scope", "{claim.https://example.com/scope}")
        .build()
        .unwrap();
    let request = Request::get("/")
        .extension(identity(json!({
            "sub": "alice",
            "tenant_id": 42,
            "admin": false,
            "https://example.com/scope": "read write",
        })))
        .body(())
        .unwrap();
    let h = forwarded(rules, request).await;
    assert_eq!(values(&h, "x-user"), ["alice"]);
    assert_eq!(values(&h, "x-tenant"), ["tenant-42"]);
    assert_eq!(values(&h, "x-admin"), ["false"]);
    assert_eq!(values(&h, "x-scope"), ["read write"]);
}

/// Without a value, `set` removes the header (a client cannot pre-fill what the gateway is
/// told to set) while `add` and `set_if_absent` leave the headers alone.
#[tokio::test]
async fn a_placeholder_without_value_drops_the_header() {
    let rules = HeaderRules::builder()
        .set("X-User", "user={claim.sub}")
        .add("X-Role", "{claim.role}")
        .set_if_absent("X-Tenant", "{claim.tenant}")
        .set("X-Groups", "{claim.groups}")
        .set("X-Trace", "{header.x-trace}")
        .set("X-Client-IP", "{client_ip}")
        .set("X-Id", "{request_id}")
        .build()
        .unwrap();
    let spoofing = || {
        Request::get("/")
            .header("x-user", "user=admin")
            .header("x-role", "client-role")
            .header("x-groups", "admins")
            .header("x-client-ip", "1.2.3.4")
            .header("x-id", "mine")
    };

    // Anonymous: no identity at all.
    let h = forwarded(rules.clone(), spoofing().body(()).unwrap()).await;
    for gone in [
        "x-user",
        "x-groups",
        "x-trace",
        "x-client-ip",
        "x-id",
        "x-tenant",
    ] {
        assert!(h.get(gone).is_none(), "{gone} should be absent");
    }
    assert_eq!(values(&h, "x-role"), ["client-role"]);

    // Authenticated, but the claims asked for are absent or not text (an array).
    let request = spoofing()
        .extension(identity(json!({"sub": "bob", "groups": ["a", "b"]})))
        .body(())
        .unwrap();
    let h = forwarded(rules, request).await;
    assert_eq!(values(&h, "x-user"), ["user=bob"]);
    assert!(h.get("x-groups").is_none());
    assert_eq!(values(&h, "x-role"), ["client-role"]);
}

#[tokio::test]
async fn a_claim_with_a_line_break_is_dropped_never_sent() {
    let rules = HeaderRules::builder()
        .set("X-User", "{claim.sub}")
        .add("X-Note", "note: {claim.sub}")
        .build()
        .unwrap();
    for evil in [
        "alice\r\nX-Injected: 1",
        "alice\nX-Injected: 1",
        "a\0b",
        "a\x7fb",
    ] {
        let request = Request::get("/")
            .header("x-user", "spoofed")
            .extension(identity(json!({ "sub": evil })))
            .body(())
            .unwrap();
        let before = rules.invalid_values();
        let h = forwarded(rules.clone(), request).await;
        assert!(h.get("x-user").is_none(), "{evil:?}");
        assert!(h.get("x-note").is_none(), "{evil:?}");
        assert!(h.get("x-injected").is_none());
        assert_eq!(rules.invalid_values(), before + 2);
    }
}

#[tokio::test]
async fn non_ascii_header_bytes_pass_through_a_template_unchanged() {
    let raw = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
    let request = Request::get("/")
        .header("x-name", raw.clone())
        .body(())
        .unwrap();
    let rules = HeaderRules::builder()
        .set("X-Copy", "{header.x-name}")
        .set("X-Wrapped", "<{header.x-name}>")
        .build()
        .unwrap();
    let h = forwarded(rules, request).await;
    assert_eq!(h["x-copy"], raw);
    assert_eq!(h["x-wrapped"].as_bytes(), b"<caf\xc3\xa9>");
}

#[tokio::test]
async fn long_values_render_whole() {
    let long = "x".repeat(5000);
    let request = Request::get("/")
        .header("x-long", long.as_str())
        .body(())
        .unwrap();
    let h = forwarded(set("X-Copy", "[{header.x-long}]"), request).await;
    assert_eq!(h["x-copy"].len(), 5002);
}

#[tokio::test]
async fn static_values_are_shared_not_rendered() {
    let rules = set("X-Source", "gateway");
    assert!(!rules.has_templates());
    assert!(set("X-Source", "{method}").has_templates());
    let h = forwarded(rules, Request::new(())).await;
    assert_eq!(values(&h, "x-source"), ["gateway"]);
}

#[tokio::test]
async fn response_templates_read_the_request() {
    let (inner, _) = recording(&[]);
    let rules = HeaderRules::builder()
        .set("X-Echo-Method", "{method}")
        .set("X-Echo-Trace", "{header.x-trace}")
        .set("X-User", "{claim.sub}")
        .build()
        .unwrap();
    let request = Request::delete("/")
        .header("x-trace", "t-9")
        .extension(identity(json!({"sub": "carol"})))
        .body(())
        .unwrap();
    let response = ResponseHeadersLayer::new(rules)
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(values(response.headers(), "x-echo-method"), ["DELETE"]);
    assert_eq!(values(response.headers(), "x-echo-trace"), ["t-9"]);
    assert_eq!(values(response.headers(), "x-user"), ["carol"]);
}

#[tokio::test]
async fn combined_layer_renders_both_sides_from_the_request_as_received() {
    let (inner, record) = recording(&[]);
    let layer = HeadersLayer::new()
        .request(HeaderRules::builder().remove("X-Trace").build().unwrap())
        .response(set("X-Trace", "{header.x-trace}"));
    let request = Request::get("/").header("x-trace", "t-1").body(()).unwrap();
    let response = layer.layer(inner).oneshot(request).await.unwrap();
    assert!(seen(&record).headers().get("x-trace").is_none());
    assert_eq!(values(response.headers(), "x-trace"), ["t-1"]);
}

#[tokio::test]
async fn more_templated_rules_than_inline_slots_all_render() {
    let mut builder = HeaderRules::builder();
    let names: Vec<String> = (0..9).map(|i| format!("x-t{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        builder = match i % 3 {
            0 => builder.set(name, "{method}"),
            1 => builder.add(name, "{path}"),
            _ => builder.set_if_absent(name, "{method}{path}"),
        };
    }
    let h = forwarded(
        builder.build().unwrap(),
        Request::post("/p").body(()).unwrap(),
    )
    .await;
    for (i, name) in names.iter().enumerate() {
        let expected = ["POST", "/p", "POST/p"][i % 3];
        assert_eq!(values(&h, name), [expected], "{name}");
    }
}

#[tokio::test]
async fn single_and_embedded_placeholders_render_alike() {
    let rules = HeaderRules::builder()
        .set("X-Ip", "{client_ip}")
        .set("X-Ip-Text", "ip={client_ip}")
        .set("X-Method", "{method}")
        .set("X-Method-Text", "m={method}")
        .set("X-Path", "{path}")
        .set("X-Path-Text", "p={path}")
        .build()
        .unwrap();
    let peer: SocketAddr = "198.51.100.200:1".parse().unwrap();
    let request = Request::builder()
        .method(http::Method::from_bytes(b"PURGE").unwrap())
        .uri("/cache/item")
        .extension(PeerAddr(peer))
        .body(())
        .unwrap();
    let h = forwarded(rules, request).await;
    assert_eq!(values(&h, "x-ip"), ["198.51.100.200"]);
    assert_eq!(values(&h, "x-ip-text"), ["ip=198.51.100.200"]);
    assert_eq!(values(&h, "x-method"), ["PURGE"]);
    assert_eq!(values(&h, "x-method-text"), ["m=PURGE"]);
    assert_eq!(values(&h, "x-path"), ["/cache/item"]);
    assert_eq!(values(&h, "x-path-text"), ["p=/cache/item"]);
}
