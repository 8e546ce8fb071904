//! The loader's and the checks' behaviour on config texts.

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(src: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("gw.toml"), src)
}

const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"

[upstreams.users]
targets = ["http://127.0.0.1:9001"]

[[routes]]
path = "/api"
upstream = "users"
"#;

const TRACING: &str = r#"
[tracing]
otlp_endpoint = "http://127.0.0.1:4318/v1/traces"
sample_ratio = 0.25
"#;

#[cfg(not(feature = "otlp"))]
#[test]
fn tracing_without_the_feature_is_located() {
    let err = parse(&format!("{BASE}{TRACING}")).unwrap_err();
    assert_eq!(err.position.map(|(line, _)| line), Some(12), "{err}");
    assert_eq!(err.field.as_deref(), Some("tracing"));
    assert!(err.message.contains("--features otlp"), "{err}");
}

#[cfg(feature = "otlp")]
#[test]
fn tracing_section_is_validated() {
    let config = parse(&format!("{BASE}{TRACING}")).unwrap();
    let tracing = config.tracing.unwrap().into_inner();
    assert_eq!(tracing.service_name, "gateway");
    assert_eq!(*tracing.sample_ratio.get_ref(), 0.25);
    assert_eq!(tracing.export_timeout.get(), Duration::from_secs(10));

    let err = parse(&format!("{BASE}{}", TRACING.replace("0.25", "1.5"))).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("tracing.sample_ratio"), "{err}");
    assert_eq!(err.position.map(|(line, _)| line), Some(14), "{err}");
    let err = parse(&format!("{BASE}{}", TRACING.replace("http://", "udp://"))).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("tracing.otlp_endpoint"), "{err}");
    assert_eq!(err.position.map(|(line, _)| line), Some(13), "{err}");
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(BASE).unwrap();
    assert_eq!(config.server.max_body.bytes(), 10 << 20);
    assert_eq!(config.server.request_timeout.get(), Duration::from_secs(30));
    assert_eq!(
        config.server.release_idle_after.get(),
        Duration::from_secs(1)
    );
    assert_eq!(config.routes[0].display_name(), "/api");
    assert_eq!(*config.routes[0].auth.get_ref(), AuthMode::None);
}

#[test]
fn unknown_key_names_file_line_and_field() {
    let err = parse(&BASE.replace("strip_prefix", "x").replace(
        "upstream = \"users\"",
        "upstream = \"users\"\nstrip_prefx = true",
    ))
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("gw.toml:11:"), "{text}");
    assert!(text.contains("strip_prefx"), "{text}");
}

#[test]
fn bad_duration_is_located() {
    let err = parse(&BASE.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:8080\"\nrequest_timeout = \"30 parsecs\"",
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("server.request_timeout"));
    assert_eq!(err.position.map(|p| p.0), Some(4));
    assert!(err.message.contains("invalid duration"), "{err}");
}

#[test]
fn release_idle_after_is_read_and_located() {
    let with = |value: &str| {
        BASE.replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:8080\"\nrelease_idle_after = {value}"),
        )
    };
    let config = parse(&with("\"250ms\"")).unwrap();
    assert_eq!(
        config.server.release_idle_after.get(),
        Duration::from_millis(250)
    );
    let err = parse(&with("\"soon\"")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("server.release_idle_after"));
    assert_eq!(err.position.map(|p| p.0), Some(4));
}

#[test]
fn unknown_upstream_is_located() {
    let err = parse(&BASE.replace("upstream = \"users\"", "upstream = \"orders\"")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].upstream"));
    assert_eq!(err.position.map(|p| p.0), Some(10));
    assert!(err.message.contains("orders"), "{err}");
}

#[test]
fn a_lease_without_redis_is_rejected() {
    let limited = format!("{BASE}[routes.rate_limit]\nlimit = 50\nwindow = \"1m\"\nlease = 10\n");
    let err = parse(&limited).unwrap_err();
    assert_eq!(
        err.field.as_deref(),
        Some("routes[0].rate_limit.lease"),
        "{err}"
    );
    let with_redis = format!("{limited}[redis]\nurl = \"redis://127.0.0.1:6379\"\n");
    let config = parse(&with_redis).unwrap();
    assert_eq!(
        config.routes[0].rate_limit.as_ref().unwrap().lease(),
        Some(10)
    );
}

#[test]
fn auth_without_jwt_is_rejected() {
    let err = parse(&format!("{BASE}auth = \"required\"\n")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].auth"));
}

