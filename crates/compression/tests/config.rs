//! `[compression]` tables as the gateway reads them: `toml::from_str`, then `build`.

use gateway_compression::{Algorithm, CompressionConfig, CompressionError};
use gateway_core::config::ByteSize;

fn parse(toml: &str) -> CompressionConfig {
    toml::from_str(toml).unwrap()
}

#[test]
fn defaults() {
    let config = parse("");
    assert_eq!(config, CompressionConfig::default());
    assert_eq!(config.algorithms, ["br", "zstd", "gzip"]);
    assert_eq!(config.min_size, ByteSize(1024));
    assert_eq!(
        config.content_types,
        [
            "text/*",
            "application/json",
            "application/javascript",
            "image/svg+xml"
        ]
    );
    let policy = config.build().unwrap();
    assert_eq!(
        policy.algorithms(),
        [Algorithm::Brotli, Algorithm::Zstd, Algorithm::Gzip]
    );
    assert_eq!(policy.min_size(), 1024);
}

#[test]
fn fields() {
    let config = parse(
        r#"
        algorithms = ["gzip", "ZSTD"]
        min_size = "2KiB"
        content_types = ["application/*", "*/*"]
        "#,
    );
    let policy = config.build().unwrap();
    assert_eq!(policy.algorithms(), [Algorithm::Gzip, Algorithm::Zstd]);
    assert_eq!(policy.min_size(), 2048);
    assert_eq!(parse("min_size = 10").build().unwrap().min_size(), 10);
}

#[test]
fn unknown_fields_are_rejected() {
    let error = toml::from_str::<CompressionConfig>("level = 9").unwrap_err();
    assert!(
        error.to_string().contains("unknown field `level`"),
        "{error}"
    );
    assert!(toml::from_str::<CompressionConfig>(r#"min_size = "big""#).is_err());
}

#[test]
fn errors_name_the_entry() {
    let build = |toml: &str| parse(toml).build().unwrap_err();
    let error = build(r#"algorithms = ["gzip", "lzma"]"#);
    assert_eq!(
        error.to_string(),
        "algorithms[1]: unknown algorithm `lzma` (gzip, br, zstd)"
    );
    assert!(matches!(
        error,
        CompressionError::UnknownAlgorithm { index: 1, .. }
    ));
    assert_eq!(
        build(r#"algorithms = ["br", "gzip", "br"]"#).to_string(),
        "algorithms[2]: `br` is already listed"
    );
    assert!(
        build(r#"algorithms = ["deflate"]"#)
            .to_string()
            .starts_with("algorithms[0]")
    );
    for (pattern, index) in [
        (r#"["text/*", "text"]"#, 1),
        (r#"["*/json"]"#, 0),
        (r#"["text/html; charset=utf-8"]"#, 0),
        (r#"["application/json", "", "text/*"]"#, 1),
        (r#"["te xt/html"]"#, 0),
    ] {
        let error = build(&format!("content_types = {pattern}"));
        assert!(
            matches!(error, CompressionError::ContentType { index: i, .. } if i == index),
            "{pattern}: {error}"
        );
        assert!(
            error.to_string().starts_with(&format!(
                "content_types[{index}]: invalid content type pattern"
            )),
            "{error}"
        );
    }
}
