//! Origin matching on any `Origin` text: allowed only if it is one of the listed origins or a
//! subdomain of the wildcard's domain, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use gateway_cors::CorsPolicy;
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static CorsPolicy {
    static POLICY: OnceLock<CorsPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        CorsPolicy::builder()
            .allow_origin("https://app.example.com")
            .allow_origin("https://*.example.net")
            .allow_origin("http://localhost:3000")
            .build()
            .unwrap()
    })
}

fuzz_target!(|origin: &str| {
    if !policy().allows_origin(origin) {
        return;
    }
    let lower = origin.to_ascii_lowercase();
    let lower = lower.strip_suffix(":443").unwrap_or(&lower);
    let exact = lower == "https://app.example.com" || lower == "http://localhost:3000";
    let subdomain = lower
        .strip_prefix("https://")
        .and_then(|host| host.strip_suffix(".example.net"))
        .is_some_and(|labels| {
            !labels.is_empty()
                && labels.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        });
    assert!(exact || subdomain, "{origin:?} allowed");
});
