//! The checks that span sections or need more than a field's type: a route's upstream exists,
//! auth needs `[jwt]`, no two routes serve the same path and method.

use std::collections::BTreeMap;

use http::Method;
use toml::Spanned;

use super::load::Locator;
use super::{
    AccessSection, AuthMode, CompressionSection, Config, ConfigError, CorsSection,
    RouteCompression, RouteSection, TracingSection,
};
use crate::route::path::normalize_route_prefix;

fn validate_tracing(
    section: &Spanned<TracingSection>,
    locator: &Locator<'_>,
) -> Result<(), ConfigError> {
    if !cfg!(feature = "otlp") {
        return Err(locator.at(
            Some(section.span()),
            "tracing".to_owned(),
            "OpenTelemetry export is not built into this gateway: build it with \
             `--features otlp` or remove the [tracing] section",
        ));
    }
    let tracing = section.get_ref();
    let endpoint = &tracing.otlp_endpoint;
    let uri: Option<http::Uri> = endpoint.get_ref().parse().ok();
    let valid = uri.as_ref().is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
    });
    if !valid {
        return Err(locator.at(
            Some(endpoint.span()),
            "tracing.otlp_endpoint".to_owned(),
            format!("`{}` is not an http:// or https:// URL", endpoint.get_ref()),
        ));
    }
    for (name, value) in &tracing.otlp_headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(locator.at(
                Some(section.span()),
                format!("tracing.otlp_headers.{name}"),
                "not a valid HTTP header name and value",
            ));
        }
    }
    let ratio = &tracing.sample_ratio;
    if !(0.0..=1.0).contains(ratio.get_ref()) {
        return Err(locator.at(
            Some(ratio.span()),
            "tracing.sample_ratio".to_owned(),
            "must be between 0.0 and 1.0",
        ));
    }
    Ok(())
}

/// Largest target weight: shares finer than 1 in 10,000 mean nothing.
const MAX_WEIGHT: u32 = 10_000;

fn validate_upstream(
    name: &str,
    upstream: &super::UpstreamSection,
    locator: &Locator<'_>,
) -> Result<(), ConfigError> {
    let targets = upstream.targets.get_ref();
    if targets.is_empty() && upstream.srv.is_none() {
        return Err(locator.at(
            Some(upstream.targets.span()).filter(|span| !span.is_empty()),
            format!("upstreams.{name}.targets"),
            "an upstream needs at least one target, or an `srv` name",
        ));
    }
    // Parsed as the proxy will, so `gateway check` names the line of a bad target.
    for (index, target) in targets.iter().enumerate() {
        let span = upstream.targets.span();
        let within = locator
            .offset_of(span.clone(), &target.url)
            .map_or(span, |at| at..at);
        let at = |message: String| {
            locator.at(
                Some(within.clone()),
                format!("upstreams.{name}.targets[{index}]"),
                message,
            )
        };
        if let Err(error) = target.url.parse::<gateway_proxy::TargetUrl>() {
            return Err(at(error.to_string()));
        }
        if target.weight > MAX_WEIGHT {
            return Err(at(format!(
                "weight {} is above the largest, {MAX_WEIGHT}",
                target.weight
            )));
        }
    }
    if upstream.srv.is_none() && !targets.is_empty() && targets.iter().all(|t| t.weight == 0) {
        return Err(locator.at(
            Some(upstream.targets.span()),
            format!("upstreams.{name}.targets"),
            "every target has weight 0: give at least one a weight",
        ));
    }
    if let Some(srv) = &upstream.srv {
        let valid = !srv.get_ref().is_empty()
            && srv.get_ref().trim_end_matches('.').split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(locator.at(
                Some(srv.span()),
                format!("upstreams.{name}.srv"),
                format!(
                    "`{}` is not a DNS name (write e.g. `_http._tcp.users.service.consul`)",
                    srv.get_ref()
                ),
            ));
        }
    }
    if let Some(check) = &upstream.health_check
        && let Err(error) = check.get_ref().health_check().check(name)
    {
        return Err(locator.in_table(
            check.span(),
            format!("upstreams.{name}.health_check"),
            error,
        ));
    }
    Ok(())
}

impl Config {
    pub(super) fn validate(&self, locator: &Locator<'_>) -> Result<(), ConfigError> {
        if let Some(tracing) = &self.tracing {
            validate_tracing(tracing, locator)?;
        }
        if *self.server.max_headers.get_ref() == 0 {
            return Err(locator.at(
                Some(self.server.max_headers.span()),
                "server.max_headers".to_owned(),
                "a request needs at least one header (Host)",
            ));
        }
        if let Some(name) = &self.admin.token_env
            && let Err(error) = crate::serve::admin_token::AdminToken::from_env(name.get_ref())
        {
            return Err(locator.at(Some(name.span()), "admin.token_env".to_owned(), error));
        }
        for (name, upstream) in &self.upstreams {
            validate_upstream(name, upstream, locator)?;
        }
        if let Some(resolver) = &self.resolver
            && resolver.get_ref().attempts == 0
        {
            return Err(locator.in_table(
                resolver.span(),
                "resolver.attempts".to_owned(),
                "attempts: a lookup needs at least one query",
            ));
        }
        validate_edge("", self.cors.as_ref(), self.access.as_ref(), locator)?;
        if let Some(compression) = &self.compression {
            validate_compression(
                "compression",
                compression.get_ref(),
                compression.span(),
                locator,
            )?;
        }
        if let Some(cache) = &self.cache
            && let Err(error) = cache.get_ref().check()
        {
            return Err(locator.in_table(cache.span(), "cache".to_owned(), error));
        }
        let mut seen: Seen<'_> = BTreeMap::new();
        for (index, route) in self.routes.iter().enumerate() {
            self.validate_route(index, route, locator, &mut seen)?;
        }
        Ok(())
    }

