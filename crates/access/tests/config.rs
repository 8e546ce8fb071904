//! `[access]` tables from TOML: their shape, their entries, and the errors naming bad ones.

use gateway_access::AccessError;
use gateway_access::config::AccessConfig;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn build_error(toml: &str) -> AccessError {
    let config: AccessConfig = toml::from_str(toml).unwrap();
    config.build().unwrap_err()
}

#[test]
fn both_lists_default_to_empty() {
    let config: AccessConfig = toml::from_str("").unwrap();
    assert_eq!(config, AccessConfig::default());
    assert!(config.allow.is_empty() && config.deny.is_empty());
    let list = config.build().unwrap();
    assert!(list.permits(ip("203.0.113.1")));
    assert!(list.permits_unknown());

    let config: AccessConfig = toml::from_str("deny = [\"10.0.0.0/8\"]").unwrap();
    assert!(config.allow.is_empty());
    assert_eq!(config.deny, ["10.0.0.0/8"]);
}

#[test]
fn addresses_and_networks_of_both_families_build() {
    let config: AccessConfig = toml::from_str(
        r#"
        allow = ["192.168.1.7", "10.0.0.0/8", "2001:db8::1", "2001:db8:1::/48"]
        deny = ["10.6.0.0/16", "2001:db8:1:bad::/64"]
        "#,
    )
    .unwrap();
    let list = config.build().unwrap();
    assert!(list.permits(ip("192.168.1.7")));
    assert!(!list.permits(ip("192.168.1.8")));
    assert!(list.permits(ip("10.5.0.1")));
    assert!(!list.permits(ip("10.6.0.1")));
    assert!(list.permits(ip("2001:db8::1")));
    assert!(!list.permits(ip("2001:db8::2")));
    assert!(list.permits(ip("2001:db8:1:600d::1")));
    assert!(!list.permits(ip("2001:db8:1:bad::1")));
    assert!(!list.permits_unknown());
}

#[test]
fn a_bad_deny_entry_is_named_with_its_index() {
    let error = build_error(r#"deny = ["10.0.0.0/8", "10.0.0.0/33"]"#);
    assert_eq!(
        error,
        AccessError::InvalidEntry {
            field: "deny",
            index: 1,
            entry: "10.0.0.0/33".into()
        }
    );
    let message = error.to_string();
    assert!(
        message.starts_with("deny[1]: `10.0.0.0/33` is not an IP address or CIDR"),
        "{message}"
    );
}

#[test]
fn a_bad_allow_entry_is_named_with_its_index() {
    for (entry, index) in [
        ("2001:db8::/129", 0),
        ("example.com", 0),
        ("10.0.0", 0),
        ("", 0),
        ("10.0.0.0/", 0),
        ("192.168.1.1:80", 0),
    ] {
        let error = build_error(&format!("allow = [{entry:?}]"));
        assert!(
            error.to_string().starts_with(&format!(
                "allow[{index}]: `{entry}` is not an IP address or CIDR"
            )),
            "{error}"
        );
    }
    let error = build_error(r#"allow = ["::1", "10.0.0.1", "fe80::/10", "300.1.1.1"]"#);
    assert!(
        error.to_string().starts_with("allow[3]: `300.1.1.1`"),
        "{error}"
    );
}

#[test]
fn allow_is_checked_before_deny() {
    let error = build_error(
        r#"allow = ["bad-allow"]
deny = ["bad-deny"]"#,
    );
    assert!(
        error.to_string().starts_with("allow[0]: `bad-allow`"),
        "{error}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let error = toml::from_str::<AccessConfig>("allow = []\nalow = [\"10.0.0.0/8\"]").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("unknown field `alow`"), "{message}");
    assert!(
        message.contains("allow") && message.contains("deny"),
        "{message}"
    );
}

#[test]
fn lists_must_be_arrays_of_strings() {
    let error = toml::from_str::<AccessConfig>("allow = \"10.0.0.0/8\"").unwrap_err();
    assert!(error.to_string().contains("invalid type"), "{error}");
    let error = toml::from_str::<AccessConfig>("deny = [10]").unwrap_err();
    assert!(error.to_string().contains("invalid type"), "{error}");
}

#[test]
fn routes_embed_the_table() {
    #[derive(serde::Deserialize)]
    struct Route {
        access: Option<AccessConfig>,
    }
    let route: Route = toml::from_str("[access]\nallow = [\"192.168.1.0/24\"]\n").unwrap();
    let list = route.access.unwrap().build().unwrap();
    assert!(list.permits(ip("::ffff:192.168.1.9")));
    assert!(!list.permits(ip("192.168.2.9")));
}
