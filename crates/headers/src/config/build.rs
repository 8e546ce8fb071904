//! From config to middleware: the one place that turns the config's data into rules and
//! layers.

use gateway_core::TrustedProxies;

use super::global::GlobalHeadersConfig;
use super::request_id::RequestIdConfig;
use super::rules::HeaderRulesConfig;
use crate::error::HeaderRulesError;
use crate::request_id::SetRequestIdLayer;
use crate::rules::HeaderRules;

/// The compiled `[headers]` section.
#[derive(Clone, Debug)]
pub struct GlobalHeaders {
    /// Rules for every routed request.
    pub request: HeaderRules,
    /// Rules for every response.
    pub response: HeaderRules,
    /// The request id layer, unless disabled.
    pub request_id: Option<SetRequestIdLayer>,
}

impl HeaderRulesConfig {
    /// Compiles the rules for the layers.
    pub fn build(&self) -> Result<HeaderRules, HeaderRulesError> {
        HeaderRules::from_spec(&self.spec)
    }
}

impl RequestIdConfig {
    /// The layer, or `None` when disabled; `trusted` are the gateway's trusted proxies.
    pub fn build(
        &self,
        trusted: &TrustedProxies,
    ) -> Result<Option<SetRequestIdLayer>, HeaderRulesError> {
        self.validate()?;
        if !self.enabled {
            return Ok(None);
        }
        Ok(Some(
            SetRequestIdLayer::new()
                .header(self.header.0.clone())
                .trust(self.trust_incoming)
                .trusted_proxies(trusted.clone())
                .max_length(self.max_length)
                .echo(self.echo),
        ))
    }
}

impl GlobalHeadersConfig {
    /// Compiles the section; `trusted` are the gateway's trusted proxies
    /// (`server.trusted_proxies`), whose request ids are kept.
    pub fn build(&self, trusted: &TrustedProxies) -> Result<GlobalHeaders, HeaderRulesError> {
        Ok(GlobalHeaders {
            request: self.request.build()?,
            response: self.response.build()?,
            request_id: self.request_id.build(trusted)?,
        })
    }
}
