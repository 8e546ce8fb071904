//! Edge policies through the gateway binary: CORS preflights and actual requests, IP access
//! lists on the resolved client IP, and a reload that changes them.

mod support;

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::Full;
use support::upstream::Upstream;
use support::{TempDir, TestGateway, config, json, metric, send};

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Request<Full<bytes::Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::default()).unwrap()
}

fn cors_config(upstream: &Upstream, dir: &TempDir) -> String {
    let secret = dir.path.join("secret");
    std::fs::write(&secret, "an edge test secret of 32 bytes!").unwrap();
    let jwt = format!(
        "[jwt]\nalgorithms = [\"HS256\"]\nsecret_file = \"{}\"\n",
        secret.display()
    );
    config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{jwt}\
         [cors]\nallow_origins = [\"https://app.example.com\", \"https://*.example.com\"]\n\
         allow_methods = [\"GET\", \"POST\"]\nallow_headers = [\"Authorization\", \"Content-Type\"]\n\
         expose_headers = [\"X-Request-Id\"]\nmax_age = \"10m\"\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/api\"\nupstream = \"app\"\nauth = \"required\"\n\
         [[routes]]\npath = \"/partner\"\nupstream = \"app\"\n\
         [routes.cors]\nallow_origins = [\"https://partner.test\"]\nallow_credentials = true\n",
        upstream.url()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_at_the_edge_without_a_token() {
    let upstream = Upstream::start("app").await;
    let dir = TempDir::new();
    let gw = TestGateway::start(&cors_config(&upstream, &dir));
    let preflight = |origin: &str, method: &str, headers: &str| {
        let mut list = vec![
            ("origin", origin.to_owned()),
            ("access-control-request-method", method.to_owned()),
        ];
        if !headers.is_empty() {
            list.push(("access-control-request-headers", headers.to_owned()));
        }
        list
    };
    let send_preflight = |headers: Vec<(&'static str, String)>| {
        let url = gw.url("/api/orders");
        async move {
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            send(request("OPTIONS", &url, &pairs)).await
        }
    };

    let (parts, _) =
        send_preflight(preflight("https://app.example.com", "POST", "content-type")).await;
    assert_eq!(parts.status, StatusCode::NO_CONTENT);
    let h = &parts.headers;
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h["access-control-max-age"], "600");
    assert!(
        h["vary"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );

    let (parts, _) = send_preflight(preflight("https://a.b.example.com", "GET", "")).await;
    assert_eq!(
        parts.status,
        StatusCode::NO_CONTENT,
        "a deep subdomain matches"
    );

    for (origin, method, headers) in [
        ("https://evil-example.com", "GET", ""),
        ("https://example.com.evil.net", "GET", ""),
        ("https://example.com", "GET", ""),
        ("http://app.example.com", "GET", ""),
        ("https://app.example.com", "DELETE", ""),
        ("https://app.example.com", "GET", "x-secret"),
    ] {
        let (parts, body) = send_preflight(preflight(origin, method, headers)).await;
        assert_eq!(
            parts.status,
            StatusCode::FORBIDDEN,
            "{origin} {method} {headers}"
        );
        assert_eq!(parts.headers["content-type"], "application/problem+json");
        assert!(!parts.headers.contains_key("access-control-allow-origin"));
        assert!(!body.is_empty());
    }
    // Not one preflight reached the upstream, and none needed a token.
    assert_eq!(upstream.requests(), 0);

    // An actual request still needs its token on the auth route.
    let (parts, _) = send(request(
        "GET",
        &gw.url("/api/orders"),
        &[("origin", "https://app.example.com")],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    let (_, body) = support::get(&format!("http://{}/metrics", gw.admin.unwrap())).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        metric(&text, "gateway_cors_rejected_total{route=\"/api\"}"),
        Some(6.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_requests_get_cors_headers_only_for_allowed_origins() {
    let upstream = Upstream::start("app").await;
    let dir = TempDir::new();
    let gw = TestGateway::start(&cors_config(&upstream, &dir));
    // The route's own section replaces the gateway-wide one: credentials, its one origin.
    let (parts, body) = send(request(
        "GET",
        &gw.url("/partner/x"),
        &[("origin", "https://partner.test")],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(json(&body)["upstream"], "app");
    assert_eq!(
        parts.headers["access-control-allow-origin"],
        "https://partner.test"
    );
    assert_eq!(parts.headers["access-control-allow-credentials"], "true");
    assert!(
        parts.headers["vary"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );

    for origin in ["https://app.example.com", "https://evil.test"] {
        let (parts, _) = send(request("GET", &gw.url("/partner/x"), &[("origin", origin)])).await;
        assert_eq!(parts.status, StatusCode::OK, "forwarded all the same");
        assert!(
            !parts.headers.contains_key("access-control-allow-origin"),
            "{origin}"
        );
    }
    let (parts, _) = send(request("GET", &gw.url("/partner/x"), &[])).await;
    assert!(!parts.headers.contains_key("access-control-allow-origin"));
}

fn access_config(upstream: &Upstream, trusted: &str, route_access: &str) -> String {
    config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [access]\ndeny = [\"10.1.2.0/24\", \"2001:db8:bad::/48\"]\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/pub\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/admin\"\nupstream = \"app\"\n{route_access}\n",
        upstream.url()
    ))
    .replace(
        "access_log = false\n",
        &format!("access_log = false\ntrusted_proxies = {trusted}\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lists_check_the_resolved_client_ip() {
    let upstream = Upstream::start("app").await;
    let office = "[routes.access]\nallow = [\"192.168.1.0/24\", \"2001:db8:1::7\"]";
    // The loopback peer is a trusted proxy: its X-Forwarded-For names the client.
    let gw = TestGateway::start(&access_config(&upstream, "[\"127.0.0.0/8\"]", office));
    let from = |path: &str, client: &str| {
        let url = gw.url(path);
        let client = client.to_owned();
        async move {
            send(request("GET", &url, &[("x-forwarded-for", &client)]))
                .await
                .0
                .status
        }
    };
    assert_eq!(from("/pub/x", "203.0.113.9").await, StatusCode::OK);
    assert_eq!(from("/pub/x", "10.1.2.3").await, StatusCode::FORBIDDEN);
    assert_eq!(
        from("/pub/x", "::ffff:10.1.2.3").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        from("/pub/x", "2001:db8:bad::1").await,
        StatusCode::FORBIDDEN
    );
    // The route's list replaces the gateway-wide one wholesale.
    assert_eq!(from("/admin/x", "192.168.1.20").await, StatusCode::OK);
    assert_eq!(from("/admin/x", "2001:db8:1::7").await, StatusCode::OK);
    assert_eq!(
        from("/admin/x", "2001:db8:1::8").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(from("/admin/x", "203.0.113.9").await, StatusCode::FORBIDDEN);
    assert_eq!(upstream.requests(), 3);
    let (_, body) = support::get(&format!("http://{}/metrics", gw.admin.unwrap())).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        metric(&text, "gateway_access_denied_total{route=\"/pub\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "gateway_access_denied_total{route=\"/admin\"}"),
        Some(2.0),
        "{text}"
    );

    // From an untrusted peer, a spoofed X-Forwarded-For changes nothing: the peer is the client.
    let gw = TestGateway::start(&access_config(&upstream, "[]", office));
    let status = send(request(
        "GET",
        &gw.url("/admin/x"),
        &[("x-forwarded-for", "192.168.1.20")],
    ))
    .await
    .0
    .status;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_policies_and_keeps_connections() {
    let upstream = Upstream::start("app").await;
    let open = access_config(&upstream, "[]", "");
    let gw = TestGateway::start(&open);
    let client = support::client();
    let get = |client: &hyper_util::client::legacy::Client<_, Full<bytes::Bytes>>| {
        let request = request("GET", &gw.url("/admin/x"), &[]);
        let client = client.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(10), client.request(request))
                .await
                .unwrap()
                .unwrap()
                .status()
        }
    };
    assert_eq!(get(&client).await, StatusCode::OK);
    let closed = access_config(
        &upstream,
        "[]",
        "[routes.access]\ndeny = [\"127.0.0.0/8\", \"::1\"]",
    );
    std::fs::write(&gw.config_path, closed).unwrap();
    assert_eq!(gw.reload(), Ok(2));
    // The same keep-alive client, now refused.
    assert_eq!(get(&client).await, StatusCode::FORBIDDEN);
    let broken = access_config(
        &upstream,
        "[]",
        "[routes.access]\nallow = [\"10.0.0.0/33\"]",
    );
    std::fs::write(&gw.config_path, broken).unwrap();
    let error = gw.reload().unwrap_err();
    assert!(error.contains("gateway.toml:"), "{error}");
    assert!(error.contains("routes[1].access"), "{error}");
    assert!(error.contains("10.0.0.0/33"), "{error}");
    assert_eq!(
        get(&client).await,
        StatusCode::FORBIDDEN,
        "the old config serves"
    );
}
