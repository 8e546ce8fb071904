//! Property tests of the config loader: whatever text it is given, it returns a config or an
//! error that names the line (and, where there is one, the field), and never panics.
//!
//! Failures are not persisted to files: a failing case found here is kept as a regular
//! `#[test]` instead.

use std::path::Path;

use gateway_bin::{Config, ConfigError};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn parse(source: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("gw.toml"), source)
}

/// A valid config touching most sections; every table in it refuses unknown keys.
const BASE: &str = r#"[server]
listen = "127.0.0.1:8080"
workers = 2
request_timeout = "30s"
max_body = "1MiB"
[access]
deny = ["10.1.2.0/24"]
[cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
max_age = "10m"
[compression]
algorithms = ["br", "gzip"]
min_size = "1KiB"
[upstreams.users]
targets = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
balance = "least_request"
timeout = "5s"
[upstreams.users.circuit_breaker]
failure_threshold = 5
failure_rate = 0.5
open_for = "10s"
[[routes]]
path = "/api"
upstream = "users"
methods = ["GET", "POST"]
strip_prefix = true
[routes.rate_limit]
limit = 100
window = "1m"
key = "ip"
[routes.access]
allow = ["192.168.0.0/16"]
[[routes]]
path = "/static"
upstream = "users"
compression = false
"#;

/// Lines of `BASE` that open a table (1-based), with the dotted field path of the table.
fn tables() -> Vec<(usize, String)> {
    let mut route = 0;
    let mut tables = Vec::new();
    for (index, line) in BASE.lines().enumerate() {
        if line == "[[routes]]" {
            route += 1;
            tables.push((index + 1, format!("routes[{}]", route - 1)));
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let path = match name.strip_prefix("routes.") {
                Some(sub) => format!("routes[{}].{sub}", route - 1),
                None => name.to_owned(),
            };
            tables.push((index + 1, path));
        }
    }
    tables
}

/// `key = value` lines of `BASE` with values of the wrong kind for them: (1-based line, key,
/// wrong values).
fn typed_lines() -> Vec<(usize, &'static str, &'static [&'static str])> {
    let wrong: &[(&str, &[&str])] = &[
        ("listen", &["42", "true", "[\"a\"]"]),
        ("workers", &["\"two\"", "true", "-1", "1.5"]),
        ("request_timeout", &["true", "\"soon\"", "\"-3s\"", "[1]"]),
        ("max_body", &["true", "\"lots\"", "\"1XB\"", "-5"]),
        (
            "deny",
            &["\"10.0.0.0/8\"", "[\"10.0.0.0/33\"]", "[\"nope\"]", "true"],
        ),
        (
            "allow_origins",
            &["\"*\"", "[\"https://*\"]", "[\"*.com\"]", "[]", "7"],
        ),
        ("max_age", &["true", "\"ten minutes\""]),
        ("algorithms", &["\"br\"", "[\"lzma\"]", "[1]"]),
        ("min_size", &["true", "\"big\"", "[1]"]),
        ("targets", &["\"http://x\"", "[\"not a url\"]", "[]", "7"]),
        ("balance", &["\"random-ish\"", "1"]),
        ("timeout", &["false", "\"5 parsecs\""]),
        ("failure_threshold", &["\"five\"", "-1", "true"]),
        ("failure_rate", &["\"half\"", "true", "[0.5]"]),
        ("open_for", &["0", "\"forever\"", "true"]),
        ("path", &["1", "\"api\"", "\"/a%2fb\"", "[\"/x\"]"]),
        ("upstream", &["\"nowhere\"", "1", "true"]),
        (
            "methods",
            &["\"GET\"", "[\"G ET\"]", "[\"CONNECT\"]", "[1]"],
        ),
        ("strip_prefix", &["\"yes\"", "1"]),
        ("limit", &["\"many\"", "-1", "true", "0"]),
        ("window", &["true", "\"a while\"", "\"0s\""]),
        ("key", &["\"everyone's\"", "1"]),
        (
            "allow",
            &["\"192.168.0.0/16\"", "[\"192.168.0.0/99\"]", "true"],
        ),
        ("compression", &["\"off\"", "1", "{ min_sise = 1 }"]),
    ];
    let mut lines = Vec::new();
    for (index, line) in BASE.lines().enumerate() {
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if let Some((key, values)) = wrong.iter().find(|(k, _)| *k == key) {
            lines.push((index + 1, *key, *values));
        }
    }
    lines
}

fn with_line_replaced(line_number: usize, replacement: &str) -> String {
    BASE.lines()
        .enumerate()
        .map(|(index, line)| {
            if index + 1 == line_number {
                replacement
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The error's line, checked to be a line of `source`.
fn located(error: &ConfigError, source: &str) -> Result<usize, TestCaseError> {
    let Some((line, column)) = error.position else {
        return Err(TestCaseError::fail(format!("not located: {error}")));
    };
    let lines = source.lines().count().max(1);
    prop_assert!(
        line >= 1 && line <= lines + 1,
        "line {line} of {lines}: {error}"
    );
    prop_assert!(column >= 1, "{error}");
    prop_assert!(!error.message.is_empty());
    if let Some(field) = &error.field {
        prop_assert!(!field.contains("$__"), "serde internals in {field:?}");
    }
    Ok(line)
}

#[test]
fn the_base_config_is_valid() {
    parse(BASE).unwrap();
    assert!(tables().len() >= 10);
    assert!(typed_lines().len() >= 20);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in prop_oneof![
        any::<String>(),
        "(\\[[a-z_.]{0,12}\\]\n|[a-z_]{1,10} = [\"\\[{a-z0-9:./\"\\]} ,]{0,20}\n){0,8}",
    ]) {
        if let Err(error) = parse(&text)
            && error.position.is_some()
        {
            located(&error, &text)?;
        }
    }

    #[test]
    fn a_truncated_config_never_panics(cut in 0..BASE.len()) {
        let source = &BASE[..cut];
        if let Err(error) = parse(source)
            && error.position.is_some()
        {
            located(&error, source)?;
        }
    }

    #[test]
    fn an_unknown_key_is_refused_on_its_line(
        table in 0..32usize,
        name in "x_[a-z]{1,8}",
        value in prop_oneof![Just("1"), Just("\"a\""), Just("true"), Just("[]")],
    ) {
        let tables = tables();
        let (header, path) = &tables[table % tables.len()];
        let mut lines: Vec<&str> = BASE.lines().collect();
        let inserted = format!("{name} = {value}");
        lines.insert(*header, &inserted);
        let source = lines.join("\n");
        let error = parse(&source).expect_err("an unknown key is an error");
        let line = located(&error, &source)?;
        prop_assert_eq!(line, header + 1, "{}", error);
        prop_assert!(error.message.contains(&name), "{}", error);
        if let Some(field) = &error.field {
            prop_assert!(field.starts_with(path.as_str()), "{field:?} outside {path:?}");
        }
    }

    #[test]
    fn a_wrong_value_is_refused_on_its_line(line in 0..64usize, pick in 0..8usize) {
        let typed = typed_lines();
        let (line, key, values) = typed[line % typed.len()];
        let value = values[pick % values.len()];
        let source = with_line_replaced(line, &format!("{key} = {value}"));
        let error = parse(&source).expect_err("a wrong value is an error");
        let at = located(&error, &source)?;
        prop_assert_eq!(at, line, "{}", error);
    }
}
