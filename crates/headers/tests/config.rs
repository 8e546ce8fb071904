//! The TOML config: what parses, what builds, and that every invalid value is rejected while
//! deserializing with the field and the offending header named.

use gateway_core::TrustedProxies;
use gateway_headers::TrustIncoming;
use gateway_headers::config::{GlobalHeadersConfig, HeaderRulesConfig, RequestIdConfig};
use http::Request;
use serde::Deserialize;

/// The shape the gateway binary embeds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gateway {
    #[serde(default)]
    headers: GlobalHeadersConfig,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    path: String,
    #[serde(default)]
    request_headers: HeaderRulesConfig,
    #[serde(default)]
    response_headers: HeaderRulesConfig,
}

fn parse(toml_text: &str) -> Result<Gateway, toml::de::Error> {
    toml::from_str(toml_text)
}

/// The error of an invalid config, as the loader would print it (line, key path, message).
fn error(toml_text: &str) -> String {
    let err = parse(toml_text).expect_err("the config should be rejected");
    err.to_string()
}

#[test]
fn a_complete_config_parses_and_builds() {
    let config = parse(
        r#"
        [headers]
        request_id = { header = "X-Correlation-Id", trust_incoming = "always", max_length = 64, echo = false }
        [headers.request]
        remove = ["X-Internal"]
        [headers.response]
        set = { "X-Gateway" = "gateway", "X-Content-Type-Options" = "nosniff" }

        [[routes]]
        path = "/api"
        [routes.request_headers]
        set = { "X-Source" = "gateway", "X-User" = "{claim.sub}" }
        add = { "Via" = "1.1 gw" }
        set_if_absent = { "Accept" = "application/json" }
        remove = ["Cookie"]
        rename = { "X-Api-Token" = "Authorization" }
        [routes.response_headers]
        set = { "X-Route" = "api {{v1}}" }
        remove = ["Server"]
        "#,
    )
    .unwrap();
    assert_eq!(config.routes[0].path, "/api");
    let id = &config.headers.request_id;
    assert_eq!(id.header.get(), "x-correlation-id");
    assert_eq!(
        (id.trust_incoming, id.max_length, id.echo),
        (TrustIncoming::Always, 64, false)
    );

    let global = config.headers.build(&TrustedProxies::none()).unwrap();
    assert!(global.request_id.is_some());
    assert!(!global.response.has_templates());

    let rules = config.routes[0].request_headers.build().unwrap();
    assert!(rules.has_templates());
    let mut request = Request::get("/")
        .header("cookie", "c")
        .header("x-api-token", "Bearer t")
        .body(())
        .unwrap();
    rules.apply_to_request(&mut request);
    let h = request.headers();
    assert_eq!(h["x-source"], "gateway");
    assert_eq!(h["authorization"], "Bearer t");
    assert_eq!(h["accept"], "application/json");
    assert_eq!(h["via"], "1.1 gw");
    assert!(h.get("cookie").is_none());
    // Anonymous: no claim, so no X-User.
    assert!(h.get("x-user").is_none());

    assert!(!config.routes[0].response_headers.is_empty());
    assert!(config.routes[0].response_headers.build().is_ok());
}

#[test]
fn defaults_when_the_section_is_absent() {
    let config = parse("").unwrap();
    assert_eq!(config.headers, GlobalHeadersConfig::default());
    let id = &config.headers.request_id;
    assert!(id.enabled && id.echo);
    assert_eq!(id.header.get(), "x-request-id");
    assert_eq!(id.trust_incoming, TrustIncoming::TrustedProxies);
    assert_eq!(id.max_length, 128);
    assert!(config.headers.request.is_empty() && config.headers.response.is_empty());
}