    /// One route: its path, upstream, upgrades and what its layers need of other sections;
    /// and that no earlier route serves the same path for one of its methods.
    fn validate_route<'a>(
        &self,
        index: usize,
        route: &'a RouteSection,
        locator: &Locator<'_>,
        seen: &mut Seen<'a>,
    ) -> Result<(), ConfigError> {
        let field = |key: &str| format!("routes[{index}].{key}");
        let prefix = normalize_route_prefix(route.path.get_ref())
            .map_err(|reason| locator.at(Some(route.path.span()), field("path"), reason))?;
        if !self.upstreams.contains_key(route.upstream.get_ref()) {
            let known: Vec<&str> = self.upstreams.keys().map(String::as_str).collect();
            return Err(locator.at(
                Some(route.upstream.span()),
                field("upstream"),
                format!(
                    "no upstream named `{}` (defined: {})",
                    route.upstream.get_ref(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        validate_edge(
            &format!("routes[{index}]."),
            route.cors.as_ref(),
            route.access.as_ref(),
            locator,
        )?;
        if let Some(compression) = &route.compression
            && let RouteCompression::Settings(settings) = compression.get_ref()
        {
            validate_compression(&field("compression"), settings, compression.span(), locator)?;
        }
        if let Some(cache) = &route.cache {
            if self.cache.is_none() {
                return Err(locator.at(
                    Some(cache.span()),
                    field("cache"),
                    "caching needs the gateway's store: add a [cache] section",
                ));
            }
            if let Err(error) = cache.get_ref().build() {
                return Err(locator.in_table(cache.span(), field("cache"), error));
            }
        }
        if let Err(error) = gateway_proxy::UpgradeProtocols::new(route.upgrades.get_ref()) {
            return Err(locator.at(Some(route.upgrades.span()), field("upgrades"), error));
        }
        if *route.auth.get_ref() != AuthMode::None && self.jwt.is_none() {
            return Err(locator.at(
                Some(route.auth.span()),
                field("auth"),
                "authentication needs a [jwt] section",
            ));
        }
        let leases = route.rate_limit.as_ref().and_then(|limit| limit.lease());
        if leases.is_some() && self.redis.is_none() {
            return Err(locator.at(
                Some(route.path.span()),
                field("rate_limit.lease"),
                "a lease takes tokens from Redis: it needs a [redis] section",
            ));
        }
        if !route.roles.is_empty() && *route.auth.get_ref() == AuthMode::None {
            return Err(locator.at(
                Some(route.path.span()),
                field("roles"),
                "`roles` needs `auth = \"required\"` or `\"optional\"`",
            ));
        }
        let methods = route.methods.as_deref();
        let same_prefix = seen.entry(prefix).or_default();
        for (other, other_methods) in same_prefix.iter() {
            let overlap = match (methods, other_methods) {
                (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                _ => true,
            };
            if overlap {
                return Err(locator.at(
                    Some(route.path.span()),
                    field("path"),
                    format!("routes[{other}] already serves this path for some of these methods"),
                ));
            }
        }
        same_prefix.push((index, methods));
        Ok(())
    }
}

/// The edge policies of the gateway (`prefix` empty) or of a route (`routes[N].`): each must
/// build, so `gateway check` and a reload refuse what the layers would.
fn validate_edge(
    prefix: &str,
    cors: Option<&Spanned<CorsSection>>,
    access: Option<&Spanned<AccessSection>>,
    locator: &Locator<'_>,
) -> Result<(), ConfigError> {
    if let Some(cors) = cors
        && let Err(error) = cors.get_ref().build()
    {
        return Err(locator.in_table(cors.span(), format!("{prefix}cors"), error));
    }
    if let Some(access) = access
        && let Err(error) = access.get_ref().build()
    {
        return Err(locator.in_table(access.span(), format!("{prefix}access"), error));
    }
    Ok(())
}

/// A compression table must build (known, distinct algorithms; valid content types).
fn validate_compression(
    field: &str,
    settings: &CompressionSection,
    span: std::ops::Range<usize>,
    locator: &Locator<'_>,
) -> Result<(), ConfigError> {
    settings
        .build()
        .map(drop)
        .map_err(|error| locator.in_table(span, field.to_owned(), error))
}

/// Routes seen so far by normalized prefix: index and methods.
type Seen<'a> = BTreeMap<String, Vec<(usize, Option<&'a [Method]>)>>;
