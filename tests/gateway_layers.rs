//! The layers wired through the gateway's config, end to end over real sockets: JWT auth and
//! roles, identity headers that can't be spoofed, rate limits, circuit breakers, header rules.

mod support;

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::json;
use support::jwt::{jwt_section, token};
use support::upstream::Upstream;
use support::{TempDir, TestGateway, config, get, json, send};

fn get_with(url: &str, headers: &[(&str, &str)]) -> Request<Full<bytes::Bytes>> {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Full::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_modes_roles_and_identity_headers() {
    let upstream = Upstream::start("app").await;
    let dir = TempDir::new();
    let gw = TestGateway::start(&config(&format!(
        "{jwt}[upstreams.app]\ntargets = [\"{url}\"]\n\
         [[routes]]\npath = \"/private\"\nupstream = \"app\"\nauth = \"required\"\n\
         [[routes]]\npath = \"/admin\"\nupstream = \"app\"\nauth = \"required\"\nroles = [\"admin\"]\n\
         [[routes]]\npath = \"/maybe\"\nupstream = \"app\"\nauth = \"optional\"\n\
         [[routes]]\npath = \"/open\"\nupstream = \"app\"\n",
        jwt = jwt_section(&dir),
        url = upstream.url()
    )));
    let alice = token(json!({"user_id": "alice", "role": "user"}));
    let root = token(json!({"sub": "root", "role": ["ops", "admin"]}));
    let bearer = |t: &str| format!("Bearer {t}");

    // Required: no token is 401 without an error code; a bad one says why.
    let (parts, body) = get(&gw.url("/private/x")).await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        parts.headers["www-authenticate"],
        "Bearer realm=\"gateway\""
    );
    assert_eq!(json(&body)["status"], 401);
    let tampered = format!("{}x", &alice[..alice.len() - 1]);
    let (parts, _) = send(get_with(
        &gw.url("/private/x"),
        &[("authorization", &bearer(&tampered))],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert!(
        parts.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // A valid token reaches the upstream with the identity headers, and spoofed copies are gone.
    let (parts, body) = send(get_with(
        &gw.url("/private/x"),
        &[
            ("authorization", &bearer(&alice)),
            ("x-user-id", "mallory"),
            ("x-user-role", "admin"),
        ],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    let headers = &json(&body)["headers"];
    assert_eq!(headers["x-user-id"], json!(["alice"]));
    assert_eq!(headers["x-user-role"], json!(["user"]));

    // Roles.
    let (parts, _) = send(get_with(
        &gw.url("/admin"),
        &[("authorization", &bearer(&alice))],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    assert!(
        parts.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let (parts, body) = send(get_with(
        &gw.url("/admin"),
        &[("authorization", &bearer(&root))],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(json(&body)["headers"]["x-user-id"], json!(["root"]));

    // Optional: anonymous passes without identity, an invalid token does not.
    let (parts, body) = send(get_with(&gw.url("/maybe"), &[("x-user-id", "mallory")])).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(json(&body)["headers"].get("x-user-id").is_none());
    let (parts, _) = send(get_with(
        &gw.url("/maybe"),
        &[("authorization", "Bearer not.a.token")],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);

    // No auth on the route: spoofed identity headers are still removed.
    let (parts, body) = send(get_with(
        &gw.url("/open"),
        &[("x-user-id", "mallory"), ("x-user-role", "admin")],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    let headers = &json(&body)["headers"];
    assert!(
        headers.get("x-user-id").is_none() && headers.get("x-user-role").is_none(),
        "{headers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_counts_exactly_per_key_and_per_route() {
    let upstream = Upstream::start("app").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/limited\"\nupstream = \"app\"\n\
         [routes.rate_limit]\nalgorithm = \"fixed_window\"\nlimit = 5\nwindow = \"1h\"\nkey = \"header:X-Api-Key\"\n\
         [[routes]]\npath = \"/other\"\nupstream = \"app\"\n\
         [routes.rate_limit]\nalgorithm = \"token_bucket\"\ncapacity = 2\nrefill_per_second = 0.001\nkey = \"global\"\n",
        upstream.url()
    )));
    let hit = |key: &'static str| {
        let url = gw.url("/limited/x");
        async move { send(get_with(&url, &[("x-api-key", key)])).await.0 }
    };
    for expected_remaining in (0..5).rev() {
        let parts = hit("a").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["x-ratelimit-limit"], "5");
        assert_eq!(
            parts.headers["x-ratelimit-remaining"],
            expected_remaining.to_string().as_str()
        );
        assert!(parts.headers.contains_key("ratelimit-policy"));
    }
    let refused = hit("a").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after));
    // Another key has its own budget; another route its own limiter.
    assert_eq!(hit("b").await.status, StatusCode::OK);
    assert_eq!(get(&gw.url("/other")).await.0.status, StatusCode::OK);
    assert_eq!(get(&gw.url("/other")).await.0.status, StatusCode::OK);
    assert_eq!(
        get(&gw.url("/other")).await.0.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(upstream.requests(), 5 + 1 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_per_upstream_and_recovers() {
    let flaky = Upstream::start("flaky").await;
    let steady = Upstream::start("steady").await;
    let gw = TestGateway::start(&config(&format!(
        "[upstreams.flaky]\ntargets = [\"{}\"]\n\
         [upstreams.flaky.circuit_breaker]\nfailure_threshold = 3\nsuccess_threshold = 1\nopen_for = \"300ms\"\n\
         [upstreams.steady]\ntargets = [\"{}\"]\n\
         [[routes]]\npath = \"/flaky\"\nupstream = \"flaky\"\n[[routes]]\npath = \"/steady\"\nupstream = \"steady\"\n",
        flaky.url(),
        steady.url()
    )));
    flaky
        .seen
        .failing
        .store(true, std::sync::atomic::Ordering::Relaxed);
    for _ in 0..3 {
        assert_eq!(
            get(&gw.url("/flaky")).await.0.status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    // Open: refused at once, the upstream sees nothing, other upstreams are unaffected.
    let seen = flaky.requests();
    let (parts, body) = get(&gw.url("/flaky")).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(parts.headers.contains_key("retry-after"));
    assert_eq!(json(&body)["status"], 503);
    assert_eq!(flaky.requests(), seen);
    assert_eq!(get(&gw.url("/steady")).await.0.status, StatusCode::OK);
    // Healed: after open_for the probe succeeds and the circuit closes.
    flaky
        .seen
        .failing
        .store(false, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(&gw.url("/flaky")).await.0.status, StatusCode::OK);
    assert_eq!(get(&gw.url("/flaky")).await.0.status, StatusCode::OK);
    assert_eq!(flaky.requests(), seen + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_apply_to_requests_responses_and_gateway_errors() {
    let upstream = Upstream::start("app").await;
    let dir = TempDir::new();
    let gw = TestGateway::start(&config(&format!(
        "{jwt}[headers.response]\nset = {{ \"X-Gateway\" = \"gateway\" }}\n\
         [upstreams.app]\ntargets = [\"{url}\"]\n\
         [[routes]]\npath = \"/app\"\nupstream = \"app\"\nauth = \"optional\"\n\
         [routes.request_headers]\nset = {{ \"X-Source\" = \"gateway\", \"X-Caller\" = \"{{claim.user_id}}\", \"X-Route-Path\" = \"{{method}} {{path}}\" }}\nremove = [\"Cookie\"]\n\
         [routes.response_headers]\nremove = [\"Server\"]\nset = {{ \"X-Client\" = \"{{client_ip}}\" }}\n",
        jwt = jwt_section(&dir),
        url = upstream.url()
    )));
    let alice = token(json!({"user_id": "alice"}));
    let (parts, body) = send(get_with(
        &gw.url("/app/x?y=1"),
        &[
            ("cookie", "session=secret"),
            ("authorization", &format!("Bearer {alice}")),
        ],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    let headers = &json(&body)["headers"];
    assert_eq!(headers["x-source"], json!(["gateway"]));
    assert_eq!(headers["x-caller"], json!(["alice"]));
    assert_eq!(headers["x-route-path"], json!(["GET /app/x"]));
    assert!(headers.get("cookie").is_none());
    assert!(
        headers["x-request-id"][0]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(parts.headers["x-gateway"], "gateway");
    assert_eq!(parts.headers["x-client"], "127.0.0.1");
    assert!(parts.headers.get("server").is_none(), "{:?}", parts.headers);
    assert_eq!(
        parts.headers["x-request-id"].to_str().unwrap(),
        headers["x-request-id"][0].as_str().unwrap()
    );

    // The gateway's own error responses get the global rules too.
    let (parts, _) = get(&gw.url("/missing")).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert_eq!(parts.headers["x-gateway"], "gateway");
    assert!(parts.headers.contains_key("x-request-id"));
    let (parts, _) = send(get_with(
        &gw.url("/app"),
        &[("authorization", "Bearer bad")],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(parts.headers["x-gateway"], "gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_header_cannot_strip_identity_headers() {
    let upstream = Upstream::start("app").await;
    let dir = TempDir::new();
    let gw = TestGateway::start(&config(&format!(
        "{jwt}[upstreams.app]\ntargets = [\"{url}\"]\n[[routes]]\npath = \"/private\"\nupstream = \"app\"\nauth = \"required\"\n\
         [routes.request_headers]\nset = {{ \"X-Source\" = \"gateway\" }}\n",
        jwt = jwt_section(&dir),
        url = upstream.url()
    )));
    let alice = token(json!({"user_id": "alice", "role": "user"}));
    let (parts, body) = send(get_with(
        &gw.url("/private"),
        &[
            ("authorization", &format!("Bearer {alice}")),
            ("connection", "x-user-id, x-user-role, x-source"),
        ],
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    let headers = &json(&body)["headers"];
    assert_eq!(headers["x-user-id"], json!(["alice"]));
    assert_eq!(headers["x-user-role"], json!(["user"]));
    assert_eq!(headers["x-source"], json!(["gateway"]));
}
