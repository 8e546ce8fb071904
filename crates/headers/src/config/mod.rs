//! The `serde` config of the header rules: `[routes.request_headers]`,
//! `[routes.response_headers]` and the gateway-wide `[headers]` section.
//!
//! ```toml
//! [headers]                                 # every route, and the gateway's own responses
//! request_id = { header = "X-Request-Id", trust_incoming = "trusted_proxies" }
//! [headers.request]
//! set = { "X-Forwarded-Host" = "{host}" }
//! [headers.response]
//! set = { "X-Content-Type-Options" = "nosniff", "X-Request-Id" = "{request_id}" }
//! remove = ["Server"]
//!
//! [[routes]]
//! # ...
//! [routes.request_headers]
//! set = { "X-User" = "{claim.sub}", "X-Client-IP" = "{client_ip}" }
//! set_if_absent = { "Accept" = "application/json" }
//! add = { "Via" = "1.1 gateway" }
//! remove = ["Cookie"]
//! rename = { "X-Api-Token" = "Authorization" }
//! ```
//!
//! Everything is checked while deserializing (header names, templates, control characters,
//! protected headers, conflicting operations), so the loader reports a bad value with its file
//! and line; [`HeaderRulesConfig::build`] then cannot fail for a deserialized config.
//!
//! The structs here are data: they know templates and header names, not the middleware. The
//! one place that turns them into rules and layers is the `build` methods.

mod build;
mod global;
mod header_name;
mod request_id;
mod rules;

pub use build::GlobalHeaders;
pub use global::GlobalHeadersConfig;
pub use header_name::ValidHeaderName;
pub use request_id::{MAX_REQUEST_ID_LENGTH, RequestIdConfig};
pub use rules::HeaderRulesConfig;
