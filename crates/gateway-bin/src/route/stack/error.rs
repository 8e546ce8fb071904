//! Why a config could not be turned into services.

/// Why a config could not be turned into services.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An upstream's targets or settings are invalid.
    #[error("upstreams.{upstream}: {source}")]
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// What is wrong.
        source: gateway_proxy::ProxyError,
    },
    /// The DNS resolver cannot be set up.
    #[error("resolver: {0}")]
    Resolver(gateway_proxy::ProxyError),
    /// A circuit breaker's settings are invalid.
    #[error("upstreams.{upstream}.circuit_breaker: {source}")]
    Breaker {
        /// The upstream's name.
        upstream: String,
        /// What is wrong.
        source: gateway_breaker::ConfigError,
    },
    /// The `[jwt]` section cannot be used (missing secret, unreadable key file...).
    #[error("jwt: {0}")]
    Jwt(#[from] gateway_auth::BuildError),
    /// The `[redis]` section cannot be used.
    #[error("redis: {0}")]
    Redis(#[from] gateway_ratelimit::ConnectError),
    /// The `[tracing]` exporter cannot be started.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Tracing(#[from] crate::observe::otlp::ExportError),
    /// A header rule set cannot be compiled.
    #[error("{field}: {source}")]
    Headers {
        /// Where the rules are.
        field: String,
        /// What is wrong.
        source: gateway_headers::HeaderRulesError,
    },
    /// `[server.tls]` cannot be used.
    #[error("server.tls: {0}")]
    Tls(#[from] crate::serve::tls::TlsError),
    /// An access list cannot be built (a bad address or CIDR).
    #[error("{field}: {source}")]
    Access {
        /// Where the lists are (`access`, `routes[N].access`).
        field: String,
        /// What is wrong.
        source: gateway_access::AccessError,
    },
    /// A CORS policy cannot be built.
    #[error("{field}: {source}")]
    Cors {
        /// Where the policy is (`cors`, `routes[N].cors`).
        field: String,
        /// What is wrong.
        source: gateway_cors::CorsError,
    },
    /// A compression table cannot be built (an unknown algorithm, a bad content type).
    #[error("{field}: {source}")]
    Compression {
        /// Where the settings are (`compression`, `routes[N].compression`).
        field: String,
        /// What is wrong.
        source: gateway_compression::CompressionError,
    },
    /// A cache table cannot be built (a bad size, a bad key header).
    #[error("{field}: {source}")]
    Cache {
        /// Where the settings are (`cache`, `routes[N].cache`).
        field: String,
        /// What is wrong.
        source: gateway_cache::CacheError,
    },
    /// A route path is invalid.
    #[error("routes[{index}].path: {reason}")]
    Route {
        /// The route's index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}