#[test]
fn duplicate_route_is_rejected() {
    let err = parse(&format!(
        "{BASE}\n[[routes]]\npath = \"/api/\"\nupstream = \"users\"\n"
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[1].path"));
}

#[test]
fn upgrades_default_to_websocket_and_never_allow_h2c() {
    let config = parse(BASE).unwrap();
    assert_eq!(*config.routes[0].upgrades.get_ref(), ["websocket"]);
    let err = parse(&format!("{BASE}upgrades = [\"websocket\", \"h2c\"]\n")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].upgrades"), "{err}");
    assert_eq!(err.position.map(|p| p.0), Some(11), "{err}");
    assert!(err.message.contains("h2c"), "{err}");
    let config = parse(&format!("{BASE}upgrades = []\n")).unwrap();
    assert!(config.routes[0].upgrades.get_ref().is_empty());
}

#[test]
fn connect_cannot_be_a_route_method() {
    let err = parse(&format!("{BASE}methods = [\"GET\", \"connect\"]\n")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].methods"), "{err}");
    assert!(err.message.contains("CONNECT"), "{err}");
}

#[test]
fn header_limits_have_defaults_and_are_checked() {
    let config = parse(BASE).unwrap();
    assert_eq!(*config.server.max_headers.get_ref(), 100);
    assert_eq!(
        config.upstreams["users"].max_response_header_size.bytes(),
        64 << 10
    );
    let err = parse(&BASE.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:8080\"\nmax_headers = 0",
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("server.max_headers"), "{err}");
    assert_eq!(err.position.map(|p| p.0), Some(4), "{err}");
}

#[test]
fn method_split_routes_are_allowed() {
    let src = format!(
        "{BASE}methods = [\"GET\"]\n\n[[routes]]\npath = \"/api\"\nmethods = [\"post\"]\nupstream = \"users\"\n"
    );
    let config = parse(&src).unwrap();
    assert_eq!(
        config.routes[1].methods.as_deref(),
        Some(&[Method::POST][..])
    );
}

/// The README's config reference is a config the loader accepts, key for key.
#[test]
fn the_readme_config_reference_parses() {
    let readme = include_str!("../../../../README.md");
    let reference = readme
        .split("### Config reference")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .expect("README has a ```toml block under ### Config reference");
    // `[tracing]` needs the `otlp` feature; without it the loader rightly refuses it.
    let reference = if cfg!(feature = "otlp") {
        reference.to_owned()
    } else {
        let start = reference
            .find("[tracing]")
            .expect("the reference shows [tracing]");
        let end = start
            + reference[start..]
                .find("\n[")
                .expect("a section follows [tracing]");
        format!("{}{}", &reference[..start], &reference[end + 1..])
    };
    let config = parse(&reference).unwrap_or_else(|e| panic!("README config reference: {e}"));
    assert!(config.compression.is_some());
    assert!(config.cors.is_some() && config.access.is_some());
    let route = &config.routes[0];
    assert!(matches!(
        route.compression.as_ref().map(Spanned::get_ref),
        Some(RouteCompression::Settings(settings)) if settings.min_size.bytes() == 4096
    ));
}

#[test]
fn route_compression_is_a_switch_or_a_table() {
    let with = |line: &str| parse(&format!("{BASE}{line}\n"));
    let config = with("compression = false").unwrap();
    assert_eq!(
        config.routes[0].compression.as_ref().map(Spanned::get_ref),
        Some(&RouteCompression::Enabled(false))
    );
    let config = with("[routes.compression]\nalgorithms = [\"gzip\"]").unwrap();
    let Some(RouteCompression::Settings(settings)) =
        config.routes[0].compression.as_ref().map(Spanned::get_ref)
    else {
        panic!("a table is the route's own settings");
    };
    assert_eq!(settings.algorithms, ["gzip"]);
    assert_eq!(settings.min_size.bytes(), 1024, "defaults fill the rest");

    let err = with("compression = 1").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].compression"), "{err}");
    assert_eq!(err.position.map(|p| p.0), Some(11), "{err}");
    let err = with("[routes.compression]\nalgorithms = [\"gzip\", \"gzip\"]").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].compression"), "{err}");
    assert!(err.message.contains("gzip"), "{err}");
}

#[test]
fn cache_sections_are_checked_with_their_lines() {
    let with = |text: &str| parse(&format!("{BASE}{text}"));
    let config =
        with("[routes.cache]\ndefault_ttl = \"30s\"\n\n[cache]\nmax_size = \"1MiB\"\n").unwrap();
    assert_eq!(config.cache.unwrap().get_ref().max_size.bytes(), 1 << 20);
    let route = config.routes[0].cache.as_ref().unwrap().get_ref();
    assert_eq!(route.default_ttl.get(), Duration::from_secs(30));

    let err = with("[routes.cache]\n").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].cache"), "{err}");
    assert!(err.message.contains("[cache]"), "{err}");
    assert_eq!(err.position.map(|(line, _)| line), Some(11), "{err}");

    let err = with("[routes.cache]\nkey_headers = [\"bad header\"]\n[cache]\n").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("routes[0].cache"), "{err}");
    assert!(err.message.contains("key_headers[0]"), "{err}");

    let err = with("[routes.cache]\nttl = \"1s\"\n[cache]\n").unwrap_err();
    assert!(err.to_string().contains("ttl"), "{err}");

    // Located at the key the check names, not at the table's header.
    let err = with("[cache]\nmax_size = \"1MiB\"\nmax_object = \"2MiB\"\n").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("cache"), "{err}");
    assert_eq!(err.position.map(|(line, _)| line), Some(13), "{err}");
    assert!(err.message.contains("max_object"), "{err}");
}

const DISCOVERY: &str = r#"
[server]
listen = "127.0.0.1:8080"

