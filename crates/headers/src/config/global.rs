//! The gateway-wide `[headers]` section.

use serde::Deserialize;

use super::request_id::RequestIdConfig;
use super::rules::HeaderRulesConfig;

/// The gateway-wide `[headers]` section: rules applied on every route (and, for responses, on
/// the gateway's own responses too), and the request id.
///
/// ```toml
/// [headers]
/// request_id = { header = "X-Request-Id", trust_incoming = "trusted_proxies" }
/// [headers.request]
/// remove = ["X-Internal-Debug"]
/// [headers.response]
/// set = { "X-Gateway" = "gateway", "Strict-Transport-Security" = "max-age=31536000" }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalHeadersConfig {
    /// `[headers.request]`: applied to every routed request, before the route's rules.
    pub request: HeaderRulesConfig,
    /// `[headers.response]`: applied to every response, after the route's rules.
    pub response: HeaderRulesConfig,
    /// `request_id`: `false` to disable, or a table (see [`RequestIdConfig`]).
    pub request_id: RequestIdConfig,
}
