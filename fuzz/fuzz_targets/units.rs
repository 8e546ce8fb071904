//! Duration and byte-size config values: any text parses or is refused, and what parses
//! prints back to a text that parses to the same value.
#![no_main]

use gateway_core::config::{ByteSize, HumanDuration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(duration) = text.parse::<HumanDuration>() {
        let again: HumanDuration = duration
            .to_string()
            .parse()
            .expect("printed durations parse");
        assert_eq!(again, duration, "{text:?}");
    }
    if let Ok(size) = text.parse::<ByteSize>() {
        let again: ByteSize = size.bytes().to_string().parse().expect("byte counts parse");
        assert_eq!(again, size, "{text:?}");
    }
});
