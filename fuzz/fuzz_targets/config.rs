//! The config loader on any text: a config or a located error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(error) = gateway_bin::Config::parse(Path::new("fuzz.toml"), text)
        && let Some((line, column)) = error.position
    {
        assert!(line >= 1 && line <= text.lines().count() + 1, "{error}");
        assert!(column >= 1, "{error}");
    }
});
