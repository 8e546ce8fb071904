//! Upstream target URLs from the config: any text parses to `http(s)://host:port[/base]` or
//! is refused.
#![no_main]

use gateway_proxy::TargetUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(url) = text.parse::<TargetUrl>() {
        assert!(url.port() > 0, "{text:?}");
        assert!(!url.host().is_empty(), "{text:?}");
        assert!(
            url.base_path().is_empty() || url.base_path().starts_with('/'),
            "{text:?}"
        );
        let again: TargetUrl = url.as_str().parse().expect("a parsed target parses again");
        assert_eq!(again.authority(), url.authority(), "{text:?}");
    }
});
