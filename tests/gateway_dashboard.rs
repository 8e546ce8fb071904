//! The admin listener's dashboard: the `/api/status` document, the admin token, the page's
//! Content-Security-Policy and self-containment, the Grafana dashboard's queries against
//! the metrics a running gateway exports, and the page as headless Chromium renders it.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use support::upstream::Upstream;
use support::{TempDir, TestGateway, config, get, json, send};

/// The variable `[admin] token_env` names in the token test.
const TOKEN_VAR: &str = "GATEWAY_DASHBOARD_TEST_ADMIN_TOKEN";
const TOKEN: &str = "dashboard-test-token-7f3a";

/// Sets [`TOKEN_VAR`] once. Every test of this binary calls this first, before it starts a
/// gateway, an upstream or a browser.
fn set_token_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the threads alive by now are the harness's and idle tokio workers; the
        // code of this binary reads the environment only through `std::env`, which takes the
        // same lock as `set_var`, and no test gets past this call before the write is done.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(TOKEN_VAR, TOKEN);
        }
    });
}

/// A loopback address nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Two routes on two upstreams: `catalog` on a live one, `orders` on one whose only target
/// is a closed port, with health checks and a breaker that opens after two failures.
fn two_routes(admin_extra: &str, live: &Upstream, down: SocketAddr) -> String {
    config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{admin_extra}\n\
         [upstreams.catalog-svc]\ntargets = [\"{live}\"]\n\
         [upstreams.catalog-svc.health_check]\npath = \"/\"\ninterval = \"100ms\"\nhealthy_threshold = 1\n\
         [upstreams.orders-svc]\ntargets = [\"http://{down}\"]\n\
         [upstreams.orders-svc.health_check]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"200ms\"\nunhealthy_threshold = 1\n\
         [upstreams.orders-svc.circuit_breaker]\nfailure_threshold = 2\nopen_for = \"1h\"\n\
         [[routes]]\nname = \"catalog\"\npath = \"/catalog\"\nupstream = \"catalog-svc\"\nstrip_prefix = true\n\
         [routes.rate_limit]\nlimit = 1000\nwindow = \"1m\"\nkey = \"global\"\n\
         [[routes]]\nname = \"orders\"\npath = \"/orders\"\nmethods = [\"GET\", \"POST\"]\nupstream = \"orders-svc\"\n",
        live = live.url(),
    ))
}

fn admin_url(gw: &TestGateway, path: &str) -> String {
    format!("http://{}{path}", gw.admin.expect("admin listener"))
}

async fn status(gw: &TestGateway) -> Value {
    let (parts, body) = get(&admin_url(gw, "/api/status")).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "application/json");
    json(&body)
}

