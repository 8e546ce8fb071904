//! The `[cors]` table: defaults, and the errors that name the bad field.

use std::time::Duration;

use gateway_cors::config::CorsConfig;
use gateway_cors::{CorsError, CorsPolicy};

fn error(toml: &str) -> String {
    let config: CorsConfig = toml::from_str(toml).unwrap();
    config.build().unwrap_err().to_string()
}

#[test]
fn defaults() {
    let config: CorsConfig =
        toml::from_str(r#"allow_origins = ["https://a.example.com"]"#).unwrap();
    assert_eq!(config, CorsConfig::new(["https://a.example.com"]));
    assert_eq!(config.allow_methods, ["GET", "HEAD", "POST"]);
    assert!(config.allow_headers.is_empty());
    assert!(config.expose_headers.is_empty());
    assert!(!config.allow_credentials);
    assert_eq!(config.max_age, None);
    assert!(config.build().is_ok());
}

#[test]
fn every_field_parses() {
    let config: CorsConfig = toml::from_str(
        r#"
        allow_origins = ["https://a.example.com", "https://*.example.org"]
        allow_methods = ["GET", "PATCH"]
        allow_headers = ["Authorization"]
        expose_headers = ["x-trace"]
        allow_credentials = true
        max_age = "1h 30m"
    "#,
    )
    .unwrap();
    assert_eq!(config.max_age.unwrap().get(), Duration::from_secs(5400));
    let policy = config.build().unwrap();
    assert!(policy.allows_credentials());
    assert!(policy.allows_origin("https://x.example.org"));
}

#[test]
fn unknown_fields_and_missing_origins_are_refused_by_the_parser() {
    let unknown = toml::from_str::<CorsConfig>(
        r#"
        allow_origins = ["*"]
        allow_origin = ["https://a.example.com"]
    "#,
    );
    assert!(unknown.unwrap_err().to_string().contains("allow_origin"));
    assert!(toml::from_str::<CorsConfig>("allow_credentials = true").is_err());
    assert!(
        toml::from_str::<CorsConfig>(
            r#"allow_origins = ["*"]
max_age = "soon""#
        )
        .is_err()
    );
}

#[test]
fn credentials_with_any_origin() {
    let message = error(
        r#"
        allow_origins = ["*"]
        allow_credentials = true
    "#,
    );
    assert!(message.starts_with("allow_origins[0]: "), "{message}");
    assert!(message.contains("allow_credentials"), "{message}");
    let built = CorsPolicy::builder()
        .allow_any_origin()
        .allow_credentials(true)
        .build();
    assert_eq!(
        built.unwrap_err(),
        CorsError::AnyOriginWithCredentials { index: 0 }
    );
}

#[test]
fn empty_origins() {
    assert!(error("allow_origins = []").starts_with("allow_origins: "));
    let config: CorsConfig = toml::from_str("allow_origins = []").unwrap();
    assert_eq!(config.build().unwrap_err(), CorsError::NoOrigins);
}

#[test]
fn star_is_listed_alone() {
    let message = error(r#"allow_origins = ["https://a.example.com", "*"]"#);
    assert!(message.starts_with("allow_origins[1]: "), "{message}");
}

#[test]
fn bad_origins_name_their_index() {
    for (origin, needle) in [
        ("https://*", "two labels"),
        ("*.com", "scheme"),
        ("*.example.com", "scheme"),
        ("https://*.com", "two labels"),
        ("https://a.*.example.com", "first label"),
        ("https://api*.example.com", "first label"),
        ("https://*.*.example.com", "first label"),
        ("https://*.127.0.0.1", "IP address"),
        ("https://a.example.com/", "path"),
        ("https://a.example.com/app", "path"),
        ("https://a.example.com?x=1", "query"),
        ("a.example.com", "scheme://host"),
        ("https://a.example.com:0", "port"),
        ("https://a.example.com:https", "port"),
        ("null", "null"),
        ("https://bücher.example", "punycode"),
        ("https://a..example.com", "host"),
    ] {
        let toml = format!(r#"allow_origins = ["https://ok.example.com", "{origin}"]"#);
        let config: CorsConfig = toml::from_str(&toml).unwrap();
        let err = config.build().unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("allow_origins[1]: "),
            "{origin}: {message}"
        );
        assert!(message.contains(needle), "{origin}: {message}");
        assert!(
            matches!(err, CorsError::Origin { index: 1, .. }),
            "{origin}"
        );
    }
}

#[test]
fn bad_methods_name_their_index() {
    for (method, needle) in [
        ("GE T", "method name"),
        ("", "method name"),
        ("*", "wildcard"),
        ("get", "case-sensitive"),
        ("Patch", "case-sensitive"),
    ] {
        let toml = format!(
            r#"allow_origins = ["*"]
allow_methods = ["GET", "PUT", "{method}"]"#
        );
        let message = error(&toml);
        assert!(
            message.starts_with("allow_methods[2]: "),
            "{method}: {message}"
        );
        assert!(message.contains(needle), "{method}: {message}");
    }
    // Extension methods are fine.
    let config: CorsConfig = toml::from_str(
        r#"allow_origins = ["*"]
allow_methods = ["PROPFIND", "PURGE"]"#,
    )
    .unwrap();
    assert!(config.build().is_ok());
    assert!(
        error(
            r#"allow_origins = ["*"]
allow_methods = []"#
        )
        .starts_with("allow_methods: ")
    );
}

#[test]
fn bad_headers_name_their_field_and_index() {
    for field in ["allow_headers", "expose_headers"] {
        for name in ["x foo", "", "x-bar:", "*", "bad\\u00e9"] {
            let toml = format!(
                r#"allow_origins = ["*"]
{field} = ["x-ok", "{name}"]"#
            );
            let message = error(&toml);
            assert!(
                message.starts_with(&format!("{field}[1]: ")),
                "{field} {name}: {message}"
            );
        }
    }
}

#[test]
fn builder_and_config_agree() {
    let from_config: CorsConfig = toml::from_str(
        r#"
        allow_origins = ["https://a.example.com"]
        allow_methods = ["PUT"]
        allow_headers = ["x-a"]
        max_age = "1m"
    "#,
    )
    .unwrap();
    let from_config = format!("{:?}", from_config.build().unwrap());
    let built = CorsPolicy::builder()
        .allow_origin("https://a.example.com")
        .allow_method("PUT")
        .allow_header("X-A")
        .max_age(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(format!("{built:?}"), from_config);
    assert!(from_config.contains("PUT"), "{from_config}");
}