[resolver]
nameservers = ["127.0.0.1:5353"]

[upstreams.users]
targets = [
  { url = "http://10.0.0.5:8080", weight = 9 },
  "http://users.internal:8080",
]
resolve_every = "2s"

[upstreams.users.health_check]
path = "/healthz"
interval = "3s"
expect_status = [200, 204]
host = "users.internal"

[upstreams.consul]
srv = "_http._tcp.users.service.consul"

[[routes]]
path = "/api"
upstream = "users"
"#;

#[test]
fn discovery_sections_parse_with_their_defaults() {
    let config = parse(DISCOVERY).unwrap();
    let resolver = config.resolver.unwrap().into_inner();
    assert_eq!(resolver.nameservers, ["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(resolver.attempts, 2);
    let users = &config.upstreams["users"];
    let targets: Vec<(&str, u32)> = users
        .targets
        .get_ref()
        .iter()
        .map(|t| (t.url.as_str(), t.weight))
        .collect();
    assert_eq!(
        targets,
        [
            ("http://10.0.0.5:8080", 9),
            ("http://users.internal:8080", 1)
        ]
    );
    assert_eq!(users.resolve_every.get(), Duration::from_secs(2));
    let check = users.health_check.as_ref().unwrap().get_ref();
    assert_eq!(check.interval.get(), Duration::from_secs(3));
    assert_eq!(check.timeout.get(), Duration::from_secs(1));
    assert_eq!((check.healthy_threshold, check.unhealthy_threshold), (2, 3));
    assert_eq!(check.expect_status.as_deref(), Some(&[200, 204][..]));
    let consul = &config.upstreams["consul"];
    assert!(consul.targets.get_ref().is_empty());
    assert_eq!(consul.resolve_every.get(), Duration::from_secs(10));
}

#[test]
fn discovery_mistakes_are_located() {
    let located = |src: String| {
        let err = parse(&src).unwrap_err();
        (err.position.map(|(line, _)| line), err.field, err.message)
    };
    let (line, field, message) = located(DISCOVERY.replace("weight = 9", "weight = 20000"));
    assert_eq!(line, Some(10), "{message}");
    assert_eq!(field.as_deref(), Some("upstreams.users.targets[0]"));
    assert!(message.contains("20000"), "{message}");

    let (line, _, message) = located(DISCOVERY.replace("weight = 9", "wieght = 9"));
    assert_eq!(line, Some(10), "{message}");
    assert!(message.contains("wieght"), "{message}");

    let (_, field, message) =
        located(DISCOVERY.replace("path = \"/healthz\"", "path = \"healthz\""));
    assert_eq!(field.as_deref(), Some("upstreams.users.health_check"));
    assert!(message.contains("must start with `/`"), "{message}");

    let (_, field, message) = located(DISCOVERY.replace("[200, 204]", "[200, 42]"));
    assert_eq!(field.as_deref(), Some("upstreams.users.health_check"));
    assert!(message.contains("42"), "{message}");

    let (line, field, message) =
        located(DISCOVERY.replace("_http._tcp.users", "_http._tcp..users"));
    assert_eq!(line, Some(22), "{message}");
    assert_eq!(field.as_deref(), Some("upstreams.consul.srv"));

    let (_, field, message) = located(DISCOVERY.replace(
        "srv = \"_http._tcp.users.service.consul\"",
        "resolve_every = \"1s\"",
    ));
    assert_eq!(field.as_deref(), Some("upstreams.consul.targets"));
    assert!(message.contains("`srv`"), "{message}");

    let (_, field, message) = located(DISCOVERY.replace("weight = 9", "weight = 0").replace(
        "\"http://users.internal:8080\",",
        "{ url = \"http://10.0.0.6:1\", weight = 0 },",
    ));
    assert_eq!(field.as_deref(), Some("upstreams.users.targets"));
    assert!(message.contains("weight 0"), "{message}");

    let (line, _, message) = located(DISCOVERY.replace("\"http://users.internal:8080\"", "42"));
    assert_eq!(line, Some(11), "{message}");
    assert!(message.contains("a target URL, or a table"), "{message}");
}

#[test]
fn admin_token_env_must_name_a_set_variable() {
    let without = parse(BASE).unwrap();
    assert!(without.admin.token_env.is_none());

    // PATH is set wherever tests run; setting a variable here would race other tests.
    let admin = "\n[admin]\nlisten = \"127.0.0.1:9901\"\ntoken_env = \"PATH\"\n";
    let config = parse(&format!("{BASE}{admin}")).unwrap();
    assert_eq!(
        config
            .admin
            .token_env
            .as_ref()
            .map(|name| name.get_ref().as_str()),
        Some("PATH")
    );

    let unset = "GATEWAY_CONFIG_TEST_ADMIN_TOKEN_NEVER_SET";
    let err = parse(&format!("{BASE}{}", admin.replace("PATH", unset))).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("admin.token_env"), "{err}");
    assert_eq!(err.position.map(|(line, _)| line), Some(14), "{err}");
    assert!(
        err.message.contains(unset) && err.message.contains("not set"),
        "{err}"
    );
}