/// Polls `/api/status` until `ready` holds of it, up to ten seconds.
async fn status_when(gw: &TestGateway, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status(gw).await;
        if ready(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "never {what}: {status:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn upstream<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["upstreams"]
        .as_array()
        .and_then(|all| all.iter().find(|u| u["name"] == name))
        .unwrap_or_else(|| panic!("no upstream {name}: {status:#}"))
}

fn route<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["routes"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no route {name}: {status:#}"))
}

/// Sends traffic to both routes and waits until the down target is unhealthy, the breaker
/// open, and a history sample with the traffic was taken.
async fn drive_and_settle(gw: &TestGateway) -> Value {
    for path in [
        "/catalog/a",
        "/catalog/b",
        "/catalog/status/404",
        "/catalog/status/503",
    ] {
        get(&gw.url(path)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream(&status(gw).await, "orders-svc")["circuit_breaker"] != "open" {
        let (parts, _) = get(&gw.url("/orders/1")).await;
        assert!(parts.status.is_server_error(), "{}", parts.status);
        assert!(Instant::now() < deadline, "the breaker never opened");
    }
    status_when(gw, "settled", |status| {
        let down = &upstream(status, "orders-svc")["targets"][0];
        let sampled = route(status, "catalog")["history"]["status"]["2xx"]
            .as_array()
            .is_some_and(|counts| counts.iter().any(|n| n.as_u64() > Some(0)));
        down["health"] == "unhealthy" && sampled
    })
    .await
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Num,
    Bool,
    Arr,
    Obj,
    /// `null`, or the kind.
    Maybe(&'static Kind),
}

fn check(value: &Value, pointer: &str, kind: Kind) {
    let found = value
        .pointer(pointer)
        .unwrap_or_else(|| panic!("`{pointer}` missing from {value:#}"));
    let matches = |kind: Kind| match kind {
        Kind::Str => found.is_string(),
        Kind::Num => found.is_number(),
        Kind::Bool => found.is_boolean(),
        Kind::Arr => found.is_array(),
        Kind::Obj => found.is_object(),
        Kind::Maybe(_) => unreachable!(),
    };
    let ok = match kind {
        Kind::Maybe(inner) => found.is_null() || matches(*inner),
        kind => matches(kind),
    };
    assert!(ok, "`{pointer}` is {found}, expected {kind:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_document_has_the_documented_shape() {
    set_token_env();
    let live = Upstream::start("catalog").await;
    let down = closed_port();
    let gw = TestGateway::start(&two_routes("", &live, down));
    let status = drive_and_settle(&gw).await;

    use Kind::*;
    for (pointer, kind) in [
        ("/schema", Num),
        ("/generated_at_unix_ms", Num),
        ("/history/interval_seconds", Num),
        ("/history/samples", Num),
        ("/config/version", Num),
        ("/config/loaded_at_unix_ms", Num),
        ("/config/reloads", Arr),
        ("/routes", Arr),
        ("/upstreams", Arr),
        ("/auth_failures", Obj),
        ("/redis/configured", Bool),
        ("/redis/connected", Bool),
        ("/redis/required", Bool),
        ("/redis/backend_errors", Num),
    ] {
        check(&status, pointer, kind);
    }
    assert_eq!(status["routes"].as_array().unwrap().len(), 2);
    for route in status["routes"].as_array().unwrap() {
        for (pointer, kind) in [
            ("/name", Str),
            ("/path", Str),
            ("/methods", Maybe(&Arr)),
            ("/upstream", Str),
            ("/layers/auth", Str),
            ("/layers/roles", Arr),
            ("/layers/rate_limit", Bool),
            ("/layers/cache", Bool),
            ("/layers/cors", Bool),
            ("/layers/access", Bool),
            ("/layers/compression", Bool),
            ("/requests/total", Num),
            ("/requests/2xx", Num),
            ("/requests/5xx", Num),
            ("/current/requests_per_second", Maybe(&Num)),
            ("/current/p50_ms", Maybe(&Num)),
            ("/current/p99_ms", Maybe(&Num)),
            ("/history/newest_at_unix_ms", Maybe(&Num)),
            ("/history/requests_per_second", Arr),
            ("/history/p50_ms", Arr),
            ("/history/p99_ms", Arr),
            ("/history/status/1xx", Arr),
            ("/history/status/2xx", Arr),
            ("/history/status/3xx", Arr),
            ("/history/status/4xx", Arr),
            ("/history/status/5xx", Arr),
            ("/rate_limit", Maybe(&Obj)),
        ] {
            check(route, pointer, kind);
        }
        let samples = route["history"]["requests_per_second"].as_array().unwrap();
        assert!(samples.len() <= 150, "{}", samples.len());
        assert_eq!(
            samples.len(),
            route["history"]["status"]["2xx"].as_array().unwrap().len()
        );
    }
    let catalog = route(&status, "catalog");
    assert_eq!(catalog["path"], "/catalog");
    assert_eq!(catalog["methods"], Value::Null);
    assert_eq!(catalog["upstream"], "catalog-svc");
    assert_eq!(catalog["layers"]["rate_limit"], true);
    assert_eq!(catalog["layers"]["auth"], "none");
    assert_eq!(catalog["requests"]["2xx"], 2);
    assert_eq!(catalog["requests"]["4xx"], 1);
    assert_eq!(catalog["requests"]["5xx"], 1);
    check(catalog, "/rate_limit/allowed", Num);
    check(catalog, "/rate_limit/limited", Num);
    check(catalog, "/rate_limit/decisions", Obj);
    assert_eq!(catalog["rate_limit"]["allowed"], 4);
    let orders = route(&status, "orders");
    assert_eq!(orders["methods"], serde_json::json!(["GET", "POST"]));
    assert_eq!(orders["rate_limit"], Value::Null);

    assert_eq!(status["upstreams"].as_array().unwrap().len(), 2);
    for upstream in status["upstreams"].as_array().unwrap() {
        check(upstream, "/name", Str);
        check(upstream, "/available", Bool);
        check(upstream, "/circuit_breaker", Maybe(&Str));
        check(upstream, "/targets", Arr);
        for target in upstream["targets"].as_array().unwrap() {
            for (pointer, kind) in [
                ("/url", Str),
                ("/address", Maybe(&Str)),
                ("/health", Str),
                ("/healthy", Bool),
                ("/ejected", Bool),
                ("/in_flight", Num),
                ("/weight", Num),
                ("/last_probe", Maybe(&Str)),
                ("/last_error", Maybe(&Str)),
            ] {
                check(target, pointer, kind);
            }
        }
    }
    let orders_svc = upstream(&status, "orders-svc");
    assert_eq!(orders_svc["circuit_breaker"], "open");
    let target = &orders_svc["targets"][0];
    assert_eq!(target["address"], down.to_string());
    assert_eq!(target["healthy"], false);
    assert!(target["last_error"].is_string(), "{target}");
    let catalog_svc = upstream(&status, "catalog-svc");
    assert_eq!(catalog_svc["circuit_breaker"], Value::Null);
    assert_eq!(catalog_svc["targets"][0]["health"], "healthy");
    assert_eq!(status["redis"]["configured"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_every_admin_path_but_health() {
    set_token_env();
    let live = Upstream::start("catalog").await;
    let down = closed_port();
    let open = TestGateway::start(&two_routes("", &live, down));
    assert_eq!(
        get(&admin_url(&open, "/api/status")).await.0.status,
        StatusCode::OK,
        "no token_env: no token needed"
    );

    let gw = TestGateway::start(&two_routes(
        &format!("token_env = \"{TOKEN_VAR}\"\n"),
        &live,
        down,
    ));
    let with = |path: &str, authorization: Option<&str>| {
        let mut request = http::Request::get(admin_url(&gw, path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.body(Default::default()).unwrap()
    };
    let bearer = format!("Bearer {TOKEN}");
    for path in [
        "/",
        "/dashboard.js",
        "/dashboard.css",
        "/api/status",
        "/metrics",
        "/ready",
    ] {
        let (parts, body) = send(with(path, None)).await;
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(parts.headers["content-type"], "application/problem+json");
        assert!(parts.headers.contains_key("www-authenticate"), "{path}");
        assert!(
            !String::from_utf8_lossy(&body).contains("catalog"),
            "{path}"
        );
        let wrong = send(with(path, Some("Bearer dashboard-test-token-7f3b"))).await;
        assert_eq!(wrong.0.status, StatusCode::UNAUTHORIZED, "{path}");
        let basic = send(with(path, Some(&format!("Basic {TOKEN}")))).await;
        assert_eq!(basic.0.status, StatusCode::UNAUTHORIZED, "{path}");
        let (parts, _) = send(with(path, Some(&bearer))).await;
        assert_eq!(parts.status, StatusCode::OK, "{path}");
    }
    let purge = |authorization: Option<&str>| {
        let mut request = http::Request::post(admin_url(&gw, "/cache/purge"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.body(r#"{"all": true}"#.into()).unwrap()
    };
    assert_eq!(send(purge(None)).await.0.status, StatusCode::UNAUTHORIZED);
    // With the token the purge is answered (no [cache] here: 404 says so).
    assert_eq!(
        send(purge(Some(&bearer))).await.0.status,
        StatusCode::NOT_FOUND
    );
    let (parts, _) = send(with("/health", None)).await;
    assert_eq!(parts.status, StatusCode::OK, "probes need no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_is_self_contained_under_a_strict_policy() {
    set_token_env();
    let live = Upstream::start("catalog").await;
    let gw = TestGateway::start(&two_routes("", &live, closed_port()));

    let (parts, page) = get(&admin_url(&gw, "/")).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "text/html; charset=utf-8");
    let policy = parts.headers["content-security-policy"].to_str().unwrap();
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    for expected in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
    ] {
        assert!(directives.contains(&expected), "{expected} not in {policy}");
    }
    assert!(
        !policy.contains("unsafe-") && !policy.contains('*') && !policy.contains("http"),
        "{policy}"
    );
    assert_eq!(parts.headers["x-content-type-options"], "nosniff");

    let page = String::from_utf8(page.to_vec()).unwrap();
    let mut assets = Vec::new();
    for (path, content_type) in [
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let (parts, body) = get(&admin_url(&gw, path)).await;
        assert_eq!(parts.status, StatusCode::OK, "{path}");
        let served = parts.headers["content-type"].to_str().unwrap();
        assert!(served.starts_with(content_type), "{path}: {served}");
        assert_eq!(parts.headers["content-security-policy"], policy, "{path}");
        assets.push(String::from_utf8(body.to_vec()).unwrap());
    }
    let [script, style] = <[String; 2]>::try_from(assets).unwrap();
    for (name, text) in [("page", &page), ("script", &script), ("style", &style)] {
        for scheme in ["http://", "https://", "ws://", "wss://"] {
            assert!(
                !text.contains(scheme),
                "the {name} names an origin: {scheme}"
            );
        }
        assert!(!text.contains("@import"), "the {name} imports");
    }
    // Every reference of the page is a path of its own origin (not `//host`), or data.
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attribute) {
            let value = &page[at + attribute.len()..];
            let value = &value[..value.find('"').unwrap()];
            assert!(
                (value.starts_with('/') && !value.starts_with("//")) || value.starts_with("data:"),
                "{attribute}{value}"
            );
        }
    }
    assert!(!page.contains("<script>"), "no inline script");
    assert!(!page.contains("style="), "no inline style");
    // The script fetches only its own admin paths.
    for (at, _) in script.match_indices("fetch(") {
        let argument = &script[at + "fetch(".len()..];
        assert!(argument.starts_with("'/api/status'"), "{}", &argument[..40]);
    }

    // Never on the public port.
    let (parts, body) = get(&gw.url("/")).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&body).contains("dashboard"));
    assert_eq!(
        get(&gw.url("/api/status")).await.0.status,
        StatusCode::NOT_FOUND
    );
}

/// Every `gateway_*` metric name in a Grafana query text.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("gateway_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// The query texts of a Grafana dashboard: panel targets' `expr`, and variables' queries.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", Value::String(text)) => {
                        out.push(text.clone());
                    }
                    _ => queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_only_exported_metrics() {
    set_token_env();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/gateway.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no prometheus datasource variable"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        assert!(panel["targets"].as_array().is_some_and(|t| !t.is_empty()));
    }

    let live = Upstream::start("catalog").await;
    let gw = TestGateway::start(&two_routes("", &live, closed_port()));
    drive_and_settle(&gw).await;
    let (_, body) = get(&admin_url(&gw, "/metrics")).await;
    let exported = String::from_utf8(body.to_vec()).unwrap();
    let typed = |name: &str| -> Option<String> {
        exported.lines().find_map(|line| {
            let rest = line.strip_prefix("# TYPE ")?.strip_prefix(name)?;
            rest.strip_prefix(' ').map(str::to_owned)
        })
    };

    let mut texts = Vec::new();
    queries(&dashboard, &mut texts);
    let names: std::collections::BTreeSet<String> =
        texts.iter().flat_map(|text| metric_names(text)).collect();
    for wanted in [
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_ratelimit_decisions_total",
        "gateway_circuit_state",
        "gateway_upstream_target_healthy",
        "gateway_cache_requests_total",
    ] {
        assert!(
            names.contains(wanted),
            "the dashboard does not query {wanted}"
        );
    }
    for name in &names {
        let histogram = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| typed(base).as_deref() == Some("histogram"));
        match histogram {
            Some(base) => assert!(
                exported.contains(&format!("{name}{{")),
                "{name}: histogram {base} has no such series"
            ),
            None => assert!(
                typed(name).is_some(),
                "{name} is queried but the gateway exports no such metric"
            ),
        }
        // Driven above, so the series itself exists too (not only its TYPE line) for the
        // metrics every gateway has.
        if matches!(
            name.as_str(),
            "gateway_requests_total"
                | "gateway_ratelimit_decisions_total"
                | "gateway_circuit_state"
                | "gateway_upstream_target_healthy"
        ) {
            assert!(exported.contains(&format!("{name}{{")), "{name}: no series");
        }
    }
}

/// Escapes text as a DOM serializer writes it in a text node.
fn as_html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The element of `dom` whose start tag contains `marker`, through its end `tag`.
fn element<'a>(dom: &'a str, marker: &str, tag: &str) -> &'a str {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in the rendered page:\n{dom}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = dom[at..]
        .find(&format!("</{tag}>"))
        .map_or(dom.len(), |end| at + end);
    &dom[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_renders_routes_upstreams_and_a_failed_reload() {
    set_token_env();
    let browser = support::chromium::binary();
    let live = Upstream::start("catalog").await;
    let down = closed_port();
    let text = two_routes("", &live, down);
    let gw = TestGateway::start(&text);
    drive_and_settle(&gw).await;
    let dir = TempDir::new();
    let url = admin_url(&gw, "/");
    let render = |url: String, dir: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || support::chromium::dump_dom(&dir, &url, 5000))
    };

    let dom = render(url.clone(), dir.path.clone()).await.unwrap();
    assert!(
        dom.contains("state-ok"),
        "the page did not load its status ({}):\n{dom}",
        browser.display()
    );
    for name in ["catalog", "orders"] {
        let row = element(&dom, &format!("data-route=\"{name}\""), "tr");
        assert!(
            row.contains(&format!("<span class=\"route-name\">{name}</span>")),
            "{row}"
        );
    }
    let catalog = element(&dom, "data-route=\"catalog\"", "tr");
    assert!(catalog.contains("rate limit"), "{catalog}");
    assert!(catalog.contains("<svg"), "no charts: {catalog}");
    assert!(
        catalog.contains("class=\"bar-2xx\""),
        "no status bars: {catalog}"
    );
    let target = element(&dom, &format!("data-target=\"{down}\""), "tr");
    assert!(target.contains("data-health=\"unhealthy\""), "{target}");
    assert!(target.contains(">unhealthy<"), "{target}");
    let orders = element(&dom, "data-upstream=\"orders-svc\"", "table");
    assert!(orders.contains("data-breaker=\"open\""), "{orders}");
    assert!(orders.contains(">circuit open<"), "{orders}");
    let healthy = element(&dom, &format!("data-target=\"{}\"", live.addr), "tr");
    assert!(healthy.contains(">healthy<"), "{healthy}");

    let shot = dir.path.join("dash.png");
    {
        let (dir, url, shot) = (dir.path.clone(), url.clone(), shot.clone());
        tokio::task::spawn_blocking(move || {
            support::chromium::screenshot(&dir, &url, &shot, 1280, 900, 5000)
        })
        .await
        .unwrap();
    }
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10 << 10, "the screenshot is {size} bytes");

    // A config that names an upstream nobody defined: the reload fails, the page says why.
    std::fs::write(
        &gw.config_path,
        text.replace("upstream = \"orders-svc\"", "upstream = \"nowhere-svc\""),
    )
    .unwrap();
    let error = gw.reload().unwrap_err();
    let line = error.lines().next().unwrap().to_owned();
    assert!(line.contains("nowhere-svc"), "{line}");
    status_when(&gw, "showing the failed reload", |status| {
        status["config"]["reloads"][0]["result"] == "failure"
            && status["config"]["reloads"][0]["error"] == line.as_str()
    })
    .await;
    let dom = render(url, dir.path.clone()).await.unwrap();
    let reload = element(&dom, "data-result=\"failure\"", "tr");
    assert!(
        reload.contains(&as_html_text(&line)),
        "{line} not in {reload}"
    );
    assert!(reload.contains(">failure<"), "{reload}");
    // The old config still serves, and the page still shows it.
    assert!(dom.contains("data-route=\"orders\""));
}
