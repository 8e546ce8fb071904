//! State kept across reloads while its config is unchanged, and the totals of counters whose
//! source a reload replaced.

use std::collections::HashMap;
#[cfg(feature = "otlp")]
use std::sync::Arc;
use std::time::Duration;

use gateway_auth::Authenticator;
use gateway_breaker::CircuitBreaker;
use gateway_cache::CacheStore;
use gateway_ratelimit::RateLimitBackend;

use super::error::BuildError;
use gateway_proxy::{Proxy, Resolver, ResolverOptions};
use toml::Spanned;

use super::upstreams::UpstreamKey;
use crate::config::{
    BreakerSection, CacheSection, Config, JwtSection, RedisSection, ResolverSection,
};

/// The totals of counters whose source a reload replaced (a new rate-limit store, a new
/// breaker), so that what `/metrics` reports never goes down for the life of the process.
#[derive(Clone, Debug, Default)]
pub(super) struct Retired {
    pub(super) backend_errors: u64,
    /// Per upstream, transitions to closed, open and half-open.
    pub(super) transitions: HashMap<String, [u64; 3]>,
    /// Evictions of response stores replaced by a changed `[cache]`.
    pub(super) cache_evictions: u64,
}

/// The states [`Retired::transitions`] counts, in its order.
pub(super) const BREAKER_STATES: [gateway_breaker::BreakerState; 3] = [
    gateway_breaker::BreakerState::Closed,
    gateway_breaker::BreakerState::Open,
    gateway_breaker::BreakerState::HalfOpen,
];

impl Retired {
    fn breaker(&mut self, upstream: &str, breaker: &CircuitBreaker) {
        let metrics = breaker.metrics();
        let totals = self.transitions.entry(upstream.to_owned()).or_default();
        for (total, state) in totals.iter_mut().zip(BREAKER_STATES) {
            *total += metrics.transitions_to(state);
        }
    }
}

/// State kept across reloads while its config is unchanged.
#[derive(Default)]
pub(crate) struct Shared {
    ratelimit: Option<(Option<RedisSection>, RateLimitBackend)>,
    breakers: HashMap<String, (BreakerSection, CircuitBreaker)>,
    retired: Retired,
    auth: Option<(JwtSection, Authenticator)>,
    cache: Option<(CacheSection, CacheStore)>,
    upstreams: HashMap<String, (UpstreamKey, Proxy)>,
    resolver: Option<(Option<ResolverSection>, Resolver)>,
    #[cfg(feature = "otlp")]
    exporter: Option<Arc<crate::observe::otlp::Exporter>>,
}

impl Shared {
    /// Sends the spans still queued for export (shutdown).
    pub(crate) fn flush_spans(&self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &self.exporter {
            exporter.flush();
        }
    }

    /// The span exporter for `[tracing]`: kept while the section is unchanged.
    #[cfg(feature = "otlp")]
    pub(super) fn exporter(
        &mut self,
        section: Option<&crate::config::TracingSection>,
    ) -> Result<Option<Arc<crate::observe::otlp::Exporter>>, BuildError> {
        let Some(section) = section else {
            self.exporter = None;
            return Ok(None);
        };
        match &self.exporter {
            Some(exporter) if exporter.section() == section => {}
            _ => self.exporter = Some(crate::observe::otlp::Exporter::start(section)?),
        }
        Ok(self.exporter.clone())
    }

    /// The rate-limit store: kept while `[redis]` is unchanged, so counters survive reloads.
    pub(super) async fn ratelimit(
        &mut self,
        config: &Config,
    ) -> Result<RateLimitBackend, BuildError> {
        if let Some((redis, backend)) = &self.ratelimit
            && redis.as_ref() == config.redis.as_ref()
        {
            return Ok(backend.clone());
        }
        let backend = RateLimitBackend::from_config(config.redis.as_ref())?;
        if backend.is_redis() && !backend.wait_connected(Duration::from_secs(2)).await {
            tracing::warn!(
                "Redis is not reachable yet; rate limits follow `on_error` until it answers"
            );
        }
        if let Some((_, replaced)) = self
            .ratelimit
            .replace((config.redis.clone(), backend.clone()))
        {
            self.retired.backend_errors += replaced.backend_errors_total();
        }
        Ok(backend)
    }

