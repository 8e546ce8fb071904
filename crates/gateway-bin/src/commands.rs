//! The `check` and `token` commands: what the binary does besides serving.

use std::time::Duration;

use gateway_auth::Authenticator;
use gateway_breaker::CircuitBreaker;

use crate::config::Config;
use crate::route::stack::{BuildError, build_upstream, header_rules};

/// Checks what loading cannot: secrets and key files are readable, targets parse, header
/// rules compile. Used by `gateway check`; opens no connection.
pub fn check(config: &Config) -> Result<(), BuildError> {
    for (name, section) in &config.upstreams {
        // Without what runs in the background (lookups, probes): loading checked those
        // settings, and `check` opens no connection.
        let mut offline = section.clone();
        offline.health_check = None;
        offline.srv = None;
        if !offline.targets.get_ref().is_empty() {
            build_upstream(name, &offline, config, &Default::default(), None)?;
        }
        if let Some(breaker) = &section.circuit_breaker {
            CircuitBreaker::named(name.as_str(), breaker.clone()).map_err(|source| {
                BuildError::Breaker {
                    upstream: name.clone(),
                    source,
                }
            })?;
        }
    }
    if let Some(jwt) = &config.jwt {
        Authenticator::from_config(jwt)?;
    }
    if let Some(tls) = &config.server.tls {
        crate::serve::tls::acceptor(tls)?;
    }
    if let Some(headers) = &config.headers {
        headers
            .build(&config.server.trusted_proxies)
            .map_err(|source| BuildError::Headers {
                field: "headers".into(),
                source,
            })?;
    }
    for (index, route) in config.routes.iter().enumerate() {
        header_rules(route.request_headers.as_ref(), || {
            format!("routes[{index}].request_headers")
        })?;
        header_rules(route.response_headers.as_ref(), || {
            format!("routes[{index}].response_headers")
        })?;
    }
    Ok(())
}

/// Mints a development token for `gateway token` and the quickstart: HS256 with the
/// configured secret, the configured issuer and audience, and the given `NAME=VALUE` claims.
pub fn mint_token(
    config: &Config,
    claims: &[String],
    ttl: Duration,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let Some(jwt) = &config.jwt else {
        return Err("the config has no [jwt] section".into());
    };
    let mut map = serde_json::Map::new();
    for claim in claims {
        let (name, value) = gateway_auth::parse_claim(claim)?;
        map.insert(name, value);
    }
    Ok(gateway_auth::mint_for_config(jwt, map, ttl)?)
}