#[test]
fn request_id_accepts_booleans() {
    let off = parse("[headers]\nrequest_id = false").unwrap();
    assert!(!off.headers.request_id.enabled);
    assert!(
        off.headers
            .build(&TrustedProxies::none())
            .unwrap()
            .request_id
            .is_none()
    );
    let on = parse("[headers]\nrequest_id = true").unwrap();
    assert_eq!(on.headers.request_id, RequestIdConfig::default());
    for (text, trust) in [
        ("true", TrustIncoming::Always),
        ("false", TrustIncoming::Never),
        ("\"never\"", TrustIncoming::Never),
        ("\"trusted_proxies\"", TrustIncoming::TrustedProxies),
    ] {
        let config = parse(&format!("[headers.request_id]\ntrust_incoming = {text}")).unwrap();
        assert_eq!(config.headers.request_id.trust_incoming, trust, "{text}");
    }
}

/// Each case: the config, then what the error must mention (the key path, the header, why).
#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[[routes]]\npath = \"/\"\n[routes.request_headers]\nset = { \"Bad Name\" = \"x\" }",
            &["line 4", "`set`: `Bad Name` is not a valid header name"],
        ),
        (
            "[[routes]]\npath = \"/\"\n[routes.request_headers]\nset = { \"X-A\" = \"a\\r\\nX-Injected: 1\" }",
            &["line 4", "`set.X-A`: contains the control character 0x0d"],
        ),
        (
            "[[routes]]\npath = \"/\"\n[routes.response_headers]\nadd = { \"X-A\" = \"nul\\u0000\" }",
            &["line 4", "`add.X-A`: contains the control character 0x00"],
        ),
        (
            "[[routes]]\npath = \"/\"\n[routes.request_headers]\nset_if_absent = { \"X-User\" = \"{foo}\" }",
            &[
                "line 4",
                "`set_if_absent.X-User`: unknown placeholder `{foo}`",
            ],
        ),
        (
            "[headers.request]\nset = { \"X-User\" = \"{claim.sub\" }",
            &["line 2", "`set.X-User`: `{` at byte 0 is not closed"],
        ),
        (
            "[headers.request]\nadd = { \"X-Bad\" = \"{header.not valid}\" }",
            &[
                "line 2",
                "`add.X-Bad`: `{header.not valid}`: `not valid` is not a valid header name",
            ],
        ),
        (
            "[headers.response]\nremove = [\"Server\", \"Bad:Name\"]",
            &["line 2", "`remove`: `Bad:Name` is not a valid header name"],
        ),
        (
            "[headers.response]\nrename = { \"X-A\" = \"Bad Name\" }",
            &["line 2", "`rename`: `Bad Name` is not a valid header name"],
        ),
        (
            "[headers.request]\nset = { \"Content-Length\" = \"0\" }",
            &[
                "line 1",
                "`set`: `content-length` is managed by the HTTP connection",
            ],
        ),
        (
            "[headers.request]\nset = { \"X-A\" = \"1\" }\nset_if_absent = { \"x-a\" = \"2\" }",
            &["header `x-a` is in both `set` and `set_if_absent`"],
        ),
        (
            "[headers.request]\nset = { \"X-A\" = \"1\", \"x-a\" = \"2\" }",
            &["`set`: header `x-a` is listed twice"],
        ),
        (
            "[headers.request]\nsett = { \"X-A\" = \"1\" }",
            &["line 2", "unknown field `sett`"],
        ),
        (
            "[headers]\nrequest_id = { header = \"X-Id\", trust = true }",
            &["line 2", "unknown field `trust`"],
        ),
        (
            "[headers]\nrequest_id = { trust_incoming = \"sometimes\" }",
            &["line 2", "\"sometimes\"", "\"trusted_proxies\", \"always\""],
        ),
        (
            "[headers]\nrequest_id = { max_length = 0 }",
            &["line 2", "`request_id.max_length` must be"],
        ),
        (
            "[headers]\nrequest_id = { header = \"Transfer-Encoding\" }",
            &[
                "line 2",
                "`request_id.header`: `transfer-encoding` is managed",
            ],
        ),
        (
            "[headers]\nrequest = 5",
            &["line 2", "expected a table of header operations"],
        ),
        (
            "[headers.request]\nremove = \"Cookie\"",
            &["line 2", "`remove`: a list of header names"],
        ),
    ];
    for (config, needles) in cases {
        let message = error(config);
        for needle in *needles {
            assert!(
                message.contains(needle),
                "error for\n{config}\nlacks `{needle}`:\n{message}"
            );
        }
    }
}