    /// The authenticator: kept while `[jwt]` is unchanged (verified-token cache, JWKS keys).
    pub(super) fn authenticator(
        &mut self,
        config: &Config,
    ) -> Result<Option<Authenticator>, BuildError> {
        let Some(jwt) = &config.jwt else {
            self.auth = None;
            return Ok(None);
        };
        if let Some((previous, auth)) = &self.auth
            && previous == jwt
        {
            return Ok(Some(auth.clone()));
        }
        let auth = Authenticator::from_config(jwt)?;
        auth.start_jwks_refresh();
        self.auth = Some((jwt.clone(), auth.clone()));
        Ok(Some(auth))
    }

    /// The response store: kept while `[cache]` is unchanged, so entries survive reloads.
    pub(super) fn cache(&mut self, config: &Config) -> Result<Option<CacheStore>, BuildError> {
        let Some(section) = config.cache.as_ref().map(|section| section.get_ref()) else {
            self.retire_cache();
            return Ok(None);
        };
        if let Some((previous, store)) = &self.cache
            && previous == section
        {
            return Ok(Some(store.clone()));
        }
        let store = section.build().map_err(|source| BuildError::Cache {
            field: "cache".into(),
            source,
        })?;
        self.retire_cache();
        self.cache = Some((section.clone(), store.clone()));
        Ok(Some(store))
    }

    fn retire_cache(&mut self) {
        if let Some((_, store)) = self.cache.take() {
            self.retired.cache_evictions += store.stats().evictions;
        }
    }

    /// An upstream's breaker: the previous one while its settings are unchanged.
    pub(super) fn breaker(
        &mut self,
        upstream: &str,
        settings: &BreakerSection,
    ) -> Result<CircuitBreaker, BuildError> {
        match self.breakers.remove(upstream) {
            Some((previous, breaker)) if &previous == settings => Ok(breaker),
            replaced => {
                if let Some((_, breaker)) = replaced {
                    self.retired.breaker(upstream, &breaker);
                }
                CircuitBreaker::named(upstream, settings.clone()).map_err(|source| {
                    BuildError::Breaker {
                        upstream: upstream.to_owned(),
                        source,
                    }
                })
            }
        }
    }

    /// Keeps `breakers` (the ones the new generation uses) for the next reload; the
    /// breakers of upstreams that are gone, or lost their breaker, are retired.
    pub(super) fn keep_breakers(
        &mut self,
        breakers: HashMap<String, (BreakerSection, CircuitBreaker)>,
    ) {
        for (name, (_, breaker)) in std::mem::replace(&mut self.breakers, breakers) {
            self.retired.breaker(&name, &breaker);
        }
    }

    /// The upstream built last time from `key`, if it was.
    pub(super) fn take_upstream(&mut self, name: &str, key: &UpstreamKey) -> Option<Proxy> {
        match self.upstreams.remove(name) {
            Some((previous, proxy)) if &previous == key => Some(proxy),
            _ => None,
        }
    }

    /// Keeps the upstreams the new generation uses for the next reload (the others stop
    /// their discovery once the old generation is dropped).
    pub(super) fn keep_upstreams(&mut self, upstreams: HashMap<String, (UpstreamKey, Proxy)>) {
        self.upstreams = upstreams;
    }

    /// The DNS resolver for `[resolver]`: the previous one while the section is unchanged.
    pub(super) fn resolver(
        &mut self,
        section: Option<&Spanned<ResolverSection>>,
    ) -> Result<Resolver, BuildError> {
        let section = section.map(|s| s.get_ref().clone());
        if let Some((previous, resolver)) = &self.resolver
            && *previous == section
        {
            return Ok(resolver.clone());
        }
        let options = match &section {
            None => ResolverOptions::new(),
            Some(section) => {
                let mut options = ResolverOptions::new()
                    .timeout(section.timeout.get())
                    .attempts(section.attempts);
                if !section.nameservers.is_empty() {
                    options = options.nameservers(section.nameservers.iter().copied());
                }
                options
            }
        };
        let resolver = options.build().map_err(BuildError::Resolver)?;
        self.resolver = Some((section, resolver.clone()));
        Ok(resolver)
    }

    /// The totals of replaced counter sources, for a new generation.
    pub(super) fn retired(&self) -> Retired {
        self.retired.clone()
    }
}
