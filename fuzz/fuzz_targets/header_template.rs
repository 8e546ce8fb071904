//! Header templates: any text parses or is refused with a position inside it.
#![no_main]

use gateway_headers::{Template, TemplateError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(TemplateError::Unclosed(at)) = Template::parse(text) {
        assert!(at <= text.len(), "{text:?}: {at}");
    }
});
