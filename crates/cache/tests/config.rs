//! The `[cache]` and `[routes.cache]` tables: defaults, every field, and what is refused.

use std::time::Duration;

use gateway_cache::config::{Authorized, RouteCacheConfig};
use gateway_cache::{CacheConfig, CacheError};

#[test]
fn defaults_and_every_field() {
    let store: CacheConfig = toml::from_str("").unwrap();
    assert_eq!(store.max_size.bytes(), 256 << 20);
    assert_eq!(store.max_object(), 8 << 20);
    let small: CacheConfig = toml::from_str("max_size = \"1MiB\"").unwrap();
    assert_eq!(small.max_object(), 1 << 20);
    let store = toml::from_str::<CacheConfig>("max_size = \"1MiB\"\nmax_object = \"64KiB\"")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(store.max_size(), 1 << 20);
    assert_eq!(store.max_object(), 64 << 10);

    let route: RouteCacheConfig = toml::from_str("").unwrap();
    assert_eq!(route.authorized, Authorized::Never);
    assert!(route.default_ttl.get().is_zero());
    let route: RouteCacheConfig = toml::from_str(
        r#"
        default_ttl = "30s"
        stale_while_revalidate = "1m"
        stale_if_error = "1h"
        authorized = "per_user"
        key_headers = ["X-Tenant", "accept-language"]
        "#,
    )
    .unwrap();
    assert_eq!(route.default_ttl.get(), Duration::from_secs(30));
    assert_eq!(route.stale_while_revalidate.get(), Duration::from_secs(60));
    assert_eq!(route.stale_if_error.get(), Duration::from_secs(3600));
    assert_eq!(route.authorized, Authorized::PerUser);
    route.build().unwrap();
}

#[test]
fn unknown_fields_and_bad_values_are_refused() {
    assert!(toml::from_str::<CacheConfig>("max_sise = 1").is_err());
    assert!(toml::from_str::<RouteCacheConfig>("ttl = \"1s\"").is_err());
    assert!(toml::from_str::<RouteCacheConfig>("authorized = \"always\"").is_err());
    assert!(toml::from_str::<RouteCacheConfig>("default_ttl = \"soon\"").is_err());
    assert!(toml::from_str::<CacheConfig>("max_size = \"lots\"").is_err());
}

#[test]
fn sizes_and_key_headers_are_checked() {
    let build = |text: &str| {
        toml::from_str::<CacheConfig>(text)
            .unwrap()
            .build()
            .map(drop)
    };
    assert_eq!(build("max_size = 0"), Err(CacheError::EmptyStore));
    assert!(matches!(
        build("max_size = \"1MiB\"\nmax_object = \"2MiB\""),
        Err(CacheError::ObjectSize { .. })
    ));
    assert!(matches!(
        build("max_object = 0"),
        Err(CacheError::ObjectSize { .. })
    ));
    assert!(matches!(
        build("max_size = \"8GiB\"\nmax_object = \"5GiB\""),
        Err(CacheError::ObjectTooLarge(_))
    ));
    let route = |text: &str| {
        toml::from_str::<RouteCacheConfig>(text)
            .unwrap()
            .build()
            .map(drop)
    };
    assert!(matches!(
        route("key_headers = [\"bad header\"]"),
        Err(CacheError::KeyHeader { index: 0, .. })
    ));
    assert!(matches!(
        route("key_headers = [\"x-a\", \"X-A\"]"),
        Err(CacheError::DuplicateKeyHeader { index: 1, .. })
    ));
    assert!(matches!(
        route("key_headers = [\"Authorization\"]"),
        Err(CacheError::CredentialKeyHeader { .. })
    ));
    let message = route("key_headers = [\"ok\", \"b@d\"]")
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("key_headers[1]"), "{message}");
}
